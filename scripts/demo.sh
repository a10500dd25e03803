#!/usr/bin/env bash
# The main job: faxgate on its embedded default configuration, showing a real
# round trip. It builds faxgate, starts the daemon with no configuration file
# (data under ./faxgate-data; SMTP on 127.0.0.1:2525 and 2587; two SIP trunks
# on 127.0.0.1:5070 and 5071 that call each other), loads a demo directory,
# and mails a PDF to 33221100@fax.demo.example with swaks (STARTTLS, AUTH).
# faxgate renders it to fax pages, calls +4533221100 over SIP and faxes it
# over T.38 in real time, receives the fax on its other trunk, turns it into
# a PDF and mails it into the Maildir, and mails the sender a report. The
# script prints both mails, checks the PDF with pdfinfo and qpdf, lists the
# CDRs and stops the daemon.
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

maildir=faxgate-data/maildir/new
count() { { find "$maildir" -type f 2>/dev/null || true; } | wc -l; }
before=$(count)
log=$(mktemp)
"$bin" serve >"$log.out" 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log" "$log.out" "$log.pw" "$log.swaks"' EXIT
for _ in $(seq 300); do
    grep -q '^faxgate: ready$' "$log.out" 2>/dev/null && break
    kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.1
done
cat "$log.out"

step() { printf '\n$ faxgate %s\n' "$*"; "$bin" "$@"; }
step directory apply scripts/demo-directory.toml
echo "demo-password" >"$log.pw"
step sender change sender@demo.example --password-file "$log.pw" >/dev/null

printf '\n$ swaks ... --attach tests/fixtures/documents/letter.pdf\n'
swaks --server 127.0.0.1:2587 --tls --auth PLAIN --auth-user sender@demo.example --auth-password demo-password \
    --helo demo.example --from sender@demo.example --to 33221100@fax.demo.example \
    --header "Subject: A demo fax" --body "Please find the document attached." \
    --attach-type application/pdf --attach @tests/fixtures/documents/letter.pdf --suppress-data >"$log.swaks" 2>&1 \
    || { cat "$log.swaks"; exit 1; }
grep -E 'queued as' "$log.swaks"

printf '\nfaxing over SIP and T.38 in real time; waiting for the fax and the report in %s\n' "$maildir"
for _ in $(seq 600); do
    [ "$(count)" -ge $((before + 2)) ] && break
    kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.5
done
new=$(ls -t "$maildir" | head -2)
[ "$(echo "$new" | wc -l)" -eq 2 ] || { echo "no mail arrived"; cat "$log"; exit 1; }
for m in $new; do
    printf '\n==== %s/%s\n' "$maildir" "$m"
    python3 - "$maildir/$m" <<'PY'
import email, email.policy, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
for h in ("From", "To", "Subject"):
    print(f"{h}: {m[h]}")
print()
print(m.get_body(("plain",)).get_content())
for p in m.iter_attachments():
    name = p.get_filename()
    print(f"[attachment {name}, {len(p.get_content())} bytes]")
    if name.endswith(".pdf"):
        out = "faxgate-data/demo-received.pdf"
        open(out, "wb").write(p.get_content())
        print(f"saved as {out}")
PY
done
if [ -f faxgate-data/demo-received.pdf ]; then
    printf '\n$ pdfinfo faxgate-data/demo-received.pdf\n'
    pdfinfo faxgate-data/demo-received.pdf | grep -E 'Title|Pages|Page size'
    printf '$ qpdf --check faxgate-data/demo-received.pdf\n'
    qpdf --check faxgate-data/demo-received.pdf | tail -1
fi
step cdr list
printf '\nstopping the daemon (SIGTERM)\n'
kill -TERM $pid
wait $pid
echo
echo "Maildir: $PWD/$maildir; data: $PWD/faxgate-data (sealed records; keys in faxgate-data/keys)"
