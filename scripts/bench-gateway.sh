#!/usr/bin/env bash
# Gateway benchmark: faxes per hour through the loopback round trip with the
# fax leg in real time, and CPU per fax.
#
#   scripts/bench-gateway.sh [CHANNELS] [FAXES]      (defaults: 8 and 16)
#
# Starts the release binary on a configuration with two trunks that call
# each other over loopback UDP (CHANNELS channels on the outbound trunk),
# mails FAXES one-page text faxes to distinct numbers over SMTP (STARTTLS,
# AUTH), and waits until every fax has come back as a PDF mail and every
# sender report is in the Maildir. Each fax is sent and received by the
# same daemon, so the CPU figure covers rendering, both fax sessions, the
# PDF and both mails.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh
ensure_packages openssl
channels=${1:-8}
faxes=${2:-16}

cargo build --release --bin faxgate
bin=$PWD/target/release/faxgate
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
read -r out_port in_port < <(python3 -c '
import socket
a = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
for s in a: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in a])')
cat >"$dir/faxgate.toml" <<TOML
[storage]
data_dir = "$dir/data"
[admin]
socket = "$dir/admin.sock"
[log]
level = "warn"
target = "stderr"
[smtp]
certificate = "$dir/cert.pem"
key = "$dir/key.pem"
[[smtp.listen]]
address = "127.0.0.1:0"
mode = "submission"
[mail]
transport = "maildir"
[fax]
ident = "bench"
[[trunk]]
name = "out"
bind = "127.0.0.1:$out_port"
address = "127.0.0.1"
port = $in_port
outbound = true
channels = $channels
[[trunk]]
name = "in"
bind = "127.0.0.1:$in_port"
address = "127.0.0.1"
port = $out_port
channels = $((channels * 2))
TOML
{
    cat <<TOML
[[tenant]]
id = "bench"
name = "Bench"
display_name = "Bench Fax"
from_address = "fax@bench.example"
default_country = "DK"
fax_domains = ["fax.bench.example"]
[[tenant.account]]
reference = "B-1"
name = "Bench"
[[tenant.account.sender]]
sender = "load@bench.example"
auth = "smtp-auth"
caller_number = "70 20 30 40"
TOML
    for i in $(seq 0 $((faxes - 1))); do
        printf '[[tenant.account.number]]\nnumber = "33%06d"\nroute = [{ email = "in@bench.example" }]\n' $((221100 + i))
    done
} >"$dir/directory.toml"
export FAXGATE_CONFIG="$dir/faxgate.toml"
"$bin" directory apply "$dir/directory.toml" >/dev/null
echo "bench-password" >"$dir/pw"
"$bin" sender change load@bench.example --password-file "$dir/pw" >/dev/null
"$bin" serve >"$dir/out" 2>"$dir/log" &
pid=$!
for _ in $(seq 300); do grep -q '^faxgate: ready$' "$dir/out" 2>/dev/null && break; sleep 0.1; done
submission=$(sed -n 's/^faxgate: submission //p' "$dir/out")
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
tick=$(getconf CLK_TCK)
cpu0=$(cpu)
t0=$(date +%s.%N)
python3 - "$submission" "$dir/cert.pem" "$faxes" <<'PY'
import smtplib, ssl, sys
host, port = sys.argv[1].rsplit(":", 1)
n = int(sys.argv[3])
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = smtplib.SMTP(host, int(port), local_hostname="bench.example")
s.starttls(context=ctx)
s.login("load@bench.example", "bench-password")
for i in range(n):
    to = "33%06d@fax.bench.example" % (221100 + i)
    msg = f"From: load@bench.example\r\nTo: {to}\r\nSubject: bench {i}\r\nMessage-ID: <bench-{i}@bench.example>\r\n\r\nA one-page benchmark fax, number {i}.\r\n"
    s.sendmail("load@bench.example", [to], msg)
s.quit()
PY
while [ "$({ find "$dir/data/maildir/new" -type f 2>/dev/null || true; } | wc -l)" -lt $((faxes * 2)) ]; do
    kill -0 $pid 2>/dev/null || { cat "$dir/log"; exit 1; }
    sleep 0.5
done
t1=$(date +%s.%N)
cpu1=$(cpu)
failed=$(grep -l "NOT delivered" "$dir"/data/maildir/new/* 2>/dev/null | wc -l || true)
python3 - "$t0" "$t1" "$cpu0" "$cpu1" "$tick" "$faxes" "$channels" "$failed" <<'PY'
import sys
t0, t1, c0, c1, tick = map(float, sys.argv[1:6])
n, ch, failed = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
wall = t1 - t0
cpu = (c1 - c0) / tick
print(f"{n} one-page faxes, {ch} channels, real time: {wall:.1f} s wall, {n / wall * 3600:.0f} faxes/hour, "
      f"{cpu / n * 1000:.0f} ms CPU per fax (sent and received), {failed} failed")
PY
