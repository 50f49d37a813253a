#!/usr/bin/env bash
# One command from a fresh clone to a running server on the embedded defaults:
# vendored face models, ONNX Runtime from PyPI, the default GGUF explanation model fetched by
# `affectd models fetch`. Extra arguments go to `affectd serve` (e.g. --listen 0.0.0.0:50051).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release --locked
./target/release/affectd models verify
AFFECTD_PYTHON=.venv/bin/python ./target/release/affectd models fetch
exec ./target/release/affectd serve "$@"
