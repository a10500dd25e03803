//! SIPp (Debian package `sip-tester`) against the fax leg (`faxleg`): a plain
//! call, CANCEL, OPTIONS, a T.38 re-INVITE answered by SIPp, malformed and
//! refused requests, an INVITE while stopping, and a flood from a source
//! that is not the trunk.
//! Each test skips, saying so, when `sipp` is not installed.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::leg::Leg;
use common::{short_raw_page, tmpdir};
use faxgate_t38::sipp_peer::sipp_port;

fn have_sipp() -> bool {
    let ok = Command::new("sipp").arg("-v").output().is_ok();
    if !ok {
        eprintln!("SKIPPED: sipp is not installed (apt-get install sip-tester)");
    }
    ok
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp").join(name)
}

/// Runs SIPp in `dir` with a scenario file; `extra` are more arguments.
/// SIPp takes its own ports (the first free ones from 5060 and 6000 up).
fn sipp(dir: &Path, target: Option<SocketAddr>, file: &str, ip: &str, extra: &[&str]) -> Output {
    let sf = scenario(file);
    let mut cmd = Command::new("sipp");
    if let Some(t) = target {
        cmd.arg(t.to_string());
    }
    cmd.current_dir(dir)
        .args(["-sf", sf.to_str().unwrap(), "-i", ip])
        .args(["-nostdin", "-timeout", "30s", "-timeout_error", "-trace_err", "-trace_msg"])
        .args(extra);
    cmd.output().expect("sipp runs")
}

fn assert_sipp_ok(dir: &Path, out: &Output) {
    if !out.status.success() {
        let mut logs = String::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log") {
                let s = std::fs::read_to_string(&p).unwrap_or_default();
                logs.push_str(&format!("--- {} ---\n{}\n", p.display(), &s[s.len().saturating_sub(4000)..]));
            }
        }
        panic!(
            "sipp failed ({}):\n{}\n{}\n{logs}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn receiver(dir: &Path, extra: &[&str]) -> Leg {
    let mut args = vec!["receive", "--bind", "127.0.0.1:0", "--trunk", "127.0.0.1", "--dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    Leg::start("faxleg", dir, &args)
}

#[test]
fn sipp_plain_call() {
    if !have_sipp() {
        return;
    }
    let dir = tmpdir("plain");
    // One trunk's SIP messages at debug level (faxleg's trunk is named "trunk").
    let args = [
        "receive",
        "--trunk",
        "127.0.0.1",
        "--dir",
        dir.to_str().unwrap(),
        "--media",
        "audio-only",
        "--log-personal-data",
    ];
    let leg = Leg::start_with_log("faxleg", &dir, &args, "info,[trunk{name=trunk}]=debug");
    let out = sipp(&dir, Some(leg.addr), "uac_plain.xml", "127.0.0.1", &["-s", "100", "-m", "1"]);
    assert_sipp_ok(&dir, &out);
    let r = leg.json(Duration::from_secs(10));
    assert_eq!(r["peer_hung_up"], true, "{r:#}");
    assert_eq!(r["t38"], false);
    assert_eq!(r["caller"], "4599887766");
    let log = leg.log_text();
    assert!(log.contains("faxgate_t38::sip::wire") && log.contains("INVITE sip:100@"), "{}", leg.log_tail());
    assert!(log.contains("SIP/2.0 200 OK"), "{}", leg.log_tail());
    assert!(!log.contains("udp received"), "the library's own dumps stay off");
}

#[test]
fn sipp_t38_reinvite_answered_by_sipp() {
    if !have_sipp() {
        return;
    }
    let dir = tmpdir("t38");
    let leg = receiver(&dir, &[]);
    let out = sipp(&dir, Some(leg.addr), "uac_t38.xml", "127.0.0.1", &["-s", "100", "-m", "1"]);
    assert_sipp_ok(&dir, &out);
    let r = leg.json(Duration::from_secs(10));
    assert_eq!(r["t38"], true, "{r:#}");
    assert_eq!(r["switches"], 1, "{r:#}");
}

#[test]
fn sipp_options() {
    if !have_sipp() {
        return;
    }
    let dir = tmpdir("options");
    let mut leg = receiver(&dir, &[]);
    let out = sipp(&dir, Some(leg.addr), "uac_options.xml", "127.0.0.1", &["-s", "100", "-m", "20", "-r", "50"]);
    assert_sipp_ok(&dir, &out);
    assert_eq!(leg.stats()["options_answered"], 20);
}

#[test]
fn sipp_cancel_on_no_answer() {
    if !have_sipp() {
        return;
    }
    let dir = tmpdir("cancel");
    let sf = scenario("uas_cancel.xml");
    let sipp = Command::new("sipp")
        .current_dir(&dir)
        .args(["-sf", sf.to_str().unwrap(), "-i", "127.0.0.1"])
        .args(["-nostdin", "-m", "1", "-timeout", "30s", "-timeout_error", "-trace_err", "-trace_msg"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let port = sipp_port(&sipp, std::net::Ipv4Addr::LOCALHOST);
    let page = short_raw_page(&dir, 1);
    let trunk = format!("127.0.0.1:{port}");
    let leg = Leg::start(
        "faxleg",
        &dir,
        &["send", "--trunk", &trunk, "--to", "100", "--tiff", page.to_str().unwrap(), "--answer-timeout", "1"],
    );
    let r = leg.json(Duration::from_secs(20));
    assert_eq!(r["status"], 487, "{r:#}");
    assert_eq!(r["transient"], true, "no answer is worth a retry: {r:#}");
    let out = sipp.wait_with_output().unwrap();
    assert_sipp_ok(&dir, &out);
}

#[test]
fn sipp_invite_while_draining_gets_503_with_retry_after() {
    if !have_sipp() {
        return;
    }
    let dir = tmpdir("drained");
    let mut leg = receiver(&dir, &[]);
    leg.drain();
    let out = sipp(&dir, Some(leg.addr), "uac_drained.xml", "127.0.0.1", &["-s", "100", "-m", "1"]);
    assert_sipp_ok(&dir, &out);
    assert_eq!(leg.stats()["active_calls"], 0);
    assert!(leg.log_text().contains("the gateway is stopping"), "{}", leg.log_tail());
}

#[test]
fn sipp_malformed_requests_refused_and_service_continues() {
    if !have_sipp() {
        return;
    }
    let dir = tmpdir("malformed");
    let mut leg = receiver(&dir, &["--numbers", "100"]);
    // Garbage datagrams first: not SIP at all, a request line without headers.
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    for junk in [&b"\x00\x01\x02garbage"[..], b"INVITE sip:x SIP/2.0\r\n\r\n", b"SIP/2.0 200\r\n\r\n"] {
        s.send_to(junk, leg.addr).unwrap();
    }
    let out = sipp(&dir, Some(leg.addr), "uac_malformed.xml", "127.0.0.1", &["-s", "100", "-m", "1"]);
    assert_sipp_ok(&dir, &out);
    let st = leg.stats();
    assert_eq!(st["refused_unknown"], 1, "{st}");
    assert!(st["bad_requests"].as_u64().unwrap() >= 1, "{st}");
}

#[test]
fn sipp_flood_from_foreign_source_is_ignored() {
    if !have_sipp() {
        return;
    }
    let dir = tmpdir("flood");
    let flood_dir = dir.join("flood");
    std::fs::create_dir_all(&flood_dir).unwrap();
    // The trunk is 127.0.0.1; the flood comes from 127.0.0.2: 5,000 OPTIONS
    // at 1,000 a second.
    // At the default log level (info): the library's datagram dumps are off.
    let args = ["receive", "--trunk", "127.0.0.1", "--dir", dir.to_str().unwrap(), "--allow", "127.0.0.1"];
    let mut leg = Leg::start_with_log("faxleg", &dir, &args, "info");
    let addr = leg.addr;
    let flood = std::thread::spawn(move || {
        let out = sipp(
            &flood_dir,
            Some(addr),
            "flood_options.xml",
            "127.0.0.2",
            &["-s", "100", "-m", "5000", "-r", "1000", "-l", "500"],
        );
        (flood_dir, out)
    });
    // In the middle of the flood, the trunk is served: three OPTIONS from it
    // are answered while the flood's are dropped.
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while leg.stats()["dropped_foreign"].as_u64().unwrap_or(0) == 0 {
        assert!(std::time::Instant::now() < until, "the flood never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    for _ in 0..3 {
        let out = sipp(&dir, Some(addr), "uac_options.xml", "127.0.0.1", &["-s", "100", "-m", "1"]);
        assert_sipp_ok(&dir, &out);
    }
    let during = leg.stats();
    assert_eq!(during["options_answered"], 3, "{during}");
    let dropped = during["dropped_foreign"].as_u64().unwrap();
    assert!(dropped < 5000, "the flood was over before the trunk's OPTIONS: {during}");
    let (flood_dir, out) = flood.join().unwrap();
    assert_sipp_ok(&flood_dir, &out);
    let st = leg.stats();
    assert_eq!(st["dropped_foreign"], 5000, "{st}");
    assert_eq!(st["options_answered"], 3, "only the trunk's: {st}");
    // At most one summary line a minute: here, the one at the start of the
    // flood (the rest is summed up a minute later); nothing per packet.
    let log = leg.log_text();
    let summaries: Vec<&str> = log.lines().filter(|l| l.contains("dropped")).collect();
    assert_eq!(summaries.len(), 1, "{summaries:#?}");
    assert!(summaries[0].contains("sources that are not the trunk, top: 127.0.0.2"), "{summaries:#?}");
    assert_eq!(log.lines().filter(|l| l.contains("127.0.0.2")).count(), 1, "{}", leg.log_tail());
    assert!(!log.contains("udp received"), "no per-packet lines: {}", leg.log_tail());
    // And after it.
    let out = sipp(&dir, Some(addr), "uac_options.xml", "127.0.0.1", &["-s", "100", "-m", "1"]);
    assert_sipp_ok(&dir, &out);
}

/// SIPp plays the trunk: `scenario` as UAS; the fax leg is started with
/// `leg_args` and the trunk pointing at SIPp. Returns SIPp's output and the leg.
fn sipp_as_trunk(dir: &Path, file: &str, leg_args: &[&str]) -> (Output, Leg) {
    sipp_as_trunk_with(dir, &scenario(file), leg_args)
}

/// [`sipp_as_trunk`] with the scenario at `sf`.
fn sipp_as_trunk_with(dir: &Path, sf: &Path, leg_args: &[&str]) -> (Output, Leg) {
    let sipp = Command::new("sipp")
        .current_dir(dir)
        .args(["-sf", sf.to_str().unwrap(), "-i", "127.0.0.1"])
        .args(["-nostdin", "-m", "1", "-timeout", "40s", "-timeout_error", "-trace_err", "-trace_msg"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let port = sipp_port(&sipp, std::net::Ipv4Addr::LOCALHOST);
    let trunk = format!("127.0.0.1:{port}");
    let mut args: Vec<&str> = leg_args.to_vec();
    args.extend_from_slice(&["--trunk", &trunk]);
    let leg = Leg::start("faxleg", dir, &args);
    (sipp.wait_with_output().unwrap(), leg)
}

#[test]
fn sipp_register_with_digest() {
    if !have_sipp() {
        return;
    }
    let dir = tmpdir("register");
    let d = dir.to_str().unwrap();
    let (out, _leg) =
        sipp_as_trunk(&dir, "uas_register.xml", &["receive", "--dir", d, "--register", "fax", "--auth", "fax:secret"]);
    assert_sipp_ok(&dir, &out);
}

#[test]
fn sipp_options_keepalive_to_trunk() {
    if !have_sipp() {
        return;
    }
    let dir = tmpdir("keepalive");
    let d = dir.to_str().unwrap();
    let (out, _leg) = sipp_as_trunk(&dir, "uas_options.xml", &["receive", "--dir", d, "--keepalive", "1"]);
    assert_sipp_ok(&dir, &out);
}

#[test]
fn sipp_invite_digest_then_busy() {
    if !have_sipp() {
        return;
    }
    let dir = tmpdir("invite-auth");
    let page = short_raw_page(&dir, 2);
    let (out, leg) = sipp_as_trunk(
        &dir,
        "uas_auth_invite.xml",
        &["send", "--to", "100", "--tiff", page.to_str().unwrap(), "--auth", "fax:secret"],
    );
    assert_sipp_ok(&dir, &out);
    let r = leg.json(Duration::from_secs(10));
    assert_eq!(r["status"], 486, "digest accepted, then busy: {r:#}");
    assert_eq!(r["transient"], true);
}

#[test]
fn sipp_invite_proxy_digest_then_busy() {
    use md5::Digest;
    if !have_sipp() {
        return;
    }
    let dir = tmpdir("invite-proxy-auth");
    let page = short_raw_page(&dir, 3);
    let (out, leg) = sipp_as_trunk(
        &dir,
        "uas_proxy_auth_invite.xml",
        &["send", "--to", "100", "--tiff", page.to_str().unwrap(), "--auth", "fax:secret"],
    );
    assert_sipp_ok(&dir, &out);
    let r = leg.json(Duration::from_secs(10));
    assert_eq!(r["status"], 486, "{r:#}");
    // The digest itself (RFC 2617, no qop): MD5(HA1:nonce:HA2).
    let log = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("_messages.log"))
        .unwrap();
    let text = std::fs::read_to_string(log).unwrap();
    let line = text.lines().find(|l| l.starts_with("Proxy-Authorization:")).expect("a Proxy-Authorization");
    let field = |name: &str| {
        let start = line.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        line[start..][..line[start..].find('"').unwrap()].to_string()
    };
    let hex = |s: String| md5::Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let ha1 = hex("fax:faxgate.test:secret".into());
    let ha2 = hex(format!("INVITE:{}", field("uri")));
    assert_eq!(field("response"), hex(format!("{ha1}:{}:{ha2}", field("nonce"))), "{line}");
}

#[test]
fn sipp_t38_reinvite_glare_retried() {
    if !have_sipp() {
        return;
    }
    let dir = tmpdir("glare");
    let leg = receiver(&dir, &[]);
    let out = sipp(&dir, Some(leg.addr), "uac_t38_glare.xml", "127.0.0.1", &["-s", "100", "-m", "1"]);
    assert_sipp_ok(&dir, &out);
    let r = leg.json(Duration::from_secs(10));
    assert_eq!(r["t38"], true, "{r:#}");
    let states: Vec<&str> = r["states"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(
        states,
        ["Inviting", "Audio", "SwitchingToT38", "Audio", "SwitchingToT38", "T38", "Ending"],
        "491, then the retry: {r:#}"
    );
}

/// Real glare: SIPp holds faxgate's T.38 re-INVITE (100 Trying only) and
/// sends a re-INVITE of its own. faxgate refuses that one with 491 (the
/// scenario requires it), then its own is accepted and the fax goes on T.38
/// without a second switch.
#[test]
fn sipp_crossing_reinvite_is_refused_with_491_while_ours_is_pending() {
    if !have_sipp() {
        return;
    }
    let dir = tmpdir("glare-crossing");
    let leg = receiver(&dir, &[]);
    let out = sipp(&dir, Some(leg.addr), "uac_t38_glare_crossing.xml", "127.0.0.1", &["-s", "100", "-m", "1"]);
    assert_sipp_ok(&dir, &out);
    let r = leg.json(Duration::from_secs(10));
    assert_eq!(r["t38"], true, "{r:#}");
    let states: Vec<&str> = r["states"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(states, ["Inviting", "Audio", "SwitchingToT38", "T38", "Ending"], "{r:#}");
}

/// A session refresh that carries no offer, during T.38: faxgate offers its
/// image stream in the 200 (the scenario requires it), takes the answer in
/// the ACK, and the fax stays on T.38.
#[test]
fn sipp_refresh_without_an_offer_during_t38_gets_the_image_offer() {
    if !have_sipp() {
        return;
    }
    let dir = tmpdir("refresh-no-offer");
    let leg = receiver(&dir, &[]);
    let out = sipp(&dir, Some(leg.addr), "uac_t38_refresh_no_offer.xml", "127.0.0.1", &["-s", "100", "-m", "1"]);
    assert_sipp_ok(&dir, &out);
    let r = leg.json(Duration::from_secs(10));
    assert_eq!(r["t38"], true, "{r:#}");
    assert_eq!(r["switches"], 1, "no second restart: {r:#}");
    let states: Vec<&str> = r["states"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(states, ["Inviting", "Audio", "SwitchingToT38", "T38", "Ending"], "{r:#}");
}

#[test]
fn sipp_session_refresh_during_t38_keeps_image() {
    if !have_sipp() {
        return;
    }
    let dir = tmpdir("refresh");
    let leg = receiver(&dir, &[]);
    let out = sipp(&dir, Some(leg.addr), "uac_t38_refresh.xml", "127.0.0.1", &["-s", "100", "-m", "1"]);
    assert_sipp_ok(&dir, &out);
    let r = leg.json(Duration::from_secs(10));
    assert_eq!(r["t38"], true, "{r:#}");
    assert_eq!(r["switches"], 1, "no second restart: {r:#}");
}

#[test]
fn sipp_reinvite_back_to_audio_after_t38_accepted() {
    if !have_sipp() {
        return;
    }
    let dir = tmpdir("back-to-audio");
    let leg = receiver(&dir, &[]);
    let out = sipp(&dir, Some(leg.addr), "uac_t38_back_to_audio.xml", "127.0.0.1", &["-s", "100", "-m", "1"]);
    assert_sipp_ok(&dir, &out);
    let r = leg.json(Duration::from_secs(10));
    assert_eq!(r["t38"], true, "the fax ran on T.38: {r:#}");
    assert_eq!(r["peer_hung_up"], true, "{r:#}");
}

/// SDP from the trunk that faxgate must refuse before answering, each time
/// with a `Warning` that says why (the scenario checks them): media at an
/// address the trunk does not allow (127.0.0.9: a reflection path),
/// `T38FaxVersion:99`, `T38FaxMaxDatagram:0`, `T38FaxMaxBuffer:-1`, and a
/// `Content-Length` the body does not reach (400).
#[test]
fn sipp_sdp_refused_with_a_reason() {
    if !have_sipp() {
        return;
    }
    let dir = tmpdir("sdp-refused");
    let mut leg = receiver(&dir, &[]);
    let out = sipp(&dir, Some(leg.addr), "uac_sdp_refused.xml", "127.0.0.1", &["-s", "100", "-m", "1"]);
    assert_sipp_ok(&dir, &out);
    let st = leg.stats();
    assert_eq!(st["bad_requests"], 1, "the Content-Length: {st}");
    assert_eq!(st["active_calls"], 0, "{st}");
    let log = leg.log_text();
    let refused: Vec<&str> = log.lines().filter(|l| l.contains("INVITE refused") && l.contains("reason")).collect();
    assert_eq!(refused.len(), 5, "{refused:#?}");
}

/// `t38-initial` against a trunk that refuses T.38 in the INVITE with 488,
/// 415 or 606: the same attempt goes on at once with an audio INVITE (the
/// scenario checks it offers audio only), which is answered; the report
/// says audio was needed.
#[test]
fn sipp_t38_initial_refused_falls_back_to_audio() {
    if !have_sipp() {
        return;
    }
    for status in ["488", "415", "606"] {
        let dir = tmpdir(&format!("t38-initial-{status}"));
        let page = short_raw_page(&dir, 4);
        // SIPp reads a status line's code before substituting keywords: the
        // scenario is written out with the code in place.
        let template = std::fs::read_to_string(scenario("uas_t38_initial_refused.xml")).unwrap();
        let sf = dir.join("uas_t38_initial_refused.xml");
        std::fs::write(&sf, template.replace("[status]", status)).unwrap();
        let (out, leg) = sipp_as_trunk_with(
            &dir,
            &sf,
            &["send", "--media", "t38-initial", "--to", "100", "--tiff", page.to_str().unwrap()],
        );
        assert_sipp_ok(&dir, &out);
        let r = leg.json(Duration::from_secs(20));
        assert_eq!(r["t38_initial_refused"], true, "{status}: {r:#}");
        assert_eq!(r["t38"], false, "{r:#}");
        assert_eq!(r["needed"]["audio"], true, "{r:#}");
        assert_eq!(r["peer_hung_up"], true, "SIPp hung up: {r:#}");
        assert_eq!(r["states"][1], "Audio", "{r:#}");
    }
}

/// A peer that declines T.38 (`m=image 0`) while it hangs up after the fax:
/// faxgate accepts the re-INVITE (the scenario requires a 200 with the
/// stream declined back), then takes the BYE.
#[test]
fn sipp_image_declined_while_hanging_up_is_accepted() {
    if !have_sipp() {
        return;
    }
    let dir = tmpdir("image-declined");
    let leg = receiver(&dir, &[]);
    let out = sipp(&dir, Some(leg.addr), "uac_t38_image_declined.xml", "127.0.0.1", &["-s", "100", "-m", "1"]);
    assert_sipp_ok(&dir, &out);
    let r = leg.json(Duration::from_secs(10));
    assert_eq!(r["t38"], true, "{r:#}");
    assert_eq!(r["peer_hung_up"], true, "{r:#}");
}
