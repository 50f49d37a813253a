"""CPU use of affectd-lsl forwarding a 64-channel 1 kHz EEG outlet (float32, 32-sample
chunks) into a live, recorded session, with the result outlets published.

    python benches/lsl_bridge.py --address 127.0.0.1:50051 [--seconds 30] [--runs 3]

Needs a running `affectd serve` (release build for realistic server load) and the client
package (pip install 'clients/python[lsl]'). Prints the bridge's CPU time (user + system,
from /proc) over its wall time, per run, and the median; the samples forwarded are checked
against those pushed.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
import uuid

import numpy as np
import pylsl


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(address: str, seconds: float, channels: int, rate: float) -> tuple[float, int, str]:
    tag = uuid.uuid4().hex[:8]
    info = pylsl.StreamInfo(f"BenchAmp-{tag}", "EEG", channels, rate, pylsl.cf_float32, f"bench-{tag}")
    outlet = pylsl.StreamOutlet(info, chunk_size=32)
    bridge = subprocess.Popen(
        [sys.executable, "-m", "affectd.lsl", "--address", address, "--eeg", f"source_id=bench-{tag}",
         "--participant", "bench-lsl", "--outlet-prefix", f"bench-{tag}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(3.0)  # resolve, open the session, connect
    chunk = 32
    block = np.random.default_rng(1).normal(0, 10, (chunk, channels)).astype(np.float32)
    start = pylsl.local_clock()
    cpu0, wall0 = cpu_seconds(bridge.pid), time.monotonic()
    pushed = 0
    while pylsl.local_clock() - start < seconds:
        due = start + (pushed + chunk) / rate
        time.sleep(max(0.0, due - pylsl.local_clock()))
        outlet.push_chunk(block, due)
        pushed += chunk
    cpu1, wall1 = cpu_seconds(bridge.pid), time.monotonic()
    bridge.send_signal(2)
    _, err = bridge.communicate(timeout=120)
    if bridge.returncode != 0:
        raise SystemExit(f"the bridge failed:\n{err}")
    forwarded = next(int(m.group(1)) for m in map(re.compile(r"--eeg .*: (\d+) samples in").search, err.splitlines()) if m)
    return (cpu1 - cpu0) / (wall1 - wall0), pushed - forwarded, err


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--address", default="127.0.0.1:50051")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--rate", type=float, default=1000.0)
    args = p.parse_args()
    shares = []
    for i in range(args.runs):
        share, missing, _ = run(args.address, args.seconds, args.channels, args.rate)
        shares.append(share)
        print(f"run {i + 1}: bridge CPU {share * 100:.1f}% of one core over {args.seconds:g} s "
              f"({args.channels} ch x {args.rate:g} Hz); samples pushed but not forwarded: {missing}")
    print(f"median {statistics.median(shares) * 100:.1f}% of one core (range {min(shares) * 100:.1f}-{max(shares) * 100:.1f}%)")


if __name__ == "__main__":
    main()
