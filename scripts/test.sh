#!/usr/bin/env bash
# `make test`: install what is missing, start the lab, check formatting and lints, and run
# every test against the lab's real servers. The lab is stopped afterwards (even on
# failure) if this script started it; CI always starts from nothing, so CI always stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
# shellcheck source=scripts/common.sh
. scripts/common.sh

command -v cargo >/dev/null || { echo "test: cargo is not installed (https://rustup.rs)" >&2; exit 1; }
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done

# The real clients the tests drive: HAProxy, promtool (Debian's prometheus), sysbench
# (the OLTP load the capacity test measures), systemd-analyze (which checks the
# service unit; the systemd package installs it without making systemd PID 1),
# libfaketime, and percona-toolkit (pt-online-schema-change runs lagtrace's plugin).
missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v promtool >/dev/null || missing+=(prometheus)
command -v sysbench >/dev/null || missing+=(sysbench)
command -v systemd-analyze >/dev/null || missing+=(systemd)
# libfaketime steps the recorder's wall clock in tests/clock_steps.rs.
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || missing+=(faketime)
command -v pt-online-schema-change >/dev/null || missing+=(percona-toolkit)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "test: ${missing[*]} missing; run as root or: sudo apt-get install -y ${missing[*]}" >&2; exit 1; }
  echo "test: installing ${missing[*]} (apt-get)"
  # Without starting their services (a Prometheus server would listen on every
  # interface).
  apt_install_quiet "${missing[@]}" || { echo "test: apt-get install ${missing[*]} failed" >&2; exit 1; }
fi

# The MariaDB lab and the PostgreSQL lab (DB=postgres, which installs postgresql-15
# when missing); each one this script starts, it stops at the end.
stop_labs=()
if scripts/lab.sh is-up 2>/dev/null; then
  echo "test: using the running lab (left running afterwards)"
else
  stop_labs+=("scripts/lab.sh down")
fi
if DB=postgres scripts/lab.sh is-up 2>/dev/null; then
  echo "test: using the running PostgreSQL lab (left running afterwards)"
else
  stop_labs+=("env DB=postgres scripts/lab.sh down")
fi
stop_all_labs() {
  local cmd
  for cmd in "${stop_labs[@]}"; do $cmd || true; done
}
trap stop_all_labs EXIT
scripts/lab.sh up
DB=postgres scripts/lab.sh up

echo "test: cargo fmt --check"
cargo fmt --check
echo "test: cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "test: cargo test"
cargo test
echo "test: all passed in $((SECONDS - start))s"
