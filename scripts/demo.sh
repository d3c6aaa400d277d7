#!/usr/bin/env bash
# `make demo`: the main job on the lab. For now: the lab is up (make's prerequisite),
# lagtrace initializes its heartbeat schema on the primary and checks both replicas.
set -euo pipefail
cd "$(dirname "$0")/.."
export LAGTRACE_PASSWORD=${LAGTRACE_PASSWORD:-lagtrace-lab}
bin=target/release/lagtrace

echo "demo: lagtrace init -c lagtrace.example.toml"
"$bin" init -c lagtrace.example.toml
echo
echo "demo: replication status of the lab (make slave-lag)"
scripts/lab.sh slave-lag
echo
echo "demo: the lab keeps running; try 'make stall', 'make start-lag LAG=5', 'make down'"
