//! Shared helpers of the fax leg's tests: test TIFFs made with libtiff's
//! tools, sessions joined by the pair harness, images compared with
//! `tiffcmp`, and a fax leg in its own process ([`leg`]).
#![allow(dead_code, unreachable_pub)]

pub mod leg;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use faxgate_t38::g711::Law;
use faxgate_t38::pair::{LinkConfig, Outcome, Pair};
use faxgate_t38::testpage::{self, Length, PageSpec, VRes, Width};
use faxgate_t38::udptl::{ErrorCorrection, Udptl};
use faxgate_t38::{Direction, FaxSession, FaxSettings, SessionConfig, Transport};

pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("faxgate-t38-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tool(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?} (libtiff-tools installed?): {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Writes `pages` pages of `spec`, compressed by libtiff (`tiffcp -c g4`).
pub fn make_tiff(dir: &Path, name: &str, spec: &PageSpec, pages: u32, g3: bool) -> PathBuf {
    let raw = dir.join(format!("{name}.raw.tif"));
    testpage::write_tiff(&raw, spec, pages).unwrap();
    let out = dir.join(format!("{name}.tif"));
    let c = if g3 { "g3:2d" } else { "g4" };
    tool(Command::new("tiffcp").args(["-c", c]).arg(&raw).arg(&out));
    let _ = std::fs::remove_file(&raw);
    out
}

/// A short page (20 mm) as `testpage` writes it, uncompressed: for calls
/// that are refused or cancelled before any page is sent.
pub fn short_raw_page(dir: &Path, seed: u64) -> PathBuf {
    let page = dir.join("page.tif");
    let spec = PageSpec { width: Width::A4, length: Length::Mm(20), vres: VRes::Standard, density: 30, seed };
    testpage::write_tiff(&page, &spec, 1).unwrap();
    page
}

pub fn spec(width: Width, length: Length, vres: VRes, seed: u64) -> PageSpec {
    PageSpec { width, length, vres, density: 45, seed }
}

/// Pages in a TIFF, counted by `tiffinfo`.
pub fn tiff_pages(path: &Path) -> usize {
    let out = tool(Command::new("tiffinfo").arg(path));
    String::from_utf8_lossy(&out.stdout).matches("TIFF Directory").count()
}

/// `tiffinfo` field of directory `dir` (0-based), e.g. "Image Width".
pub fn tiff_field(path: &Path, dir: usize, field: &str) -> String {
    let out = tool(Command::new("tiffinfo").arg(path));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let d = text.split("TIFF Directory").nth(dir + 1).expect("directory");
    d.lines()
        .find_map(|l| l.trim().strip_prefix(field).map(|r| r.trim_start_matches(':').trim().to_owned()))
        .unwrap_or_default()
}

/// Decompresses page `page` of `src` with libtiff into `dst` and removes
/// the tags that legitimately differ (subfile type, resolution units,
/// page number, software, description, date, host), so that `tiffcmp`
/// goes on to compare the pixels.
fn normalise(src: &Path, page: usize, dst: &Path) {
    tool(
        Command::new("tiffcp")
            .args(["-c", "none", "-f", "msb2lsb", "-r", "1000000"])
            .arg(format!("{},{page}", src.display()))
            .arg(dst),
    );
    for tag in ["254", "282", "283", "296", "297", "269", "270", "305", "306", "316"] {
        // tiffset fails for a tag that is absent: fine.
        let _ = Command::new("tiffset").args(["-u", tag]).arg(dst).output();
    }
}

/// `tiffcmp` differences between page `page` of two files (empty: identical).
pub fn tiff_differences(sent: &Path, received: &Path, page: usize) -> Vec<String> {
    let dir = received.parent().unwrap();
    let a = dir.join(format!("cmp-sent-{page}.tif"));
    let b = dir.join(format!("cmp-recv-{page}.tif"));
    normalise(sent, page, &a);
    normalise(received, page, &b);
    let out = tool(Command::new("tiffcmp").arg(&a).arg(&b));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

/// Compares the pixels of the first `pages` pages of `sent` and `received`
/// with libtiff's `tiffcmp` after decompressing both with `tiffcp`.
pub fn assert_pixels_equal(sent: &Path, received: &Path, pages: usize) {
    assert_eq!(tiff_pages(received), pages, "received page count");
    for p in 0..pages {
        let d = tiff_differences(sent, received, p);
        assert!(d.is_empty(), "page {p} differs: {}", d.iter().take(5).cloned().collect::<Vec<_>>().join("\n"));
    }
}

pub struct Call {
    pub transport: Transport,
    pub ecm: bool,
    pub tx_settings: FaxSettings,
    pub rx_settings: FaxSettings,
    pub link: LinkConfig,
    pub max_pages: Option<u32>,
}

pub fn t38() -> Transport {
    Transport::T38 { version: 0, max_ifp: Udptl::new(ErrorCorrection::default(), 400).max_ifp() }
}

pub fn audio(law: Law) -> Transport {
    Transport::Audio(law)
}

impl Call {
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            ecm: true,
            tx_settings: FaxSettings { ident: "+45 1111".into(), ..FaxSettings::default() },
            rx_settings: FaxSettings { ident: "+45 2222".into(), ..FaxSettings::default() },
            link: LinkConfig::default(),
            max_pages: None,
        }
    }

    pub fn pair(&self, input: &Path, output: &Path) -> Pair {
        let start = Instant::now();
        let mut txs = self.tx_settings.clone();
        let mut rxs = self.rx_settings.clone();
        txs.ecm &= self.ecm;
        rxs.ecm &= self.ecm;
        let a = FaxSession::new(
            SessionConfig {
                direction: Direction::Send { tiff: input.to_owned(), max_pages: self.max_pages },
                transport: self.transport,
                calling: true,
                settings: txs,
            },
            start,
        )
        .unwrap();
        let b = FaxSession::new(
            SessionConfig {
                direction: Direction::Receive { tiff: output.to_owned() },
                transport: self.transport,
                calling: false,
                settings: rxs,
            },
            start,
        )
        .unwrap();
        let ba = LinkConfig { seed: self.link.seed.wrapping_add(1000), ..self.link };
        Pair::new(a, b, self.link, ba, start, Pair::is_t38(&self.transport))
    }

    pub fn run(&self, input: &Path, output: &Path) -> Outcome {
        self.pair(input, output).run(Duration::from_secs(4 * 3600)).expect("call finishes")
    }
}
