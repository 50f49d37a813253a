#!/usr/bin/env python3
"""Load: N concurrent recorded live sessions against a server this script starts (release
build by default), as a lab with several rooms would run them. Two modes:

- default: each session sends webcam frames (30 fps, 640x480 one face by default) and a
  32-channel 512 Hz EEG stream in 16 chunks per second, for `--seconds`. Reports, per
  session and over all: frames analysed and skipped (and the spread across sessions:
  fairness), message -> ack latency p50/p99, the server's RSS over time (sampled every
  `--rss-every` s: it must stay flat), and the recording's throughput (database growth).
- `--stalled-dashboards K`: also opens K dashboard feeds per session (the live page's
  server-sent events) that never read: a browser tab that stopped. Run with and without
  to compare the sessions' ack latency (issue 19: a slow browser must not slow a session).
- `--signals-only`: each session sends EEG chunks as fast as acknowledgements allow
  (`--channels` x `--chunk-samples` per chunk, at most `--in-flight` unacknowledged);
  reports acknowledged samples (x channels) per second over all sessions.

    .venv/bin/python benches/load.py [--binary target/release/affectd] [--sessions 8]
        [--seconds 600] [--fps 30] [--image FILE] [--signals-only] [--config FILE]
        [--stalled-dashboards K]

No peer runs live sessions, so there are no ratios; the figures are what this machine
sustains (`nproc` is printed with them).
"""

import argparse
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "clients/python"))

import numpy as np  # noqa: E402

import affectd  # noqa: E402
from affectd.proto import session_pb2  # noqa: E402


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(binary, folder, config=None, http=False):
    """The server, its gRPC address and its dashboard's host:port (None without `http`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFFECTD_")}
    env.update(
        AFFECTD_CACHE_DIR=folder,
        AFFECTD_DATABASE=os.path.join(folder, "sessions.sqlite"),
        AFFECTD_LOG_LEVEL="warn",
        AFFECTD_HTTP_LISTEN="127.0.0.1:0" if http else "",
    )
    command = [binary, "serve", "--listen", "127.0.0.1:0"] + (["--config", config] if config else [])
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    dashboard = None
    for line in process.stdout:
        if line.startswith("affectd dashboard on "):
            dashboard = line.split()[-1].split("//")[1].rstrip("/")
        if line.startswith("affectd listening on "):
            return process, line.split()[-1], dashboard
    raise SystemExit("the server did not start")


def unread_bytes(dashboard):
    """The server's side of each dashboard connection: bytes it queued that were not read."""
    port = dashboard.rsplit(":", 1)[1]
    out = subprocess.run(["ss", "-tnH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout.split("\n")
    return sorted(int(line.split()[1]) for line in out if line.strip())


def stalled_feed(dashboard, session_id):
    """A dashboard feed whose reader never reads: a small receive buffer, filled and left."""
    import socket

    host, port = dashboard.rsplit(":", 1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, int(port)))
    s.sendall(f"GET /api/sessions/{session_id}/feed HTTP/1.1\r\nHost: {dashboard}\r\nAccept: text/event-stream\r\n\r\n".encode())
    return s


class Room:
    """One session and what it measured."""

    def __init__(self, client, index, args, image):
        self.args, self.image = args, image
        self.lock = threading.Lock()
        self.sent_at = {}
        self.ack_latency = []
        self.analysed = self.skipped = self.frames = 0
        self.acked = 0
        self.acked_values = 0
        self.values_at = {}
        channels = args.channels if args.signals_only else 32
        rate = 1000.0 if args.signals_only else 512.0
        self.eeg = affectd.stream("eeg", "eeg", rate, labels=[f"E{i + 1}" for i in range(channels)], units="uV")
        self.session = client.session(
            participant=f"room{index}", streams=[self.eeg], keep_responses=False, callbacks={"*": self.read}
        )

    def read(self, r):
        now = time.perf_counter()
        kind = r.WhichOneof("message")
        with self.lock:
            if kind == "faces":
                self.analysed += 1
            elif kind == "warning" and r.warning.kind == session_pb2.SESSION_WARNING_KIND_FRAME_SKIPPED:
                self.skipped += 1
            elif kind == "ack":
                for seq in range(self.acked + 1, r.ack.client_seq + 1):
                    sent = self.sent_at.pop(seq, None)
                    if sent is not None:
                        self.ack_latency.append(now - sent)
                    self.acked_values += self.values_at.pop(seq, 0)
                self.acked = r.ack.client_seq

    def run_av(self, stop):
        args = self.args
        per_chunk = 32
        rows = np.random.default_rng(1).normal(0, 10, (per_chunk, 32))
        start = time.perf_counter()
        next_frame = next_chunk = start
        chunks = 0
        while not stop.is_set():
            now = time.perf_counter()
            if now >= next_frame:
                seq = self.session.frame(now - start, self.image)
                with self.lock:
                    self.sent_at[seq] = time.perf_counter()
                    self.frames += 1
                next_frame += 1.0 / args.fps
            if now >= next_chunk:
                seq = self.session.chunk("eeg", chunks * per_chunk / 512.0, rows)
                with self.lock:
                    self.sent_at[seq] = time.perf_counter()
                chunks += 1
                next_chunk += 1.0 / 16
            time.sleep(max(0.0, min(next_frame, next_chunk) - time.perf_counter()))

    def run_signals(self, stop):
        args = self.args
        rows = np.random.default_rng(2).normal(0, 10, (args.chunk_samples, args.channels)).astype(np.float32)
        t = 0.0
        while not stop.is_set():
            with self.lock:
                waiting = self.session.last_sent - self.acked
            if waiting >= args.in_flight:
                time.sleep(0.001)
                continue
            seq = self.session.chunk("eeg", t, rows)
            with self.lock:
                self.sent_at[seq] = time.perf_counter()
                self.values_at[seq] = rows.size
            t += args.chunk_samples / 1000.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", default=str(ROOT / "target/release/affectd"))
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--image", help="JPEG to send (default: .testdata/single_face.jpg resized to 640x480)")
    p.add_argument("--rss-every", type=float, default=10.0)
    p.add_argument("--signals-only", action="store_true")
    p.add_argument("--config", help="a config file for the server (e.g. other [limits])")
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--chunk-samples", type=int, default=1000)
    p.add_argument("--in-flight", type=int, default=8)
    p.add_argument("--stalled-dashboards", type=int, default=0)
    args = p.parse_args()
    if args.image:
        image = pathlib.Path(args.image).read_bytes()
    else:
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.open(ROOT / ".testdata/single_face.jpg").convert("RGB").resize((640, 480)).save(buffer, "JPEG", quality=90)
        image = buffer.getvalue()
    folder = tempfile.mkdtemp(prefix="affectd-load-")
    server, address, dashboard = start_server(args.binary, folder, args.config, http=args.stalled_dashboards > 0)
    database = pathlib.Path(folder) / "sessions.sqlite"
    try:
        clients = [affectd.Client(address, timeout=60) for _ in range(args.sessions)]
        rooms = [Room(c, i, args, image) for i, c in enumerate(clients)]
        stalled = [stalled_feed(dashboard, r.session.session_id) for r in rooms for _ in range(args.stalled_dashboards)]
        stop = threading.Event()
        target = "run_signals" if args.signals_only else "run_av"
        threads = [threading.Thread(target=getattr(r, target), args=(stop,)) for r in rooms]
        rss = []
        db_start = sum(f.stat().st_size for f in pathlib.Path(folder).glob("sessions.sqlite*"))
        started = time.perf_counter()
        for t in threads:
            t.start()
        while time.perf_counter() - started < args.seconds:
            time.sleep(min(args.rss_every, args.seconds - (time.perf_counter() - started)))
            rss.append((round(time.perf_counter() - started), round(rss_mib(server.pid))))
            if stalled:
                # Once these stop growing, every feed is blocked on its connection.
                queued = unread_bytes(dashboard)
                print(f"{rss[-1][0]} s: unread bytes on the stalled feeds: min {min(queued)}, max {max(queued)}", flush=True)
        stop.set()
        for t in threads:
            t.join()
        for r in rooms:
            r.session.wait_acknowledged(timeout=60)
        elapsed = time.perf_counter() - started
        db_bytes = sum(f.stat().st_size for f in pathlib.Path(folder).glob("sessions.sqlite*")) - db_start
        for r in rooms:
            r.session.end()
    finally:
        server.terminate()
        server.wait(60)
        # Ten minutes of eight recorded sessions is some 10 GB of database.
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{args.sessions} sessions for {elapsed:.0f} s on {os.cpu_count()} cores, binary {args.binary}"
          + (f", {len(stalled)} stalled dashboard feeds ({args.stalled_dashboards} per session)" if stalled else ""))
    latencies = [v for r in rooms for v in r.ack_latency]
    print(f"message -> ack latency: p50 {percentile(latencies, 0.5) * 1e3:.1f} ms, p99 {percentile(latencies, 0.99) * 1e3:.1f} ms ({len(latencies)} messages)")
    if args.signals_only:
        values = sum(r.acked_values for r in rooms)
        print(f"acknowledged: {values / elapsed / 1e6:.2f} M samples x channels per s over all sessions "
              f"({args.channels} ch x {args.chunk_samples} samples per chunk, at most {args.in_flight} in flight per session)")
    else:
        shares = [r.analysed / max(r.frames, 1) for r in rooms]
        frames = sum(r.frames for r in rooms)
        analysed = sum(r.analysed for r in rooms)
        print(f"frames: {frames} sent, {analysed} analysed ({analysed / max(frames, 1) * 100:.0f}%, {analysed / elapsed:.1f} per s), "
              f"{sum(r.skipped for r in rooms)} skipped")
        print("analysed per session: " + ", ".join(f"{s * 100:.0f}%" for s in shares)
              + f" (min {min(shares) * 100:.0f}%, max {max(shares) * 100:.0f}%, "
              f"stdev {statistics.pstdev(shares) * 100:.1f} points)")
    print(f"recording: {db_bytes / elapsed / 1e6:.2f} MB/s into the database")
    print("server RSS (s, MiB): " + " ".join(f"{t}:{m}" for t, m in rss))


if __name__ == "__main__":
    main()
