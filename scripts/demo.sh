#!/usr/bin/env bash
# The main job on the embedded default configuration: builds faxgate, starts
# the daemon with no configuration file (data under ./faxgate-data, the admin
# socket beside it), loads the example directory through the running
# daemon's admin socket, shows what it holds, and stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh
ensure_packages

cargo build --bin faxgate
bin=target/debug/faxgate
unset FAXGATE_CONFIG
if [ -e /etc/faxgate/faxgate.toml ]; then
    # An installed configuration would take precedence: use the embedded one.
    export FAXGATE_CONFIG="$PWD/src/config/embedded.toml"
fi

log=$(mktemp)
"$bin" serve >"$log.out" 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log" "$log.out"' EXIT
for _ in $(seq 300); do
    grep -q '^faxgate: ready$' "$log.out" 2>/dev/null && break
    kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.1
done
cat "$log.out"

step() { printf '\n$ faxgate %s\n' "$*"; "$bin" "$@"; }
step status
step directory apply directory.example.toml
step directory apply directory.example.toml
step tenant list
step account list --tenant nordtel
step --as-tenant nordtel number show "70 20 30 40"
step --as-tenant nordtel sender show @nordisk-revision.dk

printf '\nstopping the daemon (SIGTERM)\n'
kill -TERM $pid
wait $pid
echo "daemon log:"
cat "$log"
echo
echo "data directory: $PWD/faxgate-data (sealed records; keys in faxgate-data/keys)"
