#!/usr/bin/env bash
# The fuzzing campaign: every cargo-fuzz target for RUNS runs (default 1,000,000) from its
# committed corpus (fuzz/corpus/TARGET) and seeds, then the corpus minimised back into
# fuzz/corpus/TARGET (commit it; inputs over 64 KB are dropped). Prints each target's runs,
# time, and what libFuzzer found.
#
#   scripts/fuzz-campaign.sh [RUNS] [TARGET...]
#
# MAX_SECONDS (environment) also caps each target's time; the runs done are printed.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); the stable toolchain with RUSTC_BOOTSTRAP=1.
# Without a sanitizer (-s none): affectd has no unsafe code of its own to check, and the
# runs are 2-3x faster; panics, aborts, timeouts and out-of-memory are still caught.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1
runs="${1:-1000000}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(image_decode raw_image edf_parse xdf_parse csv_parse gguf_tokenizer session_protocol)
fi
cargo fuzz build -s none
seeds() {
  case "$1" in
    edf_parse) ls ../.testdata/*.edf ../.testdata/*.bdf 2>/dev/null ;;
    xdf_parse) echo ../tests/reference/golden/synthetic.xdf ;;
    image_decode) ls ../.testdata/*.jpg ../.testdata/*.png 2>/dev/null | head -4 ;;
    gguf_tokenizer) echo seeds/gguf_tokenizer ;;
    session_protocol) echo seeds/session_protocol ;;
  esac
}
for target in "${targets[@]}"; do
  corpus="corpus/$target"
  work="$(mktemp -d)"
  mkdir -p "$corpus"
  for seed in $(seeds "$target"); do
    if [ -d "$seed" ]; then cp "$seed"/* "$work"/ 2>/dev/null || true; else cp "$seed" "$work"/; fi
  done
  started=$(date +%s)
  # -rss_limit_mb: a request path that allocates what a client merely declared shows here.
  # New inputs go to the first folder: the corpus, not the seeds.
  cargo fuzz run -s none "$target" "$corpus" "$work" -- \
    -runs="$runs" -max_total_time="${MAX_SECONDS:-0}" -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 \
    >"/tmp/fuzz-$target.log" 2>&1 || { echo "$target: FAILED, see /tmp/fuzz-$target.log"; tail -30 "/tmp/fuzz-$target.log"; exit 1; }
  seconds=$(( $(date +%s) - started ))
  # Minimise what was found: the committed corpus keeps the coverage, not every input.
  cargo fuzz cmin -s none "$target" "$corpus" >/dev/null 2>&1 || true
  # Inputs over 64 KB (grown from the EDF/XDF/JPEG seeds) are not committed: the seeds
  # bring them back, and the repository stays small.
  find "$corpus" -type f -size +64k -delete
  done_runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "/tmp/fuzz-$target.log" | grep -o '[0-9]*$' | tail -1)
  echo "$target: ${done_runs:-?} runs in ${seconds} s ($(grep -o 'exec/s: [0-9]*' "/tmp/fuzz-$target.log" | tail -1)), corpus $(ls "$corpus" | wc -l) files after minimising, no crash"
  rm -rf "$work"
done
