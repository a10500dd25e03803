#!/usr/bin/env bash
# The crash harness by hand: N cycles (default 1,000) of mixed traffic,
# SIGKILL at random points and the invariants checked after each
# (tests/it/crash.rs says what is checked). CI runs 30 cycles as part of the
# test suite. Prints the summary line that RELIABILITY.md records.
#
#   scripts/crash-harness.sh [CYCLES] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh
ensure_packages
export FAXGATE_CRASH_CYCLES="${1:-1000}"
[ -n "${2:-}" ] && export FAXGATE_CRASH_SEED="$2"
cargo test --test it crash:: -- --nocapture 2>&1 | tee "crash-harness-$(date -u +%Y%m%dT%H%M%SZ).log" | grep -E '^crash harness:|^test |panicked|result:'
