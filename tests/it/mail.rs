//! The mail leg against the running binary: real clients (swaks, Python's
//! smtplib) over loopback, STARTTLS with a certificate made here, AUTH,
//! DMARC against a local DNS fixture.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::dns::DnsFixture;
use crate::harness::{Daemon, Setup, files_under};

const PYTHON: &str = "/usr/bin/python3";
pub const PASSWORD: &str = "fax-secret-42";

const DIRECTORY: &str = r#"
[[tenant]]
id = "acme"
name = "Acme Telecom"
display_name = "Acme Fax"
from_address = "fax@acme.test"
language = "en"
default_country = "DK"
fax_domains = ["fax.acme.test"]
paper = "a4"

[[tenant.account]]
reference = "C-1"
name = "Customer One"

[[tenant.account.sender]]
sender = "@customer.test"
caller_number = "70 20 30 40"
auth = "dmarc"

[[tenant.account.sender]]
sender = "@victim.test"
auth = "dmarc"

[[tenant.account.sender]]
sender = "boss@customer.test"
auth = "smtp-auth"

[[tenant.account.sender]]
sender = "@signed.test"
auth = "dmarc"

[[tenant]]
id = "other"
name = "Other Telecom"
display_name = "Other Fax"
from_address = "fax@other.test"
language = "en"
default_country = "DE"
fax_domains = ["fax.other.test"]
paper = "a4"
"#;

pub struct Mail {
    pub setup: Setup,
    pub daemon: Daemon,
    pub smtp: String,
    pub submission: String,
    pub smtps: String,
    pub ca: PathBuf,
    pub dns: DnsFixture,
}

pub fn start() -> Mail {
    start_with("")
}

/// [`start`] with more `[smtp]` settings (TOML lines).
pub fn start_with(smtp: &str) -> Mail {
    start_on(smtp, |_| {})
}

/// [`start_with`], running `before` on the setup before anything is stored.
pub fn start_on(smtp: &str, before: impl FnOnce(&Setup)) -> Mail {
    let dns = DnsFixture::start(&[
        ("customer.test", "v=spf1 ip4:127.0.0.1 -all"),
        ("_dmarc.customer.test", "v=DMARC1; p=reject"),
        ("victim.test", "v=spf1 ip4:192.0.2.1 -all"),
        ("_dmarc.victim.test", "v=DMARC1; p=reject"),
        // signed.test passes by DKIM only: its SPF allows no host.
        ("signed.test", "v=spf1 -all"),
        ("_dmarc.signed.test", "v=DMARC1; p=reject"),
        ("sel._domainkey.signed.test", "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="),
    ]);
    let tmp_cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let setup = Setup::new();
    before(&setup);
    let cert = setup.path().join("cert.pem");
    let key = setup.path().join("key.pem");
    std::fs::write(&cert, tmp_cert.cert.pem()).unwrap();
    std::fs::write(&key, tmp_cert.key_pair.serialize_pem()).unwrap();
    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        format!(
            "{config}\n[smtp]\nhostname = \"fax.acme.test\"\ncertificate = \"{}\"\nkey = \"{}\"\n\
             dns_servers = [\"{}\"]\n{smtp}\n\n[[smtp.listen]]\naddress = \"127.0.0.1:0\"\nmode = \"smtp\"\n\n\
             [[smtp.listen]]\naddress = \"127.0.0.1:0\"\nmode = \"submission\"\n\n\
             [[smtp.listen]]\naddress = \"127.0.0.1:0\"\nmode = \"smtps\"\n",
            cert.display(),
            key.display(),
            dns.addr
        ),
    )
    .unwrap();
    let dir_file = setup.path().join("directory.toml");
    std::fs::write(&dir_file, DIRECTORY).unwrap();
    setup.ok(&["directory", "apply", dir_file.to_str().unwrap()]);
    let pw = setup.path().join("password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let shown =
        setup.ok(&["--json", "sender", "change", "boss@customer.test", "--password-file", pw.to_str().unwrap()]);
    assert!(shown.contains("\"smtp_password\": \"set\"") && !shown.contains("argon2"), "{shown}");
    let daemon = setup.start();
    let smtp = daemon.announced("smtp");
    let submission = daemon.announced("submission");
    let smtps = daemon.announced("smtps");
    Mail { setup, daemon, smtp, submission, smtps, ca: cert, dns }
}

pub fn swaks(server: &str, args: &[&str]) -> String {
    let out = Command::new("swaks")
        .args(["--server", server, "--timeout", "20", "--helo", "client.test"])
        .args(args)
        .output()
        .expect("swaks is installed (scripts/packages.sh)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A raw SMTP conversation: sends each chunk, returns everything read until the server closes or idles.
pub fn converse(server: &str, chunks: &[&str]) -> String {
    let mut s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut out = String::new();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    out.push_str(&line);
    for c in chunks {
        s.write_all(c.as_bytes()).unwrap();
        // Read the replies this chunk earns: until a final line with no more buffered.
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return out;
            }
            out.push_str(&line);
            if line.as_bytes().get(3) == Some(&b' ') && r.buffer().is_empty() {
                break;
            }
        }
    }
    out
}

fn message(from: &str, id: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: 33221100@fax.acme.test\r\nSubject: fax\r\nMessage-ID: <{id}@customer.test>\r\n\
         Date: Sat, 28 Nov 2026 01:00:00 +0000\r\n\r\n{body}\r\n"
    )
}

#[test]
fn smtplib_with_starttls_and_auth_on_submission() {
    let m = start();
    let (host, port) = m.submission.rsplit_once(':').unwrap();
    let script = format!(
        r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile="{ca}")
s = smtplib.SMTP("{host}", {port}, local_hostname="client.test")
s.ehlo()
assert "auth" not in s.esmtp_features, s.esmtp_features
print("plain-mail", s.mail("boss@customer.test"))
s.rset()
s.starttls(context=ctx)
s.ehlo()
print("auth-offered", s.esmtp_features.get("auth"))
try:
    s.login("boss@customer.test", "wrong password")
except smtplib.SMTPAuthenticationError as e:
    print("bad-login", e.smtp_code)
s.login("boss@customer.test", "{pw}")
print("mail", s.mail("boss@customer.test"))
print("rcpt", s.rcpt("FAX=+4533221100@fax.acme.test"))
print("rcpt", s.rcpt("70.20.30.40@fax.acme.test"))
print("data", s.data(b"From: boss@customer.test\r\nSubject: a fax\r\n\r\nsee attachment\r\n"))
s.quit()
"#,
        ca = m.ca.display(),
        pw = PASSWORD
    );
    let out = Command::new(PYTHON).arg("-c").arg(&script).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}\n{}", String::from_utf8_lossy(&out.stderr), m.daemon.log());
    assert!(text.contains("plain-mail (530, b'5.7.0 authentication required')"), "{text}");
    assert!(text.contains("auth-offered PLAIN LOGIN") || text.contains("auth-offered  PLAIN LOGIN"), "{text}");
    assert!(text.contains("bad-login 535"), "{text}");
    assert!(text.contains("rcpt (250, b'2.1.5 fax to +4533221100 ok')"), "{text}");
    assert!(text.contains("rcpt (250, b'2.1.5 fax to +4570203040 ok')"), "{text}");
    assert!(text.contains("data (250, b'2.0.0 queued as job-"), "{text}");
    m.daemon.wait_for_log("mail accepted");
}

#[test]
fn smtplib_over_implicit_tls() {
    let m = start();
    let (host, port) = m.smtps.rsplit_once(':').unwrap();
    let script = format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context(cafile="{ca}")
s = smtplib.SMTP_SSL("{host}", {port}, local_hostname="client.test", context=ctx)
s.ehlo()
print("starttls-offered", "starttls" in s.esmtp_features)
print("mail-before-auth", s.mail("boss@customer.test"))
s.rset()
s.login("boss@customer.test", "{pw}")
print("mail", s.mail("boss@customer.test"))
print("rcpt", s.rcpt("+4533221100@fax.acme.test"))
print("data", s.data(b"Subject: over TLS\r\n\r\nhello\r\n"))
s.quit()
"#,
        ca = m.ca.display(),
        pw = PASSWORD
    );
    let out = Command::new(PYTHON).arg("-c").arg(&script).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}\n{}", String::from_utf8_lossy(&out.stderr), m.daemon.log());
    assert!(text.contains("starttls-offered False"), "{text}");
    assert!(text.contains("mail-before-auth (530, b'5.7.0 authentication required')"), "{text}");
    assert!(text.contains("data (250, b'2.0.0 queued as job-"), "{text}");
}

#[test]
fn swaks_dmarc_sender_accepted_open_relay_and_bad_input_refused() {
    let m = start();
    let ok = swaks(
        &m.smtp,
        &[
            "--from",
            "alice@customer.test",
            "--to",
            "33 22 11 00@fax.acme.test".replace(' ', "").as_str(),
            "--header",
            "From: alice@customer.test",
        ],
    );
    assert!(ok.contains("<-  250 2.0.0 queued as job-"), "{ok}\n{}", m.daemon.log());

    let relay = swaks(&m.smtp, &["--from", "alice@customer.test", "--to", "someone@example.com"]);
    assert!(relay.contains("<** 550 5.7.1 relaying denied: example.com is not a fax domain here"), "{relay}");
    let other_tenant = swaks(&m.smtp, &["--from", "alice@customer.test", "--to", "3012345678@fax.other.test"]);
    assert!(
        other_tenant.contains("<** 550 5.7.1 relaying denied: this sender may not fax through fax.other.test"),
        "{other_tenant}"
    );
    let stranger = swaks(&m.smtp, &["--from", "x@unknown.test", "--to", "33221100@fax.acme.test"]);
    assert!(stranger.contains("<** 550 5.7.1 sender x@unknown.test is not allowed to send faxes"), "{stranger}");
    let bad = swaks(&m.smtp, &["--from", "alice@customer.test", "--to", "hello@fax.acme.test"]);
    assert!(bad.contains("<** 550 5.1.3 \"hello\" is not a fax number: it contains letters"), "{bad}");
    let needs_auth = swaks(&m.smtp, &["--from", "boss@customer.test", "--to", "33221100@fax.acme.test"]);
    assert!(needs_auth.contains("<** 530 5.7.0 authentication required for boss@customer.test"), "{needs_auth}");
    let vrfy = converse(&m.smtp, &["EHLO c\r\n", "VRFY 33221100@fax.acme.test\r\n", "VRFY nobody@fax.acme.test\r\n"]);
    assert_eq!(vrfy.matches("252 2.5.0 cannot verify addresses").count(), 2, "{vrfy}");
}

#[test]
fn spoofed_sender_failing_dmarc_is_refused() {
    let m = start();
    let out = swaks(
        &m.smtp,
        &["--from", "ceo@victim.test", "--to", "33221100@fax.acme.test", "--header", "From: ceo@victim.test"],
    );
    assert!(out.contains("<** 550 5.7.26 message refused: DMARC failed for victim.test"), "{out}\n{}", m.daemon.log());
    // The envelope says customer.test (SPF passes) but From: says victim.test.
    let out = swaks(
        &m.smtp,
        &["--from", "alice@customer.test", "--to", "33221100@fax.acme.test", "--header", "From: ceo@victim.test"],
    );
    assert!(
        out.contains(
            "<** 550 5.7.26 message refused: the From: domain victim.test is not the sender's domain customer.test"
        ),
        "{out}"
    );
}

#[test]
fn smuggling_is_refused_and_the_daemon_keeps_serving() {
    let m = start();
    let out = converse(
        &m.smtp,
        &[
            "EHLO c\r\nMAIL FROM:<alice@customer.test>\r\nRCPT TO:<33221100@fax.acme.test>\r\nDATA\r\n",
            &format!(
                "{}\n.\r\nMAIL FROM:<alice@customer.test>\r\nRCPT TO:<33221100@fax.acme.test>\r\nDATA\r\nsmuggled\r\n.\r\n",
                message("alice@customer.test", "s1", "first")
            ),
            "QUIT\r\n",
        ],
    );
    assert!(out.contains("554 5.6.0 message refused: bare CR or LF in the message"), "{out}");
    assert!(!out.contains("queued"), "{out}");
    assert!(out.ends_with("221 2.0.0 bye\r\n"), "{out}");
    let ok = swaks(
        &m.smtp,
        &["--from", "alice@customer.test", "--to", "33221100@fax.acme.test", "--header", "From: alice@customer.test"],
    );
    assert!(ok.contains("250 2.0.0 queued as job-"), "{ok}");
}

#[test]
fn resubmission_is_acknowledged_not_queued_twice_and_nothing_is_stored_in_plaintext() {
    let m = start();
    let body = "UNIQUE-MARKER-7f3a9 please fax this";
    let send = || {
        converse(
            &m.smtp,
            &[
                "EHLO c\r\nMAIL FROM:<alice@customer.test>\r\nRCPT TO:<33221100@fax.acme.test>\r\nDATA\r\n",
                &format!("{}.\r\n", message("alice@customer.test", "dup1", body)),
                "QUIT\r\n",
            ],
        )
    };
    let first = send();
    let job = first
        .split("queued as ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("{first}\n{}", m.daemon.log()))
        .to_owned();
    let second = send();
    assert!(second.contains(&format!("250 2.0.0 already queued as {job}; not faxed twice")), "{second}");
    let changed = converse(
        &m.smtp,
        &[
            "EHLO c\r\nMAIL FROM:<alice@customer.test>\r\nRCPT TO:<33221100@fax.acme.test>\r\nDATA\r\n",
            &format!("{}.\r\n", message("alice@customer.test", "dup1", "another body")),
        ],
    );
    assert!(changed.contains("250 2.0.0 queued as job-") && !changed.contains(&job), "{changed}");
    let daemon = m.daemon;
    daemon.kill9();
    for f in files_under(&m.setup.data_dir()) {
        let mut bytes = Vec::new();
        std::fs::File::open(&f).unwrap().read_to_end(&mut bytes).unwrap();
        for needle in [body.as_bytes(), b"alice@customer.test", b"+4533221100"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds {:?} in plaintext",
                f.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}

#[test]
fn connections_per_client_address_are_limited() {
    let setup = Setup::new();
    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        format!("{config}\n[smtp]\nmax_connections_per_address = 2\n[[smtp.listen]]\naddress = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let daemon = setup.start();
    let addr = daemon.announced("smtp");
    let greet = |s: &TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        line
    };
    let a = TcpStream::connect(&addr).unwrap();
    let b = TcpStream::connect(&addr).unwrap();
    assert!(greet(&a).starts_with("220 ") && greet(&b).starts_with("220 "));
    let c = TcpStream::connect(&addr).unwrap();
    assert_eq!(greet(&c), "421 4.7.0 too many connections from your address, try again later\r\n");
    drop(a);
    // The slot is freed when the server sees the close; try until it has.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let d = TcpStream::connect(&addr).unwrap();
        if greet(&d).starts_with("220 ") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the slot was never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The RFC 8463 example Ed25519 key (seed, public key).
const DKIM_SEED: [u8; 32] = [
    157, 97, 177, 157, 239, 253, 90, 96, 186, 132, 74, 244, 146, 236, 44, 196, 68, 73, 197, 105, 123, 50, 105, 25, 112,
    59, 172, 3, 28, 174, 127, 96,
];
const DKIM_PUBLIC: [u8; 32] = [
    215, 90, 152, 1, 130, 177, 10, 183, 213, 75, 254, 211, 201, 100, 7, 58, 14, 225, 114, 243, 218, 166, 35, 37, 175,
    2, 26, 104, 247, 7, 81, 26,
];

fn dkim_signed(message: &str) -> String {
    use mail_auth::common::crypto::Ed25519Key;
    use mail_auth::common::headers::HeaderWriter;
    let key = Ed25519Key::from_seed_and_public_key(&DKIM_SEED, &DKIM_PUBLIC).unwrap();
    let signature = mail_auth::dkim::DkimSigner::from_key(key)
        .domain("signed.test")
        .selector("sel")
        .headers(["From", "To", "Subject", "Message-ID"])
        .sign(message.as_bytes())
        .unwrap();
    format!("{}{message}", signature.to_header())
}

#[test]
fn a_dkim_signature_aligned_with_from_passes_dmarc_and_a_tampered_one_does_not() {
    let m = start();
    let send = |data: &str| {
        converse(
            &m.smtp,
            &[
                "EHLO c\r\nMAIL FROM:<alice@signed.test>\r\nRCPT TO:<33221100@fax.acme.test>\r\nDATA\r\n",
                &format!("{data}.\r\n"),
                "QUIT\r\n",
            ],
        )
    };
    let signed = dkim_signed(&message("alice@signed.test", "dkim1", "signed body"));
    let ok = send(&signed);
    assert!(ok.contains("250 2.0.0 queued as job-"), "{ok}\n{}", m.daemon.log());
    let tampered = signed.replace("signed body", "changed body");
    let refused = send(&tampered);
    assert!(refused.contains("550 5.7.26 message refused: DMARC failed for signed.test"), "{refused}");
}

/// Logged in as one sender, MAIL FROM another address: the failure report
/// (with the original mail) would go there in the tenant's name.
#[test]
fn a_logged_in_sender_sends_as_itself_unless_its_account_allows_more() {
    let m = start();
    let (host, port) = m.submission.rsplit_once(':').unwrap();
    let script = format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context(cafile="{ca}")
s = smtplib.SMTP("{host}", {port}, local_hostname="client.test")
s.starttls(context=ctx)
s.login("boss@customer.test", "{pw}")
for sender in ["victim@elsewhere.example", "alice@customer.test", "", "Boss@customer.test"]:
    print("mail", repr(sender), s.mail(sender))
    s.rset()
s.quit()
"#,
        ca = m.ca.display(),
        pw = PASSWORD
    );
    let run = || {
        let out = Command::new(PYTHON).arg("-c").arg(&script).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
        text
    };
    let own = run();
    assert!(
        own.contains(
            "mail 'victim@elsewhere.example' (550, b'5.7.1 a logged-in sender sends as boss@customer.test, \
             not as victim@elsewhere.example (sender rule: envelope_from = own)')"
        ),
        "{own}"
    );
    assert!(own.contains("mail 'alice@customer.test' (550, b'5.7.1 a logged-in sender sends as"), "{own}");
    assert!(own.contains("mail '' (550, b'5.7.1 a logged-in sender sends as boss@customer.test, not as <>"), "{own}");
    assert!(own.contains("mail 'Boss@customer.test' (250, b'2.1.0 sender ok')"), "{own}");
    // Allowed to send as the account's other senders (alice, by @customer.test).
    let changed = m.setup.json(&["sender", "change", "boss@customer.test", "--envelope-from", "account"]);
    assert_eq!(changed["envelope_from"], "account", "{changed}");
    let account = run();
    assert!(account.contains("mail 'alice@customer.test' (250, b'2.1.0 sender ok')"), "{account}");
    assert!(
        account.contains(
            "mail 'victim@elsewhere.example' (550, b'5.7.1 victim@elsewhere.example is not among the senders of \
             the account of boss@customer.test (sender rule: envelope_from = account)')"
        ),
        "{account}"
    );
    assert!(account.contains("mail '' (550,"), "{account}");
}

/// A Subject whose encoded words decode to a line break and a header-like
/// line: the report shows it on its own row, on one line.
#[test]
fn an_encoded_line_break_in_the_subject_stays_on_its_row_in_the_report() {
    let m = start();
    // "Offer\r\nBcc: victim@elsewhere.example", base64.
    let subject = "=?utf-8?b?T2ZmZXINCkJjYzogdmljdGltQGVsc2V3aGVyZS5leGFtcGxl?=";
    // An X-Fax-Cover value that cannot be read fails the fax at once, with a report.
    let data = format!(
        "From: alice@customer.test\r\nTo: 33221100@fax.acme.test\r\nSubject: {subject}\r\nX-Fax-Cover: perhaps\r\n\
         Message-ID: <crlf@customer.test>\r\nDate: Sat, 28 Nov 2026 01:00:00 +0000\r\n\r\nhello\r\n.\r\n"
    );
    let out = converse(
        &m.smtp,
        &[
            "EHLO c\r\nMAIL FROM:<alice@customer.test>\r\nRCPT TO:<33221100@fax.acme.test>\r\nDATA\r\n",
            &data,
            "QUIT\r\n",
        ],
    );
    assert!(out.contains("250 2.0.0 queued as job-"), "{out}\n{}", m.daemon.log());
    let dir = m.setup.data_dir().join("maildir/new");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let report = loop {
        if let Some(f) = std::fs::read_dir(&dir).ok().and_then(|mut d| d.next()) {
            break f.unwrap().path();
        }
        assert!(std::time::Instant::now() < deadline, "no report:\n{}", m.daemon.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    // The body as a mail reader shows it: Python's email parser, not ours.
    let script = r#"
import email, email.policy, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
print("To:", m["To"])
print(m.get_body(preferencelist=("plain",)).get_content())
"#;
    let out = Command::new(PYTHON).arg("-c").arg(script).arg(&report).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("To: alice@customer.test\n"), "{text}");
    assert!(text.contains("\nSubject:         Offer  Bcc: victim@elsewhere.example\n"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("Bcc")), "{text}");
}
