//! The queue and the outbox steered from the CLI on the running binary:
//! waiting, held and retrying jobs listed, shown and steered (retry,
//! cancel, hold, release; a tenant's admin sees only its own); the outbox
//! after the relay returns (flush, drop, why a message waits).
//!
//! The outbound trunk calls a SIP peer (a short Python script on loopback
//! UDP) that rings and never answers: each call ends after the trunk's
//! answer timeout (4 s) as "no answer", with the retry 10 minutes away, so
//! every further call in the test is one the CLI asked for.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::gateway::{Gw, Opts, fixture, header, send_mail, start, wait_for_mail};

const RINGING_PEER: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
print("port", port, flush=True)
invites = {}
def field(lines, *names):
    return [l for l in lines if l.split(":", 1)[0].strip().lower() in names]
def send(status, lines, addr, tag=True):
    out = []
    for l in field(lines, "via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"):
        if tag and l.split(":", 1)[0].strip().lower() in ("to", "t") and ";tag=" not in l:
            l += ";tag=ringing"
        out.append(l)
    out.append("Contact: <sip:peer@127.0.0.1:%d>" % port)
    s.sendto(("SIP/2.0 %s\r\n%s\r\nContent-Length: 0\r\n\r\n" % (status, "\r\n".join(out))).encode(), addr)
while True:
    data, addr = s.recvfrom(65535)
    lines = data.decode("utf-8", "replace").split("\r\n\r\n", 1)[0].split("\r\n")
    if lines[0].startswith("SIP/2.0"):
        continue
    method, uri = lines[0].split(" ")[:2]
    call_id = field(lines[1:], "call-id", "i")[0].split(":", 1)[1].strip()
    if method == "INVITE":
        if call_id not in invites:
            print("INVITE", uri.split(":", 1)[1].split("@")[0], flush=True)
        invites[call_id] = lines[1:]
        send("100 Trying", lines[1:], addr, tag=False)
        send("180 Ringing", lines[1:], addr)
    elif method == "CANCEL":
        send("200 OK", lines[1:], addr)
        if call_id in invites:
            send("487 Request Terminated", invites[call_id], addr)
    elif method != "ACK":
        send("200 OK", lines[1:], addr)
"#;

/// A SIP peer that rings and never answers; the numbers it was called for.
struct RingingPeer {
    child: Child,
    port: u16,
    called: Arc<Mutex<Vec<String>>>,
}

impl RingingPeer {
    fn start() -> RingingPeer {
        let mut child = Command::new("/usr/bin/python3")
            .args(["-c", RINGING_PEER])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let port = first.strip_prefix("port ").unwrap().parse().unwrap();
        let called = Arc::new(Mutex::new(Vec::new()));
        let c = called.clone();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                if let Some(n) = l.strip_prefix("INVITE ") {
                    c.lock().unwrap().push(n.to_owned());
                }
            }
        });
        RingingPeer { child, port, called }
    }

    fn called(&self) -> Vec<String> {
        self.called.lock().unwrap().clone()
    }
}

impl Drop for RingingPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn jobs(g: &Gw, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["queue", "list"];
    a.extend_from_slice(args);
    g.setup.json(&a).as_array().cloned().unwrap()
}

/// Waits (up to 30 s) until `queue list` satisfies `ok`.
fn wait_for_jobs(g: &Gw, what: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let j = jobs(g, &[]);
        if ok(&j) {
            return j;
        }
        assert!(Instant::now() < until, "queue never showed {what}: {j:#?}\n{}", g.daemon.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn state_of<'a>(jobs: &'a [Value], to: &str) -> &'a str {
    jobs.iter().find(|j| j["to"] == to).and_then(|j| j["state"].as_str()).unwrap_or("gone")
}

#[test]
fn held_waiting_and_retrying_jobs_are_listed_and_steered() {
    let peer = RingingPeer::start();
    // Media time is real time here: each call rings the full 4 s.
    let g = start(Opts {
        retry: "[600, 600, 600]",
        peer_port: Some(peer.port),
        channels: 1,
        numbers: 2,
        clock_rate: 1.0,
        ..Default::default()
    });
    let (a, b) = ("+4533221100", "+4533221101");
    send_mail(&g, &["33221100@fax.acme.test", "33221101@fax.acme.test"], "Queue", Some(&fixture("letter.pdf")));

    // One channel: one job rings, the other waits for the channel.
    let list = wait_for_jobs(&g, "a call and a waiting job", |j| {
        j.len() == 2 && j.iter().any(|x| x["state"] == "calling") && j.iter().any(|x| x["state"] == "waiting")
    });
    let first = list.iter().find(|x| x["state"] == "calling").unwrap()["to"].as_str().unwrap().to_owned();
    let (first, second) = if first == a { (a, b) } else { (b, a) };
    let id = |to: &str| jobs(&g, &[]).iter().find(|x| x["to"] == to).unwrap()["id"].as_str().unwrap().to_owned();
    let (first_id, second_id) = (id(first), id(second));
    // The waiting job is held before the channel is free.
    let held = g.setup.json(&["queue", "hold", &second_id]);
    assert_eq!(held["state"], "held", "{held:#}");
    assert!(g.setup.fails(&["queue", "hold", &second_id]).contains("already held"));
    assert!(g.setup.fails(&["queue", "cancel", &first_id]).contains("is being called now"));

    // The call is not answered: retrying in 10 minutes, and the log says when.
    let list = wait_for_jobs(&g, "the first job retrying", |j| state_of(j, first) == "retrying");
    g.daemon.wait_for_log("next attempt at");
    let r = list.iter().find(|x| x["to"] == first).unwrap();
    assert_eq!((r["attempts"].as_u64(), r["last_outcome"].as_str()), (Some(1), Some("no-answer")), "{r:#}");
    let created: jiff::Timestamp = r["created"].as_str().unwrap().parse().unwrap();
    let next: jiff::Timestamp = r["next_attempt"].as_str().unwrap().parse().unwrap();
    assert!(next.duration_since(created) >= jiff::SignedDuration::from_secs(600), "{r:#}");
    let shown = g.setup.json(&["queue", "show", &first_id]);
    let h = &shown["history"][0];
    assert_eq!((h["attempt"].as_u64(), h["outcome"].as_str()), (Some(1), Some("no-answer")), "{shown:#}");
    assert_eq!(h["cause"], "nobody answered", "{shown:#}");
    assert!(h["sip_status"].as_u64().is_some() && h["cdr"].is_string(), "{shown:#}");
    assert_eq!((shown["pages"].as_u64(), shown["pages_sent"].as_u64()), (Some(2), Some(0)), "{shown:#}");
    assert_eq!(shown["subject"], "Queue", "{shown:#}");
    // By state, and for people.
    let held: Vec<Value> = jobs(&g, &["--state", "held"]);
    assert_eq!((held.len(), held[0]["to"].as_str()), (1, Some(second)), "{held:#?}");
    assert_eq!(jobs(&g, &["--state", "queued"]).len(), 1);
    assert_eq!(jobs(&g, &["--state", "waiting"]).len(), 0);
    let text = g.setup.ok(&["queue", "list"]);
    assert!(text.contains(&format!("{second_id}  held ")), "{text}");
    assert!(text.contains("last no-answer"), "{text}");

    // Retried by hand: called now (an attempt of the schedule), while the
    // held job stays out.
    g.setup.json(&["queue", "retry", &first_id]);
    wait_for_jobs(&g, "the retry ringing", |j| state_of(j, first) == "calling");
    wait_for_jobs(&g, "the retry over", |j| state_of(j, first) == "retrying");
    assert_eq!(jobs(&g, &["--state", "held"]).len(), 1);
    assert_eq!(peer.called(), [first, first], "only the first job was called");

    // A tenant's admin sees its own jobs, another tenant none of them.
    assert_eq!(g.setup.json(&["--as-tenant", "acme", "queue", "list"]).as_array().unwrap().len(), 2);
    assert_eq!(g.setup.json(&["--as-tenant", "other", "queue", "list"]).as_array().unwrap().len(), 0);
    assert!(g.setup.fails(&["--as-tenant", "other", "queue", "show", &first_id]).contains("no fax job"));
    assert!(g.setup.fails(&["--as-tenant", "other", "queue", "cancel", &first_id]).contains("no fax job"));
    assert!(g.setup.fails(&["--as-tenant", "other", "queue", "list", "--tenant", "acme"]).contains("no tenant"));

    // Released, the held job is called.
    assert_eq!(g.setup.json(&["queue", "release", &second_id])["state"], "waiting");
    wait_for_jobs(&g, "the released job retrying", |j| state_of(j, second) == "retrying");
    assert_eq!(peer.called(), [first, first, second]);

    // Cancelled: given up at once, and its sender is told.
    let c = g.setup.json(&["queue", "cancel", &first_id]);
    assert_eq!((c["state"].as_str(), c["last_outcome"].as_str()), (Some("failed"), Some("cancelled")), "{c:#}");
    let mails = wait_for_mail(&g, 1, 30);
    let report = &mails[0].1;
    assert_eq!(header(report, "Subject"), Some(format!("Fax to {first} NOT delivered").as_str()), "{report}");
    assert!(report.contains("cancelled before it was sent"), "{report}");
    assert!(g.setup.fails(&["queue", "retry", &first_id]).contains("is finished"));

    // Without the daemon, the CLI steers the store; the next start keeps it.
    let Gw { setup, daemon, .. } = g;
    assert_eq!(daemon.stop().code(), Some(0));
    let held = setup.json(&["queue", "hold", &second_id]);
    assert_eq!(held["state"], "held", "{held:#}");
    let daemon = setup.start();
    let list = setup.json(&["queue", "list", "--state", "held"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list:#}\n{}", daemon.log());
}

/// Reports of faxes to a number that does not exist (refused with 404 by
/// the daemon's own inbound trunk) wait in the outbox while the relay is
/// down; one is dropped, the other flushed once the relay is back.
#[test]
fn the_outbox_is_listed_dropped_and_flushed_after_the_relay_returns() {
    let held = crate::harness::HeldPort::tcp();
    let port = held.port;
    let extra = format!(
        "\n[mail]\ntransport = \"relay\"\nrelay_host = \"127.0.0.1\"\nrelay_port = {port}\n\
         relay_tls = \"none\"\nrelay_timeout = 5\nretry_delays = [600]\n"
    );
    let g = start(Opts { extra, ..Default::default() });
    send_mail(&g, &["33221101@fax.acme.test"], "First", Some(&fixture("letter.pdf")));
    send_mail(&g, &["33221102@fax.acme.test"], "Second", Some(&fixture("letter.pdf")));
    let until = Instant::now() + Duration::from_secs(30);
    let list = loop {
        let l = g.setup.json(&["outbox", "list"]).as_array().cloned().unwrap();
        if l.len() == 2 && l.iter().all(|m| m["attempts"] == 1) {
            break l;
        }
        assert!(Instant::now() < until, "outbox: {l:#?}\n{}", g.daemon.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    // The relay being down is a warning that says when the next attempt is.
    let log = g.daemon.log();
    assert!(log.lines().any(|l| l.contains("WARN") && l.contains("mail delivery deferred; next attempt at")), "{log}");
    for m in &list {
        assert_eq!((m["state"].as_str(), m["to"][0].as_str()), (Some("waiting"), Some("boss@customer.test")), "{m:#}");
        assert!(m["last_error"].as_str().unwrap().contains("relay"), "{m:#}");
        assert!(m["subject"].as_str().unwrap().contains("NOT delivered"), "{m:#}");
    }
    let (keep, drop) = (list[0]["id"].as_str().unwrap(), list[1]["id"].as_str().unwrap());
    let shown = g.setup.json(&["outbox", "show", keep]);
    let why = shown["why"].as_str().unwrap();
    assert!(why.starts_with("attempt 2 is due at ") && why.contains("attempt 1 failed: relay"), "{shown:#}");
    let text = g.setup.ok(&["outbox", "list"]);
    assert!(text.contains(&format!("{keep}  waiting  to boss@customer.test  attempts 1")), "{text}");
    // Another tenant's admin sees none of it, and cannot drop it.
    assert_eq!(g.setup.json(&["--as-tenant", "other", "outbox", "list"]).as_array().unwrap().len(), 0);
    assert!(g.setup.fails(&["--as-tenant", "other", "outbox", "drop", drop]).contains("no message"));
    assert_eq!(g.setup.json(&["--as-tenant", "other", "outbox", "flush"])["flushed"], 0);

    assert_eq!(g.setup.json(&["outbox", "drop", drop])["state"], "dropped");
    assert!(g.setup.fails(&["outbox", "show", drop]).contains("no message"));
    let relay_box = g.setup.path().join("relay");
    let _relay = crate::outbox::Relay::start(port, &relay_box);
    assert_eq!(g.setup.json(&["outbox", "flush"])["flushed"], 1);
    let until = Instant::now() + Duration::from_secs(30);
    while !g.setup.json(&["outbox", "list"]).as_array().unwrap().is_empty() {
        assert!(Instant::now() < until, "not flushed; log:\n{}", g.daemon.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let got: Vec<String> = std::fs::read_dir(relay_box.join("new"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(got.len(), 1, "the dropped message stays dropped: {got:#?}");
    assert!(got[0].contains("NOT delivered"), "{}", got[0]);
}
