//! The mail leg under abuse, as an attacker on the same network would try
//! it, against the running binary: TLS handshakes that never end, clients
//! that send a byte every 5 s, more connections than allowed or than file
//! descriptors, and password guessing (checked against the fail2ban filter
//! in contrib/fail2ban with Debian's fail2ban-regex). Deadlines are
//! configured short so that each test waits seconds, not minutes.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{BIN, Daemon, Setup};
use crate::mail::{self, PASSWORD};

/// Reads lines until the server closes (or 20 s pass); what it said and when it closed.
fn until_closed<R: BufRead>(r: &mut R) -> (String, Instant) {
    let mut said = String::new();
    let _ = r.read_to_string(&mut said);
    (said, Instant::now())
}

fn connect(addr: &str) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    BufReader::new(s)
}

fn line<R: BufRead>(r: &mut R) -> String {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    l
}

/// Sends one byte of `text` every 5 s from its own thread, until the
/// connection fails.
fn one_byte_every_5_s(mut w: TcpStream, text: &'static str) {
    std::thread::spawn(move || {
        for b in text.bytes().cycle() {
            if w.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(5));
        }
    });
}

#[test]
fn stalled_tls_handshakes_and_senders_of_a_byte_every_5_s_are_closed_within_their_deadlines() {
    let m = mail::start_with("tls_handshake_timeout = 1\nmin_rate = 2\nrate_window = 4\n");
    let implicit = {
        let addr = m.smtps.clone();
        std::thread::spawn(move || {
            // Connects to the implicit TLS port and never says hello.
            let mut c = connect(&addr);
            let t0 = Instant::now();
            let (said, closed) = until_closed(&mut c);
            (said, closed - t0)
        })
    };
    let starttls = {
        let addr = m.submission.clone();
        std::thread::spawn(move || {
            let mut c = connect(&addr);
            line(&mut c);
            c.get_mut().write_all(b"EHLO c\r\nSTARTTLS\r\n").unwrap();
            while !line(&mut c).starts_with("220 ") {}
            // Told to begin TLS, and never does.
            let t0 = Instant::now();
            let (said, closed) = until_closed(&mut c);
            (said, closed - t0)
        })
    };
    let slow = |before: &'static str| {
        let addr = m.smtp.clone();
        std::thread::spawn(move || {
            let mut c = connect(&addr);
            line(&mut c);
            c.get_mut().write_all(before.as_bytes()).unwrap();
            if !before.is_empty() {
                while !line(&mut c).starts_with("354 ") {}
            }
            let t0 = Instant::now();
            one_byte_every_5_s(c.get_ref().try_clone().unwrap(), "NOOP NOOP NOOP\r\n");
            let (said, closed) = until_closed(&mut c);
            (said, closed - t0)
        })
    };
    let command = slow("");
    let data = slow("EHLO c\r\nMAIL FROM:<alice@customer.test>\r\nRCPT TO:<33221100@fax.acme.test>\r\nDATA\r\n");

    for (what, handle) in [("implicit TLS", implicit), ("STARTTLS", starttls)] {
        let (said, took) = handle.join().unwrap();
        assert_eq!(said, "", "{what}: nothing said in the middle of a handshake");
        assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "{what}: closed after {took:?}");
    }
    for (what, handle) in [("a command", command), ("a message", data)] {
        let (said, took) = handle.join().unwrap();
        assert_eq!(said, "421 4.4.2 too slow (less than 2 bytes a second), closing connection\r\n", "{what}");
        // One window of 4 s in which one byte came, fewer than 8.
        assert!(
            took >= Duration::from_millis(3900) && took < Duration::from_millis(6500),
            "{what}: closed after {took:?}"
        );
    }
    // The daemon serves on.
    let ok = mail::swaks(
        &m.smtp,
        &["--from", "alice@customer.test", "--to", "33221100@fax.acme.test", "--header", "From: alice@customer.test"],
    );
    assert!(ok.contains("250 2.0.0 queued as job-"), "{ok}\n{}", m.daemon.log());
}

#[test]
fn connections_beyond_a_listeners_limit_and_the_total_are_refused_with_421() {
    let setup = Setup::new();
    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        format!(
            "{config}\n[smtp]\nmax_connections = 3\nmax_connections_per_address = 100\n\
             [[smtp.listen]]\naddress = \"127.0.0.1:0\"\nmax_connections = 2\n\
             [[smtp.listen]]\naddress = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    let daemon = setup.start();
    let addrs: Vec<String> =
        daemon.announced.lock().unwrap().iter().filter_map(|l| l.strip_prefix("smtp ").map(str::to_owned)).collect();
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    let greet = |addr: &str| {
        let mut c = connect(addr);
        let l = line(&mut c);
        (c, l)
    };
    let (_a1, l) = greet(&addrs[0]);
    assert!(l.starts_with("220 "), "{l}");
    let (_a2, l) = greet(&addrs[0]);
    assert!(l.starts_with("220 "), "{l}");
    let (_, l) = greet(&addrs[0]);
    assert_eq!(l, "421 4.7.0 too many connections, try again later\r\n", "the first listener's own limit");
    let (_b1, l) = greet(&addrs[1]);
    assert!(l.starts_with("220 "), "{l}");
    let (_, l) = greet(&addrs[1]);
    assert_eq!(l, "421 4.7.0 too many connections, try again later\r\n", "three in all");
    for _ in 0..20 {
        greet(&addrs[1]);
    }
    // Refusals are counted, not each logged.
    let refusals = daemon.log().matches("smtp connection refused").count();
    assert!((1..=2).contains(&refusals), "{refusals} lines:\n{}", daemon.log());
}

#[test]
fn out_of_file_descriptors_the_log_stays_small_and_the_admin_socket_answers_again() {
    let setup = Setup::new();
    let config = std::fs::read_to_string(&setup.config).unwrap();
    // More connections allowed than 128 open files can hold, so that
    // accept runs out of descriptors.
    std::fs::write(
        &setup.config,
        format!(
            "{config}\n[smtp]\nmax_connections = 1000\nmax_connections_per_address = 1000\n\
             [[smtp.listen]]\naddress = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new("prlimit");
    cmd.arg("--nofile=128").arg("--").arg(BIN).arg("--config").arg(&setup.config).arg("serve");
    let daemon = Daemon::spawn(cmd);
    daemon.wait_for_log("open files at most 128");
    let addr = daemon.announced("smtp");
    // 200: more than the daemon can accept, and fewer than it can accept
    // plus its listen backlog (128) holds, so that every connect completes.
    let held: Vec<TcpStream> = (0..200).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    daemon.wait_for_log("accept failed: Too many open files");
    // A CLI command while no descriptor is free waits in the admin socket's backlog.
    let status = Command::new(BIN)
        .arg("--config")
        .arg(&setup.config)
        .args(["--json", "status"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let before = daemon.log().len();
    std::thread::sleep(Duration::from_secs(5));
    let grown = daemon.log().len() - before;
    // One WARN line per listener and 10 s at most (before the fix: 1.3 GB in 30 s).
    assert!(grown < 1000, "the log grew by {grown} bytes in 5 s:\n{}", &daemon.log()[before..]);
    drop(held);
    let out = status.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["daemon"], true, "{v}");
    daemon.wait_for_log("accepting again after");
    // And mail is served again.
    let mut c = connect(&addr);
    assert!(line(&mut c).starts_with("220 "));
}

#[test]
fn fifty_wrong_passwords_are_delayed_then_locked_out_logged_for_fail2ban_and_then_the_right_one_works() {
    let m = mail::start_with(
        "auth_delay = 0.1\nauth_max_delay = 0.8\nauth_max_failures_per_address = 5\n\
         auth_max_failures_per_user = 1000\nauth_lockout = 5\n",
    );
    let (host, port) = m.submission.rsplit_once(':').unwrap();
    let script = format!(
        r#"
import smtplib, ssl, threading, time
ctx = ssl.create_default_context(cafile="{ca}")
def connect():
    s = smtplib.SMTP("{host}", {port}, local_hostname="client.test")
    s.starttls(context=ctx)
    s.ehlo()
    return s
def attempt(s, password):
    s.user, s.password = "boss@customer.test", password
    t = time.monotonic()
    try:
        code, text = s.auth("PLAIN", s.auth_plain)
    except smtplib.SMTPAuthenticationError as e:
        code, text = e.smtp_code, e.smtp_error
    return code, time.monotonic() - t, text.decode()
# Five, one after the other on one connection: each answered later than the one before.
s = connect()
for i in range(5):
    code, took, text = attempt(s, "guess-%d" % i)
    print("first", code, "%.3f" % took, text)
locked_at = time.monotonic()
s.quit()
# 45 more from 15 connections at once.
results = []
def guesser(n):
    c = connect()
    for i in range(3):
        results.append(attempt(c, "guess-%d-%d" % (n, i)))
    c.quit()
threads = [threading.Thread(target=guesser, args=(n,)) for n in range(15)]
for t in threads: t.start()
for t in threads: t.join()
print("then", sorted(set(r[0] for r in results)), len(results), results[0][2])
s = connect()
print("right-while-locked", attempt(s, "{pw}")[0])
time.sleep(max(0, locked_at + 5.2 - time.monotonic()))
print("right-after", attempt(s, "{pw}")[0])
s.quit()
"#,
        ca = m.ca.display(),
        pw = PASSWORD
    );
    let out = Command::new("/usr/bin/python3").arg("-c").arg(&script).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}\n{}", String::from_utf8_lossy(&out.stderr), m.daemon.log());
    let first: Vec<(u16, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("first "))
        .map(|l| {
            let mut w = l.split(' ');
            (w.next().unwrap().parse().unwrap(), w.next().unwrap().parse().unwrap())
        })
        .collect();
    assert_eq!(first.iter().map(|f| f.0).collect::<Vec<_>>(), [535; 5], "{text}");
    // Delays of 0.1, 0.2, 0.4, 0.8 and 0.8 s on top of checking the password.
    for (i, min) in [0.1, 0.2, 0.4, 0.8, 0.8].into_iter().enumerate() {
        assert!(first[i].1 >= min, "attempt {i} answered after {} s: {text}", first[i].1);
    }
    assert!(first[3].1 > first[0].1 + 0.5, "later attempts are delayed more: {text}");
    assert!(text.contains("then [454] 45 4.7.0 too many failed logins; try again in"), "{text}");
    assert!(text.contains("right-while-locked 454"), "{text}");
    assert!(text.contains("right-after 235"), "{text}\n{}", m.daemon.log());

    // Every failure at WARN with the address and the user name.
    let log = m.daemon.log();
    // The user name as its log hash: the address itself is never written.
    let user = format!("user={}", m.setup.ok(&["log", "hash", "boss@customer.test"]).trim());
    assert!(user.starts_with("user=a:"), "{user}");
    let failed: Vec<&str> = log.lines().filter(|l| l.contains("smtp auth failed from 127.0.0.1")).collect();
    assert_eq!(failed.len(), 5, "{log}");
    assert!(failed.iter().all(|l| l.contains(" WARN ") && l.contains(&user)), "{user}: {failed:#?}");
    assert!(!log.contains("boss@customer.test"), "{log}");
    assert!(failed[4].contains("locked out for 5 s"), "{failed:#?}");
    let refused = log.lines().filter(|l| l.contains("smtp auth refused from 127.0.0.1")).count();
    assert_eq!(refused, 46, "{log}");
    // fail2ban finds the 51 attempts, and the address alone.
    let file = m.setup.path().join("faxgate.log");
    std::fs::write(&file, &log).unwrap();
    let filter = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/fail2ban/filter.d/faxgate.conf");
    let out = Command::new("fail2ban-regex")
        .args(["-o", "ip"])
        .arg(&file)
        .arg(filter)
        .output()
        .expect("fail2ban-regex is installed (scripts/packages.sh)");
    let ips = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{ips}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ips.lines().filter(|l| !l.is_empty()).collect::<Vec<_>>(), vec!["127.0.0.1"; 51], "{ips}");
}
