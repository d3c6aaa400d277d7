#!/usr/bin/env bash
# `make test`: install what is missing, start the lab, check formatting and lints, and run
# every test against the lab's real servers. The lab is stopped afterwards (even on
# failure) if this script started it; CI always starts from nothing, so CI always stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

command -v cargo >/dev/null || { echo "test: cargo is not installed (https://rustup.rs)" >&2; exit 1; }
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done

if scripts/lab.sh is-up 2>/dev/null; then
  echo "test: using the running lab (left running afterwards)"
else
  trap 'scripts/lab.sh down' EXIT
fi
scripts/lab.sh up

echo "test: cargo fmt --check"
cargo fmt --check
echo "test: cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "test: cargo test"
cargo test
echo "test: all passed in $((SECONDS - start))s"
