#!/usr/bin/env bash
# The crash harness by hand: N cycles (default 1,000) of mixed traffic,
# SIGKILL at random points and the invariants checked after each
# (tests/it/crash.rs says what is checked). CI runs 30 cycles as part of the
# test suite. Prints a progress line every 50 cycles and the summary line
# that RELIABILITY.md records. A release build: after each kill the store is
# verified and the CDRs listed by the CLI, and with a debug build that took
# about 6 of the 14 s a cycle took (2026-12-03, 2 vCPU).
#
#   scripts/crash-harness.sh [CYCLES] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh
ensure_packages
export FAXGATE_CRASH_CYCLES="${1:-1000}"
[ -n "${2:-}" ] && export FAXGATE_CRASH_SEED="$2"
cargo test --release --test it crash:: -- --nocapture 2>&1 | tee "crash-harness-$(date -u +%Y%m%dT%H%M%SZ).log" | grep -E '^crash harness:|^test |panicked|result:'
