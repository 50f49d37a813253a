#!/usr/bin/env python3
"""A CSV recording whose time column is rounded, and scipy's EEG band powers of it.

Many recorders write a CSV time column at 6 decimals. At 256 Hz the steps then read
0.003906 or 0.003907 s, so a reader that takes the rate from the median step gets 256.016 Hz,
which shifts every Welch bin off the band edges. This script writes 8 channels of seeded
EEG-like signal at exactly 256 Hz with such a column (golden/rounded_eeg.csv), then computes
what affectd must report for it with scipy, from the very numbers in the file: per 4 s window
(1 s hop), Welch (Hann, 2 s segments, 50 % overlap, constant detrend) and the trapezoid over
the bins in each band (golden/rounded_eeg.json).

    .venv/bin/python tests/reference/rounded_csv_reference.py tests/reference/golden
"""

import io
import json
import pathlib
import sys

import numpy as np
import scipy
import scipy.integrate
from scipy import signal

FS = 256
SECONDS = 12
CHANNELS = ["Fp1", "Fp2", "F3", "F4", "F7", "F8", "O1", "O2"]
BANDS = [("delta", 1, 4), ("theta", 4, 8), ("alpha", 8, 13), ("beta", 13, 30), ("gamma", 30, 45)]


def main():
    out = pathlib.Path(sys.argv[1])
    rng = np.random.default_rng(20261130)
    n = FS * SECONDS
    t = np.arange(n) / FS
    columns = []
    for c in range(len(CHANNELS)):
        alpha = (8 + 4 * c / len(CHANNELS)) * np.sin(2 * np.pi * (9.5 + 0.3 * c) * t + c)
        beta = 3 * np.sin(2 * np.pi * (18 + c) * t)
        theta = 5 * np.sin(2 * np.pi * 6.2 * t + 2 * c)
        columns.append(alpha + beta + theta + rng.normal(0, 2, n))
    text = io.StringIO()
    text.write("time," + ",".join(f"{name} (uV)" for name in CHANNELS) + "\n")
    start = 1234.5
    for i in range(n):
        text.write(f"{start + i / FS:.6f}," + ",".join(f"{col[i]:.6f}" for col in columns) + "\n")
    (out / "rounded_eeg.csv").write_text(text.getvalue())

    # The values exactly as the file holds them.
    table = np.loadtxt(io.StringIO(text.getvalue()), delimiter=",", skiprows=1)
    data = table[:, 1:].T
    windows = []
    window, hop = 4 * FS, FS
    for first in range(0, n - window + 1, hop):
        powers = {}
        for name, x in zip(CHANNELS, data):
            f, p = signal.welch(x[first : first + window], fs=FS, window="hann", nperseg=2 * FS, detrend="constant")
            for band, lo, hi in BANDS:
                mask = (f >= lo) & (f <= hi)
                powers[f"{band}_{name}"] = float(scipy.integrate.trapezoid(p[mask], f[mask]))
        windows.append({"start_time": start + first / FS, "band_power": powers})
    golden = {
        "generator": "tests/reference/rounded_csv_reference.py",
        "scipy": scipy.__version__,
        "rate_hz": FS,
        "median_step_rate_hz": 1 / float(np.median(np.diff(table[:, 0]))),
        "windows": windows,
    }
    (out / "rounded_eeg.json").write_text(json.dumps(golden) + "\n")


if __name__ == "__main__":
    main()
