//! Stateful fuzzing of the session: arbitrary input in arbitrary pieces,
//! arbitrary answers, TLS upgrades and time. The session must not panic,
//! must answer every question asked, and must send only CRLF-terminated
//! lines.
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
}

fuzz_target!(|input: (bool, bool, Vec<Op>)| {
    let (starttls, auth_required, ops) = input;
    let config = SessionConfig {
        hostname: "fuzz.test".into(),
        limits: Limits { max_message_size: 4096, max_data_line: 512, max_header_lines: 8, ..Limits::default() },
        starttls,
        auth_required,
    };
    let mut now = Instant::now();
    let mut s = Session::new(Arc::new(config), IpAddr::V4(Ipv4Addr::LOCALHOST), false, now);
    let mut asked = false;
    for op in ops {
        match op {
            Op::Receive(bytes) if !asked => s.receive(now, &bytes),
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
        }
        while let Some(e) = s.poll_event() {
            match e {
                Event::Ask(_) => {
                    assert!(!asked, "two questions at once");
                    asked = true;
                }
                Event::StartTls => s.tls_started(now),
            }
        }
        if let Some(out) = s.poll_transmit() {
            assert!(out.ends_with(b"\r\n"));
            assert!(!out.windows(2).enumerate().any(|(i, w)| w[1] == b'\n' && (i == 0 && out[0] != b'\r' || w[0] != b'\r')));
        }
    }
});
