#!/usr/bin/env bash
# Soak: `lagtrace record` at 10 ms with the lab's two replicas under a steady `make load`
# (200 tx/s) for HOURS (default 1; SOAK_MINUTES=n overrides), sampling the recorder's RSS,
# the store's size and its /status counters every minute into soak.csv. A 2-minute
# recording under the same load comes first, as the reference for the store's size.
#   make soak [HOURS=1]
# Passes (exit 0) when, after the first 5 minutes, RSS stays within 5 % of its median, no
# sample was dropped or left unstored, and the store's bytes per observation (after the
# final compaction; the file itself grows in steps of redb's regions while recording)
# are at most 10 % above the 2-minute reference's (below is expected: the file's fixed
# part is spread over more observations).
set -euo pipefail
cd "$(dirname "$0")/.."
hours=${HOURS:-1}
minutes=${SOAK_MINUTES:-$((hours * 60))}
[[ "$minutes" =~ ^[0-9]+$ && "$minutes" -ge 11 ]] || {
  echo "soak: needs at least 11 minutes (HOURS=1 or SOAK_MINUTES>=11), not '$minutes'" >&2
  exit 2
}
port=${SOAK_PORT:-18190}
work=${SOAK_DIR:-$(mktemp -d /tmp/lagtrace-soak.XXXXXX)}
mkdir -p "$work"
scripts/lab.sh up >/dev/null
cargo build --release --quiet
export LAGTRACE_PASSWORD=${LAGTRACE_PASSWORD:-lagtrace-lab}
cat >"$work/soak.toml" <<EOF
[connection]
user = "lagtrace"
password_env = "LAGTRACE_PASSWORD"

[[cluster]]
name = "soak"
primary = "127.0.0.1:13306"
replicas = { replica1 = "127.0.0.1:13307", replica2 = "127.0.0.1:13308" }

[record]
interval = "10ms"
store = "$work/soak.redb"

[http]
listen = "127.0.0.1:$port"
EOF
target/release/lagtrace init -c "$work/soak.toml" >/dev/null

# GET /status with bash's /dev/tcp (no curl on a bare Debian).
status() {
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
  cat <&3
  exec 3<&-
}
# The sum of a numeric JSON field over the status document.
field_sum() { grep -o "\"$1\":[0-9]*" | awk -F: '{ s += $2 } END { print s + 0 }'; }

RATE=200 LOAD_SECONDS=$((minutes * 60 + 300)) scripts/lab.sh load >"$work/load.log" 2>&1 &
load_pid=$!
trap 'kill $load_pid 2>/dev/null || true' EXIT
# Observations in a store: one row per read.
reads_in() { echo $(($(target/release/lagtrace export --reads --store "$1" | wc -l) - 1)); }
echo "soak: a 2-minute reference recording first"
target/release/lagtrace record --quiet -c "$work/soak.toml" --store "$work/reference.redb" \
  --duration 2m >/dev/null 2>"$work/reference.err"
ref_bpo=$(awk -v b="$(stat -c %s "$work/reference.redb")" -v o="$(reads_in "$work/reference.redb")" 'BEGIN { printf "%.3f", b / o }')
target/release/lagtrace record --quiet -c "$work/soak.toml" --duration "${minutes}m" \
  >"$work/record.out" 2>"$work/record.err" &
rec_pid=$!
trap 'kill $rec_pid $load_pid 2>/dev/null || true' EXIT
echo "soak: recording ${minutes} min at 10 ms under 200 tx/s into $work (pid $rec_pid)"
echo "minute,rss_kb,store_bytes,observations,dropped,unstored" >"$work/soak.csv"
start=$SECONDS
for ((m = 1; m <= minutes; m++)); do
  sleep $((start + m * 60 - SECONDS - 1)) 2>/dev/null || true
  kill -0 "$rec_pid" 2>/dev/null || { echo "soak: the recorder died at minute $m" >&2; cat "$work/record.err" >&2; exit 1; }
  rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$rec_pid/status")
  bytes=$(stat -c %s "$work/soak.redb")
  doc=$(status) || { echo "soak: /status did not answer at minute $m" >&2; exit 1; }
  obs=$(($(field_sum reads_ok <<<"$doc") + $(field_sum reads_failed <<<"$doc")))
  dropped=$(field_sum dropped_samples <<<"$doc")
  unstored=$(field_sum unstored_samples <<<"$doc")
  echo "$m,$rss,$bytes,$obs,$dropped,$unstored" | tee -a "$work/soak.csv"
done
wait "$rec_pid"
final_bytes=$(stat -c %s "$work/soak.redb")
final_reads=$(reads_in "$work/soak.redb")
awk -F, -v final="$final_bytes" -v reads="$final_reads" -v ref="$ref_bpo" '
  NR == 1 { next }
  { last_obs = $4; dropped = $5; unstored = $6 }
  $1 > 5 { rss[++nr] = $2 }
  function median(a, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return a[int((n + 1) / 2)]
  }
  function spread(a, n, m,   i, d, worst) {
    for (i = 1; i <= n; i++) { d = a[i] / m - 1; if (d < 0) d = -d; if (d > worst) worst = d }
    return worst
  }
  END {
    mr = median(rss, nr); sr = spread(rss, nr, mr)
    bpo = final / reads; sb = bpo / ref - 1
    printf "soak: RSS after 5 min: median %.1f MB, at most %.1f %% from it (target 5 %%)\n", mr / 1024, sr * 100
    printf "soak: store %.3f bytes per observation after the final compaction, %.3f for the 2-minute reference: %+.1f %% (target at most +10 %%)\n", bpo, ref, sb * 100
    printf "soak: %d observations, %d samples dropped, %d unstored (target 0)\n", reads, dropped, unstored
    exit !(sr <= 0.05 && sb <= 0.10 && dropped == 0 && unstored == 0)
  }' "$work/soak.csv"
