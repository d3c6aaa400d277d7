#!/usr/bin/env bash
# What TLS costs the recorder: for each probe (PROBES, default "poll binlog"), two
# recorders at 10 ms on the lab's two replicas for BENCH_SECONDS (default 60), side by
# side in the same run, one with tls = "disabled" and one with tls = "verify_identity"
# (the lab's CA), each under /usr/bin/time -v. Prints CPU per lag value (one replica's
# lag at one read), peak RSS and the ratio TLS / plain.
#   make bench-tls
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${BENCH_SECONDS:-60}
probes=${PROBES:-poll binlog}
if [ ! -x /usr/bin/time ]; then
  echo "bench: installing time (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
scripts/lab.sh up >/dev/null
cargo build --release --quiet
export LAGTRACE_PASSWORD=${LAGTRACE_PASSWORD:-lagtrace-lab}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ca=$(pwd)/.lab/tls/ca.pem

config() { # config NAME PROBE TLS_LINES
  cat >"$work/$1.toml" <<TOML
[connection]
user = "lagtrace"
password_env = "LAGTRACE_PASSWORD"
$3

[[cluster]]
name = "bench_tls"
primary = "127.0.0.1:13306"
replicas = { replica1 = "127.0.0.1:13307", replica2 = "127.0.0.1:13308" }

[record]
id = "$1"
interval = "10ms"
probe = "$2"
store = "$work/$1.redb"
TOML
  target/release/lagtrace init -c "$work/$1.toml" >/dev/null
}

# Prints "CPU_MS_PER_LAG_VALUE RSS_MB" for recorder NAME.
figures() {
  local name=$1 user sys rss reads
  target/release/lagtrace export --store "$work/$name.redb" >"$work/$name.csv"
  # Rounds that gave a lag (a failed read is not a lag value).
  reads=$(awk -F, 'NR > 1 && $6 != "" { n++ } END { print n + 0 }' "$work/$name.csv")
  user=$(sed -n 's/.*User time (seconds): //p' "$work/$name.time")
  sys=$(sed -n 's/.*System time (seconds): //p' "$work/$name.time")
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/$name.time")
  awk -v u="$user" -v s="$sys" -v n="$reads" -v r="$rss" \
    'BEGIN { printf "%.4f %.1f %d\n", (u + s) * 1000 / n, r / 1024, n }'
}

for probe in $probes; do
  # Recorder ids: p (plain) or t (TLS), then the probe's initial.
  p="p${probe:0:1}" t="t${probe:0:1}"
  config "$p" "$probe" 'tls = "disabled"'
  config "$t" "$probe" "tls = \"verify_identity\"
tls_ca = \"$ca\""
  for name in "$p" "$t"; do
    /usr/bin/time -v target/release/lagtrace record --quiet -c "$work/$name.toml" \
      --duration "${duration}s" >/dev/null 2>"$work/$name.time" &
  done
  wait
  read -r plain_ms plain_rss plain_n <<<"$(figures "$p")"
  read -r tls_ms tls_rss tls_n <<<"$(figures "$t")"
  awk -v p="$probe" -v d="$duration" -v pm="$plain_ms" -v tm="$tls_ms" -v pr="$plain_rss" \
    -v tr="$tls_rss" -v pn="$plain_n" -v tn="$tls_n" 'BEGIN {
    printf "%s probe, 10 ms, 2 replicas, %s s, side by side:\n", p, d
    printf "  plain text       %.4f ms CPU per lag value (%d values), peak RSS %.1f MB\n", pm, pn, pr
    printf "  verify_identity  %.4f ms CPU per lag value (%d values), peak RSS %.1f MB\n", tm, tn, tr
    printf "  TLS / plain: CPU %.2fx, RSS %.2fx\n", tm / pm, tr / pr
  }'
done
