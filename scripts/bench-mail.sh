#!/usr/bin/env bash
# The mail benchmark: faxgate against a local Postfix in the same run, the
# same client (examples/smtp_load.rs) against both: SESSIONS parallel SMTP
# sessions (default 20) each sending PER messages (default 100) with a
# 100 KB PDF attachment. Reports accepted messages per second and the
# latency from the final "." to the "250" (p50, p99). Both servers write
# each message durably (fsync) before their "250": faxgate into its sealed
# spool, Postfix into its queue (then it discards it).
#
# faxgate checks the sender with DMARC (SPF against a DNS server on
# loopback, started here), as it does for a mail server on port 25.
# Postfix relays for the fax domain with reject_unauth_destination only.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh
ensure_packages
SESSIONS=${SESSIONS:-20}
PER=${PER:-100}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --bin faxgate --example smtp_load
bin=$target/release/faxgate
load=$target/release/examples/smtp_load
work=$(mktemp -d /tmp/faxgate-bench.XXXXXX)
chmod 755 "$work"   # the postfix user must reach its data directory
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    postfix -c "$work/postfix/etc" stop >/dev/null 2>&1 || true
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The message: a PDF of about 100 KB, base64 in a multipart/mixed body.
{
    printf 'From: bench@customer.test\nTo: 33221100@fax.bench.test\nSubject: benchmark fax\n'
    printf 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b1"\n\n'
    printf -- '--b1\nContent-Type: text/plain\n\nplease fax\n--b1\n'
    printf 'Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n'
    printf 'Content-Disposition: attachment; filename="fax.pdf"\n\n'
    { printf '%%PDF-1.4\n'; head -c 76000 /dev/urandom; } | base64 -w 76
    printf -- '--b1--\n'
} >"$work/message.eml"
echo "message: $(wc -c <"$work/message.eml") bytes; $SESSIONS sessions x $PER messages"

# DNS on loopback: SPF and DMARC for customer.test.
dns_port=$(free_port)
python3 - "$dns_port" >"$work/dns.log" 2>&1 <<'PY' &
import socket, struct, sys
txt = {"customer.test": b"v=spf1 ip4:127.0.0.1 -all", "_dmarc.customer.test": b"v=DMARC1; p=reject"}
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    q, peer = s.recvfrom(1500)
    i, labels = 12, []
    while q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode().lower()); i += 1 + q[i]
    qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
    name = ".".join(labels)
    rec = txt.get(name) if qtype == 16 else None
    known = name in txt or any(k.endswith("." + name) for k in txt)
    r = q[:2] + bytes([0x84 | (q[2] & 1), 0x80 | (0 if known else 3)]) + struct.pack(">HHHH", 1, 1 if rec else 0, 0, 0)
    r += q[12:i + 5]
    if rec:
        r += b"\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x3c" + struct.pack(">H", len(rec) + 1) + bytes([len(rec)]) + rec
    s.sendto(r, peer)
PY
pids+=($!)

# faxgate.
fg=$work/faxgate
mkdir -p "$fg"
fg_port=$(free_port)
cat >"$fg/faxgate.toml" <<EOF2
[storage]
data_dir = "$fg/data"
[admin]
socket = "$fg/admin.sock"
[log]
level = "warn"
target = "stderr"
[smtp]
hostname = "fax.bench.test"
dns_servers = ["127.0.0.1:$dns_port"]
max_connections_per_address = 100
[[smtp.listen]]
address = "127.0.0.1:$fg_port"
# Intake alone: mail is accepted and kept (fsynced) as always, but not
# rendered and faxed meanwhile, as Postfix only queues and discards.
[fax]
hold = true
EOF2
cat >"$fg/directory.toml" <<'EOF2'
[[tenant]]
id = "bench"
name = "Bench"
display_name = "Bench Fax"
from_address = "fax@bench.test"
language = "en"
default_country = "DK"
fax_domains = ["fax.bench.test"]
paper = "a4"
[[tenant.account]]
reference = "B-1"
name = "Bench customer"
[[tenant.account.sender]]
sender = "@customer.test"
auth = "dmarc"
EOF2
"$bin" --config "$fg/faxgate.toml" directory apply "$fg/directory.toml" >/dev/null
"$bin" --config "$fg/faxgate.toml" serve >"$fg/out" 2>"$fg/log" &
pids+=($!)
for _ in $(seq 300); do grep -q '^faxgate: ready$' "$fg/out" 2>/dev/null && break; sleep 0.1; done

# Postfix, a private instance: queue under $work, the fax domain discarded.
pf=$work/postfix
pf_port=$(free_port)
mkdir -p "$pf/etc" "$pf/spool" "$pf/data"
chown postfix "$pf/data"
cat >"$pf/etc/main.cf" <<EOF2
compatibility_level = 3.6
queue_directory = $pf/spool
data_directory = $pf/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.localdomain
mydestination =
mynetworks = 127.0.0.0/8
relay_domains = fax.bench.test
transport_maps = inline:{ fax.bench.test=discard: }
smtpd_recipient_restrictions = reject_unauth_destination
maillog_file = $pf/maillog
maillog_file_prefixes = $pf
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_message_rate_limit = 0
EOF2
{
    echo "127.0.0.1:$pf_port inet n - n - - smtpd"
    cat <<'EOF2'
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF2
} >"$pf/etc/master.cf"
postfix -c "$pf/etc" set-permissions >/dev/null 2>&1 || true
postfix -c "$pf/etc" start || { script -qc "postfix -c $pf/etc check" /dev/null; exit 1; }
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$pf_port") 2>/dev/null && break; sleep 0.1; done

run() {
    printf '%-8s ' "$1"
    "$load" "127.0.0.1:$2" "$SESSIONS" "$PER" bench@customer.test 33221100@fax.bench.test "$work/message.eml"
}
# A short warm-up each, then the measured runs, alternating.
"$load" "127.0.0.1:$fg_port" 2 10 bench@customer.test 33221100@fax.bench.test "$work/message.eml" >/dev/null
"$load" "127.0.0.1:$pf_port" 2 10 bench@customer.test 33221100@fax.bench.test "$work/message.eml" >/dev/null
for round in 1 2; do
    run faxgate "$fg_port"
    run postfix "$pf_port"
done
