#!/bin/sh
# Runs each fuzz target for a short while (default 10 s each): the smoke
# run of the test suite. The smoke builds the targets with the dev profile
# of fuzz/Cargo.toml (debug assertions and overflow checks, faxgate's crates
# at opt-level 1, line tables only) and without a sanitizer (the Rust code
# is memory-safe, and spandsp's C is not instrumented by cargo-fuzz), which
# builds in a fraction of the time of an optimised ASan build. Longer runs
# by hand, optimised and with AddressSanitizer:
#   FUZZ_RELEASE=1 fuzz/smoke.sh 600
# Usage: fuzz/smoke.sh [seconds]   (from the repository root or fuzz/)
set -eu
secs="${1:-10}"
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi
mode="--dev --sanitizer none"
[ -n "${FUZZ_RELEASE:-}" ] && mode=--release
cargo fuzz build $mode
# Seeds for the document parsers: the repository's own documents.
mkdir -p fuzz/corpus/document_input
cp -n tests/fixtures/documents/*.pdf tests/fixtures/documents/golden/*.png fuzz/corpus/document_input/ 2>/dev/null || true
if [ -x target/debug/faxgate ] && [ ! -e fuzz/corpus/document_input/letter.tiff ]; then
    target/debug/faxgate render tests/fixtures/documents/letter.pdf --out fuzz/corpus/document_input/letter.tiff >/dev/null
fi
# Seeds for the configuration and directory files: the shipped examples;
# for the admin socket: a few requests as the CLI sends them.
mkdir -p fuzz/corpus/config_toml fuzz/corpus/directory_toml fuzz/corpus/admin_request
cp -n faxgate.example.toml src/config/embedded.toml fuzz/corpus/config_toml/ 2>/dev/null || true
cp -n directory.example.toml fuzz/corpus/directory_toml/ 2>/dev/null || true
mkdir -p fuzz/corpus/billing_rules
cp -n rating.example.toml fuzz/corpus/billing_rules/ 2>/dev/null || true
[ -e fuzz/corpus/admin_request/requests.jsonl ] || cat > fuzz/corpus/admin_request/requests.jsonl <<'EOF'
{"scope":"operator","request":{"op":"status"}}
{"scope":"operator","request":{"op":"tenant_list"}}
{"scope":{"tenant":"nordtel"},"request":{"op":"tenant_list"}}
{"scope":"operator","request":{"op":"log_hash","value":"+4533221100","kind":null}}
{"scope":"operator","request":{"op":"retention_status"}}
EOF
for t in $(cargo fuzz list); do
    echo "== $t (${secs}s)"
    cargo fuzz run $mode "$t" -- -max_total_time="$secs" -rss_limit_mb=2048
done
