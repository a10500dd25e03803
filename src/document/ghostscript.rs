//! The optional Ghostscript renderer for PDFs, as a bounded subprocess.
//!
//! Ghostscript runs with `-dSAFER` (no file access beyond its input and
//! output), under `prlimit` (address space and CPU seconds) and a wall-clock
//! deadline after which it is killed. It renders anti-aliased grey (`pgmraw`)
//! at fax resolution, fitted onto the page; black and white is then made by
//! [`super::binarise`], exactly as for hayro, so both renderers give the same
//! kind of page. Ghostscript exits 0 for truncated and for password-protected
//! PDFs while writing nothing, so its output is counted, not trusted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::fax_page::{Bitmap, GrayImage, WIDTH, X_DPI};
use super::{Error, Result, Settings, binarise};

/// The Ghostscript binary.
pub const GS: &str = "gs";

/// Renders a PDF with Ghostscript; refuses more than `room` pages.
pub fn render(data: &[u8], settings: &Settings, room: usize) -> Result<Vec<Bitmap>> {
    let dir = TempDir::new()?;
    let input = dir.path().join("in.pdf");
    std::fs::write(&input, data)?;
    let lines = settings.paper.lines(settings.resolution);
    let limits = &settings.limits;
    let cpu = limits.max_time.as_secs().max(1);
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--as={}", limits.max_memory))
        .arg(format!("--cpu={cpu}"))
        .arg("--")
        .arg(GS)
        .args(["-dSAFER", "-dBATCH", "-dNOPAUSE", "-dQUIET", "-dNOPROMPT"])
        .arg("-sDEVICE=pgmraw")
        .arg(format!("-r{}x{}", X_DPI, settings.resolution.y_dpi()))
        .arg(format!("-g{WIDTH}x{lines}"))
        .args(["-dFIXEDMEDIA", "-dPDFFitPage", "-dTextAlphaBits=4", "-dGraphicsAlphaBits=4"])
        .arg("-dFirstPage=1")
        .arg(format!("-dLastPage={}", room + 1))
        .arg(format!("-sOutputFile={}", dir.path().join("p%05d.pgm").display()))
        .arg("-f")
        .arg(&input)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::Ghostscript(format!("cannot start Ghostscript: {e}")))?;
    let deadline = Instant::now() + limits.max_time;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::TimedOut(limits.max_time));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pgm"))
        .collect();
    files.sort();
    if stderr.contains("password") {
        return Err(Error::PasswordProtected);
    }
    if files.is_empty() {
        return Err(if status.success() { Error::CorruptPdf } else { Error::Ghostscript(first_line(&stderr)) });
    }
    if !status.success() {
        return Err(Error::Ghostscript(first_line(&stderr)));
    }
    if files.len() > room {
        return Err(Error::TooManyPages { pages: files.len(), limit: settings.limits.max_pages });
    }
    files
        .iter()
        .map(|f| {
            let gray = read_pgm(&std::fs::read(f)?)?;
            if gray.width != WIDTH || gray.height != lines {
                return Err(Error::Ghostscript("unexpected page size".into()));
            }
            Ok(binarise::binarise(&gray, settings.dither))
        })
        .collect()
}

fn first_line(s: &str) -> String {
    let l = s.lines().find(|l| !l.trim().is_empty()).unwrap_or("it failed");
    l.chars().take(200).collect()
}

/// Reads a binary PGM (P5, maxval 255).
pub fn read_pgm(data: &[u8]) -> Result<GrayImage> {
    let bad = || Error::Ghostscript("unreadable page image".into());
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while i < data.len() && data[i].is_ascii_whitespace() {
            i += 1;
        }
        if data.get(i) == Some(&b'#') {
            while i < data.len() && data[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        while i < data.len() && !data[i].is_ascii_whitespace() {
            i += 1;
        }
        if start == i {
            return Err(bad());
        }
        fields.push(std::str::from_utf8(&data[start..i]).map_err(|_| bad())?);
    }
    i += 1;
    let num = |s: &str| s.parse::<u32>().map_err(|_| bad());
    if fields[0] != "P5" || num(fields[3])? != 255 {
        return Err(bad());
    }
    let (w, h) = (num(fields[1])?, num(fields[2])?);
    let n = w as usize * h as usize;
    let px = data.get(i..i + n).ok_or_else(bad)?;
    Ok(GrayImage { width: w, height: h, data: px.to_vec() })
}

/// A private scratch directory, removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> Result<TempDir> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "faxgate-doc-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&p)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(TempDir(p))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
