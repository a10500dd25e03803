//! The loopback diagnostic behind `faxgate fax loopback`.

mod common;

use common::*;
use faxgate_t38::loopback::{LoopbackOptions, run};
use faxgate_t38::testpage::{Length, VRes, Width};

#[test]
fn loopback_t38_with_loss_and_page_limit() {
    let dir = tmpdir("loopback");
    let input = make_tiff(&dir, "in", &spec(Width::A4, Length::Mm(100), VRes::Fine, 31), 3, false);
    let output = dir.join("out.tif");
    let opts = LoopbackOptions { pages: Some(2), loss_percent: 10.0, ..LoopbackOptions::new(&input, &output) };
    let r = run(&opts).unwrap();
    assert_eq!(r.completion_code, 0, "{r:?}");
    assert_eq!(r.pages, 2);
    assert_eq!(r.pages_in_file, Some(3));
    assert!(r.ecm && r.bit_rate == 14400);
    assert!(r.datagrams_lost > 0);
    assert!(r.simulated_duration_s > 5.0 && r.cpu_time_ms > 0.0);
    assert_pixels_equal(&input, &output, 2);
    let json = serde_json::to_value(&r).unwrap();
    for key in ["completion_code", "completion_text", "pages", "bit_rate", "ecm", "simulated_duration_s", "cpu_time_ms"]
    {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }
}

#[test]
fn loopback_audio_without_ecm() {
    let dir = tmpdir("loopback-audio");
    let input = make_tiff(&dir, "in", &spec(Width::A4, Length::Mm(60), VRes::Standard, 32), 1, false);
    let output = dir.join("out.tif");
    let r = run(&LoopbackOptions { audio: true, ecm: false, ..LoopbackOptions::new(&input, &output) }).unwrap();
    assert_eq!(r.completion_code, 0, "{r:?}");
    assert!(!r.ecm);
    assert_eq!(r.transport, "g711-alaw");
    assert_pixels_equal(&input, &output, 1);
}

#[test]
fn loopback_refuses_bad_input() {
    let dir = tmpdir("loopback-bad");
    let missing = run(&LoopbackOptions::new(dir.join("nope.tif"), dir.join("out.tif")));
    assert!(matches!(missing, Err(faxgate_t38::Error::NoSuchFile(_))));
    let not_tiff = dir.join("junk.tif");
    std::fs::write(&not_tiff, b"this is not a TIFF").unwrap();
    let r = run(&LoopbackOptions::new(&not_tiff, dir.join("out.tif")));
    // spandsp cannot open it: the call ends with a T.30 file error, not a panic.
    match r {
        Ok(r) => assert_ne!(r.completion_code, 0, "{r:?}"),
        Err(e) => eprintln!("refused: {e}"),
    }
    let loss = run(&LoopbackOptions { loss_percent: 101.0, ..LoopbackOptions::new(&not_tiff, dir.join("o.tif")) });
    assert!(matches!(loss, Err(faxgate_t38::Error::InvalidSetting(_))));
}
