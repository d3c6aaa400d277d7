#!/usr/bin/env bash
# `make golden`: record real incidents on the lab into testdata/golden/<incident>/store.redb
# and write what the offline commands give for each today (expected/*). tests/golden.rs
# runs the same commands on the committed stores and compares the bytes, so that a
# change to the code that reads stores (scan, analysis, outputs) cannot change a number
# unnoticed. Re-run this only when a store format or a recording itself must change;
# when output changes on purpose, run `make golden-expect` (rewrites expected/ from the
# committed stores) and say why in the commit.
#
#   scripts/golden.sh record [INCIDENT...]   # record (needs the lab), then expect
#   scripts/golden.sh expect [INCIDENT...]   # only rewrite expected/ from the stores
#
# Incidents: stall (replica1's SQL thread stopped 6 s under load), frozen (the primary
# SIGSTOPped 6 s), failover (make failover, then make failback), split (make split, then
# make failback), pg-pause (PostgreSQL: standby1's replay paused 6 s under load).
set -euo pipefail
cd "$(dirname "$0")/.."
export LAGTRACE_PASSWORD=${LAGTRACE_PASSWORD:-lagtrace-lab}
ALL=(stall frozen failover split pg-pause)
DIR=testdata/golden
# LAGTRACE_BIN=target/debug/lagtrace uses a build already made (the outputs are the
# same); otherwise the release build is brought up to date first.
bin=${LAGTRACE_BIN:-target/release/lagtrace}

say() { printf 'golden: %s\n' "$*"; }

expect() {
  local name=$1 d=$DIR/$1 file args
  mkdir -p "$d/expected"
  while IFS=$'\t' read -r file args; do
    # shellcheck disable=SC2086
    case "$args" in
      plot*) "$bin" $args --store "$d/store.redb" --out "$d/expected/$file" >/dev/null ;;
      *) "$bin" $args --store "$d/store.redb" >"$d/expected/$file" ;;
    esac
  done < <(grep -v '^#' "$DIR/commands.tsv")
  say "$name: expected/ written"
}

config() {
  local name=$1 store=$2
  case "$name" in
    pg-pause)
      sed -e "s|^store = .*|store = \"$store\"|" -e 's|^name = "pglab"|name = "golden"|' \
        lagtrace.postgres.example.toml ;;
    *)
      sed -e "s|^store = .*|store = \"$store\"|" -e 's|^name = "lab"|name = "golden"|' \
        lagtrace.example.toml ;;
  esac
}

# record NAME SECONDS: starts the recorder in the background (pid in $recorder).
start_recorder() {
  local name=$1 seconds=$2 d=$DIR/$1
  rm -rf "$d" && mkdir -p "$d"
  config "$name" "$d/store.redb" >"$d/lagtrace.toml"
  "$bin" init -c "$d/lagtrace.toml" >/dev/null
  "$bin" record -c "$d/lagtrace.toml" --interval 50ms --status-every 200ms \
    --duration "${seconds}s" --quiet &
  recorder=$!
}

record() {
  local name=$1 load=
  case "$name" in
    stall)
      RATE=20 APPLY_MS=20 LOAD_SECONDS=22 scripts/lab.sh load >/dev/null 2>&1 & load=$!
      sleep 1
      start_recorder stall 18
      sleep 5; scripts/lab.sh stall; sleep 6; scripts/lab.sh resume ;;
    frozen)
      start_recorder frozen 16
      sleep 4; kill -STOP "$(cat .lab/primary/mysqld.pid)"; sleep 6
      kill -CONT "$(cat .lab/primary/mysqld.pid)" ;;
    failover)
      start_recorder failover 20
      sleep 5; scripts/lab.sh failover; sleep 6; scripts/lab.sh failback ;;
    split)
      start_recorder split 18
      sleep 4; scripts/lab.sh split; sleep 7; scripts/lab.sh failback ;;
    pg-pause)
      DB=postgres RATE=20 LOAD_SECONDS=20 scripts/lab.sh load >/dev/null 2>&1 & load=$!
      sleep 1
      start_recorder pg-pause 16
      sleep 4; DB=postgres scripts/lab.sh stall; sleep 6; DB=postgres scripts/lab.sh resume ;;
    *) echo "golden: no incident '$name' (one of: ${ALL[*]})" >&2; exit 2 ;;
  esac
  wait "$recorder"
  [ -z "$load" ] || wait "$load" || true
  rm -f "$DIR/$name/lagtrace.toml"
  say "$name: recorded ($(stat -c %s "$DIR/$name/store.redb") bytes)"
}

what=${1:-expect}
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")
case "$what" in
  record)
    [ -n "${LAGTRACE_BIN:-}" ] || cargo build --release -q
    for n in "${names[@]}"; do record "$n"; expect "$n"; done ;;
  expect)
    [ -n "${LAGTRACE_BIN:-}" ] || cargo build --release -q
    for n in "${names[@]}"; do expect "$n"; done ;;
  *) echo "usage: scripts/golden.sh record|expect [INCIDENT...]" >&2; exit 2 ;;
esac
