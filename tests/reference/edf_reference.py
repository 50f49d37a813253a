"""Golden readings of pyedflib's own EDF/BDF test files (shipped in the pyedflib 0.1.42
wheel, fetched into .testdata/ by scripts/fetch-testdata.sh), for tests/signals_readers.rs.

Run from the repository root:  .venv/bin/python tests/reference/edf_reference.py
"""

import hashlib
import json
import pathlib

import numpy as np
import pyedflib

ROOT = pathlib.Path(__file__).resolve().parents[2]
FILES = [
    "test_generator.edf",
    "test_generator.bdf",
    "test_generator_datarec_generator_0_5.bdf",
    "test_generator_datarec_generator_2.bdf",
    "test_legacy.edf",
    "test_subsecond.edf",
    "test_utf8.edf",
]

out = {"generator": "tests/reference/edf_reference.py", "pyedflib": pyedflib.__version__, "files": []}
for name in FILES:
    path = ROOT / ".testdata" / name
    r = pyedflib.EdfReader(str(path))
    signals = []
    for i in range(r.signals_in_file):
        x = r.readSignal(i)
        signals.append(
            {
                "label": r.getLabel(i),
                "unit": r.getPhysicalDimension(i),
                "rate_hz": float(r.getSampleFrequency(i)),
                "samples": len(x),
                "head": x[:50].tolist(),
                "sum": float(np.sum(x)),
                "sum_sq": float(np.sum(x * x)),
            }
        )
    onsets, durations, texts = r.readAnnotations()
    out["files"].append(
        {
            "file": name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "filetype": r.filetype,
            "signals": signals,
            "annotations": [
                {"onset": float(o), "duration": float(d), "text": t} for o, d, t in zip(onsets, durations, texts)
            ],
        }
    )
    r.close()
(ROOT / "tests/reference/golden/edf.json").write_text(json.dumps(out, indent=0))
print("wrote tests/reference/golden/edf.json")
