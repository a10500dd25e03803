#!/usr/bin/env bash
# Runs every test of faxgate: installs missing Debian packages, then the
# whole workspace's unit and integration tests (which start the real binary),
# then a short smoke run of each fuzz target (cargo-fuzz is installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh
ensure_packages

cargo test --workspace --all-targets
cargo test --workspace --doc

if [ -x fuzz/smoke.sh ]; then
    fuzz/smoke.sh
fi
