//! Stateful fuzzing of the session: arbitrary input in arbitrary pieces,
//! arbitrary answers, TLS upgrades (or an implicit TLS start), time in
//! seconds and milliseconds against the idle, handshake and rate limits.
//! The session must not panic, must answer every question asked, must send
//! only CRLF-terminated lines, and must always have a deadline while it
//! waits for its client.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use faxgate_smtp::session::{Event, Session};
use faxgate_smtp::{Enhanced, Limits, Reply, SessionConfig};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    Receive(Vec<u8>),
    Answer(u16),
    Advance(u8),
    AdvanceMs(u16),
    Handshake,
}

fuzz_target!(|input: (bool, bool, bool, u8, Vec<Op>)| {
    let (starttls, auth_required, implicit, min_rate, ops) = input;
    let config = SessionConfig {
        hostname: "fuzz.test".into(),
        limits: Limits {
            max_message_size: 4096,
            max_data_line: 512,
            max_header_lines: 8,
            min_rate: u32::from(min_rate),
            rate_window: Duration::from_secs(3),
            tls_handshake_timeout: Duration::from_secs(2),
            ..Limits::default()
        },
        starttls,
        auth_required,
    };
    let mut now = Instant::now();
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut s = if implicit {
        Session::new_implicit_tls(Arc::new(config), peer, now)
    } else {
        Session::new(Arc::new(config), peer, false, now)
    };
    let mut asked = false;
    let mut handshaking = implicit;
    for op in ops {
        match op {
            Op::Receive(bytes) if !asked && !handshaking => s.receive(now, &bytes),
            Op::Receive(_) => {}
            Op::Answer(code) if asked => {
                let code = 200 + code % 400;
                s.answer(now, Reply::new(code, Enhanced((code / 100) as u8, 0, 0), "answer"));
                asked = false;
            }
            Op::Answer(_) => {}
            Op::Advance(secs) => {
                now += Duration::from_secs(u64::from(secs));
                s.handle_timeout(now);
            }
            Op::AdvanceMs(ms) => {
                now += Duration::from_millis(u64::from(ms));
                s.handle_timeout(now);
            }
            Op::Handshake if handshaking => {
                s.tls_started(now);
                handshaking = false;
            }
            Op::Handshake => {}
        }
        while let Some(e) = s.poll_event() {
            match e {
                Event::Ask(_) => {
                    assert!(!asked, "two questions at once");
                    asked = true;
                }
                Event::StartTls => handshaking = true,
            }
        }
        if !s.is_closed() && !asked {
            assert!(s.poll_timeout().is_some(), "waiting for the client without a deadline");
        }
        if let Some(out) = s.poll_transmit() {
            assert!(out.ends_with(b"\r\n"));
            assert!(
                !out.windows(2).enumerate().any(|(i, w)| w[1] == b'\n' && (i == 0 && out[0] != b'\r' || w[0] != b'\r'))
            );
        }
    }
});
