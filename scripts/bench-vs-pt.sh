#!/usr/bin/env bash
# lagtrace against pt-heartbeat, side by side on the MariaDB lab in one run: each at 10 ms
# beats with the lab's two replicas for BENCH_SECONDS (default 30), one after the other,
# the same load running under each when LOAD is set (`make load` at LOAD tx/s). lagtrace
# runs once per probe mode in PROBES (default "poll binlog").
#
#   make bench-pt [BENCH_SECONDS=30] [LOAD=200] [PROBES="poll binlog"]
#   LAGTRACE_BIN=/path/to/lagtrace scripts/bench-vs-pt.sh    # another build, e.g. an older one
#
# A lag value is one replica's lag at one beat: a probe round of lagtrace (a row of
# `lagtrace export`), a line of a `pt-heartbeat --monitor`. Printed per lag value: CPU
# (user + system, of lagtrace, or of pt-heartbeat's --update and its two --monitor
# processes) and statements (the servers' Questions, all three summed); for lagtrace also
# the reads per beat per replica and the bounds' width. Statements are shown only without a
# load (the servers count the load's too). The ratio is pt-heartbeat's CPU
# per lag value over lagtrace's.
#
# Both reach the servers the same way: over TCP (pt-heartbeat as the lab's lagtrace user,
# its password in a defaults file, into its own table lagtrace.pt_heartbeat), in plain
# text, as pt-heartbeat connects by default. PT_TRANSPORT=socket gives pt-heartbeat the
# servers' Unix sockets instead (as root; cheaper per statement, but only possible on the
# database host); LT_TLS=preferred gives lagtrace its default TLS.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/common.sh
. scripts/common.sh
secs=${BENCH_SECONDS:-30}
load=${LOAD:-}
pt_transport=${PT_TRANSPORT:-tcp}
lt_tls=${LT_TLS:-disabled}
case $pt_transport in tcp|socket) ;; *) echo "bench: PT_TRANSPORT takes tcp or socket" >&2; exit 1 ;; esac
case $lt_tls in disabled|preferred|required) ;; *) echo "bench: LT_TLS takes disabled, preferred or required" >&2; exit 1 ;; esac
[[ "$secs" =~ ^[0-9]+$ && "$secs" -gt 0 ]] || { echo "bench: BENCH_SECONDS must be a positive integer" >&2; exit 1; }
[ -z "$load" ] || [[ "$load" =~ ^[0-9]+$ ]] || { echo "bench: LOAD must be a whole number of tx/s" >&2; exit 1; }
if ! command -v pt-heartbeat >/dev/null || [ ! -x /usr/bin/time ]; then
  echo "bench: installing percona-toolkit and time (apt-get)"
  apt_install_quiet percona-toolkit time >/dev/null || { echo "bench: apt-get failed" >&2; exit 1; }
fi
scripts/lab.sh up >/dev/null
lt=${LAGTRACE_BIN:-}
if [ -z "$lt" ]; then
  cargo build --release --quiet
  lt=target/release/lagtrace
fi
export LAGTRACE_PASSWORD=${LAGTRACE_PASSWORD:-lagtrace-lab}
lab_sockets
# Statements all three servers have run so far (each call adds its own one per server).
questions() {
  local n total=0
  for n in primary replica1 replica2; do
    total=$((total + $(lab_root_sql "$n" "SHOW GLOBAL STATUS LIKE 'Questions'" | cut -f2)))
  done
  echo "$total"
}
work=$(mktemp -d)
load_pid=
cleanup() {
  [ -n "$load_pid" ] && kill -- -"$load_pid" 2>/dev/null || true
  lab_root_sql primary "DROP TABLE IF EXISTS lagtrace.pt_heartbeat" || true
  rm -rf "$work"
}
trap cleanup EXIT
start_load() {
  [ -n "$load" ] || return 0
  setsid env RATE="$load" LOAD_SECONDS=$((secs + 10)) scripts/lab.sh load >/dev/null 2>&1 &
  load_pid=$!
  sleep 2
}
stop_load() {
  [ -n "$load_pid" ] || return 0
  kill -- -"$load_pid" 2>/dev/null || true
  wait "$load_pid" 2>/dev/null || true
  load_pid=
}
cpu_s() { awk '{ print $1 + $2 }' "$1"; }

# lagtrace, once per probe mode: its figures go to $work/lt-MODE.fig for the summary.
sed "s/^\[connection\].*/&\ntls = \"$lt_tls\"/" lagtrace.example.toml >"$work/lt.toml"
"$lt" init -c "$work/lt.toml" >/dev/null
probes=${PROBES:-poll binlog}
for probe in $probes; do
  case $probe in poll|binlog|auto) ;; *) echo "bench: PROBES takes poll, binlog, auto" >&2; exit 1 ;; esac
  start_load
  q0=$(questions)
  /usr/bin/time -o "$work/lt.time" -f "%U %S" "$lt" record -c "$work/lt.toml" \
    --store "$work/$probe.redb" --interval 10ms --probe "$probe" --duration "${secs}s" >"$work/lt.out"
  q1=$(questions)
  stop_load
  beats=$(sed -n 's/.*recorded \([0-9]*\) beats.*/\1/p' "$work/lt.out")
  rounds=$(($("$lt" export --store "$work/$probe.redb" | wc -l) - 1))
  "$lt" export --reads --format jsonl --store "$work/$probe.redb" >"$work/reads.jsonl"
  reads=$(grep -c '"probe":"poll"' "$work/reads.jsonl" || true)
  from_log=$(grep -c '"probe":"binlog' "$work/reads.jsonl" || true)
  "$lt" analyze --format json --store "$work/$probe.redb" >"$work/lt.json"
  python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["replicas"]:
    w, l = r["lag"]["bound_width"], r["lag"]["percentiles"]
    print("    %s: lag p50 %.3f ms; bounds width p50 %.3f ms, p90 %.3f ms, p99 %.3f ms" % (r["replica"], l["p50_ms"], w["p50_ms"], w["p90_ms"], w["p99_ms"]))
' "$work/lt.json" >"$work/widths-$probe"
  echo "$probe $beats $rounds $reads $from_log $(cpu_s "$work/lt.time") $((q1 - q0 - 3))" >"$work/lt-$probe.fig"
done

# pt-heartbeat: --update on the primary, one --monitor per replica, at the same interval.
declare -A PT_AT
if [ "$pt_transport" = tcp ]; then
  printf '[client]\nuser=lagtrace\npassword=%s\nhost=127.0.0.1\n' "$LAGTRACE_PASSWORD" >"$work/pt.cnf"
  chmod 600 "$work/pt.cnf"
  pt=(-F "$work/pt.cnf" --database lagtrace --table pt_heartbeat --interval 0.01 --run-time "${secs}s")
  PT_AT=([primary]="--port 13306" [replica1]="--port 13307" [replica2]="--port 13308")
else
  pt=(--database lagtrace_pt --user root --interval 0.01 --run-time "${secs}s")
  lab_root_sql primary "CREATE DATABASE IF NOT EXISTS lagtrace_pt"
  for n in primary replica1 replica2; do PT_AT[$n]="--socket ${LAB_SOCK[$n]}"; done
fi
# shellcheck disable=SC2086 # PT_AT holds an option and its value
pt-heartbeat "${pt[@]}" ${PT_AT[primary]} --create-table --update --run-time 1s >/dev/null 2>&1 || true
sleep 1
start_load
q2=$(questions)
# shellcheck disable=SC2086
/usr/bin/time -o "$work/pu.time" -f "%U %S" pt-heartbeat "${pt[@]}" ${PT_AT[primary]} --update \
  >/dev/null 2>"$work/pu.err" &
upd=$!
for n in replica1 replica2; do
  # shellcheck disable=SC2086
  /usr/bin/time -o "$work/pm-$n.time" -f "%U %S" pt-heartbeat "${pt[@]}" ${PT_AT[$n]} \
    --monitor --master-server-id 1 >"$work/pm-$n.out" 2>"$work/pm-$n.err" &
done
wait
q3=$(questions)
stop_load
pt_values=$(cat "$work"/pm-*.out | grep -c 's \[' || true)
pt_cpu=$(awk '{ s += $1 + $2 } END { print s }' "$work"/pu.time "$work"/pm-*.time)
pm_cpu=$(awk '{ s += $1 + $2 } END { print s }' "$work"/pm-*.time)
[ "$pt_values" -gt 0 ] || { echo "bench: pt-heartbeat --monitor printed nothing:" >&2; cat "$work"/pm-*.err "$work/pu.err" >&2; exit 1; }

printf "10 ms beats, 2 replicas, %d s each, load %d tx/s; pt-heartbeat over %s (plain text), lagtrace over TCP with tls = %s\n" \
  "$secs" "${load:-0}" "$([ "$pt_transport" = tcp ] && echo TCP || echo Unix sockets)" "$lt_tls"
printf "  pt-heartbeat:     %d lag values, CPU %.2f s = %.4f ms per lag value" "$pt_values" "$pt_cpu" \
  "$(awk -v c="$pt_cpu" -v v="$pt_values" 'BEGIN { print c * 1000 / v }')"
[ -n "$load" ] || printf ", %.2f statements per lag value" "$(awk -v q=$((q3 - q2 - 3)) -v v="$pt_values" 'BEGIN { print q / v }')"
echo
# What one more replica costs pt-heartbeat: a --monitor's read (the --update is shared),
# against which lagtrace's cost per lag value at many replicas compares (make bench-rss).
printf "                    of which --monitor alone: %.4f ms per lag value\n" \
  "$(awk -v c="$pm_cpu" -v v="$pt_values" 'BEGIN { print c * 1000 / v }')"
for probe in $probes; do
  # Under a load the servers count its statements too.
  awk -v rate="${load:-0}" -v pv="$pt_values" -v pc="$pt_cpu" '{
    probe = $1; b = $2; r = $3; rd = $4; bl = $5; lc = $6; lq = $7
    printf "  lagtrace %-7s  %d lag values, CPU %.2f s = %.4f ms per lag value", probe, r, lc, lc * 1000 / r
    if (rate == 0) printf ", %.2f statements per lag value", lq / r
    printf "\n                    %.2f reads per beat per replica (poll target <= 1.3), %d observations from binary log streams\n", rd / b / 2, bl
    printf "                    pt-heartbeat / lagtrace CPU per lag value: %.1f x (targets >= 3 poll, >= 5 binlog)\n", (pc / pv) / (lc / r)
  }' "$work/lt-$probe.fig"
  cat "$work/widths-$probe"
done
