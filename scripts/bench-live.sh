#!/usr/bin/env bash
# Live checks under load, on the lab: `lagtrace record` (100 ms beats, [http] max_lag 1s)
#  1. /check/replica1 at about 1000 requests/s for BENCH_SECONDS (10) with wrk: latency
#     percentiles, and the recorder's CPU while it answers next to its CPU when idle;
#     Side by side, the same load on HAProxy answering a fixed 200 itself: the floor this
#     machine allows (its scheduler, not the handler, makes most of the tail);
#     then /throttle/lab (the batch writers' verdict) at the same rate;
#  2. wrk as fast as it can (the ceiling, for scale);
#  3. detection latency, TRIALS (10) times: from `make stall` starting to the first 503,
#     and from a table lock (`make block`: lag only, SQL thread running) to the first 503.
#   make bench-live
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${BENCH_SECONDS:-10}
trials=${TRIALS:-10}
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v haproxy >/dev/null || need+=(haproxy)
if [ ${#need[@]} -gt 0 ]; then
  echo "bench: installing ${need[*]} (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
scripts/lab.sh up >/dev/null
cargo build --release --quiet
export LAGTRACE_PASSWORD=${LAGTRACE_PASSWORD:-lagtrace-lab}
work=$(mktemp -d)
port=${BENCH_PORT:-19104}
cat lagtrace.example.toml - >"$work/live.toml" <<EOF

[http]
listen = "127.0.0.1:$port"
max_lag = "1s"
EOF
target/release/lagtrace init -c "$work/live.toml" >/dev/null
target/release/lagtrace record -c "$work/live.toml" --store "$work/live.redb" --quiet &
rec=$!
base_port=$((port + 100))
printf '%s\n' defaults '    mode http' '    timeout connect 1s' '    timeout client 10s' \
  '    timeout server 10s' frontend_static "    bind 127.0.0.1:$base_port" \
  '    http-request return status 200 content-type application/json string "{}"' |
  sed 's/^frontend_static$/frontend static/' >"$work/static.cfg"
haproxy -db -f "$work/static.cfg" >/dev/null 2>&1 &
base=$!
trap 'st=$?; kill -INT $rec 2>/dev/null; kill $base 2>/dev/null; wait $rec $base 2>/dev/null || true; scripts/lab.sh resume >/dev/null 2>&1 || true; rm -rf "$work"; exit $st' EXIT

# The status code of GET /check/replica1, with bash's /dev/tcp (no curl needed).
code() {
  local line
  { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || { echo 000; return; }
  printf 'GET /check/replica1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
  read -r line <&3 || line="x 000"
  exec 3<&-
  line=${line#* }
  echo "${line%% *}"
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
wait_code() { # wait_code CODE LIMIT_MS: prints the ms it took, or "timeout"
  local start t
  start=$(now_ms)
  while :; do
    [ "$(code)" = "$1" ] && { echo $(($(now_ms) - start)); return; }
    t=$(($(now_ms) - start))
    [ "$t" -gt "$2" ] && { echo timeout; return; }
    sleep 0.01
  done
}
[ "$(wait_code 200 15000)" != timeout ] || { echo "bench: replica1 never came into the pool" >&2; exit 1; }
kill -0 "$rec" 2>/dev/null || { echo "bench: the recorder exited (port $port taken? set BENCH_PORT)" >&2; exit 1; }

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$rec/stat"; }
hz=$(getconf CLK_TCK)
cpu_during() { # cpu_during SECONDS CMD...: the recorder's CPU % while CMD runs
  local s=$1 before after; shift
  before=$(cpu_ticks)
  "$@"
  after=$(cpu_ticks)
  awk -v a="$after" -v b="$before" -v hz="$hz" -v s="$s" 'BEGIN { printf "%.1f", (a - b) * 100 / hz / s }'
}

# 10 connections, each waiting 10 ms between requests: about 1000 requests/s.
printf 'function delay()\n  return 10\nend\n' >"$work/pace.lua"
paced_load() {
  wrk -t2 -c10 -d"${seconds}s" --latency -s "$work/pace.lua" \
    "http://127.0.0.1:$port/check/replica1" >"$work/paced.txt"
}
base_load() {
  wrk -t2 -c10 -d"${seconds}s" --latency -s "$work/pace.lua" \
    "http://127.0.0.1:$base_port/" >"$work/base.txt"
}
throttle_load() {
  wrk -t2 -c10 -d"${seconds}s" --latency -s "$work/pace.lua" \
    "http://127.0.0.1:$port/throttle/lab" >"$work/throttle.txt"
}
flat_load() { wrk -t1 -c10 -d5s --latency "http://127.0.0.1:$port/check/replica1" >"$work/flat.txt"; }
report() { # report FILE LABEL CPU
  awk -v label="$2" -v cpu="$3" -v s="$seconds" '
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = $2 } /^ +90%/ { p90 = $2 } /^ +99%/ { p99 = $2 }
    /requests in/ { n = $1 }
    /Non-2xx/ { bad = $NF }
    END { printf "%s: %s requests/s, latency p50 %s p90 %s p99 %s, non-2xx %s, recorder CPU %s%%\n",
                 label, rps, p50, p90, p99, (bad == "" ? 0 : bad), cpu }' "$1"
}
idle=$(cpu_during "$seconds" sleep "$seconds")
echo "recorder idle (100 ms beats, 2 replicas): CPU ${idle}% over ${seconds}s"
for round in 1 2 3; do # alternating, as the machine's noise drifts
  paced=$(cpu_during "$seconds" paced_load)
  base_load
  report "$work/paced.txt" "round $round: /check at ~1000/s (10 conns x 100/s, ${seconds}s)" "$paced"
  report "$work/base.txt" "round $round: same load on HAProxy's own fixed 200 (the machine's floor)" "-"
done
throttled=$(cpu_during "$seconds" throttle_load)
report "$work/throttle.txt" "/throttle/lab at ~1000/s (10 conns x 100/s, ${seconds}s)" "$throttled"
flat=$(cpu_during 5 flat_load)
report "$work/flat.txt" "flat out /check (10 conns, 5s)" "$flat"

detect() { # detect LABEL CMD...: TRIALS times, CMD in the background, ms to the first 503
  local label=$1 i t cmd times=()
  shift
  for ((i = 0; i < trials; i++)); do
    "$@" >/dev/null 2>&1 &
    cmd=$!
    t=$(wait_code 503 10000)
    wait "$cmd"
    scripts/lab.sh resume >/dev/null
    [ "$(wait_code 200 15000)" != timeout ] || { echo "bench: replica1 did not come back" >&2; exit 1; }
    times+=("$t")
    sleep 1
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v label="$label" '
    { v[NR] = $1; if ($1 == "timeout") to++ }
    END { printf "detection, %s, %d trials: min %s ms, median %s ms, max %s ms%s\n", label, NR,
                 v[1], v[int((NR + 1) / 2)], v[NR], (to ? ", " to " timed out" : "") }'
}
detect "make stall (SQL thread stopped) -> first 503" scripts/lab.sh stall
detect "make block (table locked 3 s, lag only) -> first 503" env LOAD_SECONDS=3 scripts/lab.sh block
