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

/// `faxgate render` of a PDF and a text body, in superfine on Letter paper
/// with a cover page, read by tiffinfo; then `faxgate topdf` of the result,
/// read by pdfinfo.
#[test]
fn render_and_topdf_from_the_command_line() {
    let setup = Setup::new();
    let dir = setup.path();
    let txt = dir.join("body.txt");
    std::fs::write(&txt, "Kære kunde. Grød med æbler og blåbær fra Ærø, Øster Åby.\n").unwrap();
    let letter = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/documents/letter.pdf");
    let out = dir.join("pages.tiff");
    let (out_s, txt_s) = (out.to_str().unwrap(), txt.to_str().unwrap());
    setup.ok(&[
        "render",
        letter.to_str().unwrap(),
        txt_s,
        "--out",
        out_s,
        "--resolution",
        "superfine",
        "--paper",
        "letter",
        "--cover",
        "Faxgate",
        "--from",
        "a@example.net",
        "--to",
        "+4512345678",
    ]);
    let o = Command::new("tiffinfo").arg(out_s).output().expect("tiffinfo (libtiff-tools)");
    let info = String::from_utf8_lossy(&o.stdout);
    assert_eq!(info.matches("Image Width: 1728 Image Length: 4301").count(), 4, "{info}");
    assert_eq!(info.matches("Resolution: 204, 391 pixels/inch").count(), 4, "{info}");
    let pdf = dir.join("fax.pdf");
    setup.ok(&["topdf", out_s, "--out", pdf.to_str().unwrap(), "--from", "+4512345678"]);
    let o = Command::new("pdfinfo").arg(&pdf).output().expect("pdfinfo (poppler-utils)");
    let info = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && info.contains("Pages:           4"), "{info}");
}

/// A small real JPEG and GIF, and the same with headers claiming 65,535 x
/// 65,535 pixels (4.3 gigapixels: SOF0, logical screen and image descriptor
/// patched). `faxgate render` runs under a 1 GiB address-space limit
/// (prlimit): the small ones render, the huge ones are refused as too large
/// with exit status 1, not killed by an allocation they could not make.
#[test]
fn render_refuses_huge_image_headers_within_a_small_address_space() {
    let setup = Setup::new();
    let dir = setup.path();
    let small = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(16, 16, |x, y| {
        image::Rgb([if (x + y) % 2 == 0 { 0 } else { 255 }; 3])
    }));
    let encode = |format| {
        let mut v = std::io::Cursor::new(Vec::new());
        small.write_to(&mut v, format).unwrap();
        v.into_inner()
    };
    let jpeg = encode(image::ImageFormat::Jpeg);
    let mut huge_jpeg = jpeg.clone();
    let sof = huge_jpeg.windows(2).position(|m| m == [0xff, 0xc0]).expect("SOF0");
    huge_jpeg[sof + 5..sof + 9].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    let gif = encode(image::ImageFormat::Gif);
    let mut huge_gif = gif.clone();
    huge_gif[6..10].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    let render = |name: &str, data: &[u8]| {
        let input = dir.join(name);
        std::fs::write(&input, data).unwrap();
        let start = std::time::Instant::now();
        let o = Command::new("prlimit")
            .arg(format!("--as={}", 1u64 << 30))
            .arg("--")
            .arg(crate::harness::BIN)
            .arg("--config")
            .arg(&setup.config)
            .arg("render")
            .arg(&input)
            .arg("--out")
            .arg(dir.join(format!("{name}.tiff")))
            .output()
            .expect("prlimit (util-linux)");
        (o.status, String::from_utf8_lossy(&o.stderr).into_owned(), start.elapsed())
    };
    for (name, data) in [("small.jpg", &jpeg), ("small.gif", &gif)] {
        let (status, err, _) = render(name, data);
        assert!(status.success(), "{name}: {status:?} {err}");
        assert_eq!(tiff_pages(dir.join(format!("{name}.tiff")).to_str().unwrap()), 1);
    }
    for (name, data) in [("huge.jpg", &huge_jpeg), ("huge.gif", &huge_gif)] {
        let (status, err, took) = render(name, data);
        assert_eq!(status.code(), Some(1), "{name}: {status:?} {err}");
        assert!(err.contains("65535 x 65535 pixels") && err.contains("too large"), "{name}: {err}");
        assert!(took < std::time::Duration::from_secs(5), "{name}: {took:?}");
    }
}
