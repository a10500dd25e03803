//! Malformed T.38 input must never crash a session.

mod common;

use std::time::{Duration, Instant};

use common::*;
use faxgate_t38::udptl::{ErrorCorrection, Udptl};
use faxgate_t38::{Direction, FaxSession, FaxSettings, SessionConfig};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_ifp_packets_into_a_receiving_session() {
    let dir = tmpdir("robust");
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for round in 0..20 {
        let start = Instant::now();
        let mut s = FaxSession::new(
            SessionConfig {
                direction: Direction::Receive {
                    tiff: dir.join(format!("out-{round}.tif")),
                },
                transport: t38(),
                calling: false,
                settings: FaxSettings::default(),
            },
            start,
        )
        .unwrap();
        let mut now = start;
        for seq in 0..2000u16 {
            let len = (rng.next() % 40) as usize;
            // Bias towards plausible IFP headers (data packets of V.17/V.29
            // HDLC with field types) so the parser goes deep.
            let mut p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if !p.is_empty() && rng.next().is_multiple_of(2) {
                p[0] = [0x00, 0x40, 0xC0, 0xC8, 0xD0][(rng.next() % 5) as usize] | (p[0] & 0x07);
            }
            let _ = s.handle_ifp(
                now,
                seq.wrapping_mul(if round % 3 == 0 { 7 } else { 1 }),
                &p,
            );
            now += Duration::from_millis(5);
            s.handle_timeout(now);
            while s.poll_transmit().is_some() {}
            while s.poll_event().is_some() {}
        }
        s.hang_up();
        assert!(s.is_finished());
    }
}

#[test]
fn random_datagrams_into_udptl() {
    let mut rng = Rng(99);
    let mut u = Udptl::new(ErrorCorrection::default(), 400);
    for _ in 0..50_000 {
        let len = (rng.next() % 64) as usize;
        let d: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if let Ok(list) = u.decode(&d) {
            for r in list {
                assert!(r.ifp.len() <= d.len() * 16 + 400);
            }
        }
    }
}
