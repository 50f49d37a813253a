#!/usr/bin/env python3
"""Fault run: kill -9 the server at random moments while recorded sessions stream frames,
EEG chunks and markers, then check what survived. Reports, over all kills:

- acknowledged messages (the client's view when the connection broke) and how many of
  them are missing from the database after the next start (must be 0);
- recordings left open by the kill and closed as interrupted at the next start (must be
  all of them).

The client's last acknowledged client_seq comes from SessionBroken, as a lab's client
would see it. The database is read with Python's sqlite3 after the server has started
again on it (the start closes the orphans).

    .venv/bin/python benches/faults.py [--binary target/release/affectd] [--kills 20]
        [--sessions 3] [--seed 1]
"""

import argparse
import os
import pathlib
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "clients/python"))

import numpy as np  # noqa: E402

import affectd  # noqa: E402


def start(binary, folder):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFFECTD_")}
    env.update(AFFECTD_CACHE_DIR=folder, AFFECTD_DATABASE=os.path.join(folder, "sessions.sqlite"), AFFECTD_LOG_LEVEL="error", AFFECTD_HTTP_LISTEN="")
    process = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0"], env=env, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if not line.startswith("affectd listening on "):
        raise SystemExit(f"the server did not start: {line!r}")
    return process, line.split()[-1]


def stream(address, session_id, image, kinds, stop, outcome):
    """Sends frames, chunks and markers until the connection breaks; records what was sent
    (seq -> kind) and the last acknowledged seq."""
    eeg = affectd.stream("eeg", "eeg", 256.0, labels=["F3", "F4"], units="uV")
    client = affectd.Client(address, timeout=10)
    session = client.session(participant="fault", streams=[eeg], session_id=session_id)
    rng = np.random.default_rng(len(session_id))
    t = 0.0
    sent = {}
    try:
        while not stop.is_set():
            t += 1 / 16
            seq = session.chunk("eeg", t, rng.normal(0, 10, (2, 16)), layout="channels")
            sent[seq] = "chunks"
            if "frames" in kinds and int(t * 16) % 2 == 0:
                sent[session.frame(t, image)] = "frames"
            if int(t * 16) % 5 == 0:
                sent[session.marker(t, f"m{seq}")] = "markers"
            time.sleep(0.005)
    except affectd.SessionBroken as broken:
        outcome[session_id] = (sent, broken.last_acknowledged)
        return
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        outcome[session_id] = (sent, session.last_acknowledged, repr(e))
        return
    # The kill came while sleeping: read the break.
    try:
        session.wait_acknowledged(timeout=10)
    except affectd.SessionBroken as broken:
        outcome[session_id] = (sent, broken.last_acknowledged)
        return
    outcome[session_id] = (sent, session.last_acknowledged)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", default=str(ROOT / "target/release/affectd"))
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--sessions", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    rng = random.Random(args.seed)
    image = (ROOT / ".testdata/single_face.jpg").read_bytes()
    folder = tempfile.mkdtemp(prefix="affectd-faults-")
    database = os.path.join(folder, "sessions.sqlite")
    total_acked = total_missing = left_open = closed = 0
    sessions_run = []
    for kill in range(args.kills):
        process, address = start(args.binary, folder)
        stop = threading.Event()
        outcome = {}
        threads = []
        for i in range(args.sessions):
            session_id = f"k{kill:02d}-s{i}"
            kinds = {"chunks", "markers"} | ({"frames"} if i == 0 else set())
            thread = threading.Thread(target=stream, args=(address, session_id, image, kinds, stop, outcome))
            thread.start()
            threads.append(thread)
            sessions_run.append(session_id)
        delay = rng.uniform(0.3, 3.0)
        time.sleep(delay)
        process.kill()  # SIGKILL
        process.wait()
        stop.set()
        for thread in threads:
            thread.join(30)
        # The next start closes what the kill left open.
        process, _ = start(args.binary, folder)
        process.terminate()
        process.wait(30)
        db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        for session_id, result in sorted(outcome.items()):
            sent, acked = result[0], result[1]
            row = db.execute("SELECT ended_at, interrupted FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
            if row is None:
                # Killed before the session row was committed: nothing was acknowledged.
                assert acked == 0, (session_id, acked)
                continue
            left_open += 1
            closed += int(row[0] is not None and row[1] == 1)
            for seq, table in sent.items():
                if seq > acked:
                    continue
                total_acked += 1
                found = db.execute(
                    f"SELECT 1 FROM {table} WHERE session_id = ? AND client_seq = ?", (session_id, seq)
                ).fetchone()
                total_missing += int(found is None)
            if len(result) > 2:
                print(f"  {session_id}: the client stopped with {result[2]}")
        db.close()
        print(f"kill {kill + 1:2d} after {delay:.2f} s: " + ", ".join(
            f"{sid} acked {outcome[sid][1]}" for sid in sorted(outcome)))
    print()
    print(f"kills: {args.kills}, sessions: {len(sessions_run)}")
    print(f"acknowledged messages checked: {total_acked}, missing after restart: {total_missing}")
    print(f"recordings left open by a kill: {left_open}, closed as interrupted at the next start: {closed}")
    shutil.rmtree(folder, ignore_errors=True)
    if total_missing or closed != left_open:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
