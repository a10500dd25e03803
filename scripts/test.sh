#!/usr/bin/env bash
# Runs every test of faxgate: installs missing Debian packages, then the
# whole workspace's unit and integration tests (which start the real binary;
# the API's is fuzzed by schemathesis, installed from PyPI into target/),
# a short memory soak,
# then a short smoke run of each fuzz target (cargo-fuzz is installed if missing).
# The package test needs cargo-deb: installed here when missing (a few minutes,
# once), so that the test itself stays short.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh
ensure_packages
ensure_schemathesis
cargo deb --version >/dev/null 2>&1 || cargo install cargo-deb --locked

cargo test --workspace --all-targets
cargo test --workspace --doc

# A short soak: 30 faxes through the debug build; fails when RSS grows more
# than 15 % after the 10th, or open files or threads stay up (BENCHMARKS.md).
# It runs the binary the tests built.
SOAK_PROFILE=debug SOAK_BUILD=0 SOAK_WARMUP=10 SOAK_MAX_GROWTH=15 scripts/soak.sh 30 8

if [ -x fuzz/smoke.sh ]; then
    fuzz/smoke.sh
fi
