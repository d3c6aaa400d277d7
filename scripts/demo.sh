#!/usr/bin/env bash
# `make demo`: the main job on the lab (make has started it). lagtrace initializes its
# heartbeat schema, records 30 s at a 10 ms beat while replica1's SQL thread is stalled
# for 10 s in the middle, exports every observation to demo/lag.csv and summarizes it.
set -euo pipefail
cd "$(dirname "$0")/.."
export LAGTRACE_PASSWORD=${LAGTRACE_PASSWORD:-lagtrace-lab}
bin=target/release/lagtrace
mkdir -p demo
store=demo/lagtrace.redb
rm -f "$store"

echo "demo: lagtrace init -c lagtrace.example.toml"
"$bin" init -c lagtrace.example.toml
echo
echo "demo: lagtrace record --interval 10ms --duration 30s (replica1 stalled from 10 s to 20 s)"
"$bin" record -c lagtrace.example.toml --store "$store" --interval 10ms --duration 30s &
recorder=$!
trap 'kill $recorder 2>/dev/null || true; scripts/lab.sh resume >/dev/null 2>&1 || true' EXIT
sleep 10
scripts/lab.sh stall
sleep 10
scripts/lab.sh resume
wait $recorder
trap - EXIT
echo
echo "demo: lagtrace export --store $store > demo/lag.csv"
"$bin" export --store "$store" --out demo/lag.csv
echo
echo "demo: summary (lag in ms, from the point estimate; bounds in demo/lag.csv)"
printf '%-10s %8s %7s %9s %9s %9s %13s\n' replica reads failed p50_ms p99_ms max_ms "time>1s"
for replica in replica1 replica2; do
  awk -F, -v r="$replica" 'NR > 1 && $3 == r' demo/lag.csv >demo/.rows
  reads=$(wc -l <demo/.rows)
  failed=$(awk -F, '$9 != "ok"' demo/.rows | wc -l)
  cut -d, -f5 demo/.rows | grep -v '^$' | sort -g >demo/.lags
  n=$(wc -l <demo/.lags)
  p50=$(sed -n "$(( (n + 1) / 2 ))p" demo/.lags)
  p99=$(sed -n "$(( (n * 99 + 99) / 100 ))p" demo/.lags)
  max=$(tail -1 demo/.lags)
  # Time above 1 s: each observation stands for the time until the next one.
  above=$(awk -F, '{ split($1, a, "T"); split(a[2], b, ":"); t = b[1]*3600 + b[2]*60 + b[3];
                     if (seen && last_lag > 1000) s += t - last_t; last_t = t; last_lag = $5; seen = 1 }
                   END { printf "%.1f s", s }' demo/.rows)
  printf '%-10s %8d %7d %9.2f %9.2f %9.1f %13s\n' "$replica" "$reads" "$failed" "$p50" "$p99" "$max" "$above"
done
rm -f demo/.rows demo/.lags
echo
echo "demo: store $store ($(stat -c %s "$store") bytes), rows in demo/lag.csv; the lab keeps running ('make down' stops it)"
