#!/usr/bin/env bash
# The recorder's cost as replicas grow: `scripts/bench-rss.sh` at each count in
# COUNTS (default "2 10 100 1000") and each beat interval in INTERVALS (default
# "10ms 100ms"), BENCH_SECONDS (default 30) per recording, both probe modes (PROBES).
# The replicas are the lab's two reached through many loopback ports of an HAProxy.
# Prints one table: CPU per lag value (one replica's lag at one beat), share of a core,
# peak RSS, and the lag rounds recorded of those a perfect recording would have (one
# per replica per beat; rounds before the first beat and the last one's are missing).
#
#   make bench-scale [COUNTS="2 10 100 1000"] [INTERVALS="10ms 100ms"] [BENCH_SECONDS=30]
set -euo pipefail
cd "$(dirname "$0")/.."
counts=${COUNTS:-2 10 100 1000}
intervals=${INTERVALS:-10ms 100ms}
secs=${BENCH_SECONDS:-30}
table=$(mktemp)
trap 'rm -f "$table"' EXIT
for iv in $intervals; do
  for n in $counts; do
    REPLICAS=$n INTERVAL=$iv BENCH_SECONDS=$secs SUMMARY=$table scripts/bench-rss.sh
  done
done
echo
echo "| replicas | interval | probe | CPU per lag value | of a core | peak RSS | lag rounds | failed |"
echo "|---|---|---|---|---|---|---|---|"
cat "$table"
