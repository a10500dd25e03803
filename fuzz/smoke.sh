#!/bin/sh
# Runs each mail-leg fuzz target for a short while (default 20 s each).
# Usage: fuzz/smoke.sh [seconds]   (from the repository root or fuzz/)
set -eu
secs="${1:-20}"
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
cargo fuzz build
for t in smtp_command smtp_session; do
    echo "== $t (${secs}s)"
    cargo fuzz run "$t" -- -max_total_time="$secs" -rss_limit_mb=2048
done
