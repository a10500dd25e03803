//! Fax transfers between two real spandsp sessions on the pair harness.
//! Received images are checked against the sent ones with libtiff's
//! command-line tools (`tiffcp` to decompress, `tiffcmp` to compare).

mod common;

use std::time::Duration;

use common::*;
use faxgate_t38::g711::Law;
use faxgate_t38::pair::{LinkConfig, Side};
use faxgate_t38::session::{Modems, PaperWidths};
use faxgate_t38::testpage::{Length, VRes, Width};
use faxgate_t38::udptl::ErrorCorrection;
use faxgate_t38::{CompletionCode, Event, FaxResult, PageStats};

fn pages_of(ev: &[(Duration, Event)]) -> Vec<PageStats> {
    ev.iter()
        .filter_map(|(_, e)| match e {
            Event::Page(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn negotiated_rate(ev: &[(Duration, Event)]) -> u32 {
    ev.iter()
        .rev()
        .find_map(|(_, e)| match e {
            Event::Negotiated(n) => Some(n.bit_rate),
            _ => None,
        })
        .expect("phase B event")
}

fn ok(r: Option<&FaxResult>, pages: u32) {
    let r = r.expect("phase E result");
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.pages, pages, "{r:?}");
}

/// Sends `pages` pages of `spec` with `call` and checks both ends and pixels.
fn transfer(name: &str, call: &Call, s: faxgate_t38::testpage::PageSpec, pages: u32) -> faxgate_t38::pair::Outcome {
    let dir = tmpdir(name);
    let input = make_tiff(&dir, "in", &s, pages, false);
    let output = dir.join("out.tif");
    let out = call.run(&input, &output);
    ok(out.a_result(), pages);
    ok(out.b_result(), pages);
    let rx_pages = pages_of(&out.b);
    assert_eq!(rx_pages.len(), pages as usize);
    for p in &rx_pages {
        assert_eq!(p.width, s.width.pels());
        assert_eq!(p.length, s.rows());
        assert_eq!(p.bad_rows, 0);
    }
    assert_pixels_equal(&input, &output, pages as usize);
    out
}

fn fine_a4(seed: u64) -> faxgate_t38::testpage::PageSpec {
    spec(Width::A4, Length::A4, VRes::Fine, seed)
}

fn short(vres: VRes, seed: u64) -> faxgate_t38::testpage::PageSpec {
    spec(Width::A4, Length::Mm(80), vres, seed)
}

#[test]
fn t38_one_page() {
    let out = transfer("t38-1", &Call::new(t38()), fine_a4(1), 1);
    // Phase B: identities exchanged and 14400 bit/s agreed with ECM.
    let neg = out.b.iter().find_map(|(_, e)| match e {
        Event::Negotiated(n) => Some(n.clone()),
        _ => None,
    });
    let neg = neg.expect("negotiated");
    assert_eq!(neg.bit_rate, 14400);
    assert!(neg.ecm);
    assert_eq!(neg.remote_ident.as_deref(), Some("+45 1111"));
    assert_eq!(out.a_result().unwrap().remote_ident.as_deref(), Some("+45 2222"));
    // A fine A4 page at 14400 bit/s takes tens of seconds of call time.
    assert!(out.elapsed > Duration::from_secs(20) && out.elapsed < Duration::from_secs(200), "{:?}", out.elapsed);
}

#[test]
fn t38_three_pages() {
    transfer("t38-3", &Call::new(t38()), fine_a4(3), 3);
}

#[test]
fn t38_twenty_pages() {
    let s = spec(Width::A4, Length::A4, VRes::Fine, 20);
    let s = faxgate_t38::testpage::PageSpec { density: 15, ..s };
    transfer("t38-20", &Call::new(t38()), s, 20);
}

#[test]
fn t38_non_ecm() {
    let mut call = Call::new(t38());
    call.ecm = false;
    let out = transfer("t38-noecm", &call, fine_a4(4), 2);
    assert!(!out.b_result().unwrap().ecm);
    // T.6 needs ECM, so a T.4 coding was used.
    assert!(pages_of(&out.b).iter().all(|p| p.compression != 8));
}

#[test]
fn t38_each_modem() {
    for (modems, rate) in [
        (Modems { v17: true, v29: false, v27ter: false }, 14400),
        (Modems { v17: false, v29: true, v27ter: false }, 9600),
        (Modems { v17: false, v29: false, v27ter: true }, 4800),
    ] {
        let mut call = Call::new(t38());
        call.rx_settings.modems = modems;
        let out = transfer(&format!("modem-{rate}"), &call, short(VRes::Fine, 5), 1);
        assert_eq!(negotiated_rate(&out.a), rate);
        assert_eq!(pages_of(&out.b)[0].bit_rate, rate);
    }
}

#[test]
fn t38_resolutions() {
    for vres in [VRes::Standard, VRes::Fine, VRes::Superfine] {
        let out = transfer(&format!("res-{vres:?}"), &Call::new(t38()), short(vres, 6), 1);
        let p = &pages_of(&out.b)[0];
        let want = f64::from(vres.rows_per_metre());
        let got = f64::from(p.y_resolution);
        assert!((got - want).abs() / want < 0.03, "{vres:?}: {got} rows/m");
    }
}

#[test]
fn t38_a4_and_letter() {
    transfer("a4", &Call::new(t38()), spec(Width::A4, Length::A4, VRes::Standard, 7), 1);
    transfer("letter", &Call::new(t38()), spec(Width::A4, Length::Letter, VRes::Standard, 8), 1);
}

#[test]
fn t38_b4_width_when_accepted() {
    transfer("b4", &Call::new(t38()), spec(Width::B4, Length::Mm(60), VRes::Fine, 9), 1);
}

#[test]
fn t38_b4_width_refused_by_a4_only_receiver() {
    let dir = tmpdir("b4-refused");
    let input = make_tiff(&dir, "in", &spec(Width::B4, Length::Mm(60), VRes::Fine, 9), 1, false);
    let output = dir.join("out.tif");
    let mut call = Call::new(t38());
    call.rx_settings.paper = PaperWidths { a4: true, b4: false, a3: false };
    let out = call.run(&input, &output);
    let rx = pages_of(&out.b);
    // spandsp either scales the page down to 1728 pels or gives up; it must
    // never deliver a page wider than the receiver accepts.
    assert!(rx.iter().all(|p| p.width == 1728), "{rx:?}");
}

fn lossy(loss: f64, seed: u64) -> Call {
    let mut call = Call::new(t38());
    call.link = LinkConfig {
        loss,
        seed,
        jitter: Duration::from_millis(30),
        ec: ErrorCorrection::Redundancy { depth: 3 },
        ..LinkConfig::default()
    };
    call
}

#[test]
fn t38_loss_0_10_20_percent_with_redundancy_is_pixel_exact() {
    for (loss, seed) in [(0.0, 1), (0.10, 2), (0.20, 3)] {
        let out = transfer(&format!("loss-{seed}"), &lossy(loss, seed), fine_a4(10 + seed), 2);
        if loss > 0.0 {
            assert!(out.lost > 0, "loss applied");
        }
    }
}

#[test]
fn t38_fec_link() {
    let mut call = Call::new(t38());
    call.link =
        LinkConfig { loss: 0.05, seed: 9, ec: ErrorCorrection::Fec { span: 3, entries: 3 }, ..LinkConfig::default() };
    // With parity FEC and ECM the page must still arrive intact.
    transfer("fec", &call, short(VRes::Fine, 11), 1);
}

#[test]
fn t38_non_ecm_with_loss_delivers_damaged_pages_not_a_hang() {
    let dir = tmpdir("noecm-loss");
    let input = make_tiff(&dir, "in", &short(VRes::Fine, 12), 1, false);
    let output = dir.join("out.tif");
    let mut call = lossy(0.10, 4);
    call.ecm = false;
    call.link.ec = ErrorCorrection::None;
    let out = call.run(&input, &output);
    // Whatever happened, both ends reported phase E within the call limit.
    assert!(out.a_result().is_some() && out.b_result().is_some());
}

#[test]
fn g711_alaw_and_ulaw() {
    for law in [Law::Alaw, Law::Ulaw] {
        let out = transfer(&format!("g711-{law:?}"), &Call::new(audio(law)), short(VRes::Fine, 13), 1);
        assert_eq!(negotiated_rate(&out.b), 14400);
    }
}

#[test]
fn g711_non_ecm() {
    let mut call = Call::new(audio(Law::Alaw));
    call.ecm = false;
    transfer("g711-noecm", &call, short(VRes::Standard, 14), 1);
}

#[test]
fn receiver_dropping_mid_page_gives_partial_result() {
    let dir = tmpdir("drop");
    let s = fine_a4(15);
    let input = make_tiff(&dir, "in", &s, 3, false);
    let output = dir.join("out.tif");
    let mut pair = Call::new(t38()).pair(&input, &output);
    // Run until the first page is in, then 10 s into the second page.
    let mut first_at = None;
    while first_at.is_none_or(|t| pair.elapsed() < t + Duration::from_secs(10)) {
        assert!(pair.step());
        if first_at.is_none() && pages_of(pair.events(Side::B)).len() == 1 {
            first_at = Some(pair.elapsed());
        }
        assert!(pair.elapsed() < Duration::from_secs(600));
    }
    pair.session(Side::B).hang_up();
    pair.session(Side::A).hang_up(); // the BYE reaches the sender
    let out = pair.run(Duration::from_secs(700)).expect("both finish");
    let rx = out.b_result().unwrap();
    assert!(!rx.is_ok());
    assert_eq!(rx.code, CompletionCode::CALL_DROPPED);
    assert_eq!(rx.pages, 1);
    let tx = out.a_result().unwrap();
    assert!(!tx.is_ok());
    // The file holds the page that arrived, pixel for pixel.
    assert_pixels_equal(&input, &output, 1);
}

#[test]
fn silent_peer_ends_with_t30_error_within_timeouts() {
    let dir = tmpdir("silent");
    let input = make_tiff(&dir, "in", &short(VRes::Fine, 16), 2, false);
    for (transport, when) in [(t38(), 0u64), (t38(), 10), (audio(Law::Alaw), 10)] {
        let output = dir.join(format!("out-{when}.tif"));
        let mut pair = Call::new(transport).pair(&input, &output);
        while pair.elapsed() < Duration::from_secs(when) {
            assert!(pair.step());
        }
        pair.silence(Side::B);
        let silent_at = pair.elapsed();
        let out = pair.run(Duration::from_secs(300)).expect("sender gives up on its own");
        let (at, tx) = out
            .a
            .iter()
            .find_map(|(t, e)| match e {
                Event::Finished(r) => Some((*t, r.clone())),
                _ => None,
            })
            .unwrap();
        assert!(!tx.is_ok(), "{tx:?}");
        assert!(tx.code != CompletionCode::CALL_DROPPED, "a T.30 timeout, not a local hangup: {tx:?}");
        // T.30 timers: T1 35 s, T4 3 s x 3 tries, T2 6 s; allow 2 minutes.
        assert!(at - silent_at < Duration::from_secs(120), "gave up after {:?}: {tx:?}", at - silent_at);
    }
}

#[test]
fn minimum_rate_is_enforced() {
    let dir = tmpdir("minrate");
    let input = make_tiff(&dir, "in", &short(VRes::Fine, 17), 1, false);
    let output = dir.join("out.tif");
    let mut call = Call::new(t38());
    call.rx_settings.modems = Modems { v17: false, v29: false, v27ter: true };
    call.tx_settings.min_bit_rate = 9600;
    let out = call.run(&input, &output);
    let tx = out.a_result().unwrap();
    assert_eq!(tx.code, CompletionCode::CANNOT_TRAIN, "{tx:?}");
    assert_eq!(out.b_result().unwrap().pages, 0);
    // And the receiving side refuses a slow DCS on its own.
    let mut call = Call::new(t38());
    call.tx_settings.modems = Modems { v17: false, v29: false, v27ter: true };
    call.rx_settings.min_bit_rate = 9600;
    let out = call.run(&input, &dir.join("out2.tif"));
    assert!(!out.b_result().unwrap().is_ok());
    assert_eq!(out.b_result().unwrap().pages, 0);
}

#[test]
fn page_limit_and_header_line() {
    let dir = tmpdir("header");
    let s = short(VRes::Fine, 18);
    let input = make_tiff(&dir, "in", &s, 3, false);
    let output = dir.join("out.tif");
    let mut call = Call::new(t38());
    call.max_pages = Some(2);
    call.tx_settings.page_header = Some("faxgate test".into());
    let out = call.run(&input, &output);
    ok(out.b_result(), 2);
    assert_eq!(out.a_result().unwrap().pages, 2);
    assert_eq!(tiff_pages(&output), 2);
    // The header line changes only the top rows of each page.
    for p in 0..2 {
        let d = tiff_differences(&input, &output, p);
        assert!(!d.is_empty(), "page {p}: no header drawn");
        for line in &d {
            if let Some(rest) = line.strip_prefix("Scanline ") {
                let row: u32 = rest.split(',').next().unwrap().trim().parse().unwrap();
                assert!(row < 64, "page {p}: difference below the header: {line}");
            }
        }
    }
}

#[test]
fn g3_input_file() {
    // A T.4 2D (G3) input made by libtiff is sent as well as a G4 one.
    let dir = tmpdir("g3");
    let s = short(VRes::Standard, 19);
    let input = make_tiff(&dir, "in", &s, 1, true);
    let output = dir.join("out.tif");
    let out = Call::new(t38()).run(&input, &output);
    ok(out.b_result(), 1);
    assert_pixels_equal(&input, &output, 1);
}
