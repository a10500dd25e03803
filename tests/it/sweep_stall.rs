//! A retention sweep over many CDRs while the daemon serves SMTP and SIP:
//! the longest time a client waits for an answer during the sweep.
//!
//! The store is loaded, before the daemon starts, with CDRs of one month
//! more than a year ago (`FAXGATE_STALL_CDRS`, default 50,000 in the test
//! suite; 1,000,000 for the figure in BENCHMARKS.md). The daemon's sweeper
//! erases that month at start; meanwhile one client keeps opening SMTP
//! sessions (greeting, EHLO, QUIT) and another keeps sending SIP OPTIONS to
//! a trunk, each measuring how long every answer takes.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use faxgate::cdr::{CdrStore, example as cdr};
use faxgate::store::Store;
use jiff::{SignedDuration, Timestamp};

use crate::harness::Setup;

fn smtp_probe(addr: &str) -> Duration {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("220"), "{line}");
    s.write_all(b"EHLO probe.test\r\n").unwrap();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("250"), "{line}");
        if line.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    }
    s.write_all(b"QUIT\r\n").unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    t.elapsed()
}

fn sip_probe(sock: &UdpSocket, to: &str, n: u64) -> Duration {
    let local = sock.local_addr().unwrap();
    let msg = format!(
        "OPTIONS sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKprobe{n};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=p{n}\r\nTo: <sip:{to}>\r\n\
         Call-ID: probe-{n}@{local}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    let t = Instant::now();
    sock.send_to(msg.as_bytes(), to).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let (len, _) = sock.recv_from(&mut buf).expect("an answer to OPTIONS within 30 s");
        let text = String::from_utf8_lossy(&buf[..len]);
        if text.contains(&format!("probe-{n}@")) && text.starts_with("SIP/2.0 200") {
            return t.elapsed();
        }
    }
}

/// Writes `n` CDRs of one month 13 months ago into the setup's store while
/// no daemon runs; returns that month as `YYYY-MM`.
pub(crate) fn load_old_month(setup: &Setup, n: u64) -> String {
    let store = Store::open(&setup.data_dir(), &setup.data_dir().join("keys")).unwrap();
    let cdrs = CdrStore::open(&store).unwrap();
    let month_start: Timestamp = (Timestamp::now() - SignedDuration::from_hours(24 * 400))
        .to_zoned(jiff::tz::TimeZone::UTC)
        .first_of_month()
        .unwrap()
        .start_of_day()
        .unwrap()
        .timestamp();
    let step = (20 * 24 * 3_600_000) / n.max(1);
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        batch.push(cdr(i, month_start + SignedDuration::from_millis((i * step) as i64)));
        if batch.len() == 10_000 {
            cdrs.write_many(&batch).unwrap();
            batch.clear();
        }
    }
    cdrs.write_many(&batch).unwrap();
    store.flush().unwrap();
    month_start.strftime("%Y-%m").to_string()
}

#[test]
fn a_sweep_over_many_cdrs_does_not_stall_smtp_or_sip() {
    let n: u64 = std::env::var("FAXGATE_STALL_CDRS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
    // The trunk's peer is the probe's socket; the trunk's own socket is
    // handed to the daemon.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer_port = probe.local_addr().unwrap().port();
    let mut setup = Setup::new();
    let sip_port = setup.udp_socket().port();
    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        format!(
            "{config}\n[smtp]\nhostname = \"probe.test\"\n[[smtp.listen]]\naddress = \"127.0.0.1:0\"\nmode = \"smtp\"\n\n\
             [[trunk]]\nname = \"t\"\nbind = \"127.0.0.1:{sip_port}\"\naddress = \"127.0.0.1\"\nport = {peer_port}\n"
        ),
    )
    .unwrap();
    // Load the CDRs: one month, 13 months ago.
    let t = Instant::now();
    load_old_month(&setup, n);
    eprintln!("loaded {n} CDRs in {:.1?}", t.elapsed());
    let daemon = setup.start();
    let started = Instant::now();
    let smtp = daemon.announced("smtp");
    let sip = format!("127.0.0.1:{sip_port}");
    let done = Arc::new(AtomicBool::new(false));
    let smtp_worst = {
        let done = done.clone();
        std::thread::spawn(move || {
            let (mut worst, mut count) = (Duration::ZERO, 0);
            while !done.load(Ordering::Relaxed) {
                worst = worst.max(smtp_probe(&smtp));
                count += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (worst, count)
        })
    };
    let sip_worst = {
        let done = done.clone();
        std::thread::spawn(move || {
            let sock = probe;
            sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let (mut worst, mut count) = (Duration::ZERO, 0);
            while !done.load(Ordering::Relaxed) {
                worst = worst.max(sip_probe(&sock, &sip, count));
                count += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (worst, count)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    while !daemon.log().contains("category=\"cdr\"") && !daemon.log().contains("category=cdr") {
        assert!(Instant::now() < deadline, "no CDR sweep; log:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let sweep = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let (smtp_worst, smtp_count) = smtp_worst.join().unwrap();
    let (sip_worst, sip_count) = sip_worst.join().unwrap();
    eprintln!(
        "sweep of {n} CDRs within {sweep:.1?} of the start; longest SMTP session {smtp_worst:.1?} \
         ({smtp_count} sessions), longest OPTIONS answer {sip_worst:.1?} ({sip_count} requests)"
    );
    daemon.wait_for_log(&format!("erased={n}"));
    assert!(smtp_count > 0 && sip_count > 0);
    assert!(smtp_worst < Duration::from_secs(1), "SMTP stalled for {smtp_worst:?}");
    assert!(sip_worst < Duration::from_secs(1), "SIP stalled for {sip_worst:?}");
    setup.ok(&["retention", "audit"]);
}
