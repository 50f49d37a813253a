#!/usr/bin/env python3
"""Signal pipeline speed: affectd vs scipy/NeuroKit2, in one run, on identical data.

1. `cargo bench --bench signals -- encoders` measures affectd (criterion medians).
2. The same work in Python, timed here (median of repeated runs, one process):
   - EEG stream, per 1 s hop: the same window features for each 4 s window of a 10 s
     recording at a 1 s hop, which is what a live stream or `affectd signals` computes per
     second (affectd reuses the Welch segments that consecutive windows share);
   - EEG window, 64 ch x 4 s at 1 kHz: scipy.signal.welch (Hann, 2 s segments, 50%
     overlap, constant detrend) vectorised over channels, band powers by
     scipy.integrate.trapezoid for 5 bands plus the 1-45 Hz total, relative power,
     differential entropy, F4-F3/F8-F7 asymmetry, beta/alpha and beta/(alpha+theta)
     indices, and per-channel quality (SD, median, rails, mains ratio): the scipy equivalent
     of affectd's EegEncoder;
   - ECG (pyhrv SampleECG.txt, 1 kHz): nk.ecg_clean + nk.ecg_peaks (method "neurokit");
   - PPG (heartpy data.csv, 100 Hz): nk.ppg_clean + nk.ppg_findpeaks (method "elgendi");
   - EDA (the golden simulated 90 s at 50 Hz): nk.eda_clean + nk.eda_phasic + nk.eda_peaks.
3. The C++ peer, BrainFlow's DataFilter (`brainflow` from PyPI, called per channel from
   Python as its docs show), on the same 64 ch x 1 kHz data:
   - Welch PSD of 4 s (Hann, 1024-sample segments, 50% overlap; BrainFlow's nfft must be a
     power of two, affectd's bench uses 1000) against affectd's Welch of 1000-sample segments;
   - band powers by its per-channel PSD path (get_psd_welch, 2048-sample segments, then
     get_band_power for the 5 bands) against affectd's whole EEG window encoder (which also
     computes relative powers, entropy, asymmetry, indices and quality: more work);
   - 4th-order Butterworth band-pass 1-45 Hz, causal over 1 s (perform_bandpass) and
     zero-phase over 4 s (BUTTERWORTH_ZERO_PHASE), against affectd's streaming filter and
     sosfiltfilt.
   BrainFlow's figures include one Python call per channel (a few microseconds each).
4. Prints medians, ratios, and the live cost of a 64 ch @ 1 kHz stream as % of one core.

    .venv/bin/pip install -r tests/reference/requirements.txt
    .venv/bin/python benches/compare_signals.py [--skip-cargo]
"""

import argparse
import json
import pathlib
import subprocess
import time

import numpy as np
import scipy.integrate
import scipy.signal

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHANNELS, FS = 64, 1000.0
LABELS = (
    "Fp1 Fpz Fp2 AF7 AF3 AFz AF4 AF8 F7 F5 F3 F1 Fz F2 F4 F6 F8 FT7 FC5 FC3 FC1 FCz FC2 FC4 FC6 FT8 "
    "T7 C5 C3 C1 Cz C2 C4 C6 T8 TP7 CP5 CP3 CP1 CPz CP2 CP4 CP6 TP8 P7 P5 P3 P1 Pz P2 P4 P6 P8 PO7 "
    "PO3 POz PO4 PO8 O1 Oz O2 Iz TP9 TP10"
).split()
BANDS = {"delta": (1, 4), "theta": (4, 8), "alpha": (8, 13), "beta": (13, 30), "gamma": (30, 45)}


def criterion_median_ms(name, group="encoders"):
    path = ROOT / "target/criterion" / group / name / "new/estimates.json"
    return json.loads(path.read_text())["median"]["point_estimate"] / 1e6


def median_ms(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times))


def eeg_data(seconds=4):
    """benches/signals.rs `channel(c, seconds)`, bit for bit."""
    i = np.arange(seconds * 1000)
    t = i / FS
    rows = []
    for c in range(CHANNELS):
        rows.append(20.0 * np.sin(2 * np.pi * (10.0 + c * 0.1) * t) + ((i * 7919 + c * 104729) % 997) / 100.0)
    return np.array(rows)


def eeg_window(x):
    f, psd = scipy.signal.welch(x, fs=FS, window="hann", nperseg=2000, noverlap=1000, detrend="constant", axis=-1)

    def band(lo, hi):
        m = (f >= lo) & (f <= hi)
        return scipy.integrate.trapezoid(psd[:, m], f[m], axis=-1)

    total = band(1, 45)
    powers = {name: band(lo, hi) for name, (lo, hi) in BANDS.items()}
    relative = {name: p / total for name, p in powers.items()}
    de = {name: 0.5 * np.log(2 * np.pi * np.e * p) for name, p in powers.items()}
    idx = {l.upper(): k for k, l in enumerate(LABELS)}
    faa = [np.log(powers["alpha"][idx[r]]) - np.log(powers["alpha"][idx[l]]) for r, l in (("F4", "F3"), ("F8", "F7"))]
    arousal = np.mean(powers["beta"] / powers["alpha"])
    engagement = np.mean(powers["beta"] / (powers["alpha"] + powers["theta"]))
    sd = x.std(axis=-1)
    med = np.median(x, axis=-1)
    artifacts = (np.abs(x - med[:, None]) > 150).mean(axis=-1)
    rails = ((x == x.max(axis=-1, keepdims=True)) | (x == x.min(axis=-1, keepdims=True))).mean(axis=-1)
    line = band(48, 52) / total
    return relative, de, faa, arousal, engagement, sd, artifacts, rails, line


def brainflow_rows(x, repeats):
    """BrainFlow's DataFilter on the same 64 ch x 4 s (and its first second)."""
    import importlib.metadata
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # brainflow 5.23 imports pkg_resources
        from brainflow.data_filter import DataFilter, FilterTypes, WindowOperations

    hann = WindowOperations.HANNING.value
    channels = [np.ascontiguousarray(c) for c in x]
    one_second = [np.ascontiguousarray(c[:1000]) for c in x]

    def welch():
        for c in channels:
            DataFilter.get_psd_welch(c, 1024, 512, int(FS), hann)

    def band_powers():
        for c in channels:
            psd = DataFilter.get_psd_welch(c, 2048, 1024, int(FS), hann)
            for lo, hi in BANDS.values():
                DataFilter.get_band_power(psd, lo, hi)

    def causal_bandpass():
        for c in one_second:
            DataFilter.perform_bandpass(c.copy(), int(FS), 1.0, 45.0, 4, FilterTypes.BUTTERWORTH.value, 0)

    def zero_phase_bandpass():
        for c in channels:
            DataFilter.perform_bandpass(c.copy(), int(FS), 1.0, 45.0, 4, FilterTypes.BUTTERWORTH_ZERO_PHASE.value, 0)

    peer = f"BrainFlow {importlib.metadata.version('brainflow')}"
    dsp = "dsp_64ch_1kHz"
    return [
        ("Welch PSD 64ch x 4s @1kHz", peer, median_ms(welch, repeats), (dsp, "welch_4s_window")),
        ("Band powers 64ch x 4s (vs EEG window)", peer, median_ms(band_powers, repeats), ("encoders", "eeg_window_64ch_1kHz_4s")),
        ("Causal band-pass 64ch x 1s", peer, median_ms(causal_bandpass, repeats), (dsp, "stream_bandpass_1s")),
        ("Zero-phase band-pass 64ch x 4s", peer, median_ms(zero_phase_bandpass, repeats), (dsp, "zero_phase_bandpass_4s")),
    ]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-cargo", action="store_true", help="reuse the last criterion results")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    import neurokit2 as nk

    if not args.skip_cargo:
        subprocess.run(["cargo", "bench", "--bench", "signals"], cwd=ROOT, check=True)

    x = eeg_data()
    ten_seconds = eeg_data(10)

    def eeg_stream_fn():
        # What a scipy pipeline does per 1 s hop of a live stream or a file: the features of
        # the 4 s window that ends there (here the six windows of a 10 s recording).
        for start in range(0, 6001, 1000):
            eeg_window(ten_seconds[:, start : start + 4000])
    ecg = np.array(
        [float(l.split()[5]) for l in (ROOT / ".testdata/SampleECG.txt").read_text().splitlines() if not l.startswith("#")]
    )
    ppg = np.loadtxt(ROOT / ".testdata/heartpy_ppg.csv")
    eda = np.array(json.loads((ROOT / "tests/reference/golden/physio.json").read_text())["eda"]["signal"])

    def ecg_fn():
        nk.ecg_peaks(nk.ecg_clean(ecg, sampling_rate=1000), sampling_rate=1000, method="neurokit")

    def ppg_fn():
        nk.ppg_findpeaks(nk.ppg_clean(ppg, sampling_rate=100), sampling_rate=100, method="elgendi")

    def eda_fn():
        cleaned = nk.eda_clean(eda, sampling_rate=50)
        phasic = nk.eda_phasic(cleaned, sampling_rate=50, method="highpass")["EDA_Phasic"].to_numpy()
        nk.eda_peaks(phasic, sampling_rate=50, method="neurokit")

    rows = [
        ("EEG window 64ch x 4s @1kHz", "scipy", median_ms(lambda: eeg_window(x), args.repeats), "eeg_window_64ch_1kHz_4s"),
        (
            "EEG stream 64ch @1kHz, per 1 s hop",
            "scipy",
            median_ms(eeg_stream_fn, max(args.repeats // 7, 3)) / 7,
            "eeg_stream_one_second_64ch_1kHz",
        ),
        ("ECG 22 s @1kHz (pyhrv)", "NeuroKit2", median_ms(ecg_fn, args.repeats), "ecg_clean_and_r_peaks_pyhrv_22s_1kHz"),
        ("PPG 25 s @100Hz (heartpy)", "NeuroKit2", median_ms(ppg_fn, args.repeats), "ppg_clean_and_peaks_heartpy_25s_100Hz"),
        ("EDA 90 s @50Hz (simulated)", "NeuroKit2", median_ms(eda_fn, args.repeats), "eda_clean_split_and_scrs_90s_50Hz"),
    ]
    rows = [(name, peer, peer_ms, ("encoders", bench)) for name, peer, peer_ms, bench in rows]
    rows += brainflow_rows(x, args.repeats)
    print(f"{'work':36} {'peer':10} {'peer ms':>9} {'affectd ms':>11} {'speed-up':>9}")
    for name, peer, peer_ms, (group, bench) in rows:
        ours = criterion_median_ms(bench, group)
        print(f"{name:36} {peer:10} {peer_ms:9.3f} {ours:11.3f} {peer_ms / ours:8.1f}x")
    live = criterion_median_ms("eeg_stream_one_second_64ch_1kHz")
    print(f"live 64 ch @ 1 kHz stream (4 s windows, 1 s hop): {live:.2f} ms per second of signal = {live / 10:.2f}% of one core")


if __name__ == "__main__":
    main()
