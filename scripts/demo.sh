#!/usr/bin/env bash
# `make demo`: the whole story on the lab (make has started it and built the release).
# A steady load runs on the primary (20 tx/s, each costing a replica 20 ms to apply, so a
# replica's applier is ~40 % busy); lagtrace records 40 s at a 10 ms beat while
# replica1's SQL thread is stopped from 10 s to 20 s; then analyze prints the episode,
# the vector, the catch-up and both capacity estimates, and plot draws the charts.
set -euo pipefail
cd "$(dirname "$0")/.."
export LAGTRACE_PASSWORD=${LAGTRACE_PASSWORD:-lagtrace-lab}
bin=target/release/lagtrace
mkdir -p demo
store=demo/lagtrace.redb
rm -f "$store" demo/overview.svg demo/lag.svg demo/lag.csv

echo "demo: lagtrace init -c lagtrace.example.toml"
"$bin" init -c lagtrace.example.toml
echo
echo "demo: make load RATE=20 APPLY_MS=20 (steady, in the background)"
RATE=20 APPLY_MS=20 LOAD_SECONDS=44 scripts/lab.sh load >demo/load.log 2>&1 &
load=$!
sleep 1
echo "demo: lagtrace record --interval 10ms --status-every 100ms --duration 40s (replica1 stalled from 10 s to 20 s)"
"$bin" record -c lagtrace.example.toml --store "$store" --interval 10ms --status-every 100ms \
  --duration 40s --quiet &
recorder=$!
trap 'kill $recorder $load 2>/dev/null || true; scripts/lab.sh resume >/dev/null 2>&1 || true' EXIT
sleep 10
scripts/lab.sh stall
sleep 10
scripts/lab.sh resume
wait $recorder
wait $load || echo "demo: the load generator failed; see demo/load.log"
trap - EXIT
echo
echo "demo: lagtrace analyze --store $store"
"$bin" analyze --store "$store"
echo
echo "demo: lagtrace plot --kind overview / --kind lag; lagtrace export"
"$bin" plot --store "$store" --kind overview --out demo/overview.svg
"$bin" plot --store "$store" --kind lag --out demo/lag.svg
"$bin" export --store "$store" --out demo/lag.csv
echo
echo "demo: charts in demo/overview.svg and demo/lag.svg (open them in a browser);"
echo "      every observation in demo/lag.csv; the store is $store ($(stat -c %s "$store") bytes)."
echo "      The lab keeps running ('make down' stops it)."
