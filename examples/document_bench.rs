//! Document conversion benchmark: PDF to fax pages (hayro in process against
//! `gs -sDEVICE=tiffg4 -r204x196`), and received TIFF to PDF (against
//! `tiff2pdf`), in the same run on the same pages.
//!
//! `cargo run --release --example document_bench [-- REPEAT]`
//!
//! Needs ghostscript, libtiff-tools and qpdf. Prints Markdown tables for
//! BENCHMARKS.md.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use faxgate::document::{Settings, g4, pdf, tiff, topdf};

fn gs_tiffg4(input: &Path, out: &Path) -> Duration {
    let t = Instant::now();
    let st = Command::new("gs")
        .args(["-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=tiffg4", "-r204x196"])
        .args(["-g1728x2292", "-dFIXEDMEDIA", "-dPDFFitPage"])
        .arg(format!("-sOutputFile={}", out.display()))
        .arg(input)
        .status()
        .expect("gs");
    assert!(st.success(), "gs failed on {}", input.display());
    t.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let repeat: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/documents");
    let dir = tempfile::tempdir().unwrap();
    // A long text document: the two-page letter twenty times.
    let long = dir.path().join("letter-x20.pdf");
    let letter = corpus.join("letter.pdf");
    let mut qpdf = Command::new("qpdf");
    qpdf.args(["--empty", "--pages"]);
    for _ in 0..20 {
        qpdf.arg(&letter);
    }
    qpdf.arg("--").arg(&long);
    assert!(qpdf.status().expect("qpdf").success());

    let mut docs: Vec<std::path::PathBuf> =
        ["letter.pdf", "letter-cairo.pdf", "chart.pdf", "scan.pdf", "rotated.pdf", "encrypted-no-user-password.pdf"]
            .iter()
            .map(|n| corpus.join(n))
            .collect();
    docs.push(long);

    // `--worker`: draw each PDF as the daemon does, in a bounded worker
    // process (`faxgate render-worker`; build it first with
    // `cargo build --release --bin faxgate`).
    let isolated = std::env::args().any(|a| a == "--worker");
    if isolated {
        let exe = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/faxgate");
        let exe = std::env::var_os("CARGO_TARGET_DIR").map_or(exe, |t| Path::new(&t).join("release/faxgate"));
        assert!(exe.exists(), "{} is missing: cargo build --release --bin faxgate", exe.display());
        faxgate::document::worker::isolate_with(exe);
    }
    let settings = Settings::default();
    let how = if isolated { "hayro in the worker process" } else { "hayro in process" };
    println!("### PDF to fax pages (A4, fine 204x196), {how}, best of {repeat}\n");
    println!(
        "| document | pages | hayro ms/page | gs ms/page (incl. start) | hayro pages OK | gs pages OK | gs/hayro time |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let (mut tot_h, mut tot_g, mut tot_p) = (0.0, 0.0, 0usize);
    let mut last_pages = Vec::new();
    for doc in &docs {
        let data = std::fs::read(doc).unwrap();
        let mut best_h = f64::MAX;
        let mut pages = 0;
        for _ in 0..repeat {
            let t = Instant::now();
            let rendered = pdf::render(&data, &settings, 1000).expect("hayro");
            let tiff_bytes = g4::write_tiff(&rendered, settings.resolution);
            best_h = best_h.min(ms(t.elapsed()));
            pages = rendered.len();
            std::hint::black_box(tiff_bytes);
            last_pages = rendered;
        }
        let out = dir.path().join("gs.tiff");
        let mut best_g = f64::MAX;
        for _ in 0..repeat {
            best_g = best_g.min(ms(gs_tiffg4(doc, &out)));
        }
        let gs_pages = tiff::parse(&std::fs::read(&out).unwrap(), 10_000).map(|p| p.len()).unwrap_or(0);
        tot_h += best_h;
        tot_g += best_g;
        tot_p += pages;
        println!(
            "| {} | {pages} | {:.1} | {:.1} | {pages}/{pages} | {gs_pages}/{pages} | {:.2} |",
            doc.file_name().unwrap().to_string_lossy(),
            best_h / pages as f64,
            best_g / pages as f64,
            best_g / best_h
        );
    }
    println!(
        "| **all** | {tot_p} | {:.1} | {:.1} | | | **{:.2}** |\n",
        tot_h / tot_p as f64,
        tot_g / tot_p as f64,
        tot_g / tot_h
    );
    println!(
        "Pages per second: hayro {:.1}, Ghostscript {:.1}.\n",
        tot_p as f64 / (tot_h / 1000.0),
        tot_p as f64 / (tot_g / 1000.0)
    );

    // Where the time goes, on the long text document.
    {
        let data = std::fs::read(docs.last().unwrap()).unwrap();
        let doc = pdf::open(&data).unwrap();
        let cache = hayro::RenderCache::new();
        let interp = hayro::hayro_interpret::InterpreterSettings::default();
        let (mut t_render, mut t_bin, mut t_g4) = (0.0, 0.0, 0.0);
        let n = doc.pages().len();
        for page in doc.pages().iter() {
            let t = Instant::now();
            let gray = pdf::Canvas::default().render(page, &cache, &interp, settings.paper, settings.resolution);
            t_render += ms(t.elapsed());
            let t = Instant::now();
            let bm = faxgate::document::binarise::binarise(&gray, settings.dither);
            t_bin += ms(t.elapsed());
            let t = Instant::now();
            std::hint::black_box(g4::encode(&bm));
            t_g4 += ms(t.elapsed());
        }
        let n = n as f64;
        println!("### Stages on letter-x20.pdf, ms/page\n");
        println!("| hayro render to grey | binarise (auto) | G4 encode |");
        println!("|---:|---:|---:|");
        println!("| {:.1} | {:.1} | {:.1} |\n", t_render / n, t_bin / n, t_g4 / n);
    }

    // Received TIFF to PDF: 1 page and 200 pages, so that start-up cancels.
    println!("### Received fax TIFF to PDF, ms/page in a batch (start-up excluded), best of {repeat}\n");
    let page = last_pages.pop().expect("a page");
    let one = g4::write_tiff(std::slice::from_ref(&page), settings.resolution);
    let many_pages: Vec<_> = std::iter::repeat_n(page, 200).collect();
    let many = g4::write_tiff(&many_pages, settings.resolution);
    let (p1, p200) = (dir.path().join("one.tiff"), dir.path().join("many.tiff"));
    std::fs::write(&p1, &one).unwrap();
    std::fs::write(&p200, &many).unwrap();
    let ours = |data: &[u8]| {
        let t = Instant::now();
        let (pdf, _) = topdf::tiff_to_pdf(data, &topdf::FaxInfo::default(), 1000).unwrap();
        std::hint::black_box(pdf);
        ms(t.elapsed())
    };
    let theirs = |p: &Path| {
        let t = Instant::now();
        let st = Command::new("tiff2pdf").arg("-o").arg(dir.path().join("t2p.pdf")).arg(p).status().expect("tiff2pdf");
        assert!(st.success());
        ms(t.elapsed())
    };
    let best = |f: &dyn Fn() -> f64| (0..repeat.max(5)).map(|_| f()).fold(f64::MAX, f64::min);
    let o200 = best(&|| ours(&many));
    let t1 = best(&|| theirs(&p1));
    let t200 = best(&|| theirs(&p200));
    let ours_pp = o200 / 200.0;
    let theirs_pp = (t200 - t1).max(0.0) / 199.0;
    println!("| converter | ms/page | 200-page batch ms |");
    println!("|---|---:|---:|");
    println!("| faxgate topdf (in process) | {ours_pp:.4} | {o200:.2} |");
    println!("| tiff2pdf (200-page run minus 1-page run) | {theirs_pp:.4} | {t200:.2} |");
    println!("\nRatio tiff2pdf/faxgate: {:.2}", theirs_pp / ours_pp.max(1e-9));
}
