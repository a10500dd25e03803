//! A stop lets calls finish (`fax.drain_timeout`): SIGTERM during calls,
//! new mail refused with 421 meanwhile; a drain shorter than the call ends
//! it with BYE, and the fax is called again at the next start without
//! using up one of the customer's attempts.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::gateway::{Gw, Opts, cdrs, fixture, send_mail, start, wait_for_mail};

/// Waits (up to 60 s) until the log shows `needle` `n` times.
fn wait_for_count(g: &Gw, needle: &str, n: usize) {
    let until = Instant::now() + Duration::from_secs(60);
    while g.daemon.log().matches(needle).count() < n {
        assert!(Instant::now() < until, "log never showed {needle:?} {n} times:\n{}", g.daemon.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The first line a new SMTP connection gets.
fn greeting(addr: &str) -> String {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

#[test]
fn sigterm_lets_two_calls_finish_and_refuses_new_mail_meanwhile() {
    let g = start(Opts { numbers: 2, fax: "drain_timeout = 120", ..Default::default() });
    assert!(greeting(&g.submission).starts_with("220 "));
    send_mail(&g, &["33221100@fax.acme.test", "33221101@fax.acme.test"], "Drained", Some(&fixture("letter.pdf")));
    // Both calls are up (each one's incoming side recorded).
    wait_for_count(&g, "incoming call recorded", 2);
    let stopped = Instant::now();
    g.daemon.signal(Signal::SIGTERM);
    g.daemon.wait_for_log("stopping: no new mail or calls are taken");
    // New mail is refused while the calls go on.
    let refused = greeting(&g.submission);
    assert_eq!(refused, "421 4.3.2 service shutting down, try again later\r\n");
    assert!(!g.daemon.log().contains("drain over"), "the drain waits for the calls");
    // The daemon exits once the calls have ended on their own.
    let Gw { setup, mut daemon, submission, ca, out_port, in_port } = g;
    let status = daemon.wait(120);
    let log = daemon.log();
    drop(daemon);
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("drain over: 0 of 4 calls ended by the stop"), "{log}");
    assert!(stopped.elapsed() < Duration::from_secs(110), "well within the drain timeout");
    // Both faxes went through on their first attempt; both were received.
    let daemon = setup.start();
    let g = Gw { setup, daemon, submission, ca, out_port, in_port };
    let c = cdrs(&g);
    let out: Vec<_> = c.iter().filter(|x| x["direction"] == "mail-to-fax").collect();
    assert_eq!(out.len(), 2, "{c:#?}");
    assert!(out.iter().all(|x| x["attempt"] == 1 && x["t30_code"] == 0), "{out:#?}");
    let inn: Vec<_> = c.iter().filter(|x| x["direction"] == "fax-to-mail").collect();
    assert_eq!(inn.len(), 2, "{c:#?}");
    assert!(inn.iter().all(|x| x["t30_code"] == 0 && x["pages"] == 2), "{inn:#?}");
    // Two faxes mailed in and two reports, delivered, nothing else.
    let mails = wait_for_mail(&g, 4, 60);
    assert_eq!(mails.len(), 4);
    let reports: Vec<_> = mails.iter().filter(|(_, m)| m.contains("To: boss@customer.test")).collect();
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|(_, m)| m.contains("delivered (2 of 2 pages)")), "{reports:#?}");
}

#[test]
fn a_drain_shorter_than_the_call_ends_it_and_the_retry_does_not_use_up_an_attempt() {
    // One attempt in all: were the cut-off call counted, the fax would fail.
    let g = start(Opts { retry: "[]", fax: "drain_timeout = 1", ..Default::default() });
    send_mail(&g, &["33221100@fax.acme.test"], "Cut by a stop", Some(&fixture("letter.pdf")));
    g.daemon.wait_for_log("incoming call recorded");
    g.daemon.signal(Signal::SIGTERM);
    let Gw { setup, mut daemon, submission, ca, out_port, in_port } = g;
    let status = daemon.wait(30);
    let log = daemon.log();
    drop(daemon);
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("calls still under way at the end of the drain are ended (BYE)"), "{log}");
    assert!(log.contains("sent: BYE"), "a BYE went out:\n{log}");
    // The attempt is recorded as interrupted; no report was sent for it.
    let first = setup.json(&["cdr", "list"]);
    let out: Vec<_> = first.as_array().unwrap().iter().filter(|x| x["direction"] == "mail-to-fax").cloned().collect();
    assert_eq!(out.len(), 1, "{first:#}");
    assert!(out[0]["t30_text"].as_str().unwrap().contains("interrupted"), "{:#}", out[0]);
    let maildir = setup.data_dir().join("maildir/new");
    let reports_before = std::fs::read_dir(&maildir)
        .map(|r| r.flatten().filter(|e| std::fs::read_to_string(e.path()).unwrap().contains("To: boss@")).count())
        .unwrap_or(0);
    assert_eq!(reports_before, 0, "no report for an attempt cut off by a stop");
    // At the next start the fax is called again, at once, and delivered.
    let daemon = setup.start();
    let g = Gw { setup, daemon, submission, ca, out_port, in_port };
    let until = Instant::now() + Duration::from_secs(120);
    let report = loop {
        let m = crate::gateway::maildir(&g);
        if let Some((_, r)) = m.into_iter().find(|(_, m)| m.contains("To: boss@customer.test")) {
            break r;
        }
        assert!(Instant::now() < until, "no report:\n{}", g.daemon.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(report.contains("delivered (2 of 2 pages)"), "{report}");
    let c = cdrs(&g);
    let mut out: Vec<_> = c.iter().filter(|x| x["direction"] == "mail-to-fax").collect();
    out.sort_by_key(|x| x["attempt"].as_u64());
    assert_eq!(out.len(), 2, "{c:#?}");
    assert_eq!((out[1]["attempt"].as_u64(), out[1]["t30_code"].as_i64()), (Some(2), Some(0)), "{:#}", out[1]);
}
