#!/usr/bin/env python3
"""A live session under a lab's load, against a running server: webcam frames at a fixed
rate plus a multi-channel EEG stream in real-time chunks, recorded. No peer does this, so
there is no ratio; the script reports what a lab needs to know:

- face results: how many frames were analysed and how many skipped (the server skips
  frames when face analysis is more than two frames behind), the latency from sending
  a frame to receiving its result (median, 95th percentile), and how much of it was the
  analysis itself (the result's stage timings);
- acknowledgements: the latency from sending a message to receiving the ack that covers it
  (the SQLite commit, synchronous=FULL), median and 95th percentile;
- feature windows received.

Frames are one JPEG sent repeatedly (default: .testdata/single_face.jpg, 572x562, one face).
Start the server first, e.g. `cargo build --release && target/release/affectd serve`, then:

    .venv/bin/python benches/session_load.py [--address 127.0.0.1:50051] [--seconds 10]
        [--fps 30] [--eeg-channels 32] [--eeg-rate 512] [--chunk-hz 16] [--image FILE]
"""

import argparse
import pathlib
import statistics
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "clients/python"))

import affectd  # noqa: E402
from affectd.proto import session_pb2  # noqa: E402


def percentile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--address", default="127.0.0.1:50051")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--eeg-channels", type=int, default=32)
    p.add_argument("--eeg-rate", type=float, default=512.0)
    p.add_argument("--chunk-hz", type=float, default=16.0)
    p.add_argument("--image", default=str(ROOT / ".testdata/single_face.jpg"))
    args = p.parse_args()
    image = pathlib.Path(args.image).read_bytes()
    eeg = affectd.stream(
        "eeg", "eeg", args.eeg_rate, labels=[f"E{i + 1}" for i in range(args.eeg_channels)], units="uV"
    )
    per_chunk = int(args.eeg_rate / args.chunk_hz)
    chunk_rows = [[float((i * 7 + c * 13) % 50 - 25) for c in range(args.eeg_channels)] for i in range(per_chunk)]

    sent_at = {}  # client_seq -> send time (perf_counter)
    frame_latency, ack_latency, analysis_ms = [], [], []
    counts = {"faces": 0, "skipped": 0, "windows": 0}
    acked = [0]
    with affectd.Client(args.address) as client:
        lock = threading.Lock()

        def read(r):
            now = time.perf_counter()
            kind = r.WhichOneof("message")
            with lock:
                if kind == "faces":
                    counts["faces"] += 1
                    frame_latency.append(now - sent_at[r.faces.client_seq])
                    analysis_ms.append(sum(t.ms for t in r.faces.timings))
                elif kind == "warning" and r.warning.kind == session_pb2.SESSION_WARNING_KIND_FRAME_SKIPPED:
                    counts["skipped"] += 1
                elif kind == "features":
                    counts["windows"] += 1
                elif kind == "ack":
                    for seq in range(acked[0] + 1, r.ack.client_seq + 1):
                        if seq in sent_at:
                            ack_latency.append(now - sent_at[seq])
                    acked[0] = r.ack.client_seq

        session = client.session(  # `read` runs on the session's reader thread
            participant="bench", streams=[eeg], metadata={"bench": "session_load"},
            keep_responses=False, callbacks={"*": read},
        )
        start = time.perf_counter()
        next_frame, next_chunk = start, start
        frames = chunks = 0
        t_client = 1000.0
        while time.perf_counter() - start < args.seconds:
            now = time.perf_counter()
            if now >= next_frame:
                with lock:
                    seq = session.frame(t_client + (now - start), image)
                    sent_at[seq] = time.perf_counter()
                frames += 1
                next_frame += 1.0 / args.fps
            if now >= next_chunk:
                with lock:
                    seq = session.chunk("eeg", t_client + chunks * per_chunk / args.eeg_rate, chunk_rows)
                    sent_at[seq] = time.perf_counter()
                chunks += 1
                next_chunk += 1.0 / args.chunk_hz
            time.sleep(max(0.0, min(next_frame, next_chunk) - time.perf_counter()))
        session.end()

    ms = lambda v: v * 1e3  # noqa: E731
    print(f"{args.seconds:.0f} s: {frames} frames at {args.fps:g} fps, {chunks} EEG chunks "
          f"({args.eeg_channels} ch x {args.eeg_rate:g} Hz, {per_chunk} samples each)")
    print(f"face results: {counts['faces']} analysed, {counts['skipped']} skipped "
          f"({counts['faces'] / max(frames, 1) * 100:.0f}% analysed, {counts['faces'] / args.seconds:.1f} per s)")
    print(f"frame -> result latency: median {ms(statistics.median(frame_latency)):.1f} ms, "
          f"p95 {ms(percentile(frame_latency, 0.95)):.1f} ms")
    print(f"  of which face analysis on the server (sum of its stage timings): median "
          f"{statistics.median(analysis_ms):.1f} ms")
    print(f"message -> ack latency: median {ms(statistics.median(ack_latency)):.1f} ms, "
          f"p95 {ms(percentile(ack_latency, 0.95)):.1f} ms ({len(ack_latency)} messages)")
    print(f"feature windows: {counts['windows']}")


if __name__ == "__main__":
    main()
