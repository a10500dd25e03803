//! Document conversion benchmark: PDF to fax pages (hayro in process against
//! `gs -sDEVICE=tiffg4 -r204x196`), and received TIFF to PDF (against
//! `tiff2pdf`), in the same run on the same pages.
//!
//! `cargo run --release --example document_bench [-- REPEAT]`
//!
//! `--cpu` measures instead what each conversion costs as a whole process,
//! the way the daemon's worker draws a PDF: `faxgate render` (release build,
//! its worker process included) against `gs`, each run under
//! `/usr/bin/time` (user + system CPU of the process and the children it
//! waited for, and the largest resident size), on one core (`taskset -c 0`)
//! and on all; medians of REPEAT alternating runs; with the T.6 bytes per
//! page of both outputs and what tesseract reads of each letter page.
//!
//! `--header` measures the page header a call draws on its pages (decode
//! each G4 page, make room, draw the line, encode again): the 40-page letter
//! against libtiff's `tiffcp -c g4` rewriting the same TIFF (decoding and
//! encoding every page, the floor of any re-coded page), best of REPEAT.
//!
//! Needs ghostscript, libtiff-tools, qpdf, poppler-utils and tesseract-ocr.
//! Prints Markdown tables for BENCHMARKS.md.

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

    if std::env::args().any(|a| a == "--cpu") {
        cpu(repeat, &corpus, dir.path());
        return;
    }
    if std::env::args().any(|a| a == "--header") {
        header(repeat, &long, dir.path());
        return;
    }

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

/// One run under `/usr/bin/time`: (CPU seconds, largest resident KiB, wall seconds).
fn timed(dir: &Path, cmd: &[&str]) -> (f64, u64, f64) {
    let report = dir.join("time.txt");
    let st = Command::new("/usr/bin/time")
        .args(["-f", "%U %S %M %e", "-o"])
        .arg(&report)
        .args(cmd)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("/usr/bin/time");
    assert!(st.success(), "{cmd:?} failed");
    let t = std::fs::read_to_string(&report).unwrap();
    let f: Vec<f64> = t.split_whitespace().map(|v| v.parse().unwrap()).collect();
    (f[0] + f[1], f[2] as u64, f[3])
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// T.6 bytes per page of a TIFF.
fn g4_per_page(path: &Path) -> f64 {
    let data = std::fs::read(path).unwrap();
    let pages = tiff::parse(&data, 10_000).unwrap();
    pages.iter().flat_map(|p| p.strips.iter().map(|s| s.1)).sum::<u64>() as f64 / pages.len() as f64
}

/// Share of the words of `want` that tesseract reads on page 1 of `tiff`.
fn ocr_recall(dir: &Path, tiff_path: &Path, want: &str) -> f64 {
    let data = std::fs::read(tiff_path).unwrap();
    let pages = tiff::parse(&data, 10_000).unwrap();
    let page = pages[0].decode_bilevel(&data, u64::MAX).unwrap().to_gray();
    let png = dir.join("ocr.png");
    image::GrayImage::from_raw(page.width, page.height, page.data).unwrap().save(&png).unwrap();
    let out =
        Command::new("tesseract").arg(&png).args(["stdout", "--dpi", "200", "-l", "eng"]).output().expect("tesseract");
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 2).map(str::to_lowercase).collect()
    };
    let (want, mut got) = (words(want), words(&String::from_utf8_lossy(&out.stdout)));
    let mut found = 0;
    for w in &want {
        if let Some(i) = got.iter().position(|g| g == w) {
            got.swap_remove(i);
            found += 1;
        }
    }
    found as f64 / want.len() as f64
}

fn cpu(repeat: usize, corpus: &Path, dir: &Path) {
    let exe = std::env::var_os("CARGO_TARGET_DIR")
        .map_or(Path::new(env!("CARGO_MANIFEST_DIR")).join("target"), |t| Path::new(&t).to_path_buf())
        .join("release/faxgate");
    assert!(exe.exists(), "{} is missing: cargo build --release --bin faxgate", exe.display());
    let exe = exe.to_str().unwrap().to_owned();
    let letter = corpus.join("letter.pdf");
    let mut docs: Vec<std::path::PathBuf> =
        ["letter.pdf", "letter-cairo.pdf", "chart.pdf", "scan.pdf", "rotated.pdf", "encrypted-no-user-password.pdf"]
            .iter()
            .map(|n| corpus.join(n))
            .collect();
    for copies in [5, 25] {
        let long = dir.join(format!("text-{}pages.pdf", copies * 2));
        let mut qpdf = Command::new("qpdf");
        qpdf.args(["--empty", "--pages"]);
        for _ in 0..copies {
            qpdf.arg(&letter);
        }
        qpdf.arg("--").arg(&long);
        assert!(qpdf.status().expect("qpdf").success());
        docs.push(long);
    }
    let (ours, theirs) = (dir.join("ours.tiff"), dir.join("gs.tiff"));
    println!("Load average before: {}\n", loadavg());
    for (label, pin) in [("one core (taskset -c 0)", true), ("two cores", false)] {
        println!("### PDF to fax pages, {label}: CPU ms (process and children), median of {repeat}\n");
        println!(
            "| document | pages | faxgate CPU | gs CPU | faxgate/gs CPU | faxgate wall | gs wall | faxgate peak MiB | gs peak MiB | faxgate T.6 bytes/page | gs T.6 bytes/page |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let (mut sum_h, mut sum_g) = (0.0, 0.0);
        for doc in &docs {
            let d = doc.to_str().unwrap();
            let o = format!("-sOutputFile={}", theirs.display());
            let prefix: &[&str] = if pin { &["taskset", "-c", "0"] } else { &[] };
            let ours_cmd: Vec<&str> =
                prefix.iter().copied().chain([exe.as_str(), "render", d, "--out", ours.to_str().unwrap()]).collect();
            let gs_cmd: Vec<&str> = prefix
                .iter()
                .copied()
                .chain([
                    "gs",
                    "-q",
                    "-dSAFER",
                    "-dBATCH",
                    "-dNOPAUSE",
                    "-sDEVICE=tiffg4",
                    "-r204x196",
                    "-g1728x2292",
                    "-dFIXEDMEDIA",
                    "-dPDFFitPage",
                    &o,
                    d,
                ])
                .collect();
            let (mut h, mut g) = (Vec::new(), Vec::new());
            for _ in 0..repeat {
                h.push(timed(dir, &ours_cmd));
                g.push(timed(dir, &gs_cmd));
            }
            let pages = tiff::parse(&std::fs::read(&ours).unwrap(), 10_000).unwrap().len();
            let m = |v: &[(f64, u64, f64)], f: fn(&(f64, u64, f64)) -> f64| median(v.iter().map(f).collect());
            let (ch, cg) = (m(&h, |r| r.0) * 1000.0, m(&g, |r| r.0) * 1000.0);
            sum_h += ch;
            sum_g += cg;
            println!(
                "| {} | {pages} | {ch:.0} | {cg:.0} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
                doc.file_name().unwrap().to_string_lossy(),
                ch / cg,
                m(&h, |r| r.2) * 1000.0,
                m(&g, |r| r.2) * 1000.0,
                m(&h, |r| r.1 as f64) / 1024.0,
                m(&g, |r| r.1 as f64) / 1024.0,
                g4_per_page(&ours),
                g4_per_page(&theirs),
            );
            if doc.file_name().is_some_and(|n| n == "letter.pdf") && !pin {
                let text = Command::new("pdftotext").args(["-f", "1", "-l", "1", d, "-"]).output().expect("pdftotext");
                let want = String::from_utf8_lossy(&text.stdout).into_owned();
                println!(
                    "<!-- letter.pdf page 1, words tesseract reads: faxgate {:.3}, gs {:.3} -->",
                    ocr_recall(dir, &ours, &want),
                    ocr_recall(dir, &theirs, &want)
                );
            }
        }
        println!("| **all** | | {sum_h:.0} | {sum_g:.0} | **{:.2}** | | | | | | |\n", sum_h / sum_g);
    }
    println!("Load average after: {}", loadavg());
}

/// `--header`: the page header drawn on a rendered job, against `tiffcp -c g4`.
fn header(repeat: usize, pdf_path: &Path, dir: &Path) {
    use faxgate::document::header;
    let settings = Settings::default();
    let pages = pdf::render(&std::fs::read(pdf_path).unwrap(), &settings, 1000).expect("hayro");
    let tiff_bytes = g4::write_tiff(&pages, settings.resolution);
    let input = dir.join("job.tiff");
    std::fs::write(&input, &tiff_bytes).unwrap();
    let template: header::Template = header::DEFAULT_TEMPLATE.parse().unwrap();
    let values = header::Values {
        when: jiff::Timestamp::now().to_zoned(header::time_zone("Europe/Copenhagen").unwrap()),
        station: "+45 70 20 30 40".into(),
        from: "+4570203040".into(),
        to: "+4533221100".into(),
        sender: "Nordisk Revision A/S".into(),
        tenant: "Nordtel Fax".into(),
    };
    let (mut best_h, mut best_t) = (f64::MAX, f64::MAX);
    let mut out_len = 0;
    for _ in 0..repeat {
        let t = Instant::now();
        let stamped = header::stamp(&tiff_bytes, &template, &values, 40_000_000).expect("stamp");
        best_h = best_h.min(ms(t.elapsed()));
        out_len = stamped.len();
        let out = dir.join("tiffcp.tiff");
        let t = Instant::now();
        let st = Command::new("tiffcp").args(["-c", "g4"]).arg(&input).arg(&out).status().expect("tiffcp");
        assert!(st.success());
        best_t = best_t.min(ms(t.elapsed()));
    }
    let n = pages.len() as f64;
    println!("### Page header on a {}-page job (fine A4), best of {repeat}\n", pages.len());
    println!("| | ms/page | bytes in | bytes out |");
    println!("|---|---:|---:|---:|");
    println!("| header::stamp (decode, room, line, encode) | {:.2} | {} | {out_len} |", best_h / n, tiff_bytes.len());
    println!("| tiffcp -c g4 (decode, encode; process incl. start) | {:.2} | {} | |", best_t / n, tiff_bytes.len());
    println!("\nstamp/tiffcp time: {:.2}", best_h / best_t);
}
