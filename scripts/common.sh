# Sourced by scripts/lab.sh, scripts/lab-pg.sh, scripts/test.sh and the bench scripts:
# what they share. The sourcing script defines die (one line on stderr, exit 1) and
# UP_TIMEOUT_S where it uses wait_until.

# apt_install_quiet PACKAGE...: apt-get update, then install the packages (without
# recommends, keeping config files already there) with no service started meanwhile:
# a policy-rc.d that refuses starts is in place during the install (one already there
# is left alone, and ours is removed whatever the outcome). Returns apt-get's status.
apt_install_quiet() {
  local policy=/usr/sbin/policy-rc.d own=false status=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own=true
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || status=$?
  if [ "$status" = 0 ]; then
    apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold "$@" \
      >/dev/null || status=$?
  fi
  if $own; then rm -f "$policy"; fi
  return "$status"
}

# wait_until DESCRIPTION COMMAND...: runs COMMAND every 0.2 s until it succeeds; dies
# naming DESCRIPTION after UP_TIMEOUT_S seconds.
wait_until() {
  local what=$1; shift
  local deadline=$((SECONDS + UP_TIMEOUT_S))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || die "timed out after ${UP_TIMEOUT_S}s waiting for $what"
    sleep 0.2
  done
}

# lab_sockets: fills LAB_SOCK[node] with the Unix socket of each MariaDB lab node
# (primary, replica1, replica2), for lab_root_sql and for tools that take a socket.
# Run from the repository's root, with the lab up.
lab_sockets() {
  declare -gA LAB_SOCK
  local node
  for node in primary replica1 replica2; do LAB_SOCK[$node]=$(scripts/lab.sh socket "$node"); done
}

# lab_root_sql NODE SQL: runs SQL as root on lab node NODE through its socket (after
# lab_sockets); rows tab-separated, no header.
lab_root_sql() {
  mariadb --no-defaults --protocol=socket --socket="${LAB_SOCK[$1]}" -uroot --batch --skip-column-names -e "$2"
}
