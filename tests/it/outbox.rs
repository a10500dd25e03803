//! The outbox against a real relay (Python's aiosmtpd on loopback): relay
//! down, then up, delivers each message exactly once; a 4xx reply is
//! retried with backoff; a 5xx reply fails a message for good; the Maildir
//! way out. Time is a fake clock moved by hand; no test waits for a retry
//! timer.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faxgate::clock::{Clock, FakeClock};
use faxgate::directory::{Branding, Language, Paper, Tenant};
use faxgate::mail::outbox::{OutState, Outbox};
use faxgate::retention::outbox as outbox_class;
use faxgate::store::Store;
use faxgate_smtp::outgoing::{Destination, OutAttachment, Outgoing, RelayTls};
use jiff::SignedDuration;

const RELAY: &str = r#"
import mailbox, os, signal, sys
from aiosmtpd.controller import Controller
box = mailbox.Maildir(sys.argv[2], create=True)
class Handler:
    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.startswith("refuse"):
            return "550 5.1.1 no such mailbox"
        # A full mailbox until the test creates <maildir>.room.
        if address.startswith("full") and not os.path.exists(sys.argv[2] + ".room"):
            return "452 4.2.2 mailbox full, try later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"
    async def handle_DATA(self, server, session, envelope):
        box.add(envelope.original_content)
        return "250 2.0.0 stored"
c = Controller(Handler(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("listening", flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
c.stop()
"#;

pub struct Relay(Child);

impl Relay {
    pub fn start(port: u16, maildir: &Path) -> Relay {
        let child = Command::new("/usr/bin/python3")
            .args(["-c", RELAY, &port.to_string(), maildir.to_str().unwrap()])
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd (scripts/packages.sh)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Relay(child)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

fn tenant() -> Tenant {
    Tenant {
        id: "nordtel".parse().unwrap(),
        name: "Nordtel".into(),
        branding: Branding {
            display_name: "Nordtel Fax – Kundeservice".into(),
            from_address: "fax@nordtel.test".parse().unwrap(),
            language: Language::Da,
        },
        default_country: "DK".parse().unwrap(),
        fax_domains: vec!["fax.nordtel.test".parse().unwrap()],
        paper: Paper::A4,
        time_zone: None,
        header_template: None,
        station_id: None,
    }
}

fn messages(maildir: &Path) -> Vec<String> {
    match std::fs::read_dir(maildir.join("new")) {
        Ok(d) => d.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect(),
        Err(_) => Vec::new(),
    }
}

fn setup() -> (tempfile::TempDir, Outbox, FakeClock) {
    let (tmp, outbox, clock, _) = setup_with_store();
    (tmp, outbox, clock)
}

fn setup_with_store() -> (tempfile::TempDir, Outbox, FakeClock, Store) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("data"), &tmp.path().join("data/keys")).unwrap();
    let clock = FakeClock::new("2026-11-28T02:00:00Z".parse().unwrap());
    let outbox = Outbox::open(&store, Arc::new(clock.clone())).unwrap();
    (tmp, outbox, clock, store)
}

fn relay_at(port: u16) -> Outgoing {
    Outgoing::new(&Destination::Relay {
        host: "127.0.0.1".into(),
        port,
        tls: RelayTls::None,
        credentials: None,
        ca: None,
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

#[tokio::test]
async fn relay_down_then_up_delivers_exactly_once() {
    let (tmp, outbox, clock) = setup();
    let held = crate::harness::HeldPort::tcp();
    let port = held.port;
    let out = relay_at(port);
    let pdf = OutAttachment {
        filename: "fax.pdf".into(),
        content_type: "application/pdf".into(),
        data: b"%PDF-1.4".to_vec(),
    };
    let id = outbox
        .enqueue(&tenant(), &["kunde@example.test".into()], "Fax fra +4570203040 – 2 sider", "Vedhæftet.", vec![pdf])
        .unwrap();

    assert_eq!(outbox.run_due(&out).await.unwrap(), 0, "the relay is down");
    let r = &outbox.list().unwrap()[0];
    assert_eq!((r.id, r.attempts, &r.state), (id, 1, &OutState::Scheduled));
    assert_eq!(r.next_attempt, clock.now() + SignedDuration::from_secs(60));
    assert!(r.last_error.as_deref().unwrap_or("").contains("relay"), "{r:?}");

    let maildir = tmp.path().join("relay-maildir");
    let _relay = Relay::start(port, &maildir);
    assert_eq!(outbox.run_due(&out).await.unwrap(), 0, "not due yet");
    assert!(messages(&maildir).is_empty());
    clock.advance(SignedDuration::from_secs(60));
    assert_eq!(outbox.run_due(&out).await.unwrap(), 1);
    assert!(outbox.list().unwrap().is_empty());
    clock.advance(SignedDuration::from_secs(3600));
    assert_eq!(outbox.run_due(&out).await.unwrap(), 0);
    let got = messages(&maildir);
    assert_eq!(got.len(), 1, "exactly once");
    assert!(got[0].contains("From: =?utf-8?b?") && got[0].contains("<fax@nordtel.test>"), "{}", got[0]);
    assert!(got[0].contains("Message-ID: <") && got[0].contains("@nordtel.test>"), "{}", got[0]);
    assert!(got[0].contains("filename=\"fax.pdf\""), "{}", got[0]);
}

#[tokio::test]
async fn a_5xx_reply_fails_the_message_for_good() {
    let (tmp, outbox, clock, store) = setup_with_store();
    let held = crate::harness::HeldPort::tcp();
    let port = held.port;
    let maildir = tmp.path().join("relay-maildir");
    let _relay = Relay::start(port, &maildir);
    let out = relay_at(port);
    outbox.enqueue(&tenant(), &["refuse@example.test".into()], "x", "y", vec![]).unwrap();
    assert_eq!(outbox.run_due(&out).await.unwrap(), 0);
    let r = &outbox.list().unwrap()[0];
    assert_eq!(r.state, OutState::Failed);
    assert!(r.last_error.as_deref().unwrap().contains("no such mailbox"), "{r:?}");
    assert_eq!(outbox.next_due().unwrap(), None);
    clock.advance(SignedDuration::from_hours(1));
    assert_eq!(outbox.run_due(&out).await.unwrap(), 0);
    assert!(messages(&maildir).is_empty());
    // The retention sweep keeps it for the configured period after it
    // failed (seven days by default, two here), then erases it with its key.
    let policy: faxgate::retention::Policy = toml::from_str(r#"outbox_failed = "2 days""#).unwrap();
    let swept = outbox_class::sweep(&store, &policy, clock.now()).unwrap();
    assert_eq!((swept.erased, swept.keys_destroyed.len()), (0, 0));
    assert_eq!(swept.next_due, Some(r.next_attempt + SignedDuration::from_hours(2 * 24)));
    let d = outbox_class::deadlines(&store, &Default::default()).unwrap();
    assert_eq!(d[0].due, r.next_attempt + SignedDuration::from_hours(7 * 24), "the default is seven days");
    clock.advance(SignedDuration::from_hours(2 * 24));
    let swept = outbox_class::sweep(&store, &policy, clock.now()).unwrap();
    let keys = swept.keys_destroyed;
    assert_eq!((swept.erased, keys.len()), (1, 1));
    assert!(outbox.list().unwrap().is_empty());
    assert!(!store.vault().list().unwrap().iter().any(|k| k.id.to_string() == keys[0]));
}

#[tokio::test]
async fn a_4xx_reply_is_retried_until_the_relay_accepts() {
    let (tmp, outbox, clock) = setup();
    let held = crate::harness::HeldPort::tcp();
    let port = held.port;
    let maildir = tmp.path().join("relay-maildir");
    let _relay = Relay::start(port, &maildir);
    let out = relay_at(port);
    outbox.enqueue(&tenant(), &["full@example.test".into()], "x", "y", vec![]).unwrap();
    assert_eq!(outbox.run_due(&out).await.unwrap(), 0);
    let r = &outbox.list().unwrap()[0];
    assert_eq!((r.attempts, &r.state), (1, &OutState::Scheduled), "{r:?}");
    assert!(r.last_error.as_deref().unwrap().contains("mailbox full"), "{r:?}");
    clock.advance(SignedDuration::from_secs(60));
    assert_eq!(outbox.run_due(&out).await.unwrap(), 0);
    let r = &outbox.list().unwrap()[0];
    assert_eq!((r.attempts, &r.state), (2, &OutState::Scheduled), "still temporary: {r:?}");
    assert_eq!(r.next_attempt, clock.now() + SignedDuration::from_secs(120), "backing off");
    std::fs::write(tmp.path().join("relay-maildir.room"), "").unwrap();
    clock.advance(SignedDuration::from_secs(120));
    assert_eq!(outbox.run_due(&out).await.unwrap(), 1);
    assert!(outbox.list().unwrap().is_empty());
    assert_eq!(messages(&maildir).len(), 1, "delivered once");
}

#[tokio::test]
async fn expiry_gives_up_after_five_days() {
    let (_tmp, outbox, clock) = setup();
    let held = crate::harness::HeldPort::tcp();
    let out = relay_at(held.port);
    outbox.enqueue(&tenant(), &["kunde@example.test".into()], "x", "y", vec![]).unwrap();
    let mut attempts = 0;
    while let Some(due) = outbox.next_due().unwrap() {
        clock.set(due);
        outbox.run_due(&out).await.unwrap();
        attempts += 1;
        assert!(attempts < 100);
    }
    let r = &outbox.list().unwrap()[0];
    assert_eq!(r.state, OutState::Failed);
    assert!(clock.now().duration_since(r.created) >= SignedDuration::from_hours(120));
    assert_eq!(r.attempts, attempts);
}

#[tokio::test]
async fn maildir_way_out() {
    let (tmp, outbox, _clock) = setup();
    let dir = tmp.path().join("maildir");
    let out = Outgoing::new(&Destination::Maildir(dir.clone())).unwrap();
    outbox.enqueue(&tenant(), &["kunde@example.test".into()], "Rapport: fax sendt", "OK", vec![]).unwrap();
    assert_eq!(outbox.run_due(&out).await.unwrap(), 1);
    let got = messages(&dir);
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("Subject: Rapport: fax sendt"), "{}", got[0]);
}

/// faxgate's own submission ports as the relay: STARTTLS (587) and implicit
/// TLS (465), each with AUTH, the certificate trusted through `relay_ca`.
#[tokio::test(flavor = "multi_thread")]
async fn relay_with_starttls_or_implicit_tls_and_auth() {
    let m = tokio::task::spawn_blocking(crate::mail::start).await.unwrap();
    let (_tmp, outbox, _clock) = setup();
    for (addr, tls) in [(&m.submission, RelayTls::StartTls), (&m.smtps, RelayTls::Implicit)] {
        let (host, port) = addr.rsplit_once(':').unwrap();
        let out = Outgoing::new(&Destination::Relay {
            host: host.into(),
            port: port.parse().unwrap(),
            tls,
            credentials: Some(("boss@customer.test".into(), crate::mail::PASSWORD.into())),
            ca: Some(m.ca.clone()),
            timeout: Duration::from_secs(20),
        })
        .unwrap();
        // The logged-in sender sends as itself (the sender rule): here the
        // tenant's From: address is the relay account's.
        let mut t = tenant();
        t.branding.from_address = "boss@customer.test".parse().unwrap();
        outbox.enqueue(&t, &["33221100@fax.acme.test".into()], "Fax, bitte", "Anbei.", vec![]).unwrap();
        assert_eq!(outbox.run_due(&out).await.unwrap(), 1, "{tls:?}: {:?}\n{}", outbox.list().unwrap(), m.daemon.log());
    }
    assert!(outbox.list().unwrap().is_empty());
    assert_eq!(m.daemon.log().matches("mail accepted").count(), 2, "{}", m.daemon.log());

    // A wrong password is a permanent refusal (535).
    let (host, port) = m.submission.rsplit_once(':').unwrap();
    let out = Outgoing::new(&Destination::Relay {
        host: host.into(),
        port: port.parse().unwrap(),
        tls: RelayTls::StartTls,
        credentials: Some(("boss@customer.test".into(), "wrong password".into())),
        ca: Some(m.ca.clone()),
        timeout: Duration::from_secs(20),
    })
    .unwrap();
    outbox.enqueue(&tenant(), &["33221100@fax.acme.test".into()], "x", "y", vec![]).unwrap();
    assert_eq!(outbox.run_due(&out).await.unwrap(), 0);
    let r = &outbox.list().unwrap()[0];
    assert_eq!(r.state, OutState::Failed, "{r:?}");
    assert!(r.last_error.as_deref().unwrap().contains("535"), "{r:?}");
}
