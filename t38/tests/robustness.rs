//! Malformed T.38 input must never crash a session.

mod common;

use std::time::{Duration, Instant};

use common::*;
use faxgate_t38::udptl::{ErrorCorrection, Udptl};
use faxgate_t38::{Direction, FaxSession, FaxSettings, SessionConfig};

#[test]
fn random_ifp_packets_into_a_receiving_session() {
    let dir = tmpdir("robust");
    let mut rng = fastrand::Rng::with_seed(0x1234_5678_9abc_def1);
    for round in 0..20 {
        let start = Instant::now();
        let mut s = FaxSession::new(
            SessionConfig {
                direction: Direction::Receive { tiff: dir.join(format!("out-{round}.tif")) },
                transport: t38(),
                calling: false,
                settings: FaxSettings::default(),
            },
            start,
        )
        .unwrap();
        let mut now = start;
        for seq in 0..2000u16 {
            let len = (rng.u64(..) % 40) as usize;
            // Bias towards plausible IFP headers (data packets of V.17/V.29
            // HDLC with field types) so the parser goes deep.
            let mut p: Vec<u8> = (0..len).map(|_| rng.u64(..) as u8).collect();
            if !p.is_empty() && rng.u64(..).is_multiple_of(2) {
                p[0] = [0x00, 0x40, 0xC0, 0xC8, 0xD0][(rng.u64(..) % 5) as usize] | (p[0] & 0x07);
            }
            let _ = s.handle_ifp(now, seq.wrapping_mul(if round % 3 == 0 { 7 } else { 1 }), &p);
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
    let mut rng = fastrand::Rng::with_seed(99);
    let mut u = Udptl::new(ErrorCorrection::default(), 400);
    for _ in 0..50_000 {
        let len = (rng.u64(..) % 64) as usize;
        let d: Vec<u8> = (0..len).map(|_| rng.u64(..) as u8).collect();
        if let Ok(list) = u.decode(&d) {
            for r in list {
                assert!(r.ifp.len() <= d.len() * 16 + 400);
            }
        }
    }
}

#[test]
fn late_wakeup_is_caught_up_in_20_ms_steps() {
    let dir = tmpdir("catchup");
    let start = Instant::now();
    let mut s = FaxSession::new(
        SessionConfig {
            direction: Direction::Receive { tiff: dir.join("out.tif") },
            transport: t38(),
            calling: false,
            settings: FaxSettings::default(),
        },
        start,
    )
    .unwrap();
    assert_eq!(s.poll_timeout(), Some(start));
    // One wake-up a second late runs 51 ticks of 160 samples, not one big step.
    s.handle_timeout(start + Duration::from_secs(1));
    assert_eq!(s.ticks(), 51);
    assert_eq!(s.poll_timeout(), Some(start + Duration::from_millis(1020)));
    // The answering terminal has been sending CED/DIS meanwhile.
    assert!(s.poll_transmit().is_some());
    s.hang_up();
    assert!(s.is_finished());
    assert_eq!(s.poll_timeout(), None);
    let mut finished = 0;
    while let Some(e) = s.poll_event() {
        if let faxgate_t38::Event::Finished(r) = e {
            assert!(!r.is_ok());
            finished += 1;
        }
    }
    assert_eq!(finished, 1);
}

#[test]
fn bad_settings_are_refused_with_clear_errors() {
    let dir = tmpdir("settings");
    let start = Instant::now();
    let cfg = |settings: FaxSettings| SessionConfig {
        direction: Direction::Receive { tiff: dir.join("out.tif") },
        transport: t38(),
        calling: false,
        settings,
    };
    let long_ident = FaxSettings { ident: "123456789012345678901".into(), ..FaxSettings::default() };
    assert!(matches!(FaxSession::new(cfg(long_ident), start), Err(faxgate_t38::Error::InvalidSetting(_))));
    let no_modem = FaxSettings {
        modems: faxgate_t38::session::Modems { v17: false, v29: false, v27ter: false },
        ..FaxSettings::default()
    };
    assert!(matches!(FaxSession::new(cfg(no_modem), start), Err(faxgate_t38::Error::InvalidSetting(_))));
    let missing = SessionConfig {
        direction: Direction::Send { tiff: dir.join("missing.tif"), max_pages: None },
        ..cfg(FaxSettings::default())
    };
    assert!(matches!(FaxSession::new(missing, start), Err(faxgate_t38::Error::NoSuchFile(_))));
    // Audio fed to a T.38 session is refused.
    let mut s = FaxSession::new(cfg(FaxSettings::default()), start).unwrap();
    assert!(matches!(s.handle_audio(start, &[0xD5; 160]), Err(faxgate_t38::Error::WrongTransport)));
}
