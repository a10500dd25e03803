//! Two fax legs in two processes (`faxleg`), real SIP and media over
//! loopback UDP. Media runs faster than real time by the same factor at both
//! ends (spandsp counts samples), except in the real-time call.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::leg::Leg;
use common::{assert_pixels_equal, make_tiff, spec, tmpdir};
use faxgate_t38::testpage::{Length, VRes, Width};
use serde_json::Value;

/// Media time per real second in these tests.
const SCALE: &str = "8";

/// `args`, with `--scale SCALE` unless they name a scale of their own.
fn scaled<'a>(mut args: Vec<&'a str>, extra: &[&'a str]) -> Vec<&'a str> {
    if !extra.contains(&"--scale") {
        args.extend_from_slice(&["--scale", SCALE]);
    }
    args.extend_from_slice(extra);
    args
}

fn receiver(dir: &Path, extra: &[&str]) -> Leg {
    let args = vec!["receive", "--bind", "127.0.0.1:0", "--trunk", "127.0.0.1", "--dir", dir.to_str().unwrap()];
    Leg::start("receiver", dir, &scaled(args, extra))
}

fn sender(dir: &Path, to: SocketAddr, tiff: &Path, extra: &[&str]) -> Leg {
    let trunk = to.to_string();
    let args = vec![
        "send",
        "--bind",
        "127.0.0.1:0",
        "--trunk",
        trunk.as_str(),
        "--to",
        "100",
        "--tiff",
        tiff.to_str().unwrap(),
    ];
    Leg::start("sender", dir, &scaled(args, extra))
}

fn short_page(dir: &Path, pages: u32) -> PathBuf {
    make_tiff(dir, "send", &spec(Width::A4, Length::Mm(80), VRes::Fine, 7), pages, false)
}

fn received_file(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("100-"))
        .expect("a received TIFF")
}

const CALL: Duration = Duration::from_secs(60);

fn assert_ok(r: &Value) {
    assert_eq!(r["ok"], true, "{r:#}");
}

#[test]
fn t38_after_reinvite_from_receiver() {
    let dir = tmpdir("sip-reinvite");
    let tiff = short_page(&dir, 2);
    let rx = receiver(&dir, &[]);
    let tx = sender(&dir, rx.addr, &tiff, &[]);
    let s = tx.json(CALL);
    let r = rx.json(CALL);
    assert_ok(&s);
    assert_ok(&r);
    assert_eq!(s["t38"], true, "{s:#}");
    assert_eq!(r["t38"], true, "{r:#}");
    // Started on audio and switched once (T.30 restarts on T.38).
    assert_eq!(r["switches"], 1, "{r:#}");
    assert_eq!(r["states"][2], "SwitchingToT38", "the receiver asked: {r:#}");
    assert!(r["udptl_in"].as_u64().unwrap() > 0);
    // Whichever side reaches phase E first hangs up; the other sees the BYE.
    assert_ne!(r["peer_hung_up"], s["peer_hung_up"], "exactly one BYE: {r:#} {s:#}");
    assert_pixels_equal(&tiff, &received_file(&dir), 2);
}

#[test]
fn t38_in_initial_invite() {
    let dir = tmpdir("sip-initial");
    let tiff = short_page(&dir, 1);
    let rx = receiver(&dir, &[]);
    let tx = sender(&dir, rx.addr, &tiff, &["--media", "t38-initial"]);
    let s = tx.json(CALL);
    let r = rx.json(CALL);
    assert_ok(&s);
    assert_ok(&r);
    assert_eq!(r["t38"], true);
    assert_eq!(r["switches"], 0, "{r:#}");
    assert_eq!(r["rtp_in"], 0);
    assert_pixels_equal(&tiff, &received_file(&dir), 1);
}

#[test]
fn g711_when_reinvite_refused() {
    let dir = tmpdir("sip-g711");
    let tiff = short_page(&dir, 1);
    // Audio is timing-sensitive: a lower factor leaves the jitter buffer
    // (100 ms of call time) more real slack on a loaded machine.
    let rx = receiver(&dir, &["--media", "audio-only", "--scale", "3"]);
    let tx = sender(&dir, rx.addr, &tiff, &["--sender-delay", "2", "--scale", "3"]);
    let s = tx.json(CALL);
    let r = rx.json(CALL);
    assert_ok(&s);
    assert_ok(&r);
    assert_eq!(s["t38"], false, "{s:#}");
    assert_eq!(s["t38_refused"], 1, "the sender asked and got 488: {s:#}");
    assert!(r["rtp_in"].as_u64().unwrap() > 100, "{r:#}");
    assert_pixels_equal(&tiff, &received_file(&dir), 1);
}

#[test]
fn busy_and_bad_number() {
    let dir = tmpdir("sip-busy");
    let tiff = short_page(&dir, 1);
    let rx = receiver(&dir, &["--channels", "1", "--busy-status", "486", "--numbers", "100"]);
    let first = sender(&dir, rx.addr, &tiff, &[]);
    // The first call holds the only channel for several seconds.
    std::thread::sleep(Duration::from_millis(700));
    let second = sender(&dir, rx.addr, &tiff, &[]);
    let b = second.json(Duration::from_secs(10));
    assert_eq!(b["status"], 486, "{b:#}");
    assert_eq!(b["transient"], true);
    let trunk = rx.addr.to_string();
    let bad =
        Leg::start("bad-number", &dir, &["send", "--trunk", &trunk, "--to", "999", "--tiff", tiff.to_str().unwrap()]);
    let n = bad.json(Duration::from_secs(10));
    // 486 while the channel is taken, or 404 once it is free: both are
    // refusals before answering; the number check must say 404 when free.
    let first_done = first.json(CALL);
    assert_ok(&first_done);
    let again = if n["status"] == 404 {
        n
    } else {
        let bad = Leg::start(
            "bad-number-2",
            &dir,
            &["send", "--trunk", &trunk, "--to", "999", "--tiff", tiff.to_str().unwrap()],
        );
        bad.json(Duration::from_secs(10))
    };
    assert_eq!(again["status"], 404, "{again:#}");
    assert_eq!(again["transient"], false);
}

/// The receiver lets it ring longer than the sender waits: the sender
/// cancels (CANCEL), the receiver answers 487 and reports the call it never
/// answered; the sender's result is a no-answer the queue retries.
#[test]
fn no_answer_is_cancelled() {
    let dir = tmpdir("sip-noanswer");
    let tiff = short_page(&dir, 1);
    // Unscaled: the answer delay and the sender's patience are real seconds.
    let rx = receiver(&dir, &["--answer-delay", "30", "--scale", "1"]);
    let tx = sender(&dir, rx.addr, &tiff, &["--answer-timeout", "2", "--scale", "1"]);
    let s = tx.json(Duration::from_secs(20));
    assert_eq!(s["status"], 487, "cancelled while ringing: {s:#}");
    assert_eq!(s["transient"], true, "{s:#}");
    assert!(s["error"].as_str().unwrap_or("").contains("answer"), "{s:#}");
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !rx.log_text().contains("the caller gave up while it rang") {
        assert!(std::time::Instant::now() < until, "receiver:\n{}", rx.log_tail());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = tx.log_text();
    assert!(log.lines().any(|l| l.contains("udp send") && l.contains("\"CANCEL sip:")), "{}", tx.log_tail());
    assert!(log.lines().any(|l| l.contains("udp received") && l.contains("180 Ringing")), "{}", tx.log_tail());
}

#[test]
fn bye_in_the_middle_of_a_page() {
    let dir = tmpdir("sip-bye");
    let tiff = make_tiff(&dir, "send", &spec(Width::A4, Length::A4, VRes::Fine, 3), 2, false);
    let rx = receiver(&dir, &[]);
    // A fine A4 page takes about 50 s of call time: clear during page 2.
    let tx = sender(&dir, rx.addr, &tiff, &["--bye-after", "75"]);
    let s = tx.json(CALL);
    let r = rx.json(CALL);
    assert_eq!(s["ok"], false, "{s:#}");
    assert_eq!(r["ok"], false, "{r:#}");
    assert_eq!(r["peer_hung_up"], true, "{r:#}");
    // The partial result holds page 1, complete and pixel-exact, and no more.
    assert_eq!(r["result"]["pages"], 1, "partial result: {r:#}");
    assert_pixels_equal(&tiff, &received_file(&dir), 1);
}

#[test]
fn silent_peer() {
    let dir = tmpdir("sip-silent");
    let tiff = make_tiff(&dir, "send", &spec(Width::A4, Length::A4, VRes::Fine, 5), 1, false);
    let mut rx = receiver(&dir, &[]);
    let tx = sender(&dir, rx.addr, &tiff, &[]);
    // Let the call reach T.38, then the receiver vanishes without a BYE.
    std::thread::sleep(Duration::from_secs(3));
    rx.kill();
    let began = std::time::Instant::now();
    let s = tx.json(Duration::from_secs(90));
    assert_eq!(s["ok"], false, "{s:#}");
    // A T.30 error, not a dropped call: spandsp's own timers ended it, well
    // within T.30's limits (the page would have taken over 6 s at x8).
    let code = s["result"]["code"].as_i64().expect("a T.30 result");
    assert!(code != 0, "{s:#}");
    assert!(!s["result"]["text"].as_str().unwrap_or("").is_empty(), "{s:#}");
    assert!(began.elapsed() < Duration::from_secs(60), "took {:?}", began.elapsed());
    // Nobody hung up on us: faxgate cleared the call itself (BYE) after phase E.
    assert_eq!(s["peer_hung_up"], false, "{s:#}");
    assert_eq!(*s["states"].as_array().unwrap().last().unwrap(), "Ending");
    let log = tx.log_text();
    let bye_sent = log.lines().any(|l| l.contains("udp send") && l.contains("\"BYE sip:"));
    assert!(bye_sent, "no BYE sent:\n{}", tx.log_tail());
}

#[test]
fn real_time_t38_call() {
    let dir = tmpdir("sip-realtime");
    let tiff = make_tiff(&dir, "send", &spec(Width::A4, Length::Mm(40), VRes::Standard, 11), 1, false);
    let rx = Leg::start("receiver", &dir, &["receive", "--trunk", "127.0.0.1", "--dir", dir.to_str().unwrap()]);
    let trunk = rx.addr.to_string();
    let tx = Leg::start("sender", &dir, &["send", "--trunk", &trunk, "--to", "100", "--tiff", tiff.to_str().unwrap()]);
    let s = tx.json(Duration::from_secs(90));
    let r = rx.json(Duration::from_secs(10));
    assert_ok(&s);
    assert_ok(&r);
    assert_eq!(r["t38"], true);
    assert_pixels_equal(&tiff, &received_file(&dir), 1);
}

/// Session timers (RFC 4028) through a fax of over three minutes of call
/// time (five pages), at x16 to keep it short: the sender asks for `Session-Expires: 90` and, supporting
/// timers, is made the refresher by the receiver; it refreshes every 45 s
/// (re-INVITEs with its T.38 SDP unchanged), the receiver watches for them,
/// and the fax completes with nobody hanging up on the other.
#[test]
fn session_timers_through_a_three_minute_fax() {
    let dir = tmpdir("sip-session-timer");
    let tiff = make_tiff(&dir, "send", &spec(Width::A4, Length::A4, VRes::Fine, 13), 5, false);
    let rx = receiver(&dir, &["--scale", "16"]);
    let tx = sender(&dir, rx.addr, &tiff, &["--session-expires", "90", "--scale", "16"]);
    let s = tx.json(Duration::from_secs(120));
    let r = rx.json(Duration::from_secs(30));
    assert_ok(&s);
    assert_ok(&r);
    assert_eq!(s["session_interval"], 90.0, "{s:#}");
    assert_eq!(r["session_interval"], 90.0, "{r:#}");
    let call_secs = s["answered_for_s"].as_f64().unwrap() * 16.0;
    assert!(call_secs > 180.0, "over three minutes of call time: {call_secs} s");
    let sent = s["refreshes_sent"].as_u64().unwrap();
    assert!(sent as f64 >= (call_secs / 45.0).floor(), "a refresh every 45 s: {call_secs} s, {s:#}");
    assert!(r["refreshes_received"].as_u64().unwrap() >= sent, "{r:#}");
    eprintln!("{call_secs:.0} s of call time, {sent} refreshes sent, {} received", r["refreshes_received"]);
    assert_eq!(r["session_expired"], false, "{r:#}");
    assert_eq!(s["session_expired"], false, "{s:#}");
    assert_eq!(r["switches"], 1, "refreshes keep T.38, no restart: {r:#}");
    assert_pixels_equal(&tiff, &received_file(&dir), 5);
}
