#!/bin/bash
# SIP benchmark of the fax leg with SIPp (Debian package sip-tester):
#  1. call attempts per second: short calls (INVITE, 200, ACK, BYE) at rising
#     rates, counting failed calls;
#  2. concurrent calls held with media: N calls held for HOLD ms, SIPp echoing
#     the fax leg's RTP (the answering fax session sends CED/DIS audio), with
#     the fax leg's CPU time over the run.
# Usage: scripts/bench-sip.sh [rates] [concurrencies] [hold_ms]
# Results are summarised in BENCHMARKS.md, section "SIP".
set -euo pipefail
cd "$(dirname "$0")/.."
rates="${1:-50 100 200 400}"
concs="${2-50 100 200}"
hold="${3:-20000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p faxgate-t38 --bin faxleg
bin="$CARGO_TARGET_DIR/release/faxleg"
work="$(mktemp -d)"
trap 'kill $leg 2>/dev/null || true; rm -rf "$work"' EXIT
scen="t38/tests/sipp/uac_bench.xml"

start_leg() {
    rm -f "$work/fifo"; mkfifo "$work/fifo"
    "$bin" receive --bind 127.0.0.1:0 --trunk 127.0.0.1 --media audio-only --channels 5000 \
        --dir "$work" > "$work/reports" 2>/dev/null < "$work/fifo" &
    leg=$!
    exec 9>"$work/fifo"
    for _ in $(seq 50); do grep -q listening "$work/reports" 2>/dev/null && break; sleep 0.1; done
    addr="$(sed -n 's/^listening //p' "$work/reports")"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

sipp_run() { # extra args...
    (cd "$work" && sipp "$addr" -sf "$OLDPWD/$scen" -s 100 -i 127.0.0.1 -p 0 -mp 0 -nostdin \
        -timeout 300s "$@" 2>&1 || true) > "$work/sipp.out"
    ok=$(awk -F'|' '/Successful call/ {gsub(/ /,"",$3); print $3}' "$work/sipp.out" | tail -1)
    failed=$(awk -F'|' '/Failed call/ {gsub(/ /,"",$3); print $3}' "$work/sipp.out" | tail -1)
}

echo "== call attempts per second (calls of 0 ms hold)"
start_leg
for r in $rates; do
    n=$((r * 10))
    t0=$(date +%s.%N); c0=$(cpu_ticks $leg)
    sipp_run -r "$r" -m "$n" -l 100000 -d 0
    t1=$(date +%s.%N); c1=$(cpu_ticks $leg)
    echo "rate $r/s: $n calls, successful ${ok:-?}, failed ${failed:-?}, wall $(echo "$t1 - $t0" | bc) s, faxleg CPU $(( (c1 - c0) * 10 )) ms"
done
kill $leg; exec 9>&-

echo "== concurrent calls with media (hold ${hold} ms, RTP echoed)"
for c in $concs; do
    start_leg
    c0=$(cpu_ticks $leg); t0=$(date +%s.%N)
    sipp_run -r 100 -m "$c" -l "$c" -d "$hold" -rtp_echo
    t1=$(date +%s.%N); c1=$(cpu_ticks $leg)
    sleep 1
    media=$(grep -c '"rtp_in":[1-9]' "$work/reports" || true)
    echo "concurrent $c: successful ${ok:-?}, failed ${failed:-?}, calls with echoed RTP received $media, wall $(echo "$t1 - $t0" | bc) s, faxleg CPU $(( (c1 - c0) * 10 )) ms"
    kill $leg; exec 9>&-
done
