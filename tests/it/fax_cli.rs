//! `faxgate fax loopback` as a sysadmin runs it: the binary sends a TIFF
//! rendered by `faxgate render` through a sender and a receiver joined in
//! memory, and prints what was negotiated and transferred as JSON; libtiff's
//! `tiffinfo` reads what it received.

use std::process::Command;

use crate::harness::Setup;

fn loopback(setup: &Setup, input: &str, out: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["fax", "loopback", input, "--out", out];
    args.extend_from_slice(extra);
    let text = setup.ok(&args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn tiff_pages(path: &str) -> usize {
    let o = Command::new("tiffinfo").arg(path).output().expect("tiffinfo (libtiff-tools)");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("Image Width: 1728"), "{text}");
    text.matches("TIFF Directory at offset").count()
}

#[test]
fn fax_loopback_over_t38_with_loss_and_over_g711_without_ecm() {
    let setup = Setup::new();
    let dir = setup.path();
    let pages = dir.join("pages.tiff");
    let letter = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/documents/letter.pdf");
    setup.ok(&["render", letter.to_str().unwrap(), "--out", pages.to_str().unwrap()]);
    let input = pages.to_str().unwrap();

    let out = dir.join("t38.tiff");
    let r = loopback(&setup, input, out.to_str().unwrap(), &["--pages", "1", "--loss", "10"]);
    assert_eq!((r["completion_code"].as_i64(), r["sender_completion_code"].as_i64()), (Some(0), Some(0)), "{r:#}");
    assert_eq!(r["transport"], "t38", "{r:#}");
    assert_eq!(r["pages"], 1, "{r:#}");
    assert_eq!(r["ecm"], true, "{r:#}");
    assert_eq!(r["bit_rate"], 14400, "{r:#}");
    assert!(r["datagrams_lost"].as_u64().unwrap() > 0, "10 % loss was applied: {r:#}");
    assert!(r["simulated_duration_s"].as_f64().unwrap() > 5.0, "{r:#}");
    assert!(r["cpu_time_ms"].as_f64().unwrap() > 0.0, "{r:#}");
    assert_eq!(tiff_pages(out.to_str().unwrap()), 1);

    let out = dir.join("g711.tiff");
    let r = loopback(&setup, input, out.to_str().unwrap(), &["--pages", "1", "--audio", "--no-ecm"]);
    assert_eq!(r["completion_code"], 0, "{r:#}");
    assert_eq!(r["transport"], "g711-alaw", "{r:#}");
    assert_eq!(r["ecm"], false, "{r:#}");
    assert_eq!(tiff_pages(out.to_str().unwrap()), 1);

    // A file that is not a TIFF is refused with a reason, before any call.
    let bad = setup.fails(&["fax", "loopback", letter.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(bad.contains("is not a TIFF file"), "{bad}");
    // A fax that does not get through prints its result and exits non-zero:
    // at 100 % loss nothing arrives.
    let o = setup.cli(&["fax", "loopback", input, "--out", out.to_str().unwrap(), "--loss", "100"]);
    assert!(!o.status.success());
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_ne!(r["completion_code"], 0, "{r:#}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("did not get through"));
}
