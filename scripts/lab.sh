#!/usr/bin/env bash
# The lagtrace lab: a MariaDB primary and two GTID replicas on loopback.
#
#   scripts/lab.sh up | down | status | is-up | start-lag | stop-lag | slave-lag | stuff
#                  | stall | resume | block | break | repair | load | socket NODE
#
# `socket NODE` prints the Unix socket of NODE (primary, replica1, replica2), where root
# logs in without a password: for scripts that drive the servers as root (bench-vs-pt).
# Natively (default) it runs Debian's mariadbd from .lab/; with LAB=docker it
# drives docker-compose.yml instead (same ports and users; not exercised by CI).
# `make load SECONDS=n` reaches this script as LOAD_SECONDS (bash owns $SECONDS).
# Ports: primary 127.0.0.1:13306, replicas 13307 (REPLICA=1) and 13308 (REPLICA=2).
# Root is passwordless and reachable only on loopback: this is a throwaway lab.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
# DB=postgres: the PostgreSQL lab (scripts/lab-pg.sh) instead.
case "${DB:-mariadb}" in
  mariadb | mysql) ;;
  postgres | postgresql) exec "$ROOT_DIR/scripts/lab-pg.sh" "$@" ;;
  *) printf 'lab: DB must be mariadb or postgres, not %s\n' "$DB" >&2; exit 1 ;;
esac
LAB=${LAB:-native}
LAB_DIR=${LAB_DIR:-$ROOT_DIR/.lab}
REPLICA=${REPLICA:-1}
NODES=(primary replica1 replica2)
declare -A PORT=([primary]=13306 [replica1]=13307 [replica2]=13308)
declare -A SERVER_ID=([primary]=1 [replica1]=2 [replica2]=3)
# The lab's passwords; the lagtrace user's can be overridden with LAGTRACE_PASSWORD.
REPL_PASSWORD=lab-repl
LAGTRACE_PASSWORD=${LAGTRACE_PASSWORD:-lagtrace-lab}
UP_TIMEOUT_S=${UP_TIMEOUT_S:-60}

say() { printf 'lab: %s\n' "$*"; }
die() { printf 'lab: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/common.sh
. "$ROOT_DIR/scripts/common.sh"

replica_node() {
  case "$REPLICA" in
    1) echo replica1 ;;
    2) echo replica2 ;;
    *) die "REPLICA must be 1 or 2, not '$REPLICA'" ;;
  esac
}

# sql NODE "statements": run SQL as root on one node; prints tab-separated rows.
sql() {
  local node=$1; shift
  if [ "$LAB" = docker ]; then
    docker compose -f "$ROOT_DIR/docker-compose.yml" exec -T "$node" \
      mariadb -uroot --batch --skip-column-names -e "$*"
  else
    mariadb --no-defaults --protocol=socket --socket="$(socket_of "$node")" -uroot \
      --batch --skip-column-names -e "$*"
  fi
}

# sql_vertical NODE "statement": one column per line, for SHOW SLAVE STATUS.
sql_vertical() {
  local node=$1; shift
  if [ "$LAB" = docker ]; then
    docker compose -f "$ROOT_DIR/docker-compose.yml" exec -T "$node" mariadb -uroot -E -e "$*"
  else
    mariadb --no-defaults --protocol=socket --socket="$(socket_of "$node")" -uroot -E -e "$*"
  fi
}

socket_of() {
  # Unix socket paths are limited to 107 bytes; fall back to /tmp for deep checkouts.
  local path="$LAB_DIR/$1/mysqld.sock"
  if [ ${#path} -gt 100 ]; then path="/tmp/lagtrace-lab-${PORT[$1]}.sock"; fi
  echo "$path"
}

pid_alive() {
  local pidfile="$LAB_DIR/$1/mysqld.pid" pid
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile" 2>/dev/null)
  kill -0 "$pid" 2>/dev/null || return 1
  # A killed server that its parent has not reaped yet is a zombie: not alive.
  [ "$(sed -E 's/^[0-9]+ \(.*\) (.).*/\1/' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

ping_node() {
  if [ "$LAB" = docker ]; then
    sql "$1" "SELECT 1" >/dev/null 2>&1
  else
    mariadb-admin --no-defaults --protocol=socket --socket="$(socket_of "$1")" -uroot \
      --connect-timeout=1 ping >/dev/null 2>&1
  fi
}

install_packages() {
  command -v mariadbd >/dev/null 2>&1 && command -v mariadb >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || die "mariadbd is not installed; run as root or: sudo apt-get install -y mariadb-server mariadb-client"
  say "installing mariadb-server (apt-get)"
  # No service start: the package would start a system-wide server on :3306.
  apt_install_quiet mariadb-server mariadb-client || die "apt-get install mariadb-server mariadb-client failed"
  command -v mariadbd >/dev/null 2>&1 || die "apt-get installed mariadb-server but mariadbd is not on PATH"
}

write_cnf() {
  local node=$1 dir="$LAB_DIR/$1"
  {
    echo "[mariadbd]"
    echo "datadir=$dir/data"
    echo "port=${PORT[$node]}"
    echo "bind-address=127.0.0.1"
    echo "socket=$(socket_of "$node")"
    echo "pid-file=$dir/mysqld.pid"
    echo "log-error=$dir/err.log"
    echo "user=$(id -un)"
    echo "server-id=${SERVER_ID[$node]}"
    echo "log-bin=$dir/data/binlog"
    echo "binlog-format=ROW"
    echo "log-slave-updates=ON"
    echo "gtid-strict-mode=ON"
    echo "skip-name-resolve"
    echo "innodb-buffer-pool-size=64M"
    echo "innodb-log-file-size=48M"
    echo "innodb-flush-log-at-trx-commit=2"
    echo "sync-binlog=0"
    echo "performance-schema=OFF"
    echo "max-connections=200"
    # TLS for every client (scripts/lab-certs.sh); lagtrace_tls may use nothing else.
    echo "ssl-ca=$LAB_DIR/tls/ca.pem"
    echo "ssl-cert=$LAB_DIR/tls/server.pem"
    echo "ssl-key=$LAB_DIR/tls/server.key"
    if [ "$node" != primary ]; then
      echo "read-only=ON"
      echo "relay-log=$dir/data/relay"
    fi
  } >"$dir/my.cnf"
}

start_node() {
  local node=$1
  pid_alive "$node" && return 0
  rm -f "$(socket_of "$node")"
  # setsid detaches the server from make's process group so Ctrl-C in a test does not kill it.
  setsid mariadbd --defaults-file="$LAB_DIR/$node/my.cnf" </dev/null >>"$LAB_DIR/$node/err.log" 2>&1 9>&- &
}

# The least the lagtrace user needs, as docs/commands.md's "Grants" documents it (tests/grants.rs
# compares them): write only to its own schema (read_only=ON keeps it read-only on
# replicas), read replication status everywhere, stream binary logs from their current
# position (the binlog probe), nothing else. Applied again on every
# `up`, so a lab made with wider grants converges.
lagtrace_grants_sql() { # lagtrace_grants_sql USER_HOST
  local host=$1
  cat <<SQL
REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'lagtrace'@'$host';
$(privileges_sql lagtrace "$host")
SQL
}

privileges_sql() { # privileges_sql USER HOST
  cat <<SQL
GRANT SELECT, INSERT, UPDATE, CREATE ON lagtrace.* TO '$1'@'$2';
GRANT SLAVE MONITOR ON *.* TO '$1'@'$2';
GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '$1'@'$2';
SQL
}

# For the TLS tests, lagtrace's grants to users that may connect only over TLS:
# lagtrace_tls (REQUIRE SSL) and lagtrace_x509 (REQUIRE X509: with a client certificate
# the lab's CA signed). Each made once, on the first `up` that finds it missing.
converge_tls_user() {
  local user require
  for user in lagtrace_tls:SSL lagtrace_x509:X509; do
    require=${user#*:} user=${user%:*}
    [ "$(sql primary "SELECT COUNT(*) FROM mysql.user WHERE user = '$user'")" = 1 ] && continue
    sql primary "CREATE USER '$user'@'127.0.0.1' IDENTIFIED BY '$LAGTRACE_PASSWORD' REQUIRE $require;
$(privileges_sql "$user" 127.0.0.1)"
  done
}

# Applies lagtrace_grants_sql again unless the last `up` applied this same text and the
# grants are still what it left. Its REVOKE ALL then GRANT leaves a moment without any
# grant, which replicates: a recorder reading a replica then sees access denied (a
# test that kills a replica and runs `up` saw it on the other replica).
converge_grants() {
  [ -f "$LAB_DIR/.grants" ] && [ "$(cat "$LAB_DIR/.grants")" = "$(grants_digest)" ] && return 0
  sql primary "$(lagtrace_grants_sql 127.0.0.1)"
  mark_grants
}

# What converge_grants compares: a digest of the grants' text and of what the primary
# shows (which holds the password's hash, so the text itself is not kept).
grants_digest() {
  { lagtrace_grants_sql 127.0.0.1
    sql primary "SHOW GRANTS FOR 'lagtrace'@'127.0.0.1'" 2>/dev/null || true
  } | sha256sum
}

mark_grants() { grants_digest >"$LAB_DIR/.grants"; }

bootstrap_sql() { # bootstrap_sql USER_HOST: users and grants, run once on the primary.
  local host=$1
  cat <<SQL
CREATE USER IF NOT EXISTS 'repl'@'$host' IDENTIFIED BY '$REPL_PASSWORD';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'$host';
CREATE USER IF NOT EXISTS 'lagtrace'@'$host' IDENTIFIED BY '$LAGTRACE_PASSWORD';
$(lagtrace_grants_sql "$host")
CREATE DATABASE IF NOT EXISTS lab;
CREATE TABLE IF NOT EXISTS lab.load (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL, pad CHAR(64) NOT NULL DEFAULT '') ENGINE=InnoDB;
CREATE TABLE IF NOT EXISTS lab.conflict (id INT PRIMARY KEY) ENGINE=InnoDB;
SQL
}

change_master_sql() { # change_master_sql HOST PORT
  echo "CHANGE MASTER TO MASTER_HOST='$1', MASTER_PORT=$2, MASTER_USER='repl',
        MASTER_PASSWORD='$REPL_PASSWORD', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
        START SLAVE;"
}

replica_threads_running() {
  local status
  status=$(sql_vertical "$1" "SHOW SLAVE STATUS" 2>/dev/null) || return 1
  grep -q 'Slave_IO_Running: Yes' <<<"$status" && grep -q 'Slave_SQL_Running: Yes' <<<"$status"
}

print_ports() {
  say "primary  127.0.0.1:${PORT[primary]}  (server_id 1)"
  say "replica1 127.0.0.1:${PORT[replica1]}  (server_id 2)"
  say "replica2 127.0.0.1:${PORT[replica2]}  (server_id 3)"
  say "user lagtrace, password in LAGTRACE_PASSWORD (lab default: lagtrace-lab)"
  say "TLS: every server presents $LAB_DIR/tls/server.pem (CA $LAB_DIR/tls/ca.pem); users lagtrace_tls and lagtrace_x509 (same password) connect only over TLS, lagtrace_x509 only with $LAB_DIR/tls/client.pem"
}

cmd_up() {
  if [ "$LAB" = docker ]; then docker_up; return; fi
  install_packages
  # Tests run `up` from several processes at once: one at a time.
  mkdir -p "$LAB_DIR"
  exec 9>"$LAB_DIR/.up.lock"
  flock 9
  local all_up=1 node
  for node in "${NODES[@]}"; do pid_alive "$node" && ping_node "$node" || all_up=0; done
  if [ $all_up = 1 ]; then say "already running"; print_ports; return 0; fi

  local fresh=0
  if [ ! -d "$LAB_DIR/primary/data" ]; then
    fresh=1
    say "creating data directories in $LAB_DIR"
    # One bootstrap, copied three times: faster than three mariadb-install-db runs.
    local template="$LAB_DIR/.template"
    rm -rf "$template"
    mariadb-install-db --no-defaults --datadir="$template" --user="$(id -un)" \
      --auth-root-authentication-method=normal --skip-test-db \
      >"$LAB_DIR/install-db.log" 2>&1 || die "mariadb-install-db failed; see $LAB_DIR/install-db.log"
    for node in "${NODES[@]}"; do
      mkdir -p "$LAB_DIR/$node"
      cp -a "$template" "$LAB_DIR/$node/data"
    done
    rm -rf "$template"
  fi
  "$ROOT_DIR/scripts/lab-certs.sh" "$LAB_DIR/tls" >/dev/null
  for node in "${NODES[@]}"; do write_cnf "$node"; start_node "$node"; done
  for node in "${NODES[@]}"; do
    wait_until "$node to accept connections (see $LAB_DIR/$node/err.log)" ping_node "$node"
  done
  if [ $fresh = 1 ]; then
    sql primary "$(bootstrap_sql 127.0.0.1)"
    mark_grants
    for node in replica1 replica2; do sql "$node" "$(change_master_sql 127.0.0.1 "${PORT[primary]}")"; done
  else
    converge_grants
  fi
  converge_tls_user
  for node in replica1 replica2; do
    wait_until "$node IO and SQL threads to run" replica_threads_running "$node"
  done
  settle_replicas
  say "up"
  print_ports
}

# The replicas apply what `up` just wrote on the primary (users, grants) before anyone
# reads with them: a replica that has applied the grants' REVOKE but not yet their GRANT
# denies lagtrace its reads. After a failover the primary's writes reach no replica:
# the wait gives up after 10 s and says so.
settle_replicas() {
  local pos node
  pos=$(sql primary "SELECT @@gtid_binlog_pos")
  for node in replica1 replica2; do
    [ "$(sql "$node" "SELECT MASTER_GTID_WAIT('$pos', 10)")" = 0 ] ||
      say "$node has not applied the primary's position $pos (it replicates from elsewhere?)"
  done
}

docker_up() {
  command -v docker >/dev/null || die "LAB=docker needs docker"
  docker compose -f "$ROOT_DIR/docker-compose.yml" up -d
  local node
  for node in "${NODES[@]}"; do wait_until "$node container" ping_node "$node"; done
  if ! sql primary "SELECT 1 FROM mysql.user WHERE user='lagtrace'" | grep -q 1; then
    sql primary "$(bootstrap_sql %)"
    for node in replica1 replica2; do sql "$node" "$(change_master_sql primary 3306)"; done
  fi
  for node in replica1 replica2; do
    wait_until "$node IO and SQL threads to run" replica_threads_running "$node"
  done
  say "up (docker)"
  print_ports
}

cmd_down() {
  if [ "$LAB" = docker ]; then docker compose -f "$ROOT_DIR/docker-compose.yml" down -v; return; fi
  local node pid
  for node in "${NODES[@]}"; do
    if pid_alive "$node"; then
      pid=$(cat "$LAB_DIR/$node/mysqld.pid" 2>/dev/null) || continue
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for node in "${NODES[@]}"; do
    local deadline=$((SECONDS + 30))
    while pid_alive "$node"; do
      if [ $SECONDS -ge $deadline ]; then kill -KILL "$(cat "$LAB_DIR/$node/mysqld.pid" 2>/dev/null)" 2>/dev/null || true; break; fi
      sleep 0.1
    done
    rm -f "$(socket_of "$node")"
  done
  # Everything but the PostgreSQL lab (.lab/pg), which may be running beside this one,
  # and the TLS files both labs' servers present (.lab/tls).
  if [ -d "$LAB_DIR" ]; then
    find "$LAB_DIR" -mindepth 1 -maxdepth 1 ! -name pg ! -name tls -exec rm -rf {} +
    rmdir "$LAB_DIR" 2>/dev/null || true
  fi
  say "down"
}

# is-up: exit 0 when all three servers answer, 1 otherwise; prints nothing.
cmd_is_up() {
  local node
  for node in "${NODES[@]}"; do ping_node "$node" || return 1; done
}

cmd_status() {
  local node
  for node in "${NODES[@]}"; do
    if ping_node "$node"; then say "$node 127.0.0.1:${PORT[$node]} running"; else say "$node 127.0.0.1:${PORT[$node]} not running"; fi
  done
}

set_delay() {
  local node; node=$(replica_node)
  sql "$node" "STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=$1; START SLAVE;"
  say "$node: MASTER_DELAY=$1"
}

cmd_start_lag() {
  local lag=${LAG:-300}
  [[ "$lag" =~ ^[0-9]+$ ]] || die "LAG must be whole seconds, not '$lag'"
  set_delay "$lag"
}

cmd_slave_lag() {
  local node
  for node in replica1 replica2; do
    sql_vertical "$node" "SHOW SLAVE STATUS" 2>/dev/null \
      | awk -v n="$node" -F': ' '
          /Slave_IO_Running:/ {io=$2} /Slave_SQL_Running:/ {sq=$2}
          /Seconds_Behind_Master:/ {sbm=$2} /SQL_Delay:/ {d=$2} /Last_SQL_Errno:/ {e=$2}
          END { if (io == "") { printf "%-9s not reachable\n", n }
                else printf "%-9s Seconds_Behind_Master=%s SQL_Delay=%s IO=%s SQL=%s Last_SQL_Errno=%s\n", n, sbm, d, io, sq, e }'
  done
}

cmd_stuff() {
  local db="lab_stuff_$$"
  sql primary "CREATE DATABASE $db; DROP DATABASE $db;"
  say "created and dropped $db on the primary"
}

cmd_stall() { local n; n=$(replica_node); sql "$n" "STOP SLAVE SQL_THREAD"; say "$n: SQL thread stopped"; }
# block: hold a read lock on the heartbeat table for LOAD_SECONDS (default 5): the SQL
# thread keeps running but waits at the next heartbeat event, as behind a long query.
cmd_block() {
  local n seconds=${LOAD_SECONDS:-5}
  [[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || die "SECONDS must be a positive integer, not '$seconds'"
  n=$(replica_node)
  say "$n: heartbeat table locked for ${seconds}s (SQL thread running, blocked)"
  sql "$n" "LOCK TABLES lagtrace.heartbeat READ; DO SLEEP($seconds); UNLOCK TABLES;" >/dev/null
  say "$n: lock released"
}
cmd_resume() { local n; n=$(replica_node); sql "$n" "START SLAVE SQL_THREAD"; say "$n: SQL thread started"; }
# io-stop / io-start: the replica's IO thread, which receives the primary's binary log.
cmd_io_stop() { local n; n=$(replica_node); sql "$n" "STOP SLAVE IO_THREAD"; say "$n: IO thread stopped"; }
cmd_io_start() { local n; n=$(replica_node); sql "$n" "START SLAVE IO_THREAD"; say "$n: IO thread started"; }

# break: a row written on the replica alone, then the same key on the primary:
# the replica's SQL thread stops with a duplicate-key error (1062).
cmd_break() {
  local n; n=$(replica_node)
  sql "$n" "SET SESSION sql_log_bin=0; INSERT INTO lab.conflict VALUES (1);"
  sql primary "INSERT INTO lab.conflict VALUES (1);"
  say "$n: conflicting row lab.conflict id=1 written; its SQL thread will stop with error 1062"
}

# repair: remove the replica's stray row and let the SQL thread apply the primary's.
cmd_repair() {
  local n; n=$(replica_node)
  sql "$n" "STOP SLAVE SQL_THREAD; SET SESSION sql_log_bin=0; DELETE FROM lab.conflict WHERE id=1; START SLAVE SQL_THREAD;"
  wait_until "$n SQL thread to run again" replica_threads_running "$n"
  sql primary "DELETE FROM lab.conflict WHERE id=1;"
  say "$n: repaired"
}

# The node that takes writes now (not read_only and not replicating): primary, or
# replica2 after `failover`.
writer_node() {
  local node
  for node in "${NODES[@]}"; do
    if [ "$(sql "$node" "SELECT @@read_only")" = 0 ] && [ -z "$(sql "$node" "SHOW ALL SLAVES STATUS")" ]; then
      echo "$node"
      return 0
    fi
  done
  return 1
}

# wait_applied FROM NODE...: make FROM read-only, then wait until every NODE has applied
# everything FROM wrote (a planned switchover loses nothing).
wait_applied() {
  local from=$1 node pos; shift
  sql "$from" "SET GLOBAL read_only = ON"
  pos=$(sql "$from" "SELECT @@gtid_binlog_pos")
  for node in "$@"; do
    wait_until "$node to reach $from's position $pos" has_position "$node" "$pos"
  done
}

# has_position NODE POS: NODE has every transaction of the GTID position POS, applied or
# written itself (@@gtid_current_pos). MASTER_GTID_WAIT looks at the applied ones only,
# so it waited in vain on an old primary for the transactions it wrote (a failback
# right after a failover, with no writes in between).
has_position() {
  local have gtid domain seq got
  have=$(sql "$1" "SELECT @@gtid_current_pos")
  for gtid in ${2//,/ }; do
    domain=${gtid%%-*}
    seq=${gtid##*-}
    got=$(tr ',' '\n' <<<"$have" | awk -F- -v d="$domain" '$1 == d { print $3 }')
    [ -n "$got" ] && [ "$got" -ge "$seq" ] || return 1
  done
}

# repoint NODE TO_NODE: NODE replicates from TO_NODE (GTID, from what NODE already has).
repoint() {
  sql "$1" "STOP SLAVE; SET GLOBAL read_only = ON; $(change_master_sql 127.0.0.1 "${PORT[$2]}" | sed 's/slave_pos/current_pos/')"
}

# failover: a planned switchover to replica2: the primary stops taking writes, both
# replicas apply all it wrote, replica2 stops replicating and takes writes, and replica1
# and the old primary replicate from it (GTID). `failback` undoes it.
cmd_failover() {
  [ "$(writer_node)" = primary ] || die "failover: the primary is not the writer now (run make failback first)"
  wait_applied primary replica1 replica2
  sql replica2 "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF;"
  repoint replica1 replica2
  repoint primary replica2
  for node in replica1 primary; do wait_until "$node to replicate from replica2" replica_threads_running "$node"; done
  say "failover: replica2 (127.0.0.1:${PORT[replica2]}) is the primary; replica1 and the old primary replicate from it"
}

# split: replica2 stops replicating and takes writes; nobody is re-pointed, so the
# cluster has two writable servers. replica2 writes in a GTID domain of its own (3),
# as two writers should, so that `failback` can bring it back. After `chain`, replica1
# follows replica2 to its side of the split.
cmd_split() {
  [ "$(writer_node)" = primary ] || die "split: the primary is not the only writer now (run make failback first)"
  wait_applied primary replica2
  sql primary "SET GLOBAL read_only = OFF"
  sql replica2 "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL gtid_domain_id = 3; SET GLOBAL read_only = OFF;"
  say "split: primary and replica2 both take writes; replica1 still replicates from $(source_of replica1)"
}

# chain: replica1 replicates from replica2 (which replicates from the primary), from
# where it was: replica2 first applies everything replica1 has.
cmd_chain() {
  local pos
  sql replica1 "STOP SLAVE"
  pos=$(sql replica1 "SELECT @@gtid_slave_pos")
  [ "$(sql replica2 "SELECT MASTER_GTID_WAIT('$pos', 30)")" = 0 ] || die "replica2 did not reach replica1's position $pos within 30 s"
  repoint replica1 replica2
  wait_until "replica1 to replicate from replica2" replica_threads_running replica1
  say "chain: replica1 replicates from replica2, which replicates from the primary"
}

# source_of NODE: the lab node NODE replicates from, or "nothing".
source_of() {
  local port node
  port=$(sql_vertical "$1" "SHOW SLAVE STATUS" 2>/dev/null | sed -n 's/^ *Master_Port: //p')
  for node in "${NODES[@]}"; do
    [ "${PORT[$node]}" = "$port" ] && { echo "$node"; return 0; }
  done
  echo nothing
}

# failback: back to the lab's own topology (primary writes, both replicas replicate from
# it) from a failover or a split, losing nothing written on either side before.
cmd_failback() {
  local node pos
  if [ "$(sql primary "SELECT @@read_only")" = 1 ]; then
    # After a failover: the old primary and replica1 apply all replica2 wrote first.
    wait_applied replica2 primary replica1
    sql primary "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF;"
    repoint replica1 primary
    repoint replica2 primary
  else
    # After a split, a chain (or nothing): each replica goes back to the primary from
    # the primary's position it has (GTID domain 0); what replica2 wrote in its own
    # domain meanwhile (and replica1 got from it) is forgotten with RESET MASTER:
    # nothing replicates from the replicas here.
    sql primary "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF;"
    for node in replica2 replica1; do
      sql "$node" "STOP SLAVE; SET GLOBAL read_only = ON; SET GLOBAL gtid_domain_id = 0;"
      pos=$(sql "$node" "SELECT @@gtid_slave_pos" | tr ',' '\n' | grep '^0-' || true)
      sql "$node" "RESET SLAVE ALL; RESET MASTER; SET GLOBAL gtid_slave_pos = '$pos'; $(change_master_sql 127.0.0.1 "${PORT[primary]}")"
    done
  fi
  for node in replica1 replica2; do wait_until "$node to replicate from the primary" replica_threads_running "$node"; done
  say "failback: the primary (127.0.0.1:${PORT[primary]}) writes; replica1 and replica2 replicate from it"
}

# load: RATE single-row autocommit transactions per second for SECONDS, on the primary,
# paced in 100 ms ticks against absolute deadlines through one client session.
cmd_load() {
  local rate=${RATE:-200} seconds=${LOAD_SECONDS:-30} rows=${ROWS:-1} apply_ms=${APPLY_MS:-0}
  [[ "$rate" =~ ^[0-9]+$ && "$rate" -gt 0 ]] || die "RATE must be a positive integer, not '$rate'"
  [[ "$rows" =~ ^[0-9]+$ && "$rows" -gt 0 ]] || die "ROWS must be a positive integer, not '$rows'"
  [[ "$apply_ms" =~ ^[0-9]+$ ]] || die "APPLY_MS must be a whole number of milliseconds, not '$apply_ms'"
  [ $((rate * apply_ms)) -lt 1000 ] || die "RATE x APPLY_MS must stay under 1000 ms per second"
  [[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || die "SECONDS must be a positive integer, not '$seconds'"
  say "load: $rate tx/s of $rows row(s) each for ${seconds}s on the primary${apply_ms:+ (apply ${apply_ms} ms each)}"
  local ticks=$((seconds * 10)) per_tick_x10=$rate
  {
    local start_ns now_ns due_ns i j sent=0 want
    start_ns=$(date +%s%N)
    # APPLY_MS: each transaction replicates as a statement that sleeps that long, so the
    # replica's applier is busy RATE x APPLY_MS ms per second: a known capacity.
    [ "$apply_ms" -gt 0 ] && echo "SET SESSION binlog_format = STATEMENT;"
    for ((i = 1; i <= ticks; i++)); do
      want=$((per_tick_x10 * i / 10))
      for ((j = sent; j < want; j++)); do
        if [ "$apply_ms" -gt 0 ]; then
          printf "INSERT INTO lab.load (v, pad) VALUES (%d + 0 * SLEEP(%d / 1000), 'apply');\n" "$j" "$apply_ms"
        elif [ "$rows" = 1 ]; then
          echo "INSERT INTO lab.load (v, pad) VALUES ($j, REPEAT('x', 64));"
        else
          # One transaction of $rows row events: the replica's applier works per row.
          echo "INSERT INTO lab.load (v, pad) SELECT seq, REPEAT('x', 64) FROM lab.seq_1_to_$rows;"
        fi
      done
      sent=$want
      due_ns=$((start_ns + i * 100000000))
      now_ns=$(date +%s%N)
      if [ "$now_ns" -lt "$due_ns" ]; then
        sleep "$(printf '0.%09d' $((due_ns - now_ns)))"
      fi
    done
  } | if [ "$LAB" = docker ]; then
        docker compose -f "$ROOT_DIR/docker-compose.yml" exec -T primary mariadb -uroot
      else
        mariadb --no-defaults --protocol=socket --socket="$(socket_of primary)" -uroot
      fi
  say "load: done"
}

# oltp: sysbench's oltp_write_only on the primary at RATE transactions per second (0 =
# as fast as THREADS clients go) for LOAD_SECONDS, on TABLES tables of TABLE_SIZE rows
# in schema sbtest: many small row-based transactions, a real OLTP write load. Installs
# sysbench when missing; prepares the tables once.
cmd_oltp() {
  [ "$LAB" = docker ] && die "oltp runs on the native lab only"
  local rate=${RATE:-200} seconds=${LOAD_SECONDS:-30} threads=${THREADS:-4}
  local tables=${TABLES:-4} size=${TABLE_SIZE:-10000}
  for v in rate seconds threads tables size; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "${v^^} must be a whole number, not '${!v}'"
  done
  [ "$seconds" -gt 0 ] && [ "$threads" -gt 0 ] || die "LOAD_SECONDS and THREADS must be positive"
  if ! command -v sysbench >/dev/null 2>&1; then
    say "installing sysbench (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sysbench >/dev/null ||
      die "could not install sysbench"
  fi
  local sb=(sysbench oltp_write_only --db-driver=mysql --mysql-user=root
    --mysql-socket="$(socket_of primary)" --mysql-db=sbtest
    --tables="$tables" --table-size="$size")
  if [ "$(sql primary "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'sbtest'")" != "$tables" ]; then
    sql primary "DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest"
    "${sb[@]}" prepare >/dev/null || die "sysbench prepare failed"
  fi
  say "oltp: oltp_write_only at ${rate} tx/s (0 = unthrottled), $threads threads, ${seconds}s on the primary"
  "${sb[@]}" --threads="$threads" --rate="$rate" --time="$seconds" --report-interval=0 \
    run >"$LAB_DIR/oltp.log" 2>&1 || die "sysbench run failed (see $LAB_DIR/oltp.log)"
  say "oltp: done ($(grep -m1 'transactions:' "$LAB_DIR/oltp.log" | tr -s ' '))"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  is-up) cmd_is_up ;;
  start-lag) cmd_start_lag ;;
  stop-lag) set_delay 0 ;;
  slave-lag | replica-lag) cmd_slave_lag ;;
  stuff) cmd_stuff ;;
  stall) cmd_stall ;;
  resume) cmd_resume ;;
  io-stop) cmd_io_stop ;;
  io-start) cmd_io_start ;;
  block) cmd_block ;;
  break) cmd_break ;;
  repair) cmd_repair ;;
  load) cmd_load ;;
  oltp) cmd_oltp ;;
  failover) cmd_failover ;;
  split) cmd_split ;;
  chain) cmd_chain ;;
  failback) cmd_failback ;;
  socket)
    [[ " ${NODES[*]} " == *" ${2:-} "* ]] || die "socket: NODE must be one of ${NODES[*]}, not '${2:-}'"
    socket_of "$2"
    ;;
  *) die "usage: $0 up|down|status|is-up|start-lag|stop-lag|slave-lag|stuff|stall|resume|io-stop|io-start|block|break|repair|load|oltp|failover|split|chain|failback|socket NODE" ;;
esac
