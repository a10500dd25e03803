#!/usr/bin/env bash
# Soak benchmark: many faxes through one daemon, mail in and mail out, with
# the daemon's resident memory, open files and threads sampled throughout.
#
#   scripts/soak.sh [FAXES] [CHANNELS]        (defaults: 500 and 8)
#
# Environment:
#   SOAK_PROFILE=release|debug   which build to run (default release; the CI
#                                short soak uses the debug build the tests built)
#   SOAK_WARMUP=N                the fax after which memory is taken as the
#                                baseline (default 50, or FAXES/3 when smaller)
#   SOAK_MAX_GROWTH=PCT          fail when RSS after the last fax exceeds the
#                                baseline by more than PCT percent (default 10)
#   SOAK_BUILD=0                 run target/PROFILE/faxgate as it is, without building
#   SOAK_OUT=FILE                keep the samples there, as CSV
#   SOAK_HEAPTRACK=FILE          attach heaptrack to the idle daemon (debugging)
#
# One daemon sends and receives every fax: two trunks call each other over
# loopback UDP (CHANNELS channels outbound), the fax leg in real time. A
# client submits one-page text faxes over SMTP (STARTTLS, AUTH), keeping
# about 2 x CHANNELS in flight; faxgate's own mail (each fax as a PDF, each
# sender's report) leaves through a real SMTP relay on loopback (aiosmtpd),
# which stores every message. A fax counts as done when both its mails have
# reached the relay. Every 2 s the sampler writes: seconds, faxes done, RSS
# (KiB), open files, threads.
#
# Idle values are taken after a first fax, once open files and threads have
# stopped changing: the first call starts what lives as long as the process
# (the fax media runtime and its threads). After the last fax it waits the
# same way (at most 60 s), then prints RSS after the warm-up fax and after
# the last, and the growth, and exits 1 when the growth exceeds the bound, a
# fax failed, or open files or threads stayed above their idle values.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh
ensure_packages openssl
faxes=${1:-500}
channels=${2:-8}
profile=${SOAK_PROFILE:-release}
warmup=${SOAK_WARMUP:-$((faxes / 3 < 50 ? faxes / 3 : 50))}
max_growth=${SOAK_MAX_GROWTH:-10}
# The Debian python (with python3-aiosmtpd), whatever else is first on PATH.
py=/usr/bin/python3

# SOAK_BUILD=0 runs the binary already there: the test script's, which
# `cargo test` built with the test features (a plain `cargo build` would
# build every crate again with other features).
if [ "${SOAK_BUILD:-1}" = 0 ]; then
    :
elif [ "$profile" = release ]; then
    cargo build --release --bin faxgate
else
    cargo build --bin faxgate
fi
bin=$PWD/target/$profile/faxgate
dir=$(mktemp -d)
out_csv=${SOAK_OUT:-$dir/soak-samples.csv}
cleanup() {
    [ -z "${SOAK_HEAPTRACK:-}" ] || kill -9 "${pid:-}" 2>/dev/null || true
    kill "${pid:-}" "${relay_pid:-}" "${sampler_pid:-}" 2>/dev/null || true
    [ -n "${SOAK_KEEP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
read -r out_port in_port relay_port < <("$py" -c '
import socket
a = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
for s in a: s.bind(("127.0.0.1", 0))
t = socket.socket(); t.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in a], t.getsockname()[1])')

# The relay: every message it accepts is written to $dir/relay, one file each.
mkdir -p "$dir/relay"
"$py" - "$relay_port" "$dir/relay" >"$dir/relay.log" 2>&1 <<'PY' &
import asyncio, os, sys, uuid
from aiosmtpd.controller import Controller
port, outdir = int(sys.argv[1]), sys.argv[2]
class Store:
    async def handle_DATA(self, server, session, envelope):
        tmp = os.path.join(outdir, "." + uuid.uuid4().hex)
        with open(tmp, "wb") as f:
            f.write(b"X-Rcpt: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(envelope.original_content)
        os.rename(tmp, tmp.replace("/.", "/"))
        return "250 stored"
c = Controller(Store(), hostname="127.0.0.1", port=port, data_size_limit=0)
c.start()
print("relay ready", flush=True)
import threading; threading.Event().wait()
PY
relay_pid=$!
for _ in $(seq 100); do grep -q "relay ready" "$dir/relay.log" && break; sleep 0.1; done
grep -q "relay ready" "$dir/relay.log" || { cat "$dir/relay.log"; echo "the relay did not start"; exit 1; }

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
transport = "relay"
relay_host = "127.0.0.1"
relay_port = $relay_port
relay_tls = "none"
[fax]
ident = "soak"
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
# Numbers are reused round-robin: a soak of 500 faxes calls 100 numbers.
numbers=$((faxes < 100 ? faxes : 100))
{
    cat <<TOML
[[tenant]]
id = "soak"
name = "Soak"
display_name = "Soak Fax"
from_address = "fax@soak.example"
default_country = "DK"
fax_domains = ["fax.soak.example"]
[[tenant.account]]
reference = "S-1"
name = "Soak"
[[tenant.account.sender]]
sender = "load@soak.example"
auth = "smtp-auth"
caller_number = "70 20 30 40"
TOML
    for i in $(seq 0 $((numbers - 1))); do
        printf '[[tenant.account.number]]\nnumber = "33%06d"\nroute = [{ email = "in@soak.example" }]\n' $((221100 + i))
    done
} >"$dir/directory.toml"
export FAXGATE_CONFIG="$dir/faxgate.toml"
"$bin" directory apply "$dir/directory.toml" >/dev/null
echo "soak-password" >"$dir/pw"
"$bin" sender change load@soak.example --password-file "$dir/pw" >/dev/null
"$bin" serve >"$dir/out" 2>"$dir/log" &
pid=$!
for _ in $(seq 300); do grep -q '^faxgate: ready$' "$dir/out" 2>/dev/null && break; sleep 0.1; done
grep -q '^faxgate: ready$' "$dir/out" || { cat "$dir/log"; exit 1; }
submission=$(sed -n 's/^faxgate: submission //p' "$dir/out")

sample() {
    local rss threads fds anon
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    threads=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")
    fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status")
    echo "$rss $fds $threads $anon"
}
done_count() { echo $(($(find "$dir/relay" -maxdepth 1 -type f | wc -l) / 2)); }
# The client: sends faxes FIRST..LAST-1, keeping about 2 x CHANNELS in flight.
cat >"$dir/client.py" <<'PY'
import os, smtplib, ssl, sys, time
host, port = sys.argv[1].rsplit(":", 1)
first, last, numbers, channels = (int(a) for a in sys.argv[3:7])
relay, pid = sys.argv[7], int(sys.argv[8])
ctx = ssl.create_default_context(cafile=sys.argv[2])
def done():
    return len([f for f in os.listdir(relay) if not f.startswith(".")]) // 2
def session():
    s = smtplib.SMTP(host, int(port), local_hostname="soak.example")
    s.starttls(context=ctx)
    s.login("load@soak.example", "soak-password")
    return s
s = session()
for i in range(first, last):
    while i - done() >= 2 * channels:
        os.kill(pid, 0)
        time.sleep(0.2)
    to = "33%06d@fax.soak.example" % (221100 + i % numbers)
    msg = (f"From: load@soak.example\r\nTo: {to}\r\nSubject: soak {i}\r\n"
           f"Message-ID: <soak-{i}@soak.example>\r\n\r\nA one-page soak fax, number {i}.\r\n")
    try:
        s.sendmail("load@soak.example", [to], msg)
    except smtplib.SMTPServerDisconnected:
        s = session()
        s.sendmail("load@soak.example", [to], msg)
    if i % 20 == 19:
        s.quit()
        s = session()
s.quit()
PY
client() { "$py" "$dir/client.py" "$submission" "$dir/cert.pem" "$1" "$2" "$numbers" "$channels" "$dir/relay" "$pid"; }
wait_done() {
    while [ "$(done_count)" -lt "$1" ]; do
        kill -0 $pid 2>/dev/null || { tail -50 "$dir/log"; echo "the daemon died"; exit 1; }
        sleep 0.5
    done
}
# Settled: open files and threads unchanged over 5 samples a second apart
# (at most 60 s): pooled connections closed, idle threads ended.
settle() {
    local prev="" same=0 cur
    for _ in $(seq 90); do
        read -r _ f t _ < <(sample)
        cur="$f $t"
        if [ "$cur" = "$prev" ]; then same=$((same + 1)); else same=0; fi
        [ $same -ge 15 ] && break
        prev=$cur
        sleep 1
    done
}
fd_list() { find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 -printf "%f -> %l\n" 2>/dev/null | sed "s/\[[0-9]*\]//" | sort -k3; }

# Idle values: after one fax, once the daemon is quiet again. The first call
# starts what lives as long as the process (the fax media runtime and its
# threads), which an idle daemon that has never sent a fax does not have yet.
read -r cold_rss cold_fds cold_threads _ < <(sample)
client 0 1
wait_done 1
settle
read -r idle_rss idle_fds idle_threads _ < <(sample)
fd_list >"$dir/idle-fds"
if [ -n "${SOAK_HEAPTRACK:-}" ]; then
    # Heap profile from here on (debugging the growth): heaptrack attached to
    # the idle daemon, which is killed with SIGKILL at the end, so that what
    # it still holds shows as "leaked".
    heaptrack -o "$SOAK_HEAPTRACK" -p $pid >"$dir/heaptrack.log" 2>&1 &
    sleep 5
fi

start=$(date +%s.%N)
echo "seconds,faxes_done,rss_kib,open_files,threads,rss_anon_kib" >"$out_csv"
(
    while kill -0 $pid 2>/dev/null; do
        read -r r f t a < <(sample) || break
        printf '%.1f,%d,%d,%d,%d,%d\n' "$(echo "$(date +%s.%N) - $start" | bc)" "$(done_count)" "$r" "$f" "$t" "$a" >>"$out_csv"
        sleep 2
    done
) &
sampler_pid=$!
client 1 "$faxes" &
client_pid=$!
warm_rss=""
while [ "$(done_count)" -lt "$faxes" ]; do
    kill -0 $pid 2>/dev/null || { tail -50 "$dir/log"; echo "the daemon died"; exit 1; }
    if [ -z "$warm_rss" ] && [ "$(done_count)" -ge "$warmup" ]; then
        read -r warm_rss _ _ _ < <(sample)
    fi
    sleep 0.5
done
wait $client_pid
[ -n "$warm_rss" ] || read -r warm_rss _ _ _ < <(sample)
read -r last_rss last_fds last_threads _ < <(sample)
end=$(date +%s.%N)
settle
read -r after_rss after_fds after_threads _ < <(sample)
failed=$(grep -l "NOT delivered" "$dir"/relay/* 2>/dev/null | wc -l || true)
kill $sampler_pid 2>/dev/null || true
"$py" - <<PY
faxes, channels, warmup = $faxes, $channels, $warmup
wall = $end - $start
cold, idle, warm, last, after = $cold_rss, $idle_rss, $warm_rss, $last_rss, $after_rss
growth = (last - warm) / warm * 100
print(f"soak: {faxes} one-page faxes, {channels} channels, {wall:.0f} s, {$failed} failed")
print(f"RSS: started {cold/1024:.1f} MiB, idle after one fax {idle/1024:.1f} MiB, after fax {warmup} {warm/1024:.1f} MiB, "
      f"after the last {last/1024:.1f} MiB ({growth:+.1f} %), idle again {after/1024:.1f} MiB")
print(f"open files: started {$cold_fds}, idle after one fax {$idle_fds}, after the last {$last_fds}, idle again {$after_fds}")
print(f"threads: started {$cold_threads}, idle after one fax {$idle_threads}, after the last {$last_threads}, idle again {$after_threads}")
print("samples: ${SOAK_OUT:-(not kept: set SOAK_OUT)}")
PY
status=0
growth_ok=$("$py" -c "print(int(($last_rss - $warm_rss) * 100 <= $max_growth * $warm_rss))")
[ "$growth_ok" = 1 ] || { echo "FAIL: RSS grew more than $max_growth % after fax $warmup"; status=1; }
[ "$failed" -eq 0 ] || { echo "FAIL: $failed faxes not delivered"; status=1; }
[ "$after_fds" -le "$idle_fds" ] || { echo "FAIL: open files $after_fds, idle $idle_fds:"; fd_list | diff "$dir/idle-fds" - || true; ss -tuaxpn | grep "pid=$pid," || true; status=1; }
[ "$after_threads" -le "$idle_threads" ] || { echo "FAIL: threads $after_threads, idle $idle_threads"; status=1; }
exit $status
