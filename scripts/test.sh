#!/usr/bin/env bash
# One command from a fresh clone to the whole test suite (CI runs exactly this).
#
#   scripts/test.sh           lints, then every test: the default build's (the language-model
#                             tests against llama.cpp and the fetched GGUF models included),
#                             and the build without the candle engine
#   scripts/test.sh --quick   lints, then every test that needs no language model (no
#                             llama.cpp server, no GGUF): the loop for day-to-day work
#
# Integration tests that need a language model live under an `llm` module
# (tests/integration/), so the quick tier skips them with `--skip llm::`.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false
case "${1:-}" in
  --quick) quick=true ;;
  "") ;;
  *) echo "usage: scripts/test.sh [--quick]" >&2; exit 2 ;;
esac

scripts/setup.sh --dev
export AFFECTD_PYTHON="$PWD/.venv/bin/python"
# A failing test's message stays in the last lines of the log (what CI reports) rather
# than under a backtrace of tokio frames; set RUST_BACKTRACE=1 by hand to get one.
export RUST_BACKTRACE=0
mkdir -p target

step() { printf '\n== %s\n' "$*"; }

step "format, proto lint, clippy, docs"
cargo fmt --all -- --check
.tools/node_modules/.bin/buf lint
cargo clippy --locked --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps

step "build"
cargo build --locked --all-targets

step "unit tests, benches in test mode"
cargo test --locked --lib --bins --benches 2>&1 | tee target/test-unit.log
cargo test --locked --doc

if $quick; then
  step "integration tests without a language model (--quick)"
  cargo test --locked --test integration -- --skip llm:: 2>&1 | tee target/test-output.log
  exit 0
fi

step "integration tests"
cargo test --locked --test integration 2>&1 | tee target/test-output.log

step "the build without the candle engine (--no-default-features)"
cargo clippy --locked --all-targets --no-default-features -- -D warnings
cargo test --locked --no-default-features --lib --bins 2>&1 | tee target/test-no-candle.log
# The dashboard's browser test does not touch the candle engine: it runs once, above.
cargo test --locked --no-default-features --test integration -- --skip llm:: --skip dashboard:: 2>&1 \
  | tee -a target/test-no-candle.log
