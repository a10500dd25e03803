//! PDFs drawn by hayro in the bounded worker process (`faxgate
//! render-worker`), as the daemon and `faxgate render` draw them: a PDF that
//! needs too much memory or time is refused with its reason, and a good one
//! gives the same pages as drawing in process.

use std::io::Write;
use std::time::{Duration, Instant};

use faxgate::document::{Error, Settings, pdf, worker};

fn exe() -> std::path::PathBuf {
    env!("CARGO_BIN_EXE_faxgate").into()
}

/// A PDF of `objects` (numbered from 1; the first is the catalog).
fn pdf_of(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend(o);
        out.extend(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for o in offsets {
        out.extend(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    out
}

fn stream(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut v = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
    v.extend(data);
    v.extend(b"\nendstream");
    v
}

fn page_with(resources: &str) -> Vec<Vec<u8>> {
    vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        format!("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources {resources} /Contents 4 0 R >>")
            .into_bytes(),
    ]
}

/// A small file holding a flate-compressed grey image of `side` x `side`
/// pixels: drawing it means decoding all of them.
fn image_bomb(side: usize) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let row = vec![0x80u8; side];
    for _ in 0..side {
        z.write_all(&row).unwrap();
    }
    let data = z.finish().unwrap();
    let mut objects = page_with("<< /XObject << /Im1 5 0 R >> >>");
    objects.push(stream("", b"q 500 0 0 700 40 70 cm /Im1 Do Q"));
    objects.push(stream(
        &format!(
            "/Type /XObject /Subtype /Image /Width {side} /Height {side} /ColorSpace /DeviceGray \
             /BitsPerComponent 8 /Filter /FlateDecode"
        ),
        &data,
    ));
    pdf_of(&objects)
}

/// A 4 KB file whose one page draws a rectangle 4^levels times (forms that
/// draw the next form four times).
fn slow_page(levels: usize) -> Vec<u8> {
    let mut objects = page_with("<< /XObject << /X 5 0 R >> >>");
    objects.push(stream("", b"/X Do"));
    for i in 0..levels {
        let (content, res) = if i + 1 < levels {
            (
                "q 0.5 0 0 0.5 0 0 cm /X Do Q q 0.5 0 0 0.5 297 0 cm /X Do Q \
                 q 0.5 0 0 0.5 0 421 cm /X Do Q q 0.5 0 0 0.5 297 421 cm /X Do Q"
                    .to_owned(),
                format!("/Resources << /XObject << /X {} 0 R >> >>", 6 + i),
            )
        } else {
            ("0 0 595 842 re f".to_owned(), String::new())
        };
        objects.push(stream(&format!("/Type /XObject /Subtype /Form /BBox [0 0 595 842] {res}"), content.as_bytes()));
    }
    pdf_of(&objects)
}

#[test]
fn a_pdf_that_needs_too_much_memory_is_refused_with_the_reason() {
    let bomb = image_bomb(20_000);
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let mut s = Settings::default();
    s.limits.max_memory = 256 << 20;
    let err = worker::render(&exe(), &bomb, &s, 50).unwrap_err();
    assert!(matches!(err, Error::TooMuchMemory(_)), "{err:?}");
    assert!(err.to_string().contains("more than 256 MiB of memory"), "{err}");
    assert!(!err.is_transient());
    // The worker that ran out is replaced: the next document renders.
    assert_eq!(worker::render(&exe(), &letter(), &s, 50).unwrap().len(), 2);
}

fn letter() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/documents/letter.pdf")).unwrap()
}

#[test]
fn a_page_that_takes_too_long_is_given_up_at_the_time_limit() {
    let slow = slow_page(14);
    assert!(slow.len() < 8 << 10);
    let mut s = Settings::default();
    s.limits.max_time = Duration::from_secs(1);
    let t = Instant::now();
    let err = worker::render(&exe(), &slow, &s, 50).unwrap_err();
    assert!(matches!(err, Error::TimedOut(_)), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    // The killed worker is replaced. (With the default time limit: a debug
    // build on a loaded machine can take over a second for the letter.)
    let s = Settings::default();
    assert_eq!(worker::render(&exe(), &letter(), &s, 50).unwrap().len(), 2);
}

#[test]
fn the_worker_draws_the_same_pages_as_in_process_and_passes_refusals_on() {
    let letter = letter();
    let s = Settings::default();
    let isolated = worker::render(&exe(), &letter, &s, 50).unwrap();
    let in_process = pdf::render_hayro(&letter, &s, 50).unwrap();
    assert_eq!(isolated.len(), 2);
    for (a, b) in isolated.iter().zip(&in_process) {
        assert_eq!((a.width(), a.height()), (b.width(), b.height()));
        assert!(a.data() == b.data(), "the pages differ");
    }
    // A refusal keeps its words: the page limit, a damaged file.
    let err = worker::render(&exe(), &letter, &s, 1).unwrap_err();
    assert!(matches!(err, Error::TooManyPages { pages: 2, limit: 50 }), "{err:?}");
    let err = worker::render(&exe(), b"%PDF-1.4 nothing here", &s, 50).unwrap_err();
    assert!(matches!(err, Error::CorruptPdf), "{err:?}");
    // Workers are kept: many documents in a row, one after another, all drawn alike.
    for _ in 0..20 {
        let again = worker::render(&exe(), &letter, &s, 50).unwrap();
        assert!(again.iter().zip(&in_process).all(|(a, b)| a.data() == b.data()));
    }
}

#[test]
fn faxgate_render_refuses_the_memory_bomb_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.pdf");
    std::fs::write(&bomb, image_bomb(40_000)).unwrap();
    let out = std::process::Command::new(exe())
        .args(["render", bomb.to_str().unwrap(), "--out", dir.path().join("o.tiff").to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("MiB of memory to render"), "{err}");
}
