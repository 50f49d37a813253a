#!/usr/bin/env bash
# One command from a fresh clone to the whole test suite (CI runs exactly this).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --dev
export AFFECTD_PYTHON="$PWD/.venv/bin/python"
cargo build --locked --all-targets
cargo test --locked --all-targets -- --nocapture 2>&1 | tee target/test-output.log
# `--all-targets` skips doc tests; run them too.
cargo test --locked --doc
