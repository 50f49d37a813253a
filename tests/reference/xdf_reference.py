"""A synthetic LabRecorder-style XDF file and pyxdf's reading of it, for
tests/signals_readers.rs.

No XDF recording ships in a registry package we can fetch, so this script writes one with
what real recordings contain:
- "EEG" (float32, 4 channels with labels and units, 250 Hz) whose time stamps jitter by
  +-1 ms, whose sender clock runs 30 ppm fast and sits 2.5 s behind the recorder (clock
  offsets every 5 s, with measurement noise);
- "ECG" (int16, 1 channel, 500 Hz) where most samples carry no time stamp (deduced by
  readers from the previous one), a 3 s break in the middle, and a sender clock that is
  reset (jumps by 100 s) half way, as when a device reboots;
- "Markers" (string, irregular) with three events.
pyxdf.load_xdf with its defaults (clock synchronisation, clock-reset handling, jitter
removal) is the reference.

Run from the repository root:  .venv/bin/python tests/reference/xdf_reference.py
"""

import json
import pathlib
import struct

import numpy as np
import pyxdf

ROOT = pathlib.Path(__file__).resolve().parents[2]
XDF = ROOT / "tests/reference/golden/synthetic.xdf"
OUT = ROOT / "tests/reference/golden/xdf.json"
rng = np.random.default_rng(7)


def varlen(n):
    if n < 256:
        return bytes([1, n])
    if n < 2**32:
        return bytes([4]) + struct.pack("<I", n)
    return bytes([8]) + struct.pack("<Q", n)


def chunk(tag, content):
    return varlen(len(content) + 2) + struct.pack("<H", tag) + content


def header_xml(name, kind, channels, rate, fmt, labels=None, unit=None):
    desc = ""
    if labels:
        desc = "<desc><channels>" + "".join(
            f"<channel><label>{l}</label><unit>{unit}</unit><type>{kind}</type></channel>" for l in labels
        ) + "</channels></desc>"
    return (
        f'<?xml version="1.0"?><info><name>{name}</name><type>{kind}</type>'
        f"<channel_count>{channels}</channel_count><nominal_srate>{rate}</nominal_srate>"
        f"<channel_format>{fmt}</channel_format><created_at>100</created_at>{desc}</info>"
    ).encode()


def samples_chunk(stream_id, stamps, rows, fmt):
    out = struct.pack("<I", stream_id) + varlen(len(rows))
    for ts, row in zip(stamps, rows):
        out += b"\x00" if ts is None else b"\x08" + struct.pack("<d", ts)
        if fmt == "string":
            for v in row:
                b = v.encode()
                out += varlen(len(b)) + b
        else:
            code = {"float32": "<f", "int16": "<h"}[fmt]
            out += b"".join(struct.pack(code, v) for v in row)
    return chunk(3, out)


def offset_chunk(stream_id, t, value):
    return chunk(4, struct.pack("<Idd", stream_id, t, value))


data = b"XDF:" + chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')
data += chunk(2, struct.pack("<I", 1) + header_xml("EEG", "EEG", 4, 250, "float32", ["F3", "F4", "Cz", "Pz"], "microvolts"))
data += chunk(2, struct.pack("<I", 2) + header_xml("ECG", "ECG", 1, 500, "int16", ["ECG"], "mV"))
data += chunk(2, struct.pack("<I", 3) + header_xml("Markers", "Markers", 1, 0, "string"))

# EEG: 30 s, sender clock = (recorder - 2.5) * (1 + 30e-6); chunks of 25 samples.
n = 30 * 250
true_t = 100.0 + np.arange(n) / 250.0
sender = (true_t - 2.5) * (1 + 30e-6) + rng.uniform(-1e-3, 1e-3, n)
eeg = (rng.normal(size=(n, 4)) * 10).astype(np.float32)
for k in range(0, n, 25):
    data += samples_chunk(1, sender[k : k + 25].tolist(), eeg[k : k + 25].tolist(), "float32")
    if k % 1250 == 0:
        t = 100.0 + k / 250.0
        data += offset_chunk(1, (t - 2.5) * (1 + 30e-6), 2.5 - 30e-6 * (t - 2.5) + rng.normal(0, 2e-5))

# ECG: 2 x 10 s with a 3 s break; time stamps only on the first sample of each chunk; the
# sender clock jumps by +100 s (reset) before the second part.
m = 10 * 500
ecg = (np.sin(np.arange(2 * m) / 50.0) * 1000).astype(np.int16)
for part, (start, shift) in enumerate([(100.0, 0.0), (113.0, 100.0)]):
    for k in range(0, m, 50):
        t0 = start + k / 500.0 + shift
        stamps = [t0] + [None] * 49
        data += samples_chunk(2, stamps, [[int(v)] for v in ecg[part * m + k : part * m + k + 50]], "int16")
    for j in range(3):
        t = start + j * 4.0
        data += offset_chunk(2, t + shift, -shift + 0.01 + rng.normal(0, 1e-5))

for t, text in [(101.0, "stimulus onset"), (105.5, "response"), (120.25, "end")]:
    data += samples_chunk(3, [t + 2.5], [[text]], "string")
data += offset_chunk(3, 100.0, -2.5)
data += offset_chunk(3, 130.0, -2.5)

for sid, count in [(1, n), (2, 2 * m), (3, 3)]:
    data += chunk(6, struct.pack("<I", sid) + f'<?xml version="1.0"?><info><sample_count>{count}</sample_count></info>'.encode())
XDF.write_bytes(data)

streams, _ = pyxdf.load_xdf(str(XDF))
out = {"generator": "tests/reference/xdf_reference.py", "pyxdf": pyxdf.__version__, "file": XDF.name, "streams": []}
for s in streams:
    info = s["info"]
    series = s["time_series"]
    out["streams"].append(
        {
            "name": info["name"][0],
            "type": info["type"][0],
            "effective_srate": float(info["effective_srate"]),
            "segments": [list(map(int, seg)) for seg in info["segments"]],
            "time_stamps": np.asarray(s["time_stamps"]).tolist(),
            "first_row": [str(v) for v in series[0]] if info["channel_format"][0] == "string" else np.asarray(series[0], dtype=float).tolist(),
            "rows": len(series),
        }
    )
OUT.write_text(json.dumps(out))
print(f"wrote {XDF.relative_to(ROOT)} ({len(data)} bytes) and {OUT.relative_to(ROOT)}")
for s in out["streams"]:
    print(f"  {s['name']}: {s['rows']} rows, {s['effective_srate']:.4f} Hz, segments {s['segments']}, first t {s['time_stamps'][0]:.6f}")
