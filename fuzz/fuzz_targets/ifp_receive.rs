//! Random IFP sequences into a receiving T.38 session (spandsp has crashed
//! on malformed T.38 in the field): no crash, no hang, phase E at the end.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use faxgate_t38::{Direction, FaxSession, FaxSettings, SessionConfig, Transport};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Packet {
    seq_step: u8,
    advance_ms: u8,
    ifp: Vec<u8>,
}

#[derive(Debug, Arbitrary)]
struct Input {
    ecm: bool,
    calling: bool,
    packets: Vec<Packet>,
}

fn out_path() -> &'static std::path::Path {
    static P: OnceLock<std::path::PathBuf> = OnceLock::new();
    P.get_or_init(|| std::env::temp_dir().join(format!("ifp-receive-{}.tif", std::process::id())))
}

fuzz_target!(|input: Input| {
    let start = Instant::now();
    let mut s = FaxSession::new(
        SessionConfig {
            direction: Direction::Receive { tiff: out_path().to_owned() },
            transport: Transport::T38 { version: 0, max_ifp: 394 },
            calling: input.calling,
            settings: FaxSettings { ecm: input.ecm, ..FaxSettings::default() },
        },
        start,
    )
    .expect("session");
    let mut now = start;
    let mut seq: u16 = 0;
    for p in input.packets.iter().take(512) {
        now += Duration::from_millis(u64::from(p.advance_ms));
        seq = seq.wrapping_add(u16::from(p.seq_step % 4));
        let _ = s.handle_ifp(now, seq, &p.ifp);
        while s.poll_transmit().is_some() {}
        while s.poll_event().is_some() {}
    }
    s.hang_up();
    assert!(s.is_finished());
});
