//! The gateway end to end against the running binary: a mail with a PDF
//! goes in over SMTP (Python's smtplib, STARTTLS and AUTH), is rendered,
//! faxed over real SIP and T.38 (or G.711) through one trunk, received on
//! another trunk of the same daemon, turned into a PDF and mailed into the
//! Maildir; the sender gets a report; every attempt leaves a CDR.
//!
//! The two trunks of the daemon point at each other over loopback UDP, so
//! each fax crosses a real SIP dialog and a real UDPTL or RTP media stream
//! between two user agents. Media time runs 5 times faster than real time
//! (2 times for G.711) on both ends: the binary `cargo test` builds has the
//! `test-clock` feature, and the daemon is started with
//! `FAXGATE_TEST_CLOCK_RATE` (the production binary has no such clock).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{BIN, Daemon, Setup};

const PASSWORD: &str = "fax-secret-42";

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

NUMBERS
[[tenant.account.sender]]
sender = "boss@customer.test"
caller_number = "70 20 30 40"
auth = "smtp-auth"
"#;

pub struct Gw {
    pub setup: Setup,
    pub daemon: Daemon,
    pub submission: String,
    pub ca: PathBuf,
    pub out_port: u16,
    pub in_port: u16,
}

/// Options of a test gateway.
pub struct Opts {
    /// Media preference of both trunks.
    pub media: &'static str,
    /// The inbound trunk's own media preference, when not `media`.
    pub in_media: Option<&'static str>,
    /// Seconds between attempts.
    pub retry: &'static str,
    /// The outbound trunk's peer; `None`: the daemon's own inbound trunk.
    pub peer_port: Option<u16>,
    /// The outbound trunk's host.
    pub out_address: &'static str,
    /// Channels of the outbound trunk.
    pub channels: u32,
    /// Fax numbers in the directory: 33 22 11 00 and the ones after it.
    pub numbers: u32,
    /// More configuration (TOML) at the end.
    pub extra: String,
    /// More `[fax]` settings.
    pub fax: &'static str,
    /// Media time per real second, on both trunks (the daemon's test clock).
    pub clock_rate: f64,
    /// The `[log]` settings other than the target.
    pub log: &'static str,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            media: "t38-preferred",
            in_media: None,
            retry: "[1, 1]",
            peer_port: None,
            out_address: "127.0.0.1",
            channels: 8,
            numbers: 1,
            extra: String::new(),
            fax: "",
            clock_rate: 5.0,
            log: "level = \"debug,sled=info\"",
        }
    }
}

pub fn start(o: Opts) -> Gw {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let mut setup = Setup::with("");
    // The trunks' sockets, bound here to port 0 and handed to the daemon:
    // each trunk must know the other's port before the daemon starts.
    let (out_port, in_port) = (setup.udp_socket().port(), setup.udp_socket().port());
    let peer = o.peer_port.unwrap_or(in_port);
    setup.env.push(("FAXGATE_TEST_CLOCK_RATE".into(), o.clock_rate.to_string()));
    let certfile = setup.path().join("cert.pem");
    let keyfile = setup.path().join("key.pem");
    std::fs::write(&certfile, cert.cert.pem()).unwrap();
    std::fs::write(&keyfile, cert.key_pair.serialize_pem()).unwrap();
    let config = std::fs::read_to_string(&setup.config).unwrap().replace("level = \"debug,sled=info\"", o.log);
    std::fs::write(
        &setup.config,
        format!(
            "{config}\n[smtp]\nhostname = \"fax.acme.test\"\ncertificate = \"{cert}\"\nkey = \"{key}\"\n\n\
             [[smtp.listen]]\naddress = \"127.0.0.1:0\"\nmode = \"submission\"\n\n\
             [fax]\nident = \"+45 70 20 30 40\"\nretry_delays = {retry}\n{fax}\n\n\
             [[trunk]]\nname = \"out\"\nbind = \"127.0.0.1:{out_port}\"\naddress = \"{out_address}\"\nport = {peer}\n\
             outbound = true\nmedia = \"{media}\"\nchannels = {channels}\nanswer_timeout_secs = 4\n\
             sender_reinvite_delay_secs = 3\n\n\
             [[trunk]]\nname = \"in\"\nbind = \"127.0.0.1:{in_port}\"\naddress = \"127.0.0.1\"\nport = {out_port}\n\
             media = \"{in_media}\"\n{extra}\n",
            extra = o.extra,
            out_address = o.out_address,
            fax = o.fax,
            cert = certfile.display(),
            key = keyfile.display(),
            retry = o.retry,
            media = o.media,
            in_media = o.in_media.unwrap_or(o.media),
            channels = o.channels,
        ),
    )
    .unwrap();
    let dir_file = setup.path().join("directory.toml");
    let numbers: String = (0..o.numbers)
        .map(|i| {
            format!(
                "[[tenant.account.number]]\nnumber = \"332211{i:02}\"\n\
                 route = [{{ email = \"inbox@customer.test\", format = \"pdf\" }}]\n\n"
            )
        })
        .collect();
    std::fs::write(&dir_file, DIRECTORY.replace("NUMBERS", &numbers)).unwrap();
    setup.ok(&["directory", "apply", dir_file.to_str().unwrap()]);
    let pw = setup.path().join("password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    setup.ok(&["sender", "change", "boss@customer.test", "--password-file", pw.to_str().unwrap()]);
    let daemon = setup.start();
    let submission = daemon.announced("submission");
    Gw { setup, daemon, submission, ca: certfile, out_port, in_port }
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/documents").join(name)
}

/// Sends one mail to all of `to` with Python's smtplib (STARTTLS, AUTH
/// PLAIN): a short text, and `attachment` as a PDF when given; returns what
/// the script printed (`refused {}` when every recipient was accepted).
pub fn send_mail(g: &Gw, to: &[&str], subject: &str, attachment: Option<&Path>) -> String {
    send_mail_with(g, to, subject, attachment, &[])
}

/// [`send_mail`] with more header fields.
pub fn send_mail_with(
    g: &Gw,
    to: &[&str],
    subject: &str,
    attachment: Option<&Path>,
    headers: &[(&str, &str)],
) -> String {
    let (host, port) = g.submission.rsplit_once(':').unwrap();
    let headers: String = headers.iter().map(|(k, v)| format!("m[{k:?}] = {v:?}\n")).collect();
    let attach = match attachment {
        Some(f) => format!(
            "with open(\"{}\", \"rb\") as f:\n    m.add_attachment(f.read(), maintype=\"application\", \
             subtype=\"pdf\", filename=\"document.pdf\")",
            f.display()
        ),
        None => String::new(),
    };
    let script = format!(
        r#"
import smtplib, ssl
from email.message import EmailMessage
m = EmailMessage()
m["From"] = "boss@customer.test"
m["To"] = ", ".join({to:?})
m["Subject"] = "{subject}"
{headers}m.set_content("Please see the attached document.")
{attach}
ctx = ssl.create_default_context(cafile="{ca}")
s = smtplib.SMTP("{host}", {port}, local_hostname="client.test")
s.starttls(context=ctx)
s.login("boss@customer.test", "{pw}")
r = s.send_message(m)
print("refused", r)
s.quit()
"#,
        ca = g.ca.display(),
        pw = PASSWORD,
    );
    let out = Command::new("/usr/bin/python3").arg("-c").arg(&script).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("refused {}"), "{text}\n{}", g.daemon.log());
    text
}

/// The messages in the Maildir, as (path, text).
pub fn maildir(g: &Gw) -> Vec<(PathBuf, String)> {
    let dir = g.setup.data_dir().join("maildir/new");
    let mut v: Vec<_> =
        std::fs::read_dir(&dir).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_else(|_| Vec::new());
    v.sort();
    v.into_iter().map(|p| (p.clone(), String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned())).collect()
}

/// Waits (up to `secs`) until the Maildir holds `n` messages.
pub fn wait_for_mail(g: &Gw, n: usize, secs: u64) -> Vec<(PathBuf, String)> {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let m = maildir(g);
        if m.len() >= n {
            return m;
        }
        assert!(Instant::now() < until, "only {} of {n} mails after {secs} s; log:\n{}", m.len(), g.daemon.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The CDRs, as JSON.
pub fn cdrs(g: &Gw) -> Vec<serde_json::Value> {
    let v = g.setup.json(&["cdr", "list"]);
    v.as_array().cloned().unwrap_or_else(|| v["cdrs"].as_array().cloned().unwrap_or_default())
}

/// The CDRs once there are at least `n` (or what there is after 30 s).
/// A received fax's CDR is written just after its mail is queued, so the
/// mail can reach the relay a moment before the CDR is there.
pub fn wait_for_cdrs(g: &Gw, n: usize) -> Vec<serde_json::Value> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let c = cdrs(g);
        if c.len() >= n || Instant::now() > until {
            return c;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn header<'a>(mail: &'a str, name: &str) -> Option<&'a str> {
    mail.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Extracts the base64 attachment of `mail` named `*.pdf` into `dir` with
/// Python's email parser (not our code); returns its path.
pub fn extract_pdf(mail: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("received.pdf");
    let script = format!(
        r#"
import email, email.policy
m = email.message_from_binary_file(open("{mail}", "rb"), policy=email.policy.default)
for p in m.iter_attachments():
    if p.get_filename().endswith(".pdf"):
        open("{out}", "wb").write(p.get_content())
        print("ok", p.get_filename())
"#,
        mail = mail.display(),
        out = out.display()
    );
    let o = Command::new("/usr/bin/python3").arg("-c").arg(&script).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("ok fax-"), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn round_trip(media: &'static str, transport: &str, clock_rate: f64) {
    let g = start(Opts { media, clock_rate, ..Default::default() });
    send_mail(&g, &["33221100@fax.acme.test"], "Invoice 42", Some(&fixture("letter.pdf")));
    // The whole fax (an attempt cut short may have mailed its pages first,
    // marked incomplete) and the report.
    let until = Instant::now() + Duration::from_secs(120);
    let mails = loop {
        let m = maildir(&g);
        let whole = m.iter().any(|(_, m)| m.contains("To: inbox@customer.test") && !m.contains("(INCOMPLETE)"));
        if whole && m.iter().any(|(_, m)| m.contains("To: boss@customer.test")) {
            break m;
        }
        assert!(Instant::now() < until, "no fax mail and report after 120 s; log:\n{}", g.daemon.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    let (fax_mail, report) = {
        let f = mails
            .iter()
            .find(|(_, m)| m.contains("To: inbox@customer.test") && !m.contains("(INCOMPLETE)"))
            .expect("the fax mail");
        let r = mails.iter().find(|(_, m)| m.contains("To: boss@customer.test")).expect("the report");
        (f, r)
    };
    // The received fax.
    assert_eq!(header(&fax_mail.1, "Subject"), Some("Fax from +4570203040, 2 pages"), "{}", fax_mail.1);
    assert!(fax_mail.1.contains("From: \"Acme Fax\" <fax@acme.test>"), "{}", fax_mail.1);
    let pdf = extract_pdf(&fax_mail.0, g.setup.path());
    let check = Command::new("qpdf").arg("--check").arg(&pdf).output().unwrap();
    assert!(check.status.success(), "qpdf: {}", String::from_utf8_lossy(&check.stdout));
    let info = String::from_utf8_lossy(&Command::new("pdfinfo").arg(&pdf).output().unwrap().stdout).into_owned();
    assert!(info.contains("Pages:           2"), "{info}");
    // The report.
    assert_eq!(header(&report.1, "Subject"), Some("Fax to +4533221100 delivered (2 of 2 pages)"), "{}", report.1);
    assert!(report.1.contains("Remote station:  +45 70 20 30 40"), "{}", report.1);
    // Two CDRs: the call out and the call in, each with its pages. On a
    // loaded machine an audio call may fail in its fax phase (the media
    // clock runs faster than real time here); the gateway then calls again,
    // as it must. The fax phase of any such attempt failed (a T.30 error),
    // and the successful pair is checked in full.
    let until = Instant::now() + Duration::from_secs(30);
    let all = loop {
        let all = cdrs(&g);
        if all.iter().filter(|x| x["t30_code"] == 0).count() >= 2 || Instant::now() > until {
            break all;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let failed: Vec<_> = all.iter().filter(|x| x["t30_code"] != 0).collect();
    let retries = failed.iter().filter(|x| x["direction"] == "mail-to-fax").count();
    assert!(retries <= 1, "more than one failed attempt: {all:#?}");
    assert!(
        failed.iter().all(|x| x["t30_code"].as_i64().is_some_and(|c| c > 0) && x["sip_status"] == 200),
        "an attempt failed other than in its fax phase: {all:#?}"
    );
    let c: Vec<_> = all.iter().filter(|x| x["t30_code"] == 0).cloned().collect();
    assert_eq!(c.len(), 2, "{all:#?}");
    for cdr in &c {
        assert_eq!(cdr["pages"], 2, "{cdr:#}");
        // Both ends know the total: the sender from its document, the
        // receiver once the fax completed.
        assert_eq!(cdr["pages_total"], 2, "{cdr:#}");
        assert_eq!(cdr["transport"], transport, "{cdr:#}");
        assert_eq!(cdr["t30_code"], 0, "{cdr:#}");
        assert_eq!(cdr["resolution"], "204x196", "{cdr:#}");
        assert!(
            cdr["bit_rate"].as_u64().is_some_and(|r| [2400, 4800, 7200, 9600, 12000, 14400].contains(&r)),
            "{cdr:#}"
        );
        assert!(cdr["ecm"].is_boolean(), "{cdr:#}");
        assert_eq!(cdr["timeline"].as_array().map(Vec::len), Some(2), "{cdr:#}");
    }
    let out = c.iter().find(|x| x["direction"] == "mail-to-fax").expect("a mail-to-fax CDR");
    assert_eq!(out["called"], "+4533221100");
    assert_eq!(out["calling"], "+4570203040");
    assert_eq!(out["attempt"].as_u64(), Some(1 + retries as u64));
    assert!(out["correlation_id"].as_str().unwrap().contains("job-"), "{out:#}");
    // Who handed in the mail, which trunk peer was called, and its answer.
    assert_eq!(out["smtp_client"], "127.0.0.1", "{out:#}");
    assert_eq!(out["sip_signalling"], format!("127.0.0.1:{}", g.in_port), "{out:#}");
    assert_eq!(out["sip_status"], 200, "{out:#}");
    let inn = c.iter().find(|x| x["direction"] == "fax-to-mail").expect("a fax-to-mail CDR");
    assert_eq!(inn["called"], "+4533221100");
    // The INVITE came from the outbound trunk's socket.
    assert_eq!(inn["sip_signalling"], format!("127.0.0.1:{}", g.out_port), "{inn:#}");
    assert_eq!(inn["sip_status"], 200, "{inn:#}");
    // Nothing of the call is left in the work directory, and the document is erased.
    // (The received pages are removed before their CDR is written.)
    let work = g.setup.data_dir().join("work");
    g.daemon.wait_for_log("mail, pages and finished jobs erased");
    let left: Vec<_> = std::fs::read_dir(&work).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "work directory not empty: {left:?}");
    // The sweeper's audit holds, and nothing outside the Maildir (which is
    // mail delivered, in plaintext by nature) holds the addresses, the
    // numbers or the subject in plaintext.
    g.setup.ok(&["retention", "audit"]);
    for f in crate::harness::files_under(&g.setup.data_dir()) {
        if f.starts_with(g.setup.data_dir().join("maildir")) {
            continue;
        }
        let bytes = std::fs::read(&f).unwrap();
        for needle in ["boss@customer.test", "inbox@customer.test", "4533221100", "4570203040", "Invoice 42"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} in plaintext in {}",
                f.display()
            );
        }
    }
}

#[test]
fn mail_to_fax_to_mail_over_t38() {
    round_trip("t38-preferred", "t38", 5.0);
}

#[test]
fn mail_to_fax_to_mail_over_g711() {
    // G.711 modems need every 20 ms frame in time: a lower factor leaves the
    // jitter buffer more real slack on a loaded machine.
    round_trip("audio-only", "g711", 2.0);
}

#[test]
fn an_unknown_number_is_refused_with_its_cdr_and_reported() {
    let g = start(Opts::default());
    // 33 22 11 01 is a valid Danish number, but not one of ours.
    send_mail(&g, &["33221101@fax.acme.test"], "Wrong number", Some(&fixture("letter.pdf")));
    let mails = wait_for_mail(&g, 1, 60);
    let report = &mails[0].1;
    assert_eq!(header(report, "Subject"), Some("Fax to +4533221101 NOT delivered"), "{report}");
    assert!(report.contains("the number does not exist"), "{report}");
    assert!(report.contains("bad-number (SIP 404)"), "{report}");
    // The failure report carries the original mail.
    assert!(report.contains("original.eml"), "{report}");
    let c = cdrs(&g);
    assert_eq!(c.len(), 2, "{c:#?}");
    let refused = c.iter().find(|x| x["direction"] == "fax-to-mail").expect("the refused call's CDR");
    assert_eq!(refused["sip_status"], 404);
    assert_eq!(refused["tenant"], "unassigned");
    let out = c.iter().find(|x| x["direction"] == "mail-to-fax").unwrap();
    assert_eq!(out["sip_status"], 404);
    assert_eq!(out["pages"], 0);
}

/// INVITEs refused before answering (an unreadable offer: 400; a number
/// not in service: 404; no fax media in common: 488), sent by SIPp to the
/// inbound trunk: each leaves a CDR with its status and where it came from,
/// and the trunk keeps answering (the scenario ends with an OPTIONS).
#[test]
fn incoming_calls_refused_before_answering_each_leave_a_cdr() {
    let g = start(Opts::default());
    let xml = Path::new(env!("CARGO_MANIFEST_DIR")).join("t38/tests/sipp/uac_malformed.xml");
    let sipp = Command::new("sipp")
        .args(["-sf", xml.to_str().unwrap(), &format!("127.0.0.1:{}", g.in_port)])
        .args(["-i", "127.0.0.1", "-s", "+4533221100", "-m", "1", "-nostdin"])
        .args(["-timeout", "30", "-timeout_error"])
        .current_dir(g.setup.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipp is installed (scripts/packages.sh)");
    let port = faxgate_t38::sipp_peer::sipp_port(&sipp, std::net::Ipv4Addr::LOCALHOST);
    let out = sipp.wait_with_output().unwrap();
    assert!(out.status.success(), "sipp: {}\n{}", String::from_utf8_lossy(&out.stdout), g.daemon.log());
    // The CDRs are written as the refusals are reported, just after the answers.
    let c = wait_for_cdrs(&g, 3);
    let mut statuses: Vec<u64> = c.iter().map(|x| x["sip_status"].as_u64().unwrap()).collect();
    statuses.sort();
    assert_eq!(statuses, [400, 404, 488], "{c:#?}");
    for cdr in &c {
        assert_eq!(cdr["direction"], "fax-to-mail", "{cdr:#}");
        assert_eq!(cdr["sip_signalling"], format!("127.0.0.1:{port}"), "{cdr:#}");
        assert_eq!(cdr["pages"], 0, "{cdr:#}");
        assert!(cdr["t30_text"].as_str().unwrap().starts_with("refused: "), "{cdr:#}");
    }
    // The calls to our number are the tenant's; the unknown one is unassigned.
    let ours = c.iter().filter(|x| x["tenant"] == "acme" && x["called"] == "+4533221100").count();
    assert_eq!(ours, 2, "{c:#?}");
}

/// Learned fallbacks on the real binary: the outbound trunk offers T.38
/// in the INVITE (`t38-initial`), the inbound trunk takes audio only and
/// refuses it (488). The first fax falls back to audio in the same attempt
/// and teaches that; the second starts in audio at once (no second 488, no
/// second fallback) and its CDR says so; `learned list` shows the entry.
/// 62 days later (libfaketime) it is not listed, the sweep erases it with
/// its month's key. (Expiry to the second: `src/learned/tests.rs` and
/// `src/retention/tests.rs` on a fake clock.)
#[test]
fn a_destination_that_refused_t38_is_called_in_audio_the_next_time() {
    let g = start(Opts { media: "t38-initial", in_media: Some("audio-only"), clock_rate: 2.0, ..Default::default() });
    let refused = "T.38 in the INVITE refused";
    send_mail(&g, &["33221100@fax.acme.test"], "First", None);
    wait_for_mail(&g, 2, 120);
    let c = wait_for_cdrs(&g, 3);
    let out: Vec<_> = c.iter().filter(|x| x["direction"] == "mail-to-fax").collect();
    assert_eq!(out.len(), 1, "{c:#?}");
    assert_eq!((&out[0]["t30_code"], &out[0]["transport"]), (&0.into(), &"g711".into()), "{c:#?}");
    assert!(out[0].get("learned").is_none(), "{c:#?}");
    assert_eq!(c.iter().filter(|x| x["sip_status"] == 488).count(), 1, "the T.38 INVITE was refused: {c:#?}");
    assert_eq!(g.daemon.log().matches(refused).count(), 1);
    let learned = g.setup.json(&["learned", "list"]);
    let list = learned.as_array().expect("a list");
    assert_eq!(list.len(), 1, "{learned:#}");
    assert_eq!((&list[0]["tenant"], &list[0]["number"]), (&"acme".into(), &"+4533221100".into()), "{learned:#}");
    assert_eq!(list[0]["audio"], true, "{learned:#}");
    // Another tenant's admin sees nothing of it.
    let other = g.setup.fails(&["--as-tenant", "other", "learned", "list", "--tenant", "acme"]);
    assert!(other.contains("no tenant acme"), "{other}");

    // The second fax starts in audio: no T.38 offered, nothing refused.
    send_mail(&g, &["33221100@fax.acme.test"], "Second", None);
    wait_for_mail(&g, 4, 120);
    let c = wait_for_cdrs(&g, 5);
    let mut out: Vec<_> = c.iter().filter(|x| x["direction"] == "mail-to-fax").collect();
    assert_eq!(out.len(), 2, "{c:#?}");
    out.sort_by_key(|x| x["start"].as_str().unwrap().to_owned());
    assert_eq!((&out[1]["t30_code"], &out[1]["transport"]), (&0.into(), &"g711".into()), "{c:#?}");
    assert_eq!(out[1]["learned"], "audio", "{c:#?}");
    assert_eq!(c.iter().filter(|x| x["sip_status"] == 488).count(), 1, "no second refusal: {c:#?}");
    assert_eq!(g.daemon.log().matches(refused).count(), 1, "no second fallback");
    // Still known, from when it was first learned.
    assert_eq!(g.setup.json(&["learned", "list"]), learned);

    g.setup.ok(&["retention", "audit"]);

    // 62 days on (libfaketime, the daemon stopped, the CLI on the store
    // itself): past the entry's 30 days and its month's end plus 30 days.
    // Not listed; the sweep erases it and destroys its month's key; the
    // audit has nothing to say of learned entries.
    let Gw { setup, daemon, .. } = g;
    daemon.stop();
    let later = |args: &[&str]| {
        let out = Command::new(BIN)
            .env("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
            .env("FAKETIME", "+62d")
            .env("DONT_FAKE_MONOTONIC", "1")
            .arg("--json")
            .arg("--config")
            .arg(&setup.config)
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success(), serde_json::from_str::<serde_json::Value>(&text).unwrap_or(text.into()))
    };
    assert_eq!(later(&["learned", "list"]), (true, serde_json::json!([])));
    let (ok, sweep) = later(&["retention", "sweep"]);
    assert!(ok, "{sweep:#}");
    let c = sweep["categories"].as_array().unwrap().iter().find(|c| c["category"] == "learned").unwrap().clone();
    assert_eq!(c["erased"], 1, "{sweep:#}");
    let keys = c["keys_destroyed"].as_array().unwrap();
    assert!(keys.len() == 1 && keys[0].as_str().unwrap().starts_with("learned-"), "{sweep:#}");
    assert!(!setup.data_dir().join("keys").join(format!("{}.key", keys[0].as_str().unwrap())).exists());
    let (_, audit) = later(&["retention", "audit"]);
    assert_eq!(audit["checked"]["learned"], 0, "{audit:#}");
    assert!(
        audit["problems"].as_array().unwrap().iter().all(|p| !p.as_str().unwrap().contains("learned")),
        "{audit:#}"
    );
    // Back at the real time it is gone, not just hidden.
    assert_eq!(setup.json(&["learned", "list"]), serde_json::json!([]));
    let forgot = setup.json(&["learned", "forget", "33 22 11 00"]);
    assert_eq!((&forgot["number"], &forgot["forgotten_in"]), (&"+4533221100".into(), &serde_json::json!([])));
    for f in crate::harness::files_under(&setup.data_dir()) {
        if f.starts_with(setup.data_dir().join("maildir")) {
            continue;
        }
        let bytes = std::fs::read(&f).unwrap();
        assert!(!bytes.windows(10).any(|w| w == b"4533221100"), "the number in plaintext in {}", f.display());
    }
}

struct Sipp(Child);

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A SIPp UAS that answers each INVITE with `status`, and the port it took.
fn sipp_refusing(dir: &Path, status: u16, calls: u32) -> (Sipp, u16) {
    let xml = dir.join(format!("uas_{status}.xml"));
    std::fs::write(
        &xml,
        format!(
            r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="refuse with {status}">
  <recv request="INVITE" />
  <send><![CDATA[
SIP/2.0 100 Trying
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <send><![CDATA[
SIP/2.0 {status} Refused
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <recv request="ACK" />
</scenario>
"#
        ),
    )
    .unwrap();
    let child = Command::new("sipp")
        .args(["-sf", xml.to_str().unwrap(), "-i", "127.0.0.1"])
        .args(["-m", &calls.to_string(), "-nostdin"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp is installed (scripts/packages.sh)");
    let port = faxgate_t38::sipp_peer::sipp_port(&child, std::net::Ipv4Addr::LOCALHOST);
    (Sipp(child), port)
}

#[test]
fn busy_then_delivered_on_the_retry() {
    // The outbound trunk points at a port where SIPp answers the first
    // INVITE with 486 Busy Here; the retry is answered by a real fax
    // receiver (the workspace's faxleg) started on the same port.
    let tmp = tempfile::tempdir().unwrap();
    let (sipp, peer) = sipp_refusing(tmp.path(), 486, 1);
    // Busy lines have a schedule of their own: retried after 3 s, where the
    // general schedule would wait 10 minutes.
    let g = start(Opts {
        retry: "[600]",
        peer_port: Some(peer),
        extra: "[fax.retry_by_cause]\nbusy = [3]\n".into(),
        ..Default::default()
    });
    send_mail(&g, &["33221100@fax.acme.test"], "Busy first", Some(&fixture("letter.pdf")));
    // The first attempt is busy.
    let until = Instant::now() + Duration::from_secs(30);
    while !g.daemon.log().contains("outcome=\"busy\"") && !g.daemon.log().contains("outcome=busy") {
        assert!(Instant::now() < until, "no busy attempt; log:\n{}", g.daemon.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(sipp);
    // A real fax receiver answers the retry.
    let faxleg = Path::new(BIN).parent().unwrap().join("faxleg");
    let rx_dir = tmp.path().join("rx");
    std::fs::create_dir_all(&rx_dir).unwrap();
    let mut rx = Command::new(&faxleg)
        .args(["receive", "--bind", &format!("127.0.0.1:{peer}"), "--trunk", &format!("127.0.0.1:{}", g.out_port)])
        .args(["--dir", rx_dir.to_str().unwrap(), "--scale", "5", "--calls", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("faxleg is built with the workspace");
    let mails = wait_for_mail(&g, 1, 120);
    let _ = rx.wait();
    let report = &mails[0].1;
    assert_eq!(header(report, "Subject"), Some("Fax to +4533221100 delivered (2 of 2 pages)"), "{report}");
    assert!(report.contains("Attempts:        2"), "{report}");
    let c = cdrs(&g);
    assert_eq!(c.len(), 2, "{c:#?}");
    let mut attempts: Vec<_> = c.iter().map(|x| (x["attempt"].as_u64().unwrap(), x["sip_status"].clone())).collect();
    attempts.sort_by_key(|a| a.0);
    assert_eq!(attempts[0], (1, serde_json::json!(486)));
    assert_eq!(attempts[1], (2, serde_json::json!(200)));
}

#[test]
fn no_answer_until_the_final_failure_report() {
    // SIPp answers every INVITE with 480 Temporarily Unavailable (no
    // answer), three times: the first attempt and both retries.
    let tmp = tempfile::tempdir().unwrap();
    let (_sipp, peer) = sipp_refusing(tmp.path(), 480, 3);
    let g = start(Opts { retry: "[1, 1]", peer_port: Some(peer), ..Default::default() });
    send_mail(&g, &["33221100@fax.acme.test"], "Nobody home", Some(&fixture("letter.pdf")));
    let mails = wait_for_mail(&g, 1, 90);
    let report = &mails[0].1;
    assert_eq!(header(report, "Subject"), Some("Fax to +4533221100 NOT delivered"), "{report}");
    assert!(report.contains("nobody answered"), "{report}");
    assert!(report.contains("Attempts:        3"), "{report}");
    let c = cdrs(&g);
    assert_eq!(c.len(), 3, "{c:#?}");
    assert!(c.iter().all(|x| x["sip_status"] == 480), "{c:#?}");
}

#[test]
fn a_destination_outside_the_account_policy_is_refused_during_the_session() {
    let g = start(Opts::default());
    let (host, port) = g.submission.rsplit_once(':').unwrap();
    let script = format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context(cafile="{ca}")
s = smtplib.SMTP("{host}", {port}, local_hostname="client.test")
s.starttls(context=ctx)
s.login("boss@customer.test", "{pw}")
s.mail("boss@customer.test")
print("abroad", s.rcpt("+493012345678@fax.acme.test"))
print("national", s.rcpt("33221100@fax.acme.test"))
s.quit()
"#,
        ca = g.ca.display(),
        pw = PASSWORD,
    );
    let out = Command::new("/usr/bin/python3").arg("-c").arg(&script).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains(
            "abroad (550, b'5.7.1 +493012345678 is outside DK; this account may send faxes to national numbers only')"
        ),
        "{text}"
    );
    assert!(text.contains("national (250,"), "{text}");
    // Allowed for the account, the same number is accepted.
    let accounts = g.setup.json(&["account", "list", "--tenant", "acme"]);
    let id = accounts[0]["id"].as_str().or_else(|| accounts["accounts"][0]["id"].as_str()).unwrap().to_owned();
    g.setup.ok(&["account", "change", &id, "--allow-international", "true"]);
    let out = Command::new("/usr/bin/python3").arg("-c").arg(&script).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("abroad (250,"), "{text}");
}

#[test]
fn twenty_faxes_at_once_through_a_trunk_of_eight_channels() {
    let g = start(Opts { numbers: 20, channels: 8, ..Default::default() });
    let numbers: Vec<String> = (0..20).map(|i| format!("332211{i:02}@fax.acme.test")).collect();
    let numbers: Vec<&str> = numbers.iter().map(String::as_str).collect();
    send_mail(&g, &numbers[..10], "first ten", None);
    send_mail(&g, &numbers[10..], "second ten", None);
    // 20 received faxes and 20 reports.
    let mails = wait_for_mail(&g, 40, 300);
    let faxes = mails.iter().filter(|(_, m)| m.contains("To: inbox@customer.test")).count();
    let delivered = mails.iter().filter(|(_, m)| m.contains("delivered (1 of 1 pages)")).count();
    assert_eq!((faxes, delivered), (20, 20));
    let c = cdrs(&g);
    let out: Vec<_> = c.iter().filter(|x| x["direction"] == "mail-to-fax").collect();
    assert_eq!(out.len(), 20, "{c:#?}");
    assert!(out.iter().all(|x| x["attempt"] == 1 && x["t30_code"] == 0), "{out:#?}");
    // Never more than 8 calls at once, and the trunk was used to its limit.
    let mut edges: Vec<(jiff::Timestamp, i32)> = Vec::new();
    for x in &out {
        edges.push((x["start"].as_str().unwrap().parse().unwrap(), 1));
        edges.push((x["end"].as_str().unwrap().parse().unwrap(), -1));
    }
    edges.sort();
    let (mut now, mut most) = (0, 0);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    assert_eq!(most, 8, "most calls at once");
}

#[test]
fn kill_9_during_a_call_then_restart_delivers_once_without_duplicate_cdrs() {
    let g = start(Opts { retry: "[2, 2]", ..Default::default() });
    send_mail(&g, &["33221100@fax.acme.test"], "Cut off", Some(&fixture("letter.pdf")));
    // Kill the daemon once the call is up (and recorded, which is done as it
    // is answered, off the SIP path), before the fax has ended.
    g.daemon.wait_for_log("incoming call recorded");
    let Gw { setup, daemon, submission, ca, out_port, in_port } = g;
    assert!(maildir_of(&setup).is_empty(), "nothing was delivered before the kill");
    daemon.kill9();
    let daemon = setup.start();
    let g = Gw { setup, daemon, submission, ca, out_port, in_port };
    let mails = wait_for_mail(&g, 2, 180);
    g.daemon.wait_for_log("mail, pages and finished jobs erased");
    let report = mails.iter().find(|(_, m)| m.contains("To: boss@customer.test")).expect("a report");
    assert!(report.1.contains("delivered (2 of 2 pages)"), "{}", report.1);
    assert!(report.1.contains("Attempts:        2"), "{}", report.1);
    assert_eq!(mails.len(), 2, "one fax mail and one report");
    let c = wait_for_cdrs(&g, 3);
    let ids: std::collections::HashSet<_> = c.iter().map(|x| x["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), c.len(), "no CDR twice: {c:#?}");
    let mut out: Vec<_> = c.iter().filter(|x| x["direction"] == "mail-to-fax").collect();
    out.sort_by_key(|x| x["attempt"].as_u64());
    assert_eq!(out.len(), 2, "{c:#?}");
    assert!(out[0]["t30_text"].as_str().unwrap().contains("interrupted"), "{:#}", out[0]);
    assert_eq!(out[1]["t30_code"], 0);
    // The inbound side of the cut-off call (killed before its first page)
    // got its CDR at the restart, and mailed nothing.
    let mut inn: Vec<_> = c.iter().filter(|x| x["direction"] == "fax-to-mail").collect();
    inn.sort_by_key(|x| x["start"].as_str().map(str::to_owned));
    assert_eq!(inn.len(), 2, "{c:#?}");
    assert_eq!(inn[0]["t30_text"], "interrupted: the gateway stopped during the call", "{:#}", inn[0]);
    assert_eq!((inn[0]["pages"].as_u64(), inn[0]["called"].as_str()), (Some(0), Some("+4533221100")), "{:#}", inn[0]);
    assert_eq!((inn[1]["pages"].as_u64(), inn[1]["t30_code"].as_i64()), (Some(2), Some(0)), "{:#}", inn[1]);
}

/// A daemon killed while receiving, after the first page arrived: at the
/// restart the page that arrived is mailed, marked incomplete, and the cut-off
/// call gets its CDR; then the sender's retry brings the whole fax.
#[test]
fn kill_9_after_a_received_page_mails_that_page_after_restart() {
    let g = start(Opts { retry: "[2, 2]", ..Default::default() });
    send_mail(&g, &["33221100@fax.acme.test"], "Cut off after a page", Some(&fixture("letter.pdf")));
    g.daemon.wait_for_log("page received");
    let Gw { setup, daemon, submission, ca, out_port, in_port } = g;
    daemon.kill9();
    assert!(maildir_of(&setup).is_empty(), "nothing was delivered before the kill");
    let daemon = setup.start();
    let g = Gw { setup, daemon, submission, ca, out_port, in_port };
    g.daemon.wait_for_log("pages of a cut-off call queued for mail");
    // The cut-off page, the whole fax from the retry, and the report.
    let mails = wait_for_mail(&g, 3, 180);
    let faxes: Vec<_> = mails.iter().filter(|(_, m)| m.contains("To: inbox@customer.test")).collect();
    assert_eq!(faxes.len(), 2, "{mails:#?}");
    let partial = faxes.iter().find(|(_, m)| m.contains("(INCOMPLETE)")).expect("the cut-off page's mail");
    assert_eq!(header(&partial.1, "Subject"), Some("Fax from +4570203040, 1 page (INCOMPLETE)"), "{}", partial.1);
    let pdf = extract_pdf(&partial.0, g.setup.path());
    let info = String::from_utf8_lossy(&Command::new("pdfinfo").arg(&pdf).output().unwrap().stdout).into_owned();
    assert!(info.contains("Pages:           1\n"), "{info}");
    let check = Command::new("qpdf").arg("--check").arg(&pdf).output().unwrap();
    assert!(check.status.success(), "qpdf: {}", String::from_utf8_lossy(&check.stdout));
    let partial_pdf = g.setup.path().join("partial.pdf");
    std::fs::rename(&pdf, &partial_pdf).unwrap();
    let whole = faxes.iter().find(|(_, m)| !m.contains("(INCOMPLETE)")).expect("the retry's mail");
    assert_eq!(header(&whole.1, "Subject"), Some("Fax from +4570203040, 2 pages"), "{}", whole.1);
    // The page that was mailed is the first page, whole: pixel for pixel the
    // retry's first page, as poppler draws both at the fax resolution.
    let whole_pdf = extract_pdf(&whole.0, g.setup.path());
    let cut_page = pdf_rasters(&partial_pdf, g.setup.path());
    let whole_pages = pdf_rasters(&whole_pdf, g.setup.path());
    assert_eq!((cut_page.len(), whole_pages.len()), (1, 2));
    // Each attempt prints its own time in the page header: the page is the
    // same under the header band.
    let (cut, first) = (Pbm::read(&cut_page[0]), Pbm::read(&whole_pages[0]));
    assert_eq!((cut.width, cut.height), (first.width, first.height));
    assert!(
        cut.rows(HEADER_ROWS..cut.height) == first.rows(HEADER_ROWS..first.height),
        "the cut-off call's page differs from the retry's first page"
    );
    assert!(cut.ink(0..HEADER_ROWS) > 1000, "the cut-off page has its header");
    let report = mails.iter().find(|(_, m)| m.contains("To: boss@customer.test")).expect("a report");
    assert!(report.1.contains("delivered (2 of 2 pages)"), "{}", report.1);
    let c = wait_for_cdrs(&g, 4);
    let inn: Vec<_> = c.iter().filter(|x| x["direction"] == "fax-to-mail").collect();
    assert_eq!(inn.len(), 2, "{c:#?}");
    let cut = inn.iter().find(|x| x["t30_code"] != 0).expect("the cut-off call's CDR");
    assert_eq!(cut["t30_text"], "interrupted: the gateway stopped during the call", "{cut:#}");
    assert_eq!(cut["pages"], 1, "{cut:#}");
    assert_eq!(cut["emails"], serde_json::json!(["inbox@customer.test"]), "{cut:#}");
    assert_eq!(cut["sip_signalling"], format!("127.0.0.1:{out_port}"), "{cut:#}");
    // Nothing of either call is left behind, and the audit holds.
    g.daemon.wait_for_log("mail, pages and finished jobs erased");
    let work = g.setup.data_dir().join("work");
    let left: Vec<_> = std::fs::read_dir(&work).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "work directory not empty: {left:?}");
    g.setup.ok(&["retention", "audit"]);
}

/// `fax.hold`: mail is accepted and kept, nothing is rendered or called;
/// the daemon started again without it faxes the mail.
#[test]
fn a_held_queue_keeps_mail_and_faxes_it_once_released() {
    let g = start(Opts { fax: "hold = true", ..Default::default() });
    send_mail(&g, &["33221100@fax.acme.test"], "Held", Some(&fixture("letter.pdf")));
    g.daemon.wait_for_log("fax.hold is on");
    let Gw { setup, daemon, submission, ca, out_port, in_port } = g;
    assert_eq!(daemon.stop().code(), Some(0));
    // Nothing was called while held; the mail is still queued.
    assert_eq!(setup.json(&["cdr", "list"]).as_array().map(Vec::len), Some(0));
    assert!(maildir_of(&setup).is_empty());
    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(&setup.config, config.replace("hold = true", "hold = false")).unwrap();
    let daemon = setup.start();
    let g = Gw { setup, daemon, submission, ca, out_port, in_port };
    let mails = wait_for_mail(&g, 2, 120);
    let report = mails.iter().find(|(_, m)| m.contains("To: boss@customer.test")).expect("a report");
    assert!(report.1.contains("delivered (2 of 2 pages)"), "{}", report.1);
}

fn maildir_of(setup: &Setup) -> Vec<PathBuf> {
    std::fs::read_dir(setup.data_dir().join("maildir/new"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn relay_down_kill_9_then_relay_up_delivers_each_mail_once() {
    let held = crate::harness::HeldPort::tcp();
    let port = held.port;
    let extra = format!(
        "\n[mail]\ntransport = \"relay\"\nrelay_host = \"127.0.0.1\"\nrelay_port = {port}\n\
         relay_tls = \"none\"\nrelay_timeout = 5\nretry_delays = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    );
    let g = start(Opts { extra, ..Default::default() });
    send_mail(&g, &["33221100@fax.acme.test"], "Relay down", Some(&fixture("letter.pdf")));
    // The fax goes through; its mail and the report wait in the outbox.
    g.daemon.wait_for_log("received fax queued for mail");
    g.daemon.wait_for_log("mail, pages and finished jobs erased");
    g.daemon.wait_for_log("mail delivery deferred");
    let Gw { setup, daemon, .. } = g;
    daemon.kill9();
    let relay_box = setup.path().join("relay");
    let _relay = crate::outbox::Relay::start(port, &relay_box);
    let daemon = setup.start();
    let until = Instant::now() + Duration::from_secs(60);
    let count = || std::fs::read_dir(relay_box.join("new")).map(|r| r.count()).unwrap_or(0);
    while count() < 2 {
        assert!(Instant::now() < until, "relay got {} mails; log:\n{}", count(), daemon.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Stop the daemon cleanly: whatever it still had would have gone by now
    // (retries every second); each mail arrived once.
    daemon.stop();
    let texts: Vec<String> = std::fs::read_dir(relay_box.join("new"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(texts.len(), 2, "{texts:#?}");
    assert_eq!(texts.iter().filter(|t| t.contains("Subject: Fax from +4570203040, 2 pages")).count(), 1);
    assert_eq!(texts.iter().filter(|t| t.contains("Subject: Fax to +4533221100 delivered")).count(), 1);
}

#[test]
fn a_fax_cut_short_is_mailed_with_the_pages_that_arrived_marked_incomplete() {
    let g = start(Opts::default());
    // Four pages, sent by the workspace's faxleg to the daemon's inbound
    // trunk; it clears the call (BYE) 40 s into the call, media time.
    let tiff = g.setup.path().join("four.tiff");
    let letter = fixture("letter.pdf");
    g.setup.ok(&["render", letter.to_str().unwrap(), letter.to_str().unwrap(), "--out", tiff.to_str().unwrap()]);
    let faxleg = Path::new(BIN).parent().unwrap().join("faxleg");
    let out = Command::new(&faxleg)
        .args(["send", "--bind", "127.0.0.1:0", "--trunk", &format!("127.0.0.1:{}", g.in_port)])
        .args(["--to", "+4533221100", "--from", "4570203040", "--tiff", tiff.to_str().unwrap()])
        .args(["--scale", "5", "--bye-after", "40"])
        .output()
        .expect("faxleg is built with the workspace");
    let sent = String::from_utf8_lossy(&out.stdout);
    let mails = wait_for_mail(&g, 1, 60);
    let (path, mail) = &mails[0];
    let subject = header(mail, "Subject").unwrap();
    assert!(subject.starts_with("Fax from +4570203040, ") && subject.ends_with(" (INCOMPLETE)"), "{subject}\n{sent}");
    let pages: u32 = subject["Fax from +4570203040, ".len()..].split(' ').next().unwrap().parse().unwrap();
    assert!((1..4).contains(&pages), "{subject}");
    assert!(mail.contains("This fax is INCOMPLETE"), "{mail}");
    let pdf = extract_pdf(path, g.setup.path());
    let info = String::from_utf8_lossy(&Command::new("pdfinfo").arg(&pdf).output().unwrap().stdout).into_owned();
    assert!(info.contains(&format!("Pages:           {pages}\n")), "{info}");
    let c = wait_for_cdrs(&g, 1);
    assert_eq!(c.len(), 1, "{c:#?}");
    assert_eq!(c[0]["pages"], pages);
    assert_ne!(c[0]["t30_code"], 0);
}

/// The cover page follows the mail's `X-Fax-Cover` header, else the
/// account's setting, else `[fax] cover_page` (off here): with the account
/// set to a cover page, a text mail arrives as two pages, the same mail with
/// `X-Fax-Cover: no` as one, and one with an unreadable value is not faxed
/// and is reported with what to write.
#[test]
fn the_cover_page_follows_the_account_and_the_mail_header() {
    let g = start(Opts::default());
    let accounts = g.setup.json(&["account", "list", "--tenant", "acme"]);
    let id = accounts[0]["id"].as_str().unwrap().to_owned();
    let changed = g.setup.json(&["account", "change", &id, "--cover-page", "yes"]);
    assert_eq!(changed["cover_page"], true, "{changed:#}");
    send_mail(&g, &["33221100@fax.acme.test"], "With cover", None);
    send_mail_with(&g, &["33221100@fax.acme.test"], "Without cover", None, &[("X-Fax-Cover", "no")]);
    send_mail_with(&g, &["33221100@fax.acme.test"], "Unsure", None, &[("X-Fax-Cover", "perhaps")]);
    // Two received faxes and three reports.
    let mails = wait_for_mail(&g, 5, 120);
    let report = |subject: &str| {
        mails
            .iter()
            .find(|(_, m)| m.contains("To: boss@customer.test") && m.contains(subject))
            .unwrap_or_else(|| panic!("no report on {subject:?}: {mails:#?}"))
            .1
            .clone()
    };
    let with = report("With cover");
    assert_eq!(header(&with, "Subject"), Some("Fax to +4533221100 delivered (2 of 2 pages)"), "{with}");
    let without = report("Without cover");
    assert_eq!(header(&without, "Subject"), Some("Fax to +4533221100 delivered (1 of 1 pages)"), "{without}");
    let unsure = report("Unsure");
    assert_eq!(header(&unsure, "Subject"), Some("Fax to +4533221100 NOT delivered"), "{unsure}");
    // The report's text is quoted-printable: joined at its soft line breaks.
    let text = unsure.replace("=\r\n", "").replace("=\n", "");
    assert!(text.contains("the X-Fax-Cover header says \"perhaps\"; write \"yes\""), "{unsure}");
    // What arrived: a PDF of two pages and one of one page, checked by pdfinfo.
    let mut received: Vec<u32> = mails
        .iter()
        .filter(|(_, m)| m.contains("To: inbox@customer.test"))
        .map(|(path, _)| {
            let dir = tempfile::tempdir().unwrap();
            let pdf = extract_pdf(path, dir.path());
            let info = Command::new("pdfinfo").arg(&pdf).output().unwrap();
            let info = String::from_utf8_lossy(&info.stdout).into_owned();
            let line = info.lines().find(|l| l.starts_with("Pages:")).unwrap_or_else(|| panic!("{info}"));
            line["Pages:".len()..].trim().parse().unwrap()
        })
        .collect();
    received.sort();
    assert_eq!(received, [1, 2]);
    // The unreadable one was never called: two calls out, two in.
    let c = cdrs(&g);
    assert_eq!(c.iter().filter(|x| x["direction"] == "mail-to-fax").count(), 2, "{c:#?}");
    // Back to inheriting: the account's setting is gone again.
    let changed = g.setup.json(&["account", "change", &id, "--cover-page", "inherit"]);
    assert_eq!(changed["cover_page"], serde_json::Value::Null, "{changed:#}");
}

/// The attachments of a mail, written into `dir` by Python's email parser
/// (not our code): (file name, content type, path).
pub fn attachments(mail: &Path, dir: &Path) -> Vec<(String, String, PathBuf)> {
    let script = format!(
        r#"
import email, email.policy, os
m = email.message_from_binary_file(open("{mail}", "rb"), policy=email.policy.default)
for p in m.iter_attachments():
    path = os.path.join("{dir}", p.get_filename())
    open(path, "wb").write(p.get_content())
    print(p.get_filename(), p.get_content_type(), path)
"#,
        mail = mail.display(),
        dir = dir.display()
    );
    let o = Command::new("/usr/bin/python3").arg("-c").arg(&script).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let mut f = l.splitn(3, ' ');
            (f.next().unwrap().to_owned(), f.next().unwrap().to_owned(), PathBuf::from(f.next().unwrap()))
        })
        .collect()
}

/// What libtiff's `tiffinfo` says of a TIFF: (width, length) of each page.
pub fn tiff_pages(tiff: &Path) -> Vec<(u32, u32)> {
    let o = Command::new("tiffinfo").arg(tiff).output().expect("tiffinfo (libtiff-tools)");
    let info = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success() && info.contains("Compression Scheme: CCITT"), "{info}");
    info.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("Image Width: ")?;
            let (w, h) = rest.split_once(" Image Length: ")?;
            Some((w.parse().unwrap(), h.parse().unwrap()))
        })
        .collect()
}

/// The pages of a PDF drawn by poppler's pdftoppm at the fax resolution,
/// 1-bit: one PBM file's bytes each.
pub fn pdf_rasters(pdf: &Path, dir: &Path) -> Vec<Vec<u8>> {
    let stem = pdf.file_stem().unwrap().to_string_lossy().into_owned();
    let prefix = dir.join(format!("{stem}-drawn"));
    let o = Command::new("pdftoppm")
        .args(["-rx", "204", "-ry", "196", "-mono"])
        .arg(pdf)
        .arg(&prefix)
        .output()
        .expect("pdftoppm (poppler-utils)");
    assert!(o.status.success(), "pdftoppm: {}", String::from_utf8_lossy(&o.stderr));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{stem}-drawn")))
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// Rows of the page header band on a fine page (6 mm at 196 lines per inch).
pub const HEADER_ROWS: usize = 46;

/// A PBM (P4) image as poppler's `pdftoppm -mono` writes it.
pub struct Pbm<'a> {
    pub width: usize,
    pub height: usize,
    data: &'a [u8],
}

impl<'a> Pbm<'a> {
    pub fn read(bytes: &'a [u8]) -> Pbm<'a> {
        // "P4", width, height, each followed by one whitespace byte.
        let mut fields = Vec::new();
        let mut i = 0;
        while fields.len() < 3 {
            while bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            let s = i;
            while !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            fields.push(std::str::from_utf8(&bytes[s..i]).unwrap().to_owned());
        }
        assert_eq!(fields[0], "P4");
        let (width, height) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
        Pbm { width, height, data: &bytes[i + 1..] }
    }

    pub fn rows(&self, r: std::ops::Range<usize>) -> &'a [u8] {
        let stride = self.width.div_ceil(8);
        &self.data[r.start * stride..r.end * stride]
    }

    /// Black pixels in rows `r`.
    pub fn ink(&self, r: std::ops::Range<usize>) -> u32 {
        self.rows(r).iter().map(|b| b.count_ones()).sum()
    }
}

/// The pages of a fax TIFF as 1-bit rasters drawn by libtiff's tiff2pdf and
/// poppler's pdftoppm at the fax's own resolution: one PBM file's bytes each.
pub fn rasters(tiff: &Path, dir: &Path) -> Vec<Vec<u8>> {
    let stem = tiff.file_stem().unwrap().to_string_lossy().into_owned();
    let pdf = dir.join(format!("{stem}-raster.pdf"));
    let o = Command::new("tiff2pdf").arg("-o").arg(&pdf).arg(tiff).output().expect("tiff2pdf (libtiff-tools)");
    assert!(o.status.success(), "tiff2pdf: {}", String::from_utf8_lossy(&o.stderr));
    pdf_rasters(&pdf, dir)
}

/// Received faxes go to each route in its format: a PDF, the TIFF as
/// received, or both; the TIFF is the pages that were sent, pixel for pixel.
#[test]
fn received_faxes_are_mailed_as_pdf_tiff_or_both_per_route() {
    let g = start(Opts { numbers: 2, ..Default::default() });
    g.setup.ok(&["route", "change", "+4533221101", "inbox@customer.test", "--format", "tiff"]);
    g.setup.ok(&["route", "add", "+4533221100", "archive@customer.test", "--format", "both"]);
    send_mail(&g, &["33221100@fax.acme.test", "33221101@fax.acme.test"], "Formats", Some(&fixture("letter.pdf")));
    // 33 22 11 00: a PDF to inbox@, both to archive@; 33 22 11 01: the TIFF
    // to inbox@; and a report per number.
    let mails = wait_for_mail(&g, 5, 180);
    let fax_to = |to: &str, number: &str| -> &(PathBuf, String) {
        mails
            .iter()
            .find(|(_, m)| m.contains(&format!("To: {to}")) && m.contains(number))
            .unwrap_or_else(|| panic!("no fax for {number} to {to}: {mails:#?}"))
    };
    let sent = g.setup.path().join("sent.tiff");
    g.setup.ok(&["render", fixture("letter.pdf").to_str().unwrap(), "--out", sent.to_str().unwrap()]);
    let sent_pages = rasters(&sent, g.setup.path());
    assert_eq!(sent_pages.len(), 2);
    for (to, number, want) in [
        ("inbox@customer.test", "+4533221100", &["application/pdf"][..]),
        ("archive@customer.test", "+4533221100", &["application/pdf", "image/tiff"]),
        ("inbox@customer.test", "+4533221101", &["image/tiff"]),
    ] {
        let (path, _) = fax_to(to, number);
        let dir = tempfile::tempdir().unwrap();
        let got = attachments(path, dir.path());
        let types: Vec<&str> = got.iter().map(|(_, t, _)| t.as_str()).collect();
        assert_eq!(types, want, "{to} {number}: {got:?}");
        for (name, ctype, file) in &got {
            assert!(name.starts_with("fax-4570203040-"), "{name}");
            if ctype == "application/pdf" {
                assert!(name.ends_with(".pdf"), "{name}");
                let info = Command::new("pdfinfo").arg(file).output().unwrap();
                let info = String::from_utf8_lossy(&info.stdout).into_owned();
                assert!(info.contains("Pages:           2"), "{info}");
            } else {
                assert!(name.ends_with(".tiff"), "{name}");
                assert_eq!(tiff_pages(file), [(1728, 2292), (1728, 2292)], "{to} {number}");
                // The pages as sent, pixel for pixel, under the page header
                // (drawn in the letter's blank top margin).
                let got = rasters(file, dir.path());
                assert_eq!(got.len(), sent_pages.len());
                for (g, s) in got.iter().zip(&sent_pages) {
                    let (g, s) = (Pbm::read(g), Pbm::read(s));
                    assert!(g.ink(0..HEADER_ROWS) > 1000, "{to} {number}: no page header");
                    assert_eq!(s.ink(0..HEADER_ROWS), 0, "the letter's top margin is blank");
                    assert!(
                        g.rows(HEADER_ROWS..g.height) == s.rows(HEADER_ROWS..s.height),
                        "{to} {number}: the received pages differ from the sent under the header"
                    );
                }
            }
        }
    }
}

/// An account's paper overrides its tenant's: an A4 tenant's account set to
/// Letter sends Letter-length pages (2156 fine lines, not A4's 2292), as the
/// receiving end records them.
#[test]
fn an_accounts_letter_paper_sends_letter_length_pages_in_an_a4_tenant() {
    let g = start(Opts::default());
    assert_eq!(g.setup.json(&["tenant", "show", "acme"])["paper"], "a4");
    let accounts = g.setup.json(&["account", "list", "--tenant", "acme"]);
    let id = accounts[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(g.setup.json(&["account", "change", &id, "--paper", "letter"])["paper"], "letter");
    g.setup.ok(&["route", "change", "+4533221100", "inbox@customer.test", "--format", "both"]);
    send_mail(&g, &["33221100@fax.acme.test"], "Letter paper", Some(&fixture("letter.pdf")));
    let mails = wait_for_mail(&g, 2, 120);
    let (path, _) = mails.iter().find(|(_, m)| m.contains("To: inbox@customer.test")).expect("the fax mail");
    let dir = tempfile::tempdir().unwrap();
    let got = attachments(path, dir.path());
    let tiff = &got.iter().find(|(_, t, _)| t == "image/tiff").expect("the TIFF").2;
    assert_eq!(tiff_pages(tiff), [(1728, 2156), (1728, 2156)]);
    // 2156 lines at 196 lpi are 11 inches: the PDF's pages are 792 pt high.
    let pdf = &got.iter().find(|(_, t, _)| t == "application/pdf").expect("the PDF").2;
    let info = Command::new("pdfinfo").args(["-f", "1", "-l", "2"]).arg(pdf).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    assert_eq!(info.matches(" x 792 pts").count(), 2, "{info}");
}
