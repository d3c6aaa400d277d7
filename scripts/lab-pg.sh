#!/usr/bin/env bash
# The lagtrace PostgreSQL lab: a primary and two streaming standbys on loopback, made
# with pg_basebackup from Debian's postgresql-15, run as the `postgres` user (initdb
# refuses root) from .lab/pg/. `scripts/lab.sh` and `make` come here with DB=postgres.
#
#   scripts/lab-pg.sh up | down | status | is-up | stall | resume | io-stop | io-start
#                     | start-lag | stop-lag
#                     | load | oltp | chain | split | failover | failback
#
# Ports: primary 127.0.0.1:15432, standbys 15433 (REPLICA=1) and 15434 (REPLICA=2).
# The superuser `postgres` logs in through the nodes' Unix sockets without a password
# (a throwaway lab); lagtrace logs in over TCP with the password LAGTRACE_PASSWORD
# (default lagtrace-lab).
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
LAB_DIR=${LAB_DIR:-$ROOT_DIR/.lab}
PG_DIR=$LAB_DIR/pg
REPLICA=${REPLICA:-1}
NODES=(primary standby1 standby2)
declare -A PORT=([primary]=15432 [standby1]=15433 [standby2]=15434)
LAGTRACE_PASSWORD=${LAGTRACE_PASSWORD:-lagtrace-lab}
UP_TIMEOUT_S=${UP_TIMEOUT_S:-60}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

say() { printf 'lab(pg): %s\n' "$*"; }
die() { printf 'lab(pg): %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/common.sh
. "$ROOT_DIR/scripts/common.sh"

standby_node() {
  case "$REPLICA" in
    1) echo standby1 ;;
    2) echo standby2 ;;
    *) die "REPLICA must be 1 or 2, not '$REPLICA'" ;;
  esac
}

# as_pg COMMAND...: runs a command as the user the servers run as (postgres when root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# The socket directory of a node: in its own directory, or under /tmp when that path
# would be too long for a Unix socket (107 bytes with the file name).
socket_dir() {
  local dir="$PG_DIR/$1"
  if [ ${#dir} -gt 80 ]; then dir="/tmp/lagtrace-pg-${PORT[$1]}"; fi
  echo "$dir"
}

# sql NODE "statements": runs SQL as the superuser on one node; prints unaligned,
# tab-separated rows without headers.
sql() {
  local node=$1; shift
  as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -A -t -F $'\t' \
    -h "$(socket_dir "$node")" -p "${PORT[$node]}" -U postgres -d postgres -c "$*"
}

install_packages() {
  [ -x "$PG_BIN/postgres" ] && [ -x "$PG_BIN/pg_basebackup" ] && [ -x "$PG_BIN/pgbench" ] && return 0
  [ "$(id -u)" = 0 ] || die "PostgreSQL 15 is not installed; run as root or: sudo apt-get install -y postgresql-15"
  say "installing postgresql-15 (apt-get)"
  # No system-wide cluster: createcluster.conf (kept by the install) keeps the package
  # from creating one, and apt_install_quiet from starting any.
  if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
  fi
  apt_install_quiet postgresql-15 postgresql-client-15 || die "apt-get install postgresql-15 failed"
  [ -x "$PG_BIN/postgres" ] || die "apt-get installed postgresql-15 but $PG_BIN/postgres is missing"
}

pid_alive() {
  local pidfile="$PG_DIR/$1/data/postmaster.pid" pid
  [ -s "$pidfile" ] || return 1
  pid=$(head -1 "$pidfile" 2>/dev/null)
  kill -0 "$pid" 2>/dev/null || return 1
  [ "$(sed -E 's/^[0-9]+ \(.*\) (.).*/\1/' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

ready() { as_pg "$PG_BIN/pg_isready" -q -h "$(socket_dir "$1")" -p "${PORT[$1]}"; }

# The settings of a node, included from its postgresql.conf (a standby's copy of the
# primary's file includes its own lab.conf, written after the base backup).
write_conf() {
  local node=$1 data="$PG_DIR/$1/data"
  tls_files "$node"
  write_hba "$node"
  {
    echo "port = ${PORT[$node]}"
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = '$(socket_dir "$node")'"
    echo "cluster_name = 'lagtrace-lab-$node'"
    echo "wal_level = replica"
    echo "max_wal_senders = 10"
    echo "max_replication_slots = 10"
    echo "hot_standby = on"
    echo "hot_standby_feedback = on"
    echo "wal_receiver_status_interval = 1s"
    # A throwaway lab: WAL is not forced to disk, but commits still wait for it to be
    # written (synchronous_commit stays on, so WAL is sent as soon as it commits).
    echo "fsync = off"
    echo "full_page_writes = off"
    echo "shared_buffers = 32MB"
    echo "max_connections = 100"
    echo "logging_collector = off"
    echo "log_min_messages = warning"
    # TLS for every client (scripts/lab-certs.sh); lagtrace_tls may use nothing else.
    echo "ssl = on"
    echo "ssl_cert_file = '$PG_DIR/$node/tls/server.pem'"
    echo "ssl_key_file = '$PG_DIR/$node/tls/server.key'"
    echo "ssl_ca_file = '$PG_DIR/$node/tls/ca.pem'"
    if [ "$node" != primary ]; then
      echo "primary_conninfo = 'host=127.0.0.1 port=${PORT[primary]} user=repl application_name=$node'"
      echo "primary_slot_name = '$node'"
    fi
  } >"$data/lab.conf"
  grep -q "^include_if_exists = 'lab.conf'" "$data/postgresql.conf" ||
    echo "include_if_exists = 'lab.conf'" >>"$data/postgresql.conf"
  [ "$(id -u)" = 0 ] && chown postgres: "$data/lab.conf"
  return 0
}

# The lab's TLS files (scripts/lab-certs.sh, shared with the MariaDB lab) in a node's
# own directory: the server reads its key only if the postgres user owns it, mode 600.
tls_files() {
  local dir="$PG_DIR/$1/tls" tls
  tls=$("$ROOT_DIR/scripts/lab-certs.sh" "$LAB_DIR/tls")
  mkdir -p "$dir"
  cp "$tls/server.pem" "$tls/server.key" "$tls/ca.pem" "$dir/"
  chmod 600 "$dir/server.key"
  [ "$(id -u)" = 0 ] && chown -R postgres: "$dir"
  return 0
}

# Who may connect how: replication from loopback without a password (lab only);
# lagtrace_tls only over TLS (hostssl), lagtrace_x509 only over TLS with a client
# certificate the lab's CA signed, everyone else with a password, TLS or not.
write_hba() {
  local data="$PG_DIR/$1/data"
  cat >"$data/pg_hba.conf" <<HBA
local all all trust
host replication repl 127.0.0.1/32 trust
hostssl all lagtrace_tls 127.0.0.1/32 scram-sha-256
hostnossl all lagtrace_tls 127.0.0.1/32 reject
hostssl all lagtrace_x509 127.0.0.1/32 scram-sha-256 clientcert=verify-ca
hostnossl all lagtrace_x509 127.0.0.1/32 reject
host all all 127.0.0.1/32 scram-sha-256
HBA
  [ "$(id -u)" = 0 ] && chown postgres: "$data/pg_hba.conf"
  return 0
}

start_node() {
  local node=$1
  pid_alive "$node" && return 0
  mkdir -p "$(socket_dir "$node")"
  [ "$(id -u)" = 0 ] && chown postgres: "$(socket_dir "$node")"
  # setsid: Ctrl-C in a test does not reach the server.
  as_pg setsid "$PG_BIN/pg_ctl" -D "$PG_DIR/$node/data" -l "$PG_DIR/$node/server.log" -s start \
    </dev/null >/dev/null 2>&1 &
  wait_until "$node to accept connections on 127.0.0.1:${PORT[$node]}" ready "$node"
}

init_primary() {
  local data="$PG_DIR/primary/data"
  [ -s "$data/PG_VERSION" ] && return 0
  mkdir -p "$PG_DIR/primary"
  [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR" "$PG_DIR/primary"
  as_pg "$PG_BIN/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >/dev/null
  write_conf primary
  start_node primary
  sql primary "CREATE ROLE repl WITH LOGIN REPLICATION"
  sql primary "SELECT pg_create_physical_replication_slot('standby1'), pg_create_physical_replication_slot('standby2')" >/dev/null
}

# The lagtrace role: it may create its schema in the postgres database and read the
# replication views (pg_monitor); nothing else. The same for the roles the TLS tests use
# (which pg_hba.conf lets in only over TLS: write_hba). Applied on every `up`.
grant_lagtrace() {
  local role
  for role in lagtrace lagtrace_tls lagtrace_x509; do
    sql primary "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN CREATE ROLE $role LOGIN; END IF;
    END \$\$;
    ALTER ROLE $role WITH LOGIN PASSWORD '$LAGTRACE_PASSWORD';
    GRANT CREATE ON DATABASE postgres TO $role;
    GRANT pg_monitor TO $role;"
  done
  sql primary "CREATE TABLE IF NOT EXISTS public.load (id BIGSERIAL PRIMARY KEY, v INT NOT NULL, pad CHAR(64) NOT NULL DEFAULT '');"
}

init_standby() {
  local node=$1 data="$PG_DIR/$1/data"
  [ -s "$data/PG_VERSION" ] && return 0
  mkdir -p "$PG_DIR/$node"
  [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR/$node"
  # Without -R: primary_conninfo lives in lab.conf only (postgresql.auto.conf would
  # override it), so that `failover` can re-point a standby.
  as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "${PORT[primary]}" -U repl -D "$data" \
    -X stream -c fast >/dev/null
  as_pg touch "$data/standby.signal"
  write_conf "$node"
}

streaming() { [ "$(sql "$1" "SELECT status FROM pg_stat_wal_receiver")" = streaming ]; }

cmd_up() {
  install_packages
  mkdir -p "$PG_DIR"
  [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
  init_primary
  start_node primary
  grant_lagtrace
  local node
  for node in standby1 standby2; do
    init_standby "$node"
    start_node "$node"
  done
  for node in standby1 standby2; do wait_until "$node to stream from the primary" streaming "$node"; done
  say "primary  127.0.0.1:${PORT[primary]}"
  say "standby1 127.0.0.1:${PORT[standby1]}  (streams from the primary)"
  say "standby2 127.0.0.1:${PORT[standby2]}  (streams from the primary)"
  say "user lagtrace, password in LAGTRACE_PASSWORD (lab default: lagtrace-lab), database postgres"
  say "TLS: every server presents $LAB_DIR/tls/server.pem (CA $LAB_DIR/tls/ca.pem); roles lagtrace_tls and lagtrace_x509 (same password) connect only over TLS (hostssl), lagtrace_x509 only with $LAB_DIR/tls/client.pem (clientcert=verify-ca)"
}

# stop_node NODE: stops a node's server and waits for it to be gone: a fast shutdown,
# then (a server that does not stop within 30 s) SIGKILL to it and its children. A
# frozen server (a test stopped mid-freeze) is thawed first: it could not stop.
stop_node() {
  local node=$1 pid children
  pid_alive "$node" || return 0
  pid=$(head -1 "$PG_DIR/$node/data/postmaster.pid")
  children=$(pgrep -P "$pid" || true)
  # shellcheck disable=SC2086
  kill -CONT "$pid" $children 2>/dev/null || true
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/$node/data" -s -m fast -t 30 stop >/dev/null 2>&1 || true
  if kill -0 "$pid" 2>/dev/null; then
    # shellcheck disable=SC2086
    kill -KILL "$pid" $children 2>/dev/null || true
  fi
  local deadline=$((SECONDS + 10))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  ! kill -0 "$pid" 2>/dev/null || die "$node (pid $pid) does not stop; its data stays in $PG_DIR/$node"
}

cmd_down() {
  local node
  for node in standby2 standby1 primary; do stop_node "$node"; done
  rm -rf "$PG_DIR"
  rmdir "$LAB_DIR" 2>/dev/null || true
  for node in "${NODES[@]}"; do rm -rf "/tmp/lagtrace-pg-${PORT[$node]}"; done
  say "down"
}

cmd_status() {
  local node
  for node in "${NODES[@]}"; do
    if ready "$node"; then
      say "$node 127.0.0.1:${PORT[$node]} running ($(sql "$node" "SELECT CASE WHEN pg_is_in_recovery() THEN 'standby' ELSE 'primary' END"))"
    else
      say "$node 127.0.0.1:${PORT[$node]} not running"
    fi
  done
}

cmd_is_up() {
  local node
  for node in "${NODES[@]}"; do ready "$node" || return 1; done
  streaming standby1 && streaming standby2
}

# stall / resume: the standby stops replaying WAL (it still receives it) / replays again.
cmd_stall() {
  local n; n=$(standby_node)
  sql "$n" "SELECT pg_wal_replay_pause()" >/dev/null
  say "$n: WAL replay paused (resume with: make resume DB=postgres REPLICA=$REPLICA)"
}

cmd_resume() {
  local n; n=$(standby_node)
  sql "$n" "SELECT pg_wal_replay_resume()" >/dev/null
  say "$n: WAL replay resumed"
}

# io-stop / io-start: a standby's WAL receiver stops (its primary_conninfo commented out
# and the configuration reloaded: PostgreSQL 13+ stops the receiver) / streams again.
cmd_io_stop() {
  local n; n=$(standby_node)
  sed -i 's/^primary_conninfo = /#io-stop# primary_conninfo = /' "$PG_DIR/$n/data/lab.conf"
  sql "$n" "SELECT pg_reload_conf()" >/dev/null
  wait_until "$n's WAL receiver to stop" not_streaming "$n"
  say "$n: WAL receiver stopped (start it with: make io-start DB=postgres REPLICA=$REPLICA)"
}

cmd_io_start() {
  local n; n=$(standby_node)
  sed -i 's/^#io-stop# primary_conninfo = /primary_conninfo = /' "$PG_DIR/$n/data/lab.conf"
  sql "$n" "SELECT pg_reload_conf()" >/dev/null
  wait_until "$n to stream again" streaming "$n"
  say "$n: WAL receiver streams again"
}

not_streaming() { [ -z "$(sql "$1" "SELECT status FROM pg_stat_wal_receiver")" ]; }

# start-lag LAG=2s / stop-lag: an intended delay (recovery_min_apply_delay) on a standby.
set_delay() {
  local n delay=$1; n=$(standby_node)
  [[ "$delay" =~ ^[0-9]+(ms|s|min)?$ ]] || die "LAG must be a duration such as 2s or 500ms, not '$delay'"
  sql "$n" "ALTER SYSTEM SET recovery_min_apply_delay = '$delay'"
  sql "$n" "SELECT pg_reload_conf()" >/dev/null
  say "$n: recovery_min_apply_delay = $delay"
}

# load: RATE single-row autocommit inserts per second for LOAD_SECONDS on the primary
# (pgbench, paced by its --rate).
cmd_load() {
  local rate=${RATE:-200} seconds=${LOAD_SECONDS:-30} script
  [[ "$rate" =~ ^[0-9]+$ && "$rate" -gt 0 ]] || die "RATE must be a positive integer, not '$rate'"
  [[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || die "LOAD_SECONDS must be a positive integer, not '$seconds'"
  script=$(mktemp)
  echo "INSERT INTO public.load (v) VALUES (1);" >"$script"
  chmod 644 "$script"
  say "load: $rate inserts/s for $seconds s on the primary"
  as_pg "$PG_BIN/pgbench" -n -h "$(socket_dir primary)" -p "${PORT[primary]}" -U postgres \
    -f "$script" -R "$rate" -T "$seconds" postgres >/dev/null
  rm -f "$script"
}

# oltp: pgbench's TPC-B-like write load (5 statements per transaction on 4 tables) at
# RATE transactions per second (0 = as fast as it goes) from THREADS clients for
# LOAD_SECONDS on the primary. The tables (scale SCALE, 100000 accounts per unit) are
# made on first use.
cmd_oltp() {
  local rate=${RATE:-200} seconds=${LOAD_SECONDS:-30} threads=${THREADS:-4} scale=${SCALE:-20}
  local v
  for v in rate seconds threads scale; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "${v^^} must be a whole number, not '${!v}'"
  done
  [ "$seconds" -gt 0 ] && [ "$threads" -gt 0 ] && [ "$scale" -gt 0 ] ||
    die "LOAD_SECONDS, THREADS and SCALE must be positive"
  local bench=("$PG_BIN/pgbench" -h "$(socket_dir primary)" -p "${PORT[primary]}" -U postgres)
  if [ "$(sql primary "SELECT COUNT(*) FROM pg_tables WHERE tablename = 'pgbench_branches'")" != 1 ] ||
    [ "$(sql primary "SELECT COUNT(*) FROM public.pgbench_branches")" != "$scale" ]; then
    say "oltp: making pgbench tables at scale $scale"
    as_pg "${bench[@]}" -i -q -s "$scale" postgres >/dev/null 2>&1 || die "pgbench -i failed"
  fi
  local pace=()
  [ "$rate" -gt 0 ] && pace=(-R "$rate")
  say "oltp: TPC-B-like at ${rate} tx/s (0 = unthrottled), $threads clients, ${seconds}s on the primary"
  as_pg "${bench[@]}" -n -c "$threads" -j "$threads" "${pace[@]}" -T "$seconds" postgres \
    >"$PG_DIR/oltp.log" 2>&1 || die "pgbench failed (see $PG_DIR/oltp.log)"
  say "oltp: done ($(grep -m1 '^tps' "$PG_DIR/oltp.log"))"
}

# The node that takes writes now (not in recovery): primary, or standby2 after
# `failover`.
writer_node() {
  local node
  for node in "${NODES[@]}"; do
    if ready "$node" && [ "$(sql "$node" "SELECT pg_is_in_recovery()")" = f ]; then
      echo "$node"
      return 0
    fi
  done
  return 1
}

# follow NODE SOURCE: NODE streams from SOURCE (a slot named after NODE on SOURCE);
# a running standby re-reads primary_conninfo on reload, a stopped server starts as a
# standby. recovery_target_timeline is 'latest' by default: it follows a promotion.
follow() {
  local node=$1 source=$2 data="$PG_DIR/$1/data"
  sql "$source" "SELECT pg_create_physical_replication_slot('$node') WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '$node')" >/dev/null
  # A receiver stopped by io-stop (its line commented out) streams again from SOURCE.
  sed -i "s/^\(#io-stop# \)\{0,1\}primary_conninfo = .*/primary_conninfo = 'host=127.0.0.1 port=${PORT[$source]} user=repl application_name=$node'/" "$data/lab.conf"
  grep -q "^primary_conninfo" "$data/lab.conf" || {
    echo "primary_conninfo = 'host=127.0.0.1 port=${PORT[$source]} user=repl application_name=$node'" >>"$data/lab.conf"
    echo "primary_slot_name = '$node'" >>"$data/lab.conf"
  }
  if pid_alive "$node"; then
    sql "$node" "SELECT pg_reload_conf()" >/dev/null
  else
    as_pg touch "$data/standby.signal"
    start_node "$node"
  fi
}

# failover: a planned switchover to standby2: the primary shuts down cleanly (its
# standbys receive all it wrote), standby2 is promoted, standby1 and the old primary
# stream from it. `failback` undoes it.
cmd_failover() {
  [ "$(writer_node)" = primary ] || die "failover: the primary is not the writer now (run make failback DB=postgres first)"
  switch_over primary standby2 standby1
  say "failover: standby2 (127.0.0.1:${PORT[standby2]}) is the primary; standby1 and the old primary stream from it"
}

# failback: the same back to the lab's own topology.
# chain: standby1 streams from standby2 (cascading replication) instead of the primary.
cmd_chain() {
  [ "$(writer_node)" = primary ] || die "chain: the primary is not the writer now (run make failback DB=postgres first)"
  follow standby1 standby2
  wait_until "standby1 to stream from standby2" streaming standby1
  say "chain: standby1 streams from standby2 (127.0.0.1:${PORT[standby2]})"
}

# The port NODE's primary_conninfo names (empty for a node that streams from nothing).
source_port() {
  sed -n "s/^primary_conninfo = .*port=\([0-9]*\).*/\1/p" "$PG_DIR/$1/data/lab.conf"
}

# split: standby2 is promoted while the primary still takes writes (a split brain: two
# servers out of recovery); standby1 streams from the primary still (or, after `chain`,
# follows standby2 onto its new timeline). `failback` ends it.
cmd_split() {
  [ "$(writer_node)" = primary ] || die "split: the primary is not the writer now (run make failback DB=postgres first)"
  sql standby2 "SELECT pg_promote(true, 30)" >/dev/null
  say "split: standby2 (127.0.0.1:${PORT[standby2]}) takes writes too; the primary still writes and standby1 streams from it"
}

# rebuild NODE: NODE made again from a base backup of the primary, as a standby of it;
# what it wrote on its own (the losing side of a split) is gone.
rebuild() {
  local node=$1
  stop_node "$node"
  rm -rf "$PG_DIR/$node/data"
  init_standby "$node"
  start_node "$node"
  wait_until "$node to stream from the primary" streaming "$node"
}

cmd_failback() {
  local writer; writer=$(writer_node) || die "failback: no server takes writes"
  if [ "$writer" = primary ]; then
    # After `split`: standby2 writes too; it diverged, so it is rebuilt, and so is a
    # standby1 that followed it (`chain`) onto its timeline.
    if ready standby2 && [ "$(sql standby2 "SELECT pg_is_in_recovery()")" = f ]; then
      rebuild standby2
      [ "$(source_port standby1)" = "${PORT[standby2]}" ] && rebuild standby1
      say "failback: the split is over; standby2 was rebuilt from the primary and streams from it"
    elif [ "$(source_port standby1)" = "${PORT[standby2]}" ]; then
      follow standby1 primary
      wait_until "standby1 to stream from the primary" streaming standby1
      say "failback: standby1 streams from the primary again"
    else
      say "failback: the primary writes already"
    fi
    return 0
  fi
  switch_over "$writer" primary standby1
  say "failback: the primary (127.0.0.1:${PORT[primary]}) writes; standby1 and standby2 stream from it"
}

# switch_over FROM TO OTHER: FROM stops cleanly once TO and OTHER have received all
# of its WAL, TO is promoted, OTHER and FROM (restarted as a standby) stream from TO.
switch_over() {
  local from=$1 to=$2 other=$3 lsn
  stop_node "$from"
  # A clean shutdown sends the shutdown checkpoint: TO must have replayed it.
  lsn=$(as_pg "$PG_BIN/pg_controldata" "$PG_DIR/$from/data" | sed -n 's/^Latest checkpoint location: *//p')
  wait_until "$to to replay $from's last WAL ($lsn)" replayed "$to" "$lsn"
  sql "$to" "SELECT pg_promote(true, 30)" >/dev/null
  sed -i '/^primary_conninfo/d; /^primary_slot_name/d' "$PG_DIR/$to/data/lab.conf"
  follow "$other" "$to"
  follow "$from" "$to"
  wait_until "$other to stream from $to" streaming "$other"
  wait_until "$from to stream from $to" streaming "$from"
}

replayed() { [ "$(sql "$1" "SELECT pg_last_wal_replay_lsn() >= '$2'::pg_lsn")" = t ]; }

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  is-up) cmd_is_up ;;
  stall) cmd_stall ;;
  resume) cmd_resume ;;
  io-stop) cmd_io_stop ;;
  io-start) cmd_io_start ;;
  start-lag) set_delay "${LAG:-2s}" ;;
  stop-lag) set_delay 0 ;;
  load) cmd_load ;;
  oltp) cmd_oltp ;;
  split) cmd_split ;;
  chain) cmd_chain ;;
  failover) cmd_failover ;;
  failback) cmd_failback ;;
  *) die "usage: $0 up|down|status|is-up|stall|resume|io-stop|io-start|start-lag|stop-lag|load|oltp|chain|split|failover|failback" ;;
esac
