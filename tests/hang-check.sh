#!/usr/bin/env bash
# Proves the project's nextest configuration ends a test that hangs: builds a
# throwaway crate with one test that never returns and one that passes, runs
# it under .config/nextest.toml, and checks that the hanging test is
# terminated by the configured limit, fails under its own name, and that the
# run went on to the other test. Takes as long as the limit (about 2 min).
#
# Usage: tests/hang-check.sh   (or `make hang-check`)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
crate="$root/target/hang-check"
rm -rf "$crate"
mkdir -p "$crate/src"
cat >"$crate/Cargo.toml" <<'TOML'
[package]
# Named as the harness crate, so the configuration's moto-group override
# (which nextest refuses if it matches no package) applies to it as it does
# to a real integration test.
name = "auth-events-tests"
version = "0.0.0"
edition = "2024"
publish = false

# Its own workspace, not a member of the project's.
[workspace]
TOML
cat >"$crate/src/lib.rs" <<'RUST'
#[test]
fn a_test_that_never_returns() {
    loop {
        std::thread::park();
    }
}

#[test]
fn a_test_that_passes() {}
RUST

log="$crate/nextest.log"
start=$SECONDS
set +e
cargo nextest run --manifest-path "$crate/Cargo.toml" \
  --config-file "$root/.config/nextest.toml" --color never >"$log" 2>&1
status=$?
set -e
elapsed=$((SECONDS - start))
cat "$log"

fail() {
  echo "hang-check FAILED: $1" >&2
  exit 1
}
[ "$status" -ne 0 ] || fail "the run exited 0 with a hanging test in it"
grep -Eq 'TIMEOUT.*a_test_that_never_returns' "$log" ||
  fail "no TIMEOUT line names the hanging test"
grep -Eq 'PASS.*a_test_that_passes' "$log" ||
  fail "the run did not go on to the other test"
echo "hang-check: the hanging test was ended by the configured limit and reported by name after ${elapsed} s (exit status ${status})"
