#!/usr/bin/env bash
# Recorder memory with many replicas: `lagtrace record` at INTERVAL (default 10ms) with REPLICAS (default
# 100) replicas for BENCH_SECONDS (default 150: long enough for every open chunk to
# be sealed once, at about 4 KB encoded or 120 status samples, so the peak is the
# steady state's), once per probe mode in PROBES (default "poll binlog"), under
# /usr/bin/time. The replicas are the lab's two, each reached
# through REPLICAS/2 loopback ports of an HAProxy in TCP mode (the config refuses two
# replicas at one address), so each replica name has connections of its own.
#
#   make bench-rss [REPLICAS=100] [RSS_SECONDS=150] [PROBES="poll binlog"] [INTERVAL=10ms]
#   OUTAGE_AT=40 OUTAGE_S=40 make bench-rss    # every replica unreachable for a while
#   LAGTRACE_BIN=/path/to/lagtrace scripts/bench-rss.sh   # another build, e.g. an older one
#   LT_TLS=disabled scripts/bench-rss.sh                   # plain text (default: preferred)
#
# With OUTAGE_AT, HAProxy is stopped OUTAGE_AT seconds into each recording and started
# again OUTAGE_S (default 40) seconds later: memory through an incident that cuts every
# replica off at once and brings them back together.
#
# Prints peak RSS, CPU (and per lag value, and as a share of a core) and lag rounds per
# mode; with SUMMARY=FILE also one line per mode to FILE (scripts/bench-scale.sh). Raises the lab's max_connections (each
# replica takes a reader or a stream plus its check, and a status poller) for the run
# and sets it back after.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/common.sh
. scripts/common.sh
n=${REPLICAS:-100}
secs=${BENCH_SECONDS:-150}
outage_at=${OUTAGE_AT:-}
outage_s=${OUTAGE_S:-40}
probes=${PROBES:-poll binlog}
interval=${INTERVAL:-10ms}
tls=${LT_TLS:-preferred}
summary=${SUMMARY:-}
[[ "$n" =~ ^[0-9]+$ && "$n" -ge 2 && "$n" -le 1000 ]] || { echo "bench: REPLICAS must be 2 to 1000" >&2; exit 1; }
[[ "$secs" =~ ^[0-9]+$ && "$secs" -gt 0 ]] || { echo "bench: BENCH_SECONDS must be a positive integer" >&2; exit 1; }
[[ "$interval" =~ ^[0-9]+ms$ ]] || { echo "bench: INTERVAL must be whole milliseconds, as 10ms" >&2; exit 1; }
case $tls in disabled|preferred|required) ;; *) echo "bench: LT_TLS takes disabled, preferred or required" >&2; exit 1 ;; esac
[[ -z "$outage_at" || ( "$outage_at" =~ ^[0-9]+$ && "$outage_s" =~ ^[0-9]+$ ) ]] || { echo "bench: OUTAGE_AT and OUTAGE_S must be whole seconds" >&2; exit 1; }
if ! command -v haproxy >/dev/null || [ ! -x /usr/bin/time ]; then
  echo "bench: installing haproxy and time (apt-get)"
  apt_install_quiet haproxy time >/dev/null || { echo "bench: apt-get failed" >&2; exit 1; }
fi
scripts/lab.sh up >/dev/null
lt=${LAGTRACE_BIN:-}
if [ -z "$lt" ]; then
  cargo build --release --quiet
  lt=target/release/lagtrace
fi
export LAGTRACE_PASSWORD=${LAGTRACE_PASSWORD:-lagtrace-lab}
lab_sockets

work=$(mktemp -d)
haproxy_pid=
outage_pid=
declare -A MAXCONN
for node in primary replica1 replica2; do MAXCONN[$node]=$(lab_root_sql "$node" "SELECT @@max_connections"); done
cleanup() {
  [ -n "$outage_pid" ] && kill "$outage_pid" 2>/dev/null || true
  [ -f "$work/haproxy.pid" ] && kill "$(cat "$work/haproxy.pid")" 2>/dev/null || true
  for node in primary replica1 replica2; do lab_root_sql "$node" "SET GLOBAL max_connections = ${MAXCONN[$node]}" || true; done
  rm -rf "$work"
}
trap cleanup EXIT
for node in primary replica1 replica2; do lab_root_sql "$node" "SET GLOBAL max_connections = $((n * 4 + 100))"; done

# Free loopback ports for the replicas: BASE .. BASE + n - 1.
base=$(python3 -c '
import socket, sys
n = int(sys.argv[1])
for base in range(20000, 60000, 97):
    try:
        socks = []
        for p in range(base, base + n):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
        print(base); break
    except OSError:
        for s in socks: s.close()
' "$n")
{
  printf 'global\n  maxconn %d\n\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 1h\n  timeout server 1h\n\n' $((n * 8 + 100))
  for i in $(seq 0 $((n - 1))); do
    upstream=13307; [ $((i % 2)) = 1 ] && upstream=13308
    printf 'listen r%03d\n  bind 127.0.0.1:%d\n  server s 127.0.0.1:%d\n\n' "$i" $((base + i)) "$upstream"
  done
} >"$work/haproxy.cfg"
start_haproxy() { haproxy -f "$work/haproxy.cfg" -D -p "$work/haproxy.pid" >>"$work/haproxy.log" 2>&1; }
start_haproxy || { echo "bench: haproxy did not start:" >&2; cat "$work/haproxy.log" >&2; exit 1; }

{
  printf '[record]\ninterval = "%s"\n\n' "$interval"
  printf '[connection]\nuser = "lagtrace"\npassword_env = "LAGTRACE_PASSWORD"\ntls = "%s"\n\n' "$tls"
  printf '[[cluster]]\nname = "many"\nprimary = "127.0.0.1:13306"\nreplicas = { '
  for i in $(seq 0 $((n - 1))); do
    [ "$i" = 0 ] || printf ', '
    printf 'r%03d = "127.0.0.1:%d"' "$i" $((base + i))
  done
  printf ' }\n'
} >"$work/many.toml"
"$lt" init -c "$work/many.toml" --wait 20s >"$work/init.out" || { echo "bench: init failed:" >&2; grep -v ': OK' "$work/init.out" >&2; exit 1; }

echo "record at $interval, tls = $tls, $n replicas (the lab's two through HAProxy), ${secs} s each"
[ -z "$outage_at" ] || echo "every replica unreachable from ${outage_at} s to $((outage_at + outage_s)) s (HAProxy stopped)"
for probe in $probes; do
  if [ -n "$outage_at" ]; then
    ( sleep "$outage_at"; kill "$(cat "$work/haproxy.pid")"; sleep "$outage_s"; start_haproxy ) &
    outage_pid=$!
  fi
  /usr/bin/time -f "%M %U %S" -o "$work/time" "$lt" record -c "$work/many.toml" --quiet \
    --store "$work/$probe.redb" --probe "$probe" --duration "${secs}s" 2>"$work/record.err" || {
    echo "bench: record failed:" >&2; tail -5 "$work/record.err" >&2; exit 1; }
  rounds=$(($("$lt" export --store "$work/$probe.redb" | wc -l) - 1))
  failed=$("$lt" export --store "$work/$probe.redb" --format jsonl | grep -vc '"outcome":"ok"' || true)
  from_log=$("$lt" export --store "$work/$probe.redb" --format jsonl | grep -c '"probe":"binlog' || true)
  if [ -n "$outage_pid" ]; then wait "$outage_pid" || true; outage_pid=; fi
  read -r rss user sys <"$work/time"
  # Rounds a perfect recording would have: one per replica per beat.
  expected=$((n * secs * 1000 / ${interval%ms}))
  awk -v p="$probe" -v r="$rss" -v u="$user" -v s="$sys" -v n="$rounds" -v f="$failed" -v b="$from_log" \
      -v secs="$secs" -v e="$expected" -v reps="$n" -v iv="$interval" -v out="$summary" 'BEGIN {
    cpu = u + s
    printf "  %-7s peak RSS %.1f MB (target <= 30), CPU %.2f s = %.4f ms per lag value, %.1f %% of a core; %d lag rounds of %d expected (%d failed, %d from binary log streams)\n", p, r / 1024, cpu, cpu * 1000 / n, cpu * 100 / secs, n, e, f, b
    if (out != "") printf "| %d | %s | %s | %.4f ms | %.1f %% | %.1f MB | %d of %d | %d |\n", reps, iv, p, cpu * 1000 / n, cpu * 100 / secs, r / 1024, n, e, f >> out
  }'
done
