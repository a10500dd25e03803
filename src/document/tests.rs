//! Tests of the document conversions, checked where possible by independent
//! tools: libtiff's `tiffinfo`/`tiffdump`/`tiffcp`, `qpdf`, poppler's
//! `pdfinfo`/`pdftoppm` and Ghostscript.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::fax_page::{Bitmap, GrayImage, Paper, Resolution, WIDTH};
use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/documents")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Runs a tool and returns its stdout; a missing tool fails the test with the
/// package to install.
fn run(cmd: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!("{cmd} is needed by the document tests (Debian: libtiff-tools poppler-utils qpdf ghostscript): {e}")
    });
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Reads a PBM (P4) as written by `pdftoppm -mono`.
fn read_pbm(data: &[u8]) -> Bitmap {
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 3 {
        while data[i].is_ascii_whitespace() {
            i += 1;
        }
        if data[i] == b'#' {
            while data[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let s = i;
        while !data[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(std::str::from_utf8(&data[s..i]).unwrap().to_string());
    }
    assert_eq!(fields[0], "P4");
    let (w, h): (u32, u32) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let stride = w.div_ceil(8) as usize;
    Bitmap::from_packed(w, h, data[i + 1..i + 1 + stride * h as usize].to_vec()).unwrap()
}

/// Share of equal pixels; pixels outside the common area count as different.
fn agreement(a: &Bitmap, b: &Bitmap) -> f64 {
    let w = a.width().min(b.width());
    let h = a.height().min(b.height());
    let mut same = 0u64;
    for y in 0..h {
        for x in 0..w {
            same += (a.get(x, y) == b.get(x, y)) as u64;
        }
    }
    let total = a.width().max(b.width()) as u64 * a.height().max(b.height()) as u64;
    same as f64 / total as f64
}

/// Renders every page of a PDF with `pdftoppm -mono` at fax resolution.
fn pdftoppm(pdf: &[u8], y_dpi: u32) -> Vec<Bitmap> {
    let dir = tmp();
    let p = dir.path().join("in.pdf");
    std::fs::write(&p, pdf).unwrap();
    let prefix = dir.path().join("out");
    let ry = y_dpi.to_string();
    let (ok, _, err) =
        run("pdftoppm", &["-rx", "204", "-ry", &ry, "-mono", p.to_str().unwrap(), prefix.to_str().unwrap()]);
    assert!(ok, "pdftoppm: {err}");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pbm"))
        .collect();
    files.sort();
    files.iter().map(|f| read_pbm(&std::fs::read(f).unwrap())).collect()
}

fn settings() -> Settings {
    Settings::default()
}

/// A synthetic page with text-like strokes, a grey box and fine lines.
fn test_page(height: u32, seed: u32) -> Bitmap {
    let mut b = Bitmap::new(WIDTH, height);
    for y in 0..height {
        for x in 0..WIDTH {
            let stroke = (x / 7 + y / 11 + seed).is_multiple_of(5) && (y / 40) % 3 != 2;
            let checker = x > 1200 && y > 200 && y < 600 && (x + y) % 2 == 0;
            let frame = x == 50 || x == WIDTH - 51 || y == 30 || y == height - 31;
            b.set(x, y, stroke || checker || frame);
        }
    }
    b
}

// ---------------------------------------------------------------- G4 TIFF out

#[test]
fn g4_tiff_is_read_by_libtiff_with_class_f_tags() {
    let noise = {
        // Worst case for the coder: random pixels, every run length.
        let mut b = Bitmap::new(WIDTH, 300);
        let mut r = fastrand::Rng::with_seed(0x1234_5678_9abc_def1);
        for y in 0..300 {
            let mut x = 0;
            while x < WIDTH {
                let len = 1 + r.u64(..if y % 3 == 0 { 3000 } else { 12 }) as u32;
                if r.u64(..).is_multiple_of(2) {
                    b.fill_black(y, x, (x + len).min(WIDTH));
                }
                x += len;
            }
        }
        b
    };
    let pages = vec![test_page(2292, 0), test_page(2292, 1), test_page(1000, 2), noise];
    let tiff = g4::write_tiff(&pages, Resolution::Fine);
    let dir = tmp();
    let p = dir.path().join("pages.tiff");
    std::fs::write(&p, &tiff).unwrap();
    let (ok, out, err) = run("tiffinfo", &[p.to_str().unwrap()]);
    assert!(ok && !err.contains("rror"), "tiffinfo: {err}");
    assert_eq!(out.matches("Image Width: 1728 Image Length: 2292").count(), 2, "{out}");
    assert_eq!(out.matches("Image Width: 1728 Image Length: 1000").count(), 1, "{out}");
    assert_eq!(out.matches("Resolution: 204, 196 pixels/inch").count(), 4, "{out}");
    assert_eq!(out.matches("Compression Scheme: CCITT Group 4").count(), 4, "{out}");
    assert_eq!(out.matches("FillOrder: msb-to-lsb").count(), 4, "{out}");
    assert_eq!(out.matches("Photometric Interpretation: min-is-white").count(), 4, "{out}");
    assert!(out.contains("Page Number: 0-4") && out.contains("Page Number: 3-4"), "{out}");
    let (ok, dump, _) = run("tiffdump", &[p.to_str().unwrap()]);
    assert!(ok);
    assert_eq!(dump.matches("Directory ").count(), 4, "{dump}");
    // libtiff decodes every strip without complaint.
    let (ok, _, err) =
        run("tiffcp", &["-c", "none", p.to_str().unwrap(), dir.path().join("raw.tiff").to_str().unwrap()]);
    assert!(ok && err.is_empty(), "tiffcp: {err}");
    // libtiff's decoding is exactly the pages that went in.
    let raw = std::fs::read(dir.path().join("raw.tiff")).unwrap();
    for (p, want) in tiff::parse(&raw, 50).unwrap().iter().zip(&pages) {
        assert_eq!(p.compression, 1);
        assert_eq!(&p.decode_bilevel(&raw, u64::MAX).unwrap(), want);
    }
    // And our reader, whose decoder is not the encoder's, gives the pages back.
    let back = tiff::parse(&tiff, 50).unwrap();
    for (p, want) in back.iter().zip(&pages) {
        assert_eq!(&p.decode_bilevel(&tiff, u64::MAX).unwrap(), want);
    }
}

#[test]
fn tiff_inputs_in_every_fax_compression_round_trip_exactly() {
    let pages = vec![test_page(2292, 3), test_page(1500, 4)];
    let dir = tmp();
    let g4 = dir.path().join("g4.tiff");
    std::fs::write(&g4, g4::write_tiff(&pages, Resolution::Fine)).unwrap();
    for (name, args) in [
        ("g3-1d", &["-c", "g3"][..]),
        ("g3-2d", &["-c", "g3:2d"]),
        ("g3-fill", &["-c", "g3:1d:fill"]),
        ("g3-2d-lsb", &["-c", "g3:2d", "-f", "lsb2msb"]),
        ("g4-strips", &["-c", "g4", "-r", "100"]),
        ("lzw", &["-c", "lzw"]),
        ("packbits", &["-c", "packbits"]),
        ("none", &["-c", "none"]),
        ("deflate", &["-c", "zip"]),
    ] {
        let out = dir.path().join(format!("{name}.tiff"));
        let mut a: Vec<&str> = args.to_vec();
        a.push(g4.to_str().unwrap());
        a.push(out.to_str().unwrap());
        let (ok, _, err) = run("tiffcp", &a);
        assert!(ok, "tiffcp {name}: {err}");
        let data = std::fs::read(&out).unwrap();
        let got = tiff::render(&data, &settings(), 50).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.len(), 2, "{name}");
        // The first page is a full A4 fine page and passes through untouched.
        assert_eq!(got[0], pages[0], "{name}");
        // The short page is placed at the top of a full page.
        for y in 0..1500 {
            assert_eq!(got[1].row(y), pages[1].row(y), "{name} row {y}");
        }
    }
}

#[test]
fn standard_resolution_tiff_is_stretched_to_fine() {
    let page = test_page(1146, 5);
    let tiff_data = g4::write_tiff(std::slice::from_ref(&page), Resolution::Standard);
    let got = tiff::render(&tiff_data, &settings(), 50).unwrap();
    assert_eq!((got[0].width(), got[0].height()), (1728, 2292));
    // Each standard line becomes two fine lines.
    for y in (0..1146).step_by(97) {
        assert_eq!(got[0].row(2 * y), page.row(y), "row {y}");
        assert_eq!(got[0].row(2 * y + 1), page.row(y), "row {y}");
    }
}

#[test]
fn bad_tiffs_are_refused_with_reasons() {
    assert!(matches!(tiff::render(b"II*\0garbage garbage", &settings(), 50), Err(Error::CorruptTiff(_))));
    // A page that claims 100,000 x 100,000 pixels.
    let mut f = b"II*\0\x08\0\0\0".to_vec();
    let entries: [(u16, u16, u32, u32); 6] =
        [(256, 4, 1, 100_000), (257, 4, 1, 100_000), (258, 3, 1, 8), (262, 3, 1, 1), (273, 4, 1, 8), (279, 4, 1, 10)];
    f.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (t, ty, c, v) in entries {
        f.extend_from_slice(&t.to_le_bytes());
        f.extend_from_slice(&ty.to_le_bytes());
        f.extend_from_slice(&c.to_le_bytes());
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(&0u32.to_le_bytes());
    let err = tiff::render(&f, &settings(), 50).unwrap_err();
    assert!(matches!(err, Error::ImageTooLarge { width: 100_000, .. }), "{err}");
    assert!(err.to_string().contains("too large"));
    // Truncated strip data.
    let good = g4::write_tiff(&[test_page(2292, 6)], Resolution::Fine);
    let cut = &good[..good.len() / 3];
    assert!(tiff::render(cut, &settings(), 50).is_err());
    // Too many pages for the room left.
    let three = g4::write_tiff(&[test_page(100, 0), test_page(100, 1), test_page(100, 2)], Resolution::Fine);
    assert!(matches!(tiff::render(&three, &settings(), 2), Err(Error::TooManyPages { limit: 2, .. })));
}

// ---------------------------------------------------------------- topdf

fn pdf_check(pdf: &[u8]) -> String {
    let dir = tmp();
    let p = dir.path().join("f.pdf");
    std::fs::write(&p, pdf).unwrap();
    let (ok, out, err) = run("qpdf", &["--check", p.to_str().unwrap()]);
    assert!(ok, "qpdf --check: {out} {err}");
    assert!(out.contains("No syntax or stream encoding errors"), "{out}");
    let (ok, info, err) = run("pdfinfo", &[p.to_str().unwrap()]);
    assert!(ok, "pdfinfo: {err}");
    info
}

#[test]
fn received_fax_becomes_a_pdf_with_the_strips_byte_for_byte() {
    let pages = vec![test_page(2292, 7), test_page(2292, 8), test_page(700, 9)];
    let tiff_data = g4::write_tiff(&pages, Resolution::Fine);
    let info = topdf::FaxInfo {
        from: "+4533221100 ACME FAX".into(),
        received: Some("2026-11-27T10:11:12Z".parse().unwrap()),
        ..Default::default()
    };
    let (pdf, n) = topdf::tiff_to_pdf(&tiff_data, &info, 1000).unwrap();
    assert_eq!(n, 3);
    let info_text = pdf_check(&pdf);
    assert!(info_text.contains("Pages:           3"), "{info_text}");
    assert!(info_text.contains("Title:           Fax from +4533221100 ACME FAX"), "{info_text}");
    assert!(info_text.contains("Author:          +4533221100 ACME FAX"), "{info_text}");
    assert!(info_text.contains("2026"), "{info_text}");
    // 1728 x 2292 at 204 x 196 dpi is 609.88 x 841.96 pt (215 x 297 mm).
    assert!(info_text.contains("Page size:       609.882 x 841.959 pts"), "{info_text}");
    // Every strip appears unchanged in the PDF.
    for p in tiff::parse(&tiff_data, 10).unwrap() {
        let strip = p.strip(&tiff_data, 0).unwrap();
        assert!(pdf.windows(strip.len()).any(|w| w == strip), "strip not embedded verbatim");
    }
    // poppler decodes what we embedded back into the pages that went in.
    let rendered = pdftoppm(&pdf, 196);
    assert_eq!(rendered.len(), 3);
    for (r, want) in rendered.iter().zip(&pages) {
        let a = agreement(r, want);
        assert!(a >= 0.999, "pdftoppm agreement {a}, size {}x{}", r.width(), r.height());
    }
}

#[test]
fn g3_and_standard_resolution_faxes_convert_at_true_size() {
    let page = test_page(1146, 10);
    let dir = tmp();
    let g4p = dir.path().join("std.tiff");
    std::fs::write(&g4p, g4::write_tiff(std::slice::from_ref(&page), Resolution::Standard)).unwrap();
    for (name, args) in [
        ("g3-1d", &["-c", "g3"][..]),
        ("g3-2d-fill", &["-c", "g3:2d:fill"]),
        ("g3-lsb", &["-c", "g3", "-f", "lsb2msb"]),
        ("g4-strips", &["-c", "g4", "-r", "64"]),
        ("packbits", &["-c", "packbits"]),
    ] {
        let out = dir.path().join(format!("{name}.tiff"));
        let mut a: Vec<&str> = args.to_vec();
        a.push(g4p.to_str().unwrap());
        a.push(out.to_str().unwrap());
        assert!(run("tiffcp", &a).0, "{name}");
        let data = std::fs::read(&out).unwrap();
        let (pdf, _) = topdf::tiff_to_pdf(&data, &topdf::FaxInfo::default(), 10).unwrap();
        let info = pdf_check(&pdf);
        // 1146 lines at 98 dpi: A4 height again.
        assert!(info.contains("609.882 x 841.959 pts") || info.contains("609.882 x 842.204 pts"), "{name}: {info}");
        let r = pdftoppm(&pdf, 98);
        let a = agreement(&r[0], &page);
        let bad: Vec<u32> = (0..r[0].height().min(1146)).filter(|&y| r[0].row(y) != page.row(y)).collect();
        assert!(
            a >= 0.999,
            "{name}: agreement {a} {}x{} bad rows {:?}",
            r[0].width(),
            r[0].height(),
            &bad[..bad.len().min(20)]
        );
    }
}

#[test]
fn narrow_and_long_pages_are_kept_whole() {
    // A 1216-pixel (B5-width) page and a 6000-line page (over 2.5 A4 lengths).
    let narrow = {
        let mut b = Bitmap::new(1216, 800);
        for y in 0..800 {
            b.set(y % 1216, y, true);
            b.set(1215, y, true);
        }
        b
    };
    let long = test_page(6000, 11);
    let tiff_data = g4::write_tiff(&[narrow.clone(), long.clone()], Resolution::Fine);
    let (pdf, _) = topdf::tiff_to_pdf(&tiff_data, &topdf::FaxInfo::default(), 10).unwrap();
    pdf_check(&pdf);
    let r = pdftoppm(&pdf, 196);
    let a = agreement(&r[0], &narrow);
    assert!(a >= 0.999, "narrow: {a} {}x{}", r[0].width(), r[0].height());
    let a = agreement(&r[1], &long);
    assert!(a >= 0.999, "long: {a} {}x{}", r[1].width(), r[1].height());
}

// ---------------------------------------------------------------- PDF input

#[test]
fn corpus_pdfs_render_with_hayro_like_ghostscript() {
    let mut gs_settings = settings();
    gs_settings.pdf_renderer = PdfRenderer::Ghostscript;
    // (file, pages, compared with Ghostscript): the variants of a file already
    // compared are only checked for their pages and ink.
    for (name, pages, compare) in [
        ("letter.pdf", 2, true),
        ("letter-cairo.pdf", 2, false),
        ("chart.pdf", 1, true),
        ("scan.pdf", 1, true),
        ("rotated.pdf", 1, true),
        ("encrypted-no-user-password.pdf", 1, false),
    ] {
        let data = fixture(name);
        let ours = pdf::render(&data, &settings(), 50).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ours.len(), pages, "{name}");
        for (i, a) in ours.iter().enumerate() {
            assert_eq!((a.width(), a.height()), (1728, 2292));
            let ink = a.black_pixels() as f64 / (1728.0 * 2292.0);
            assert!(ink > 0.002, "{name} page {i}: almost blank ({ink})");
        }
        if !compare {
            continue;
        }
        let theirs = pdf::render(&data, &gs_settings, 50).unwrap_or_else(|e| panic!("{name} gs: {e}"));
        assert_eq!(theirs.len(), pages, "{name}");
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            let agree = agreement(a, b);
            eprintln!("{name} page {i}: agreement with Ghostscript {agree:.4}");
            assert!(agree > 0.98, "{name} page {i}: agreement with Ghostscript {agree}");
        }
    }
}

#[test]
fn bad_pdfs_are_refused_with_reasons() {
    let err = pdf::render(&fixture("encrypted-password.pdf"), &settings(), 50).unwrap_err();
    assert!(matches!(err, Error::PasswordProtected), "{err}");
    assert!(err.to_string().contains("password"));
    let letter = fixture("letter.pdf");
    let truncated = &letter[..letter.len() / 2];
    match pdf::render(truncated, &settings(), 50) {
        Err(Error::CorruptPdf) => {}
        // hayro may rebuild a truncated file's cross-reference table; then
        // the pages that survive render.
        Ok(pages) => assert!(!pages.is_empty()),
        Err(e) => panic!("truncated: {e}"),
    }
    assert!(matches!(pdf::render(b"%PDF-1.4 garbage", &settings(), 50), Err(Error::CorruptPdf)));
    // Ghostscript exits 0 on these; its output is checked.
    let mut gs = settings();
    gs.pdf_renderer = PdfRenderer::Ghostscript;
    assert!(pdf::render(&fixture("encrypted-password.pdf"), &gs, 50).is_err());
    assert!(pdf::render(b"%PDF-1.4 garbage", &gs, 50).is_err());
}

/// A PDF with `n` empty pages, written with pdf-writer.
fn many_pages(n: usize) -> Vec<u8> {
    use pdf_writer::{Pdf, Rect, Ref};
    let mut pdf = Pdf::new();
    let tree = Ref::new(2);
    let ids: Vec<Ref> = (0..n).map(|i| Ref::new(3 + i as i32)).collect();
    pdf.catalog(Ref::new(1)).pages(tree);
    pdf.pages(tree).kids(ids.iter().copied()).count(n as i32);
    for id in &ids {
        pdf.page(*id).media_box(Rect::new(0.0, 0.0, 595.0, 842.0)).parent(tree);
    }
    pdf.finish()
}

#[test]
fn ten_thousand_page_pdf_is_refused_quickly() {
    let data = many_pages(10_000);
    let t = std::time::Instant::now();
    let err = pdf::render(&data, &settings(), 50).unwrap_err();
    assert!(matches!(err, Error::TooManyPages { pages: 10_000, limit: 50 }), "{err}");
    assert!(t.elapsed().as_secs() < 10);
    // The job's page limit counts earlier parts too.
    let mut s = settings();
    s.limits.max_pages = 5;
    s.resolution = Resolution::Standard;
    let mut job = Pages::new(s);
    job.add_binary(Kind::Pdf, &many_pages(3)).unwrap();
    let err = job.add_binary(Kind::Pdf, &many_pages(3)).unwrap_err();
    assert!(matches!(err, Error::TooManyPages { pages: 6, limit: 5 }), "{err}");
}

// ---------------------------------------------------------------- images

fn encode(img: ::image::DynamicImage, fmt: ::image::ImageFormat) -> Vec<u8> {
    let mut v = std::io::Cursor::new(Vec::new());
    img.write_to(&mut v, fmt).unwrap();
    v.into_inner()
}

#[test]
fn png_jpeg_gif_render_with_their_tones() {
    // 600 x 400: left half black, right half a 50 % grey, a white stripe.
    let img = ::image::RgbImage::from_fn(600, 400, |x, y| {
        if (180..220).contains(&y) {
            ::image::Rgb([255, 255, 255])
        } else if x < 300 {
            ::image::Rgb([0, 0, 0])
        } else {
            ::image::Rgb([128, 128, 128])
        }
    });
    let dynimg = ::image::DynamicImage::ImageRgb8(img);
    for (kind, fmt) in [
        (Kind::Png, ::image::ImageFormat::Png),
        (Kind::Jpeg, ::image::ImageFormat::Jpeg),
        (Kind::Gif, ::image::ImageFormat::Gif),
    ] {
        let data = encode(dynimg.clone(), fmt);
        assert_eq!(Kind::sniff(&data), Some(kind));
        let page = image::render(kind, &data, &settings()).unwrap();
        assert_eq!((page.width(), page.height()), (1728, 2292));
        // Scaled to the printable width but not beyond 100 dpi: 600 px are
        // 6 in, 1224 fax pixels, centred; 400 px are 784 lines from the
        // 5 mm margin (39 lines).
        let x0 = (1728 - 1224) / 2;
        let share = |xs: std::ops::Range<u32>, ys: std::ops::Range<u32>| {
            let mut n = 0;
            let mut k = 0;
            for y in ys.clone() {
                for x in xs.clone() {
                    n += page.get(x, y) as u32;
                    k += 1;
                }
            }
            n as f64 / k as f64
        };
        // The white stripe (source rows 180..220) is at lines 392..470.
        assert!(share(x0 + 20..x0 + 590, 60..380) > 0.99, "{kind:?} black half");
        let grey = share(x0 + 640..x0 + 1200, 60..380);
        assert!((grey - 0.5).abs() < 0.08, "{kind:?} grey half {grey}");
        assert!(share(x0 + 20..x0 + 1200, 400..462) < 0.01, "{kind:?} white stripe");
        assert!(share(x0 + 20..x0 + 1200, 480..800) > 0.4, "{kind:?} lower part");
        assert!(share(0..1728, 830..2292) == 0.0, "{kind:?} below the image");
        assert!(share(0..x0 - 5, 0..2292) == 0.0, "{kind:?} left margin");
    }
}

#[test]
fn huge_and_broken_images_are_refused() {
    // PNG headers claiming 100,000 x 100,000 pixels, and a 1 x 70,000 sliver.
    for (w, h) in [(100_000u32, 100_000u32), (1, 70_000)] {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(&ihdr);
        png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
        // A tiny image data chunk (an empty zlib stream) so that the header is
        // complete, then the end.
        for (kind, body) in [(&b"IDAT"[..], &b"\x78\x9c\x03\x00\x00\x00\x00\x01"[..]), (b"IEND", b"")] {
            let mut chunk = kind.to_vec();
            chunk.extend_from_slice(body);
            png.extend_from_slice(&(body.len() as u32).to_be_bytes());
            png.extend_from_slice(&chunk);
            png.extend_from_slice(&crc32(&chunk).to_be_bytes());
        }
        let err = image::render(Kind::Png, &png, &settings()).unwrap_err();
        assert!(matches!(err, Error::ImageTooLarge { .. }), "{w}x{h}: {err}");
        assert!(err.to_string().contains("too large"), "{err}");
    }
    assert!(matches!(
        image::render(Kind::Jpeg, b"\xff\xd8\xff\xe0 not really", &settings()),
        Err(Error::CorruptImage(_))
    ));
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

// ---------------------------------------------------------------- text

const NORDIC: &str = "Kære kunde. Grød med æbler og blåbær fra Ærø, Øster Åby.\n\
    Sehr geehrte Frau Müller, Grüße aus Köln: Übergröße, Straße, Äpfel.\n\
    Szanowny Panie, zażółć gęślą jaźń. Łódź, Kraków, Gdańsk.\n\
    Café, naïve, élève, façade. Tak for hjælpen!";

#[test]
fn text_in_several_languages_matches_its_golden_image() {
    let pages = text::render(NORDIC, &settings()).unwrap();
    assert_eq!(pages.len(), 1);
    let page = &pages[0];
    // Only the top of the page has text.
    let top = text_top(page);
    assert!(page.black_pixels() > 10_000);
    for y in 400..page.height() {
        assert!(page.row(y).iter().all(|&b| b == 0), "ink below the text at row {y}");
    }
    golden("text-latin.png", &top);
}

/// Compares with a golden PNG exactly; a mismatch writes `NAME.failed.png`
/// beside it. `FAXGATE_BLESS=1` rewrites the golden file.
fn golden(name: &str, img: &GrayImage) {
    golden_within(name, img, 1.0);
}

/// Compares with a golden PNG, requiring at least `min_equal` of the pixels
/// to be equal.
fn golden_within(name: &str, img: &GrayImage, min_equal: f64) {
    let path = fixtures().join("golden").join(name);
    let encoded = {
        let g = ::image::GrayImage::from_raw(img.width, img.height, img.data.clone()).unwrap();
        encode(::image::DynamicImage::ImageLuma8(g), ::image::ImageFormat::Png)
    };
    if std::env::var_os("FAXGATE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &encoded).unwrap();
    }
    let want = ::image::open(&path)
        .unwrap_or_else(|e| panic!("golden {}: {e} (FAXGATE_BLESS=1 writes it)", path.display()))
        .to_luma8();
    let equal = if want.width() == img.width && want.height() == img.height {
        want.as_raw().iter().zip(&img.data).filter(|(a, b)| a == b).count() as f64 / img.data.len() as f64
    } else {
        0.0
    };
    if equal < min_equal {
        let failed = path.with_extension("failed.png");
        std::fs::write(&failed, &encoded).unwrap();
        panic!("rendering differs from {} ({equal} equal); see {}", path.display(), failed.display());
    }
}

#[test]
fn text_glyphs_are_distinct_and_legible() {
    // Each accented letter must print differently from its base letter.
    let s = settings();
    let ink = |t: &str| text::render(t, &s).unwrap()[0].clone();
    for (a, b) in [("a", "æ"), ("o", "ø"), ("a", "å"), ("u", "ü"), ("s", "ß"), ("l", "ł"), ("e", "é")] {
        assert_ne!(ink(a), ink(b), "{a} and {b} print the same");
    }
    assert!(ink("ł").black_pixels() > 100);
}

#[test]
fn long_text_paginates_and_page_limit_holds() {
    let body: String = (0..200).map(|i| format!("Linje {i}: {}\n", "ord ".repeat(30))).collect();
    let pages = text::render(&body, &settings()).unwrap();
    // 200 lines of 127 characters wrap to 400 lines; 64 a page.
    let l = text::Layout::body(Paper::A4, Resolution::Fine);
    assert_eq!(pages.len(), 400usize.div_ceil(l.rows));
    let mut s = settings();
    s.limits.max_pages = 3;
    assert!(matches!(text::render(&body, &s), Err(Error::TooManyPages { limit: 3, .. })));
    // Letter paper, standard resolution.
    s.limits.max_pages = 50;
    s.paper = Paper::Letter;
    s.resolution = Resolution::Standard;
    let p = text::render("Hello", &s).unwrap();
    assert_eq!((p[0].width(), p[0].height()), (1728, 1078));
}

#[test]
fn html_body_renders_as_text() {
    let mut job = Pages::new(settings());
    job.add_html("<p>Hej <b>Åse</b></p><script>x()</script>").unwrap();
    let mut plain = Pages::new(settings());
    plain.add_text("Hej Åse").unwrap();
    assert_eq!(job.pages(), plain.pages());
}

// ---------------------------------------------------------------- cover, jobs

#[test]
fn cover_page_goes_first_and_counts_itself() {
    let mut job = Pages::new(settings());
    job.add_text("Side 1").unwrap();
    job.add_binary(Kind::Pdf, &fixture("chart.pdf")).unwrap();
    let cover = CoverPage {
        branding: "Nordisk Fax A/S".into(),
        from: "jens@example.dk".into(),
        to: "+45 33 22 11 00".into(),
        date: "2026-11-27 10:00".into(),
        comment: "Hej Åse,\nhermed tegningen.".into(),
        ..CoverPage::default()
    };
    job.prepend_cover(&cover).unwrap();
    let pages = job.pages();
    assert_eq!(pages.len(), 3);
    // The cover differs from one that says 2 pages.
    let two = cover::render(&CoverPage { pages: 2, ..cover.clone() }, &settings()).unwrap();
    let three = cover::render(&CoverPage { pages: 3, ..cover }, &settings()).unwrap();
    assert_eq!(pages[0], three);
    assert_ne!(two, three);
    assert!(three.black_pixels() > 20_000);
    let tiff_data = job.to_tiff().unwrap();
    assert_eq!(tiff::parse(&tiff_data, 50).unwrap().len(), 3);
}

#[test]
fn rendered_job_survives_tiff_and_pdf_round_trip_through_poppler() {
    let mut job = Pages::new(settings());
    job.add_binary(Kind::Pdf, &fixture("letter.pdf")).unwrap();
    job.add_text(NORDIC).unwrap();
    let tiff_data = job.to_tiff().unwrap();
    let (pdf, n) = topdf::tiff_to_pdf(&tiff_data, &topdf::FaxInfo::default(), 50).unwrap();
    assert_eq!(n, 3);
    pdf_check(&pdf);
    let r = pdftoppm(&pdf, 196);
    for (a, b) in r.iter().zip(job.pages()) {
        let agree = agreement(a, b);
        assert!(agree >= 0.999, "agreement {agree}");
    }
}

// ---------------------------------------------------------------- CLI

// ---------------------------------------------------------------- robustness

/// Flips bytes, cuts and duplicates ranges of `seed`.
fn mutate(rng: &mut fastrand::Rng, seed: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..1 + rng.usize(..4) {
        match rng.usize(..4) {
            0 => {
                let i = rng.usize(..(d.len()).max(1));
                d[i] = rng.u8(..);
            }
            1 => {
                let i = rng.usize(..(d.len()).max(1));
                d.truncate(i.max(8));
            }
            2 => {
                let a = rng.usize(..(d.len()).max(1));
                let b = (a + rng.usize(..64)).min(d.len());
                let chunk = d[a..b].to_vec();
                let at = rng.usize(..(d.len()).max(1));
                d.splice(at..at, chunk);
            }
            _ => {
                // Header-sized fields get extreme values.
                let i = rng.usize(..d.len().clamp(1, 400));
                let v = [0u8, 0xff, 0x7f, 0x80][rng.usize(..4)];
                d[i] = v;
            }
        }
    }
    d
}

#[test]
fn mutated_tiffs_never_panic() {
    let pages = [test_page(300, 1), test_page(200, 2)];
    let g4 = g4::write_tiff(&pages, Resolution::Fine);
    let dir = tmp();
    let src = dir.path().join("g4.tiff");
    std::fs::write(&src, &g4).unwrap();
    let g3 = dir.path().join("g3.tiff");
    assert!(run("tiffcp", &["-c", "g3:2d", "-r", "50", src.to_str().unwrap(), g3.to_str().unwrap()]).0);
    let seeds = [g4, std::fs::read(&g3).unwrap()];
    let mut rng = fastrand::Rng::with_seed(0x5eed_1234_abcd_ef01);
    let mut refused = 0;
    for round in 0..400 {
        let data = mutate(&mut rng, &seeds[round % 2]);
        let res = std::panic::catch_unwind(|| {
            let a = tiff::render(&data, &settings(), 50).is_err();
            let b = topdf::tiff_to_pdf(&data, &topdf::FaxInfo::default(), 50).is_err();
            a || b
        });
        match res {
            Ok(r) => refused += r as usize,
            Err(_) => {
                let p = dir.path().join(format!("crash-{round}.tiff"));
                std::fs::write(&p, &data).unwrap();
                panic!("round {round} panicked");
            }
        }
    }
    // The mutations do reach the error paths.
    assert!(refused > 50, "{refused}");
}

#[test]
fn mutated_pdfs_never_panic() {
    let seeds = [fixture("chart.pdf"), fixture("letter.pdf")];
    let mut rng = fastrand::Rng::with_seed(0xfeed_beef_0bad_cafe);
    let mut s = settings();
    s.limits.max_pages = 3;
    s.resolution = Resolution::Standard;
    for round in 0..16 {
        let data = mutate(&mut rng, &seeds[round % 2]);
        let res = std::panic::catch_unwind(|| pdf::render(&data, &s, 3).map(|p| p.len()));
        assert!(res.is_ok(), "round {round} panicked");
    }
}

#[test]
fn corpus_pages_match_their_golden_images() {
    for (name, golden_name) in [("letter.pdf", "letter-p1.png"), ("chart.pdf", "chart.png"), ("scan.pdf", "scan.png")] {
        let pages = pdf::render(&fixture(name), &settings(), 50).unwrap();
        // hayro picks its SIMD level at run time; allow one pixel in 2000 to
        // differ in anti-aliased edges.
        golden_within(golden_name, &pages[0].to_gray(), 0.9995);
    }
}

/// A one-page PDF showing `text` in a font that is not embedded.
fn pdf_with_font(base_font: &[u8], text: &[u8]) -> Vec<u8> {
    use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};
    let mut pdf = Pdf::new();
    let (catalog, tree, page, font, content) = (Ref::new(1), Ref::new(2), Ref::new(3), Ref::new(4), Ref::new(5));
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids([page]).count(1);
    let mut p = pdf.page(page);
    p.media_box(Rect::new(0.0, 0.0, 595.0, 842.0)).parent(tree).contents(content);
    p.resources().fonts().pair(Name(b"F1"), font);
    p.finish();
    pdf.type1_font(font).base_font(Name(base_font));
    let mut c = Content::new();
    c.begin_text().set_font(Name(b"F1"), 24.0).next_line(72.0, 700.0).show(Str(text)).end_text();
    pdf.stream(content, &c.finish());
    pdf.finish()
}

#[test]
fn missing_fonts_are_substituted_and_empty_documents_refused() {
    for font in [&b"Helvetica"[..], b"Times-Bold", b"NoSuchFont-Regular"] {
        let pages = pdf::render(&pdf_with_font(font, b"Missing font, still legible"), &settings(), 50).unwrap();
        let ink = pages[0].black_pixels();
        assert!(ink > 2_000, "{}: {ink} black pixels", String::from_utf8_lossy(font));
    }
    assert!(matches!(pdf::render(&many_pages(0), &settings(), 50), Err(Error::NoPages)));
    // A TIFF whose first page offset is 0 has no pages.
    assert!(matches!(tiff::render(b"II*\0\0\0\0\0", &settings(), 50), Err(Error::NoPages)));
    let mut job = Pages::new(settings());
    assert!(matches!(job.add_text(" \r\n\t\x0c "), Err(Error::NoPages)));
    assert!(matches!(job.add_html("<html><body><p> </p></body></html>"), Err(Error::NoPages)));
    assert!(matches!(job.finish(), Err(Error::NoPages)));
}

#[test]
fn grey_and_colour_tiffs_render_and_jpeg_tiff_is_refused() {
    let dir = tmp();
    let pdf_path = fixtures().join("scan.pdf");
    let mut s = settings();
    s.resolution = Resolution::Standard;
    let hayro_ink = pdf::render(&fixture("scan.pdf"), &s, 50).unwrap()[0].black_pixels() as f64;
    for (name, args) in [
        ("grey-lzw", &["-gray", "-tiffcompression", "lzw"][..]),
        ("rgb-packbits", &["-tiffcompression", "packbits"]),
        ("rgb-deflate", &["-tiffcompression", "deflate"]),
    ] {
        let prefix = dir.path().join(name);
        let mut a = vec!["-tiff", "-r", "100", "-singlefile"];
        a.extend_from_slice(args);
        a.push(pdf_path.to_str().unwrap());
        a.push(prefix.to_str().unwrap());
        let (ok, _, err) = run("pdftoppm", &a);
        assert!(ok, "pdftoppm {name}: {err}");
        let data = std::fs::read(prefix.with_extension("tif")).unwrap();
        let pages = tiff::render(&data, &s, 50).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(pages.len(), 1);
        // The same page drawn from a 100 dpi raster has about the same ink as
        // hayro's drawing of the PDF.
        let ink = pages[0].black_pixels() as f64;
        assert!((ink / hayro_ink - 1.0).abs() < 0.15, "{name}: ink {ink} against {hayro_ink}");
    }
    let prefix = dir.path().join("jpeg");
    let (ok, _, _) = run(
        "pdftoppm",
        &[
            "-tiff",
            "-r",
            "50",
            "-singlefile",
            "-tiffcompression",
            "jpeg",
            pdf_path.to_str().unwrap(),
            prefix.to_str().unwrap(),
        ],
    );
    assert!(ok);
    let err = tiff::render(&std::fs::read(prefix.with_extension("tif")).unwrap(), &settings(), 50).unwrap_err();
    assert!(matches!(err, Error::UnsupportedTiff(_)), "{err}");
    assert!(err.to_string().contains("compression 7"), "{err}");
}

#[test]
fn ghostscript_runs_within_its_time_and_memory_limits() {
    let data = fixture("scan.pdf");
    let mut s = settings();
    s.pdf_renderer = PdfRenderer::Ghostscript;
    s.limits.max_time = Duration::from_millis(1);
    let t = std::time::Instant::now();
    assert!(matches!(pdf::render(&data, &s, 50), Err(Error::TimedOut(_))));
    assert!(t.elapsed() < Duration::from_secs(5));
    s.limits.max_time = Duration::from_secs(60);
    s.limits.max_memory = 8 << 20;
    let err = pdf::render(&data, &s, 50).unwrap_err();
    assert!(matches!(err, Error::Ghostscript(_) | Error::CorruptPdf), "{err}");
    // The fallback setting sends only what hayro cannot read to Ghostscript.
    s.limits.max_memory = 1 << 30;
    s.pdf_renderer = PdfRenderer::HayroThenGhostscript;
    assert!(matches!(pdf::render(&fixture("encrypted-password.pdf"), &s, 50), Err(Error::PasswordProtected)));
    assert_eq!(pdf::render(&data, &s, 50).unwrap().len(), 1);
}

// ---------------------------------------------------------------- mail charsets

/// Known texts, each in a charset that holds all of it.
const CHARSET_TEXTS: [(&str, &str, &str); 3] = [
    (
        "iso-8859-1",
        "mail-latin1.png",
        "Kære kunde. Grød med æbler og blåbær fra Ærø, Øster Åby.\r\n\
         Sehr geehrte Frau Müller, Grüße aus Köln: Übergröße, Straße.\r\n\
         Café, naïve, élève, façade. ¿Qué tal? 20 °C, ½ pris, © 2026.",
    ),
    (
        "windows-1252",
        "mail-cp1252.png",
        "Pris: 1.250 € – „tilbud“ … ‘særpris’ • Œuvre, Šárka, Žižka™.\r\n\
         Fakturanr. 42 — betales senest 31. december.",
    ),
    (
        "iso-8859-2",
        "mail-latin2.png",
        "Szanowny Panie, zażółć gęślą jaźń. Łódź, Kraków, Gdańsk, Wrocław.\r\n\
         Příliš žluťoučký kůň úpěl ďábelské ódy.\r\n\
         Árvíztűrő tükörfúrógép.",
    ),
];

/// `text` in `charset`, by iconv (glibc's converter, not the mail parser's).
fn iconv(text: &str, charset: &str) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("iconv")
        .args(["-f", "UTF-8", "-t", charset])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("iconv (Debian: libc-bin)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "iconv to {charset}");
    // Every character had a place in the charset: no lossy round trip.
    assert_ne!(out.stdout, text.as_bytes(), "{charset} should differ from UTF-8");
    out.stdout
}

/// `data` in a transfer encoding, by Python's standard library.
fn transfer_encode(data: &[u8], encoding: &str) -> Vec<u8> {
    use std::io::Write;
    let code = match encoding {
        "quoted-printable" => {
            "import sys, quopri; sys.stdout.buffer.write(quopri.encodestring(sys.stdin.buffer.read()))"
        }
        "base64" => "import sys, base64; sys.stdout.buffer.write(base64.encodebytes(sys.stdin.buffer.read()))",
        _ => return data.to_vec(),
    };
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", code])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    // Python writes bare LF; mail has CRLF.
    String::from_utf8(out.stdout).unwrap().replace('\n', "\r\n").into_bytes()
}

/// The pages the gateway makes of a mail.
fn mail_pages(raw: &[u8]) -> Vec<Bitmap> {
    let r = crate::gateway::render::render(raw, settings(), None).unwrap();
    tiff::parse(&r.tiff, 50).unwrap().iter().map(|p| p.decode_bilevel(&r.tiff, u64::MAX).unwrap()).collect()
}

/// A one-part text mail.
fn text_mail(charset: &str, encoding: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "From: a@example.com\r\nTo: +4533221100@fax.example.net\r\nSubject: Tekst\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=\"{charset}\"\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(&transfer_encode(body, encoding));
    m.extend_from_slice(b"\r\n");
    m
}

/// A mail whose text is an attachment (`brev.txt`) beside a short body.
fn text_attachment_mail(charset: &str, encoding: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "From: a@example.com\r\nSubject: Brev\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nSee the letter.\r\n\
         --b\r\nContent-Type: text/plain; charset={charset}\r\nContent-Disposition: attachment; filename=brev.txt\r\n\
         Content-Transfer-Encoding: {encoding}\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(&transfer_encode(body, encoding));
    m.extend_from_slice(b"\r\n--b--\r\n");
    m
}

/// The top of a text page (where the text is), as grey for a golden image.
fn text_top(page: &Bitmap) -> GrayImage {
    GrayImage {
        width: WIDTH,
        height: 400,
        data: (0..400)
            .flat_map(|y| (0..WIDTH).map(move |x| (x, y)))
            .map(|(x, y)| if page.get(x, y) { 0 } else { 255 })
            .collect(),
    }
}

#[test]
fn text_in_legacy_charsets_renders_exactly_as_in_utf8() {
    for (charset, golden_name, text) in CHARSET_TEXTS {
        let utf8 = mail_pages(&text_mail("utf-8", "8bit", text.as_bytes()));
        assert_eq!(utf8.len(), 1, "{charset}");
        assert!(utf8[0].black_pixels() > 5_000, "{charset}: almost blank");
        golden(golden_name, &text_top(&utf8[0]));
        let legacy = iconv(text, charset);
        for encoding in ["8bit", "quoted-printable", "base64"] {
            let as_body = mail_pages(&text_mail(charset, encoding, &legacy));
            assert!(as_body == utf8, "{charset} {encoding}: the page differs from the UTF-8 one");
            let as_attachment = mail_pages(&text_attachment_mail(charset, encoding, &legacy));
            assert!(as_attachment == utf8, "{charset} {encoding} attachment: the page differs from the UTF-8 one");
        }
        // The same bytes read as UTF-8 would not give that page: the
        // comparison does see the charset.
        let wrong = mail_pages(&text_mail("utf-8", "8bit", &legacy));
        assert!(wrong != utf8, "{charset}: misread bytes gave the same page");
    }
}

// ---------------------------------------------------------------- huge image headers

/// A small real JPEG whose SOF0 header is patched to claim `w` x `h`.
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let small = ::image::DynamicImage::ImageRgb8(::image::RgbImage::from_fn(16, 16, |x, _| {
        ::image::Rgb([(x * 16) as u8, 0, 0])
    }));
    let mut data = encode(small, ::image::ImageFormat::Jpeg);
    let sof = data.windows(2).position(|m| m == [0xff, 0xc0]).expect("a baseline JPEG has SOF0");
    // FF C0, length (2), precision (1), height (2), width (2): ITU-T T.81 B.2.2.
    assert_eq!(u16::from_be_bytes([data[sof + 5], data[sof + 6]]), 16);
    data[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    data[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    data
}

/// A small real GIF whose logical screen (when `screen`) and image
/// descriptor are patched to claim `w` x `h`.
fn gif_claiming(w: u16, h: u16, screen: bool) -> Vec<u8> {
    let small = ::image::DynamicImage::ImageRgb8(::image::RgbImage::from_fn(16, 16, |x, y| {
        ::image::Rgb([if (x + y) % 2 == 0 { 0 } else { 255 }; 3])
    }));
    let mut data = encode(small, ::image::ImageFormat::Gif);
    assert!(data.starts_with(b"GIF89a") || data.starts_with(b"GIF87a"));
    // Logical screen descriptor: width, height (little-endian) at 6 and 8.
    if screen {
        data[6..8].copy_from_slice(&w.to_le_bytes());
        data[8..10].copy_from_slice(&h.to_le_bytes());
    }
    // Walk past the global colour table and the extensions to the first
    // image descriptor (0x2C): left, top, width, height.
    let mut i = 13;
    if data[10] & 0x80 != 0 {
        i += 3 << ((data[10] & 7) + 1);
    }
    while data[i] == 0x21 {
        i += 2;
        while data[i] != 0 {
            i += data[i] as usize + 1;
        }
        i += 1;
    }
    assert_eq!(data[i], 0x2c, "an image descriptor");
    assert_eq!(u16::from_le_bytes([data[i + 5], data[i + 6]]), 16);
    data[i + 5..i + 7].copy_from_slice(&w.to_le_bytes());
    data[i + 7..i + 9].copy_from_slice(&h.to_le_bytes());
    data
}

#[test]
fn jpeg_and_gif_headers_claiming_huge_sizes_are_refused_at_once() {
    // The patch helpers leave a decodable image when they claim its real size.
    assert_eq!(image::render(Kind::Jpeg, &jpeg_claiming(16, 16), &settings()).unwrap().width(), 1728);
    assert_eq!(image::render(Kind::Gif, &gif_claiming(16, 16, true), &settings()).unwrap().width(), 1728);
    // 65,535 is the most a JPEG or GIF header can say: 4.3 gigapixels.
    // Then 100 million pixels (over the 40 million limit), and a sliver
    // longer than the longest side accepted.
    for (w, h) in [(65_535u16, 65_535u16), (10_000, 10_000), (1, 65_000)] {
        for (kind, data) in [(Kind::Jpeg, jpeg_claiming(w, h)), (Kind::Gif, gif_claiming(w, h, true))] {
            let t = std::time::Instant::now();
            let err = image::render(kind, &data, &settings()).unwrap_err();
            assert!(t.elapsed() < Duration::from_secs(1), "{kind:?} {w}x{h}: {:?}", t.elapsed());
            assert!(
                matches!(err, Error::ImageTooLarge { width, height, .. } if width == w as u64 && height == h as u64),
                "{kind:?} {w}x{h}: {err}"
            );
            let text = err.to_string();
            assert!(text.contains(&format!("{w} x {h} pixels")) && text.contains("too large"), "{text}");
            // The same refusal reaches a job.
            let mut job = Pages::new(settings());
            assert!(matches!(job.add_binary(kind, &data), Err(Error::ImageTooLarge { .. })), "{kind:?} {w}x{h}");
        }
    }
    // A GIF whose screen is small but whose image claims 65,535 x 65,535 is
    // refused by the frame's own size, before the frame is decoded.
    let data = gif_claiming(65_535, 65_535, false);
    assert_eq!(u16::from_le_bytes([data[6], data[7]]), 16);
    let t = std::time::Instant::now();
    let err = image::render(Kind::Gif, &data, &settings()).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(matches!(err, Error::ImageTooLarge { width: 65_535, height: 65_535, .. }), "{err}");
}

// ---------------------------------------------------------------- TIFF-FX (T.37)

/// MH (T.4 1-D) and MR (T.4 2-D) files, as fax machines and T.37 offramps
/// send them (TIFF-FX profiles S and F, RFC 3949), in both bit orders, at
/// standard (98 lpi) and fine (196 lpi) resolution: made by libtiff's
/// `tiffcp` and checked by `tiffinfo` to be what they claim, then rendered
/// to 1728-pixel fax pages with every pixel where it was.
#[test]
fn mh_and_mr_tiffs_at_standard_and_fine_resolution_render_to_fax_pages() {
    let dir = tmp();
    for (resolution, height, lpi) in [(Resolution::Standard, 1146u32, "98"), (Resolution::Fine, 2292, "196")] {
        let page = test_page(height, 12);
        let src = dir.path().join(format!("g4-{lpi}.tiff"));
        std::fs::write(&src, g4::write_tiff(std::slice::from_ref(&page), resolution)).unwrap();
        for (name, args, options) in [
            ("mh", &["-c", "g3:1d"][..], "Group 3 Options: (0 = 0x0)"),
            ("mh-lsb", &["-c", "g3:1d", "-f", "lsb2msb"], "Group 3 Options: (0 = 0x0)"),
            ("mr", &["-c", "g3:2d"], "Group 3 Options: 2-d encoding"),
            ("mr-lsb-fill", &["-c", "g3:2d:fill", "-f", "lsb2msb"], "Group 3 Options: 2-d encoding+EOL padding"),
        ] {
            let out = dir.path().join(format!("{name}-{lpi}.tiff"));
            let mut a: Vec<&str> = args.to_vec();
            a.push(src.to_str().unwrap());
            a.push(out.to_str().unwrap());
            let (ok, _, err) = run("tiffcp", &a);
            assert!(ok, "tiffcp {name}: {err}");
            let (ok, info, _) = run("tiffinfo", &[out.to_str().unwrap()]);
            assert!(ok);
            assert!(info.contains("Compression Scheme: CCITT Group 3"), "{name}: {info}");
            assert!(info.contains(options), "{name}: {info}");
            assert!(info.contains(&format!("Resolution: 204, {lpi} pixels/inch")), "{name}: {info}");
            let data = std::fs::read(&out).unwrap();
            let got = tiff::render(&data, &settings(), 50).unwrap_or_else(|e| panic!("{name} {lpi}: {e}"));
            assert_eq!(got.len(), 1, "{name} {lpi}");
            assert_eq!((got[0].width(), got[0].height()), (1728, 2292), "{name} {lpi}");
            match resolution {
                // A fine page is the page.
                Resolution::Fine => assert!(got[0] == page, "{name} {lpi}: the page changed"),
                // Each standard line becomes two fine lines.
                _ => {
                    for y in 0..height {
                        assert_eq!(got[0].row(2 * y), page.row(y), "{name} {lpi} row {y}");
                        assert_eq!(got[0].row(2 * y + 1), page.row(y), "{name} {lpi} row {y}");
                    }
                }
            }
            // Faxed at standard resolution, the fine page keeps every other line.
            let mut standard = settings();
            standard.resolution = Resolution::Standard;
            let std_page = &tiff::render(&data, &standard, 50).unwrap()[0];
            assert_eq!((std_page.width(), std_page.height()), (1728, 1146), "{name} {lpi}");
        }
    }
}

/// JBIG (TIFF-FX profile J; libtiff writes it as compression 34661) is not
/// decoded: it is refused with the compression named and what to send instead,
/// both when mailed and when it would be a received fax.
#[test]
fn a_jbig_tiff_is_refused_with_a_reason() {
    let dir = tmp();
    let src = dir.path().join("g4.tiff");
    std::fs::write(&src, g4::write_tiff(&[test_page(2292, 13)], Resolution::Fine)).unwrap();
    let out = dir.path().join("jbig.tiff");
    let (ok, _, err) = run("tiffcp", &["-c", "jbig", src.to_str().unwrap(), out.to_str().unwrap()]);
    assert!(ok, "tiffcp -c jbig (libtiff built with JBIG-KIT): {err}");
    let (_, info, _) = run("tiffinfo", &[out.to_str().unwrap()]);
    assert!(info.contains("Compression Scheme: ISO JBIG"), "{info}");
    let data = std::fs::read(&out).unwrap();
    let err = tiff::render(&data, &settings(), 50).unwrap_err();
    assert!(matches!(err, Error::UnsupportedTiff(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("compression 34661 (JBIG)") && text.contains("G3 or G4 TIFF"), "{text}");
    let mut job = Pages::new(settings());
    assert!(matches!(job.add_binary(Kind::Tiff, &data), Err(Error::UnsupportedTiff(_))));
    let err = topdf::tiff_to_pdf(&data, &topdf::FaxInfo::default(), 10).unwrap_err();
    assert!(err.to_string().contains("JBIG"), "{err}");
}

// ---------------------------------------------------------------- mail cases

/// `data` base64-encoded in 76-column CRLF lines, by Python.
fn base64_lines(data: &[u8]) -> String {
    String::from_utf8(transfer_encode(data, "base64")).unwrap()
}

/// A mail holding `letter.pdf`, as a mail client sends an attachment.
fn pdf_mail(subject: &str) -> String {
    format!(
        "From: Jens Hansen <jens@example.dk>\r\nTo: Åse <aase@example.net>\r\nSubject: {subject}\r\n\
         Date: Tue, 01 Dec 2026 09:30:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=in\r\n\r\n\
         --in\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHer er brevet.\r\n\
         --in\r\nContent-Type: application/pdf; name=brev.pdf\r\nContent-Disposition: attachment; filename=brev.pdf\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}--in--\r\n",
        base64_lines(&fixture("letter.pdf"))
    )
}

/// `inner` forwarded as an attachment (`message/rfc822`), as Thunderbird and
/// Outlook forward.
fn forwarded(inner: &str, depth: usize) -> String {
    format!(
        "From: Åse <aase@example.net>\r\nTo: +4533221100@fax.example.net\r\nSubject: Fwd: {depth}\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=fwd{depth}\r\n\r\n\
         --fwd{depth}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSe nedenfor.\r\n\
         --fwd{depth}\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=fwd.eml\r\n\r\n\
         {inner}\r\n--fwd{depth}--\r\n"
    )
}

/// Rows `from..to` of a page, as grey for a golden image.
fn rows(page: &Bitmap, from: u32, to: u32) -> GrayImage {
    GrayImage {
        width: WIDTH,
        height: to - from,
        data: (from..to)
            .flat_map(|y| (0..WIDTH).map(move |x| (x, y)))
            .map(|(x, y)| if page.get(x, y) { 0 } else { 255 })
            .collect(),
    }
}

#[test]
fn a_forwarded_pdf_is_faxed_with_its_headers_on_the_cover_page() {
    let direct = pdf::render(&fixture("letter.pdf"), &settings(), 50).unwrap();
    let once = forwarded(&pdf_mail("Brevet"), 1);
    assert_eq!(mail_pages(once.as_bytes()), direct);
    // Forwarded twice and three times: still the letter's pages.
    let twice = forwarded(&once, 2);
    assert_eq!(mail_pages(twice.as_bytes()), direct);
    let thrice = forwarded(&twice, 3);
    assert_eq!(mail_pages(thrice.as_bytes()), direct);
    // One level more is refused as a whole, not faxed in part.
    let e = crate::gateway::render::render(forwarded(&thrice, 4).as_bytes(), settings(), None).unwrap_err();
    assert!(e.to_string().contains("nested more than 3 deep"), "{e}");
    // With a cover page: the outer text and the forwarded headers on it.
    let cover = CoverPage { branding: "Nordisk Fax".into(), to: "+45 33 22 11 00".into(), ..CoverPage::default() };
    let r = crate::gateway::render::render(once.as_bytes(), settings(), Some(cover)).unwrap();
    assert_eq!(r.pages, 3);
    let pages: Vec<Bitmap> =
        tiff::parse(&r.tiff, 50).unwrap().iter().map(|p| p.decode_bilevel(&r.tiff, u64::MAX).unwrap()).collect();
    assert_eq!(&pages[1..], &direct[..]);
    golden("forwarded-cover.png", &rows(&pages[0], 0, 1100));
    // A forwarded message of text alone is faxed under its headers.
    let text_only = "From: Jens Hansen <jens@example.dk>\r\nTo: Åse <aase@example.net>\r\nSubject: Tilbud\r\n\
        Date: Tue, 01 Dec 2026 09:30:00 +0100\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
        Vi kan levere 40 stk. til 1.250 kr.\r\n";
    let pages = mail_pages(forwarded(text_only, 1).as_bytes());
    assert_eq!(pages.len(), 1);
    golden("forwarded-text.png", &text_top(&pages[0]));
}

/// A `format=flowed` body: soft breaks where the sender's client wrapped,
/// space-stuffing, quotes two and one deep, a signature; with `delsp=yes`
/// the space before each soft break is the client's own and goes too.
const FLOWED: &str = "Kære Åse,\r\n\r\nTak for tilbuddet, som vi har gennemgået med \r\nbogholderiet i dag. Vi \
    bestiller de 40 stk. \r\nsom aftalt.\r\n\r\n>> Kan I levere i uge 50? Ellers må vi \r\n>> finde en anden \
    leverandør.\r\n> Ja, i uge 50.\r\n From a line that was space-stuffed.\r\n\r\n-- \r\nJens\r\n";
const FLOWED_DECODED: &str = "Kære Åse,\n\nTak for tilbuddet, som vi har gennemgået med bogholderiet i dag. Vi \
    bestiller de 40 stk. som aftalt.\n\n>> Kan I levere i uge 50? Ellers må vi finde en anden leverandør.\n\
    > Ja, i uge 50.\nFrom a line that was space-stuffed.\n\n-- \nJens";

#[test]
fn flowed_text_is_joined_into_paragraphs_with_its_quotes() {
    assert_eq!(text::unflow(FLOWED, false), FLOWED_DECODED);
    // DelSp: "gennem- gået" was one word split by the client.
    assert_eq!(text::unflow("Ord der blev del \r\nt, og \r\nhele ord.\r\n", true), "Ord der blev delt, oghele ord.");
    let flowed_mail = |params: &str, body: &str| {
        format!(
            "From: a@example.com\r\nSubject: Svar\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8; {params}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}"
        )
    };
    let pages = mail_pages(flowed_mail("format=flowed", FLOWED).as_bytes());
    let plain = mail_pages(text_mail("utf-8", "8bit", FLOWED_DECODED.as_bytes()).as_slice());
    assert!(pages == plain, "the flowed mail prints unlike its decoded text");
    golden("flowed.png", &text_top(&pages[0]));
    // The same text with DelSp: a space added before each soft break.
    let delsp = FLOWED.replace(" \r\n", "  \r\n").replace("\r\n--  \r\n", "\r\n-- \r\n");
    assert!(mail_pages(flowed_mail("format=\"Flowed\"; delsp=yes", &delsp).as_bytes()) == plain);
    // Not flowed: printed as sent.
    assert!(mail_pages(flowed_mail("format=fixed", FLOWED).as_bytes()) != plain);
}

#[test]
fn html_with_a_table_entities_and_lists_is_laid_out_as_text() {
    let html = "<html><head><style>td{color:red}</style></head><body>\
        <h2>Ordre 42</h2><p>Levering: &frac34; af varerne &agrave; 12&nbsp;kr &hellip; resten &rarr; uge&nbsp;50 \
        (&ne; uge 49), &Ccaron;esk&yacute; &scaron;&aelig;rpris &sup2;&frasl;&#8323; &amp; &euro;&nbsp;5.</p>\
        <table><tr><th>Vare</th><th>Antal</th><th>Pris</th></tr>\
        <tr><td>M&aelig;lk</td><td>&frac12;</td><td>12,50&nbsp;&euro;</td></tr>\
        <tr><td>R&oslash;dgr&oslash;d med fl&oslash;de</td><td>40</td><td>1.250,00&nbsp;&euro;</td></tr></table>\
        <ul><li>f&oslash;rste punkt</li><li>andet punkt</li></ul>Linje 1<br>Linje 2</body></html>";
    let cols = text::Layout::body(Paper::A4, Resolution::Fine).cols;
    let t = text::html_to_text(html, cols);
    eprintln!("{t}");
    for want in [
        "¾ af varerne à 12\u{a0}kr … resten → uge",
        "≠ uge 49",
        "Český šærpris ²⁄₃ & €",
        "* første punkt",
        "Linje 1\nLinje 2",
    ] {
        assert!(t.contains(want), "{want:?} missing in\n{t}");
    }
    assert!(!t.contains("&") || !t.contains(';') || !t.contains("&frac"), "{t}");
    assert!(!t.contains("color:red"), "{t}");
    // The table's cells stand in columns.
    let line = |s: &str| t.lines().find(|l| l.contains(s)).unwrap_or_else(|| panic!("{s} in\n{t}"));
    let col = |l: &str, s: &str| l.chars().count() - l[l.find(s).unwrap()..].chars().count();
    assert_eq!(col(line("Vare"), "Antal"), col(line("Mælk"), "½"), "\n{t}");
    assert_eq!(col(line("Vare"), "Pris"), col(line("Mælk"), "12,50"), "\n{t}");
    let raw =
        format!("From: a@example.com\r\nSubject: Ordre\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n");
    let pages = mail_pages(raw.as_bytes());
    assert_eq!(pages.len(), 1);
    golden("html-table.png", &text_top(&pages[0]));
}

#[test]
fn an_inline_logo_of_an_html_signature_is_not_a_page_of_its_own() {
    let logo = encode(
        ::image::DynamicImage::ImageRgb8(::image::RgbImage::from_fn(120, 40, |x, _| {
            if x < 60 { ::image::Rgb([200, 0, 0]) } else { ::image::Rgb([0, 0, 120]) }
        })),
        ::image::ImageFormat::Png,
    );
    let html = "<p>Venlig hilsen<br>Jens Hansen</p><p><img src=\"cid:logo.png@01DA\" alt=\"Acme\"></p>";
    let related = |html: &str| {
        format!(
            "Content-Type: multipart/related; boundary=rel\r\n\r\n--rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
             {html}\r\n--rel\r\nContent-Type: image/png; name=logo.png\r\nContent-ID: <logo.png@01DA>\r\n\
             Content-Disposition: inline; filename=logo.png\r\nContent-Transfer-Encoding: base64\r\n\r\n{}--rel--\r\n",
            base64_lines(&logo)
        )
    };
    let mail = |body: &str| format!("From: a@example.com\r\nSubject: Hilsen\r\nMIME-Version: 1.0\r\n{body}");
    // The body is faxed, the logo is not a page of its own.
    let pages = mail_pages(mail(&related(html)).as_bytes());
    let mut text_only = Pages::new(settings());
    text_only.add_html(html).unwrap();
    assert_eq!(pages, text_only.pages());
    // Beside a PDF, only the PDF is faxed.
    let with_pdf = format!(
        "Content-Type: multipart/mixed; boundary=mix\r\n\r\n--mix\r\n{}\r\n--mix\r\nContent-Type: application/pdf\r\n\
         Content-Disposition: attachment; filename=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n{}--mix--\r\n",
        related(html),
        base64_lines(&fixture("chart.pdf"))
    );
    assert_eq!(mail_pages(mail(&with_pdf).as_bytes()), pdf::render(&fixture("chart.pdf"), &settings(), 50).unwrap());
    // An HTML body that is only the picture: the picture is the fax.
    let pages = mail_pages(mail(&related("<p><img src=\"cid:logo.png%4001DA\"></p>")).as_bytes());
    assert_eq!(pages, vec![image::render(Kind::Png, &logo, &settings()).unwrap()]);
}

/// Reads a PGM (P5, 8-bit) as written by `pdftoppm -gray`.
fn read_pgm(data: &[u8]) -> GrayImage {
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while data[i].is_ascii_whitespace() {
            i += 1;
        }
        let s = i;
        while !data[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(std::str::from_utf8(&data[s..i]).unwrap().to_string());
    }
    assert_eq!((fields[0].as_str(), fields[3].as_str()), ("P5", "255"));
    let (w, h): (u32, u32) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    GrayImage { width: w, height: h, data: data[i + 1..i + 1 + (w * h) as usize].to_vec() }
}

/// A phone photo of the first page of `letter.pdf`, made here: poppler draws
/// the page at 150 dpi, which is then softened (a 3 x 3 blur), lit unevenly
/// (from 100 % at the top left to 62 % at the bottom right), tinted like
/// recycled paper, given sensor noise, and saved as a JPEG of quality 75.
/// Returns the JPEG and the page's text (by `pdftotext`).
fn photographed_letter() -> (Vec<u8>, String) {
    let dir = tmp();
    let pdf = fixtures().join("letter.pdf");
    let out = dir.path().join("p");
    let (ok, _, err) = run(
        "pdftoppm",
        &["-gray", "-r", "150", "-f", "1", "-l", "1", "-singlefile", pdf.to_str().unwrap(), out.to_str().unwrap()],
    );
    assert!(ok, "pdftoppm: {err}");
    let page = read_pgm(&std::fs::read(out.with_extension("pgm")).unwrap());
    let (ok, text, err) = run("pdftotext", &["-f", "1", "-l", "1", pdf.to_str().unwrap(), "-"]);
    assert!(ok, "pdftotext: {err}");
    let (w, h) = (page.width as usize, page.height as usize);
    let mut rng = fastrand::Rng::with_seed(0x5eed_1e77_e4a4_0001);
    let img = ::image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let (x, y) = (x as usize, y as usize);
        let mut sum = 0u32;
        for yy in y.saturating_sub(1)..(y + 2).min(h) {
            for xx in x.saturating_sub(1)..(x + 2).min(w) {
                sum += page.data[yy * w + xx] as u32;
            }
        }
        let n = ((y + 2).min(h) - y.saturating_sub(1)) * ((x + 2).min(w) - x.saturating_sub(1));
        let v = sum as f64 / n as f64;
        let light = 1.0 - 0.38 * (0.55 * x as f64 / w as f64 + 0.45 * y as f64 / h as f64);
        let noise = (0..4).map(|_| rng.u64(..1000) as f64).sum::<f64>() / 4000.0 * 28.0 - 14.0;
        let c = |tint: f64| (v * light * tint + noise).clamp(0.0, 255.0) as u8;
        ::image::Rgb([c(0.97), c(0.93), c(0.82)])
    });
    let mut jpeg = Vec::new();
    ::image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 75).encode_image(&img).unwrap();
    (jpeg, text)
}

/// The words tesseract (Debian's `tesseract-ocr`, English) reads on a page.
fn ocr(page: &Bitmap) -> String {
    let dir = tmp();
    let png = dir.path().join("page.png");
    let g = page.to_gray();
    ::image::GrayImage::from_raw(g.width, g.height, g.data).unwrap().save(&png).unwrap();
    let (ok, text, err) = run("tesseract", &[png.to_str().unwrap(), "stdout", "--dpi", "200", "-l", "eng"]);
    assert!(ok, "tesseract (Debian: tesseract-ocr): {err}");
    text
}

/// The share of the words of `want` (two characters or more) found in
/// `got`, each found word used once.
fn word_recall(want: &str, got: &str) -> f64 {
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 2).map(str::to_lowercase).collect()
    };
    let want = words(want);
    let mut got = words(got);
    let mut found = 0;
    for w in &want {
        if let Some(i) = got.iter().position(|g| g == w) {
            got.swap_remove(i);
            found += 1;
        }
    }
    found as f64 / want.len().max(1) as f64
}

/// T.6 bytes of a page and its seconds on the line at 14,400 bit/s.
fn line_cost(page: &Bitmap) -> (usize, f64) {
    let bytes = g4::encode(page).len();
    (bytes, bytes as f64 * 8.0 / 14_400.0)
}

#[test]
fn a_photographed_letter_is_faxed_small_and_legible() {
    let (jpeg, source) = photographed_letter();
    let page = image::render(Kind::Jpeg, &jpeg, &settings()).unwrap();
    let (bytes, secs) = line_cost(&page);
    let clean = pdf::render(&fixture("letter.pdf"), &settings(), 50).unwrap().remove(0);
    let (recall, clean_recall) = (word_recall(&source, &ocr(&page)), word_recall(&source, &ocr(&clean)));
    eprintln!(
        "photographed letter: {bytes} bytes, {secs:.1} s at 14,400 bit/s; words read {recall:.3} (the PDF drawn: {clean_recall:.3})"
    );
    assert!(bytes < 120_000, "{bytes} bytes");
    assert!(secs < 90.0, "{secs} s");
    // Text is as legible as on the PDF drawn directly, give or take.
    assert!(recall >= clean_recall - 0.05, "{recall} against {clean_recall}");
    // Scaled to the printable width: the text spans most of the page.
    let ink_cols = (0..WIDTH).filter(|&x| (0..page.height()).any(|y| page.get(x, y))).collect::<Vec<_>>();
    let span = ink_cols.last().unwrap() - ink_cols.first().unwrap();
    assert!(span > WIDTH * 7 / 10, "text spans {span} of {WIDTH} pixels");
    golden_within("photo-letter.png", &rows(&page, 0, 900), 0.995);
}

#[test]
fn a_real_photograph_is_faxed_within_the_line_budget() {
    // scikit-image's coffee.png (Rachel Michetti, CC0), from Debian's python3-skimage.
    let path = Path::new("/usr/lib/python3/dist-packages/skimage/data/coffee.png");
    let img = ::image::open(path).unwrap_or_else(|e| panic!("{} (Debian: python3-skimage): {e}", path.display()));
    let jpeg = encode(img, ::image::ImageFormat::Jpeg);
    let page = image::render(Kind::Jpeg, &jpeg, &settings()).unwrap();
    let (bytes, secs) = line_cost(&page);
    eprintln!("coffee.png: {bytes} bytes, {secs:.1} s at 14,400 bit/s");
    assert!(bytes < 120_000, "{bytes} bytes");
    assert!(secs < 90.0, "{secs} s");
    // The photograph keeps its tones: neither blank nor black.
    let ink = page.black_pixels() as f64 / (page.width() as f64 * page.height() as f64);
    assert!(ink > 0.05, "ink {ink}");
    golden_within("photo-coffee.png", &rows(&page, 0, 850), 0.995);
}

// ---------------------------------------------------------------- page header

/// The page header of a three-page job (the letter's two pages behind a
/// cover page) read back by libtiff and tesseract: every page says its own number of three, and the content under
/// the band is untouched where the page's top margin was blank.
#[test]
fn the_page_header_is_read_back_with_its_page_numbers() {
    let mut pages = Pages::new(settings());
    pages.add_binary(Kind::Pdf, &fixture("letter.pdf")).unwrap();
    let cover = CoverPage { branding: "Nordtel Fax".into(), ..Default::default() };
    pages.prepend_cover(&cover).unwrap();
    let before = pages.pages().to_vec();
    let tiff = pages.to_tiff().unwrap();
    let template: header::Template = header::DEFAULT_TEMPLATE.parse().unwrap();
    let tz = header::time_zone("Europe/Copenhagen").unwrap();
    let values = header::Values {
        when: "2026-03-02T13:05:00Z".parse::<jiff::Timestamp>().unwrap().to_zoned(tz),
        station: "+45 70 20 30 40".into(),
        from: "+4570203040".into(),
        to: "+4533221100".into(),
        sender: "Nordisk Revision".into(),
        tenant: "Nordtel Fax".into(),
    };
    let stamped = header::stamp(&tiff, &template, &values, 40_000_000).unwrap();
    // libtiff reads three fine A4 pages.
    let dir = tmp();
    let file = dir.path().join("stamped.tiff");
    std::fs::write(&file, &stamped).unwrap();
    let (ok, info, err) = run("tiffinfo", &[file.to_str().unwrap()]);
    assert!(ok, "tiffinfo: {err}");
    assert_eq!(info.matches("Image Width: 1728 Image Length: 2292").count(), 3, "{info}");
    let band = header::band_rows(Resolution::Fine);
    let parsed = tiff::parse(&stamped, 10).unwrap();
    for (i, p) in parsed.iter().enumerate() {
        let page = p.decode_bilevel(&stamped, 40_000_000).unwrap();
        // The content under the band is the page as it was.
        for y in band..page.height() {
            assert_eq!(page.row(y), before[i].row(y), "page {} row {y}", i + 1);
        }
        let top = rows(&page, 0, band);
        let text = ocr_line(&top);
        let want = format!("Page {}/3", i + 1);
        for w in ["2026-03-02", "14:05", "CET", "From: +45 70 20 30 40", "To: +4533221100", &want] {
            assert!(text.contains(w), "page {}: {w:?} not in {text:?}", i + 1);
        }
    }
}

/// What tesseract reads on one line of text, drawn twice the size.
fn ocr_line(img: &GrayImage) -> String {
    let dir = tmp();
    let png = dir.path().join("line.png");
    let big = img.resample(img.width * 2, img.height * 2);
    ::image::GrayImage::from_raw(big.width, big.height, big.data).unwrap().save(&png).unwrap();
    let (ok, text, err) =
        run("tesseract", &[png.to_str().unwrap(), "stdout", "--dpi", "400", "--psm", "7", "-l", "eng"]);
    assert!(ok, "tesseract (Debian: tesseract-ocr): {err}");
    text.trim().to_owned()
}
