#!/usr/bin/env bash
# `make fuzz [SECONDS=60]`: runs every cargo-fuzz target in fuzz/ for SECONDS each on the
# nightly toolchain (cargo-fuzz needs it; installed here when missing) and prints the
# executions libFuzzer made. A crash stops the run; its input is in
# fuzz/artifacts/<target>/: copy it to testdata/fuzz/<target>/ so that `cargo test`
# (stable) replays it from then on (tests/fuzz_regressions.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
rustup toolchain list | grep -q '^nightly' || {
  echo "fuzz: the nightly toolchain is missing (rustup toolchain install nightly)" >&2; exit 1; }
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in span_chunk status_chunk config session; do
  mkdir -p "fuzz/corpus/$target"
  # Seed with the inputs kept as regressions.
  if [ -d "testdata/fuzz/$target" ]; then cp testdata/fuzz/$target/* "fuzz/corpus/$target/" 2>/dev/null || true; fi
  echo "fuzz: $target for ${seconds}s"
  cargo +nightly fuzz run "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 2>&1 |
    grep -E 'stat::number_of_executed_units|stat::peak_rss_mb|ERROR|panicked|SUMMARY' || true
  if ls fuzz/artifacts/"$target"/crash-* >/dev/null 2>&1; then
    echo "fuzz: $target crashed; inputs in fuzz/artifacts/$target/" >&2; exit 1
  fi
done
