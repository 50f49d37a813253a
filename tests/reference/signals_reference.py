#!/usr/bin/env python3
"""Golden values for affectd's DSP core from scipy.signal (tests/signals_parity.rs).

For a set of Butterworth designs (every band type, orders 1-8, several sample rates) it
records scipy's SOS coefficients, and sosfilt / sosfiltfilt outputs on a fixed test signal
(sines + seeded noise), so the Rust code can be held to scipy within 1e-9 relative error.

    .venv/bin/python tests/reference/signals_reference.py tests/reference/golden/dsp.json
"""

import json
import sys

import numpy as np
import scipy
from scipy import signal

DESIGNS = [
    (1, "lowpass", 10.0, 100.0),
    (2, "lowpass", 40.0, 250.0),
    (4, "highpass", 0.5, 250.0),
    (5, "highpass", 1.0, 1000.0),
    (4, "bandpass", (1.0, 40.0), 250.0),
    (3, "bandpass", (8.0, 13.0), 500.0),
    (8, "bandpass", (0.5, 45.0), 1000.0),
    (2, "bandstop", (48.0, 52.0), 250.0),
    (4, "bandstop", (58.0, 62.0), 1000.0),
    (6, "lowpass", 1.0, 32.0),
]


def main():
    out_path = sys.argv[1]
    rng = np.random.default_rng(20261129)
    n = 1500
    t = np.arange(n)
    x = np.sin(2 * np.pi * 0.013 * t) * 20 + np.sin(2 * np.pi * 0.21 * t) * 5 + rng.normal(0, 3, n) + 7.5
    cases = []
    for order, btype, cutoff, fs in DESIGNS:
        sos = signal.butter(order, cutoff, btype=btype, fs=fs, output="sos")
        cases.append(
            {
                "order": order,
                "btype": btype,
                "cutoff": list(cutoff) if isinstance(cutoff, tuple) else [cutoff],
                "fs": fs,
                "sos": sos.tolist(),
                "sosfilt": signal.sosfilt(sos, x).tolist(),
                "sosfilt_zi": signal.sosfilt_zi(sos).tolist(),
                "sosfiltfilt": signal.sosfiltfilt(sos, x).tolist(),
            }
        )
    welch_cases = []
    for fs, nperseg, noverlap, detrend in [(250.0, 256, None, "constant"), (1000.0, 512, 384, "linear"), (128.0, 100, 25, False), (250.0, 4096, None, "constant")]:
        f, p = signal.welch(x, fs=fs, window="hann", nperseg=nperseg, noverlap=noverlap, detrend=detrend)
        bands = {}
        interpolated = {}
        for name, lo, hi in [("delta", 1, 4), ("theta", 4, 8), ("alpha", 8, 13), ("beta", 13, 30), ("gamma", 30, 45)]:
            mask = (f >= lo) & (f <= hi)
            bands[name] = float(scipy.integrate.trapezoid(p[mask], f[mask])) if mask.sum() > 1 else 0.0
            # The PSD read as piecewise linear, integrated from exactly lo to exactly hi:
            # equal to the masked trapezoid where lo and hi are bins.
            inside = f[(f > lo) & (f < hi)]
            points = np.concatenate([[lo], inside, [hi]])
            interpolated[name] = float(scipy.integrate.trapezoid(np.interp(points, f, p), points))
        welch_cases.append({"fs": fs, "nperseg": nperseg, "noverlap": noverlap, "detrend": detrend or "none", "freqs": f.tolist(), "psd": p.tolist(), "band_power": bands, "band_power_interpolated": interpolated})
    notch_cases = []
    for w0, q, fs in [(50.0, 30.0, 250.0), (60.0, 30.0, 1000.0), (50.0, 10.0, 512.0)]:
        b, a = signal.iirnotch(w0, q, fs=fs)
        sos = np.concatenate([b, a])[None]
        notch_cases.append({"freq": w0, "quality": q, "fs": fs, "sos": sos.tolist(), "sosfilt": signal.sosfilt(sos, x).tolist()})
    resample_cases = [{"up": up, "down": down, "y": signal.resample_poly(x, up, down).tolist()} for up, down in [(2, 1), (1, 4), (2, 3), (5, 4), (250, 1000), (3, 7)]]
    golden = {"generator": "tests/reference/signals_reference.py", "scipy": scipy.__version__, "x": x.tolist(), "cases": cases, "welch": welch_cases, "notch": notch_cases, "resample_poly": resample_cases}
    with open(out_path, "w") as f:
        json.dump(golden, f)
        f.write("\n")


if __name__ == "__main__":
    main()
