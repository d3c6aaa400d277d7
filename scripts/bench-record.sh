#!/usr/bin/env bash
# Recorder cost: `lagtrace record` at 10 ms with the lab's two replicas for 60 s (override
# with BENCH_SECONDS=n), under /usr/bin/time -v. Prints CPU per probe and peak RSS.
#   make bench-record
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${BENCH_SECONDS:-60}
if [ ! -x /usr/bin/time ]; then
  echo "bench: installing time (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
scripts/lab.sh up >/dev/null
cargo build --release --quiet
export LAGTRACE_PASSWORD=${LAGTRACE_PASSWORD:-lagtrace-lab}
target/release/lagtrace init -c lagtrace.example.toml >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/time -v target/release/lagtrace record -c lagtrace.example.toml --store "$work/b.redb" \
  --interval 10ms --duration "${duration}s" >"$work/out" 2>"$work/time"
# One row per read (the default is one per probe round): every read is a probe.
target/release/lagtrace export --reads --store "$work/b.redb" >"$work/rows.csv"
observations=$(($(wc -l <"$work/rows.csv") - 1))
beats=$(sed -n 's/.*recorded \([0-9]*\) beats.*/\1/p' "$work/out")
user=$(sed -n 's/.*User time (seconds): //p' "$work/time")
sys=$(sed -n 's/.*System time (seconds): //p' "$work/time")
rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time")
store_bytes=$(stat -c %s "$work/b.redb")
awk -v u="$user" -v s="$sys" -v b="$beats" -v o="$observations" -v r="$rss_kb" -v d="$duration" -v f="$store_bytes" 'BEGIN {
  p = b + o
  printf "record 10ms, 2 replicas, %ss: %d beats + %d observations = %d probes\n", d, b, o, p
  printf "  CPU %.2f s user + %.2f s sys = %.3f ms per probe (target < 0.06)\n", u, s, (u + s) * 1000 / p
  printf "  peak RSS %.1f MB (target < 30)\n", r / 1024
  printf "  store %d bytes = %.2f bytes per observation (beats and status included)\n", f, f / o
}'
