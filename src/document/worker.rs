//! hayro in a bounded worker process.
//!
//! hayro is memory-safe, but nothing inside it bounds the memory or the time
//! of one page: a 1.5 MB PDF holding a flate-compressed 40,000 x 40,000
//! image makes it decode 1.6 GB, and a page can take as long as its content
//! says. So the daemon (and `faxgate render`) draw each PDF in a worker: the
//! same executable, run as `faxgate render-worker`, under `prlimit` (address
//! space [`Limits::max_memory`](super::Limits::max_memory), CPU seconds) and a
//! wall-clock deadline ([`Limits::max_time`](super::Limits::max_time)) after
//! which it is killed. A document that needs more gets a refusal that says
//! so; the daemon itself never runs short. The worker reads the PDF on its
//! standard input and writes the pages, packed black and white, on its
//! standard output, or the reason it refused.
//!
//! Rendering stays in process where no worker executable is set
//! ([`isolate_with`]): in the unit tests and the benchmark.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use clap::ValueEnum;

use super::fax_page::{Bitmap, WIDTH};
use super::{Dither, Error, Paper, Resolution, Result, Settings};

static WORKER: OnceLock<PathBuf> = OnceLock::new();

/// Draws PDFs in workers started from `exe` (faxgate's own executable) from
/// now on, for the whole process.
pub fn isolate_with(exe: PathBuf) {
    let _ = WORKER.set(exe);
}

/// The worker executable, if PDFs are drawn in workers.
pub fn isolated() -> Option<&'static Path> {
    WORKER.get().map(PathBuf::as_path)
}

/// `faxgate render-worker`: what the parent tells the worker.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// Vertical resolution.
    #[arg(long, value_enum)]
    pub resolution: Resolution,
    /// Paper.
    #[arg(long, value_enum)]
    pub paper: Paper,
    /// Black and white conversion.
    #[arg(long, value_enum)]
    pub dither: Dither,
    /// Pages left in the job.
    #[arg(long)]
    pub room: usize,
    /// The job's page limit (for the refusal's wording).
    #[arg(long)]
    pub max_pages: usize,
    /// Time limit, in milliseconds (checked between pages; the parent kills at it).
    #[arg(long)]
    pub max_time_ms: u64,
}

const MAGIC: &[u8; 4] = b"FXW1";

fn name<T: ValueEnum>(v: T) -> String {
    v.to_possible_value().map(|p| p.get_name().to_owned()).unwrap_or_default()
}

/// Renders a PDF with hayro in a worker; refuses more than `room` pages.
pub fn render(exe: &Path, data: &[u8], settings: &Settings, room: usize) -> Result<Vec<Bitmap>> {
    let limits = &settings.limits;
    // CPU seconds over all the worker's drawing threads; the wall clock below is the real bound.
    let cpu = limits.max_time.as_secs().max(1) * 4 + 1;
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--as={}", limits.max_memory))
        .arg(format!("--cpu={cpu}"))
        .arg("--")
        .arg(exe)
        .arg("render-worker")
        .args(["--resolution", &name(settings.resolution)])
        .args(["--paper", &name(settings.paper)])
        .args(["--dither", &name(settings.dither)])
        .args(["--room", &room.to_string()])
        .args(["--max-pages", &limits.max_pages.to_string()])
        .args(["--max-time-ms", &limits.max_time.as_millis().to_string()])
        // Few malloc arenas: each reserves 64 MiB of address space.
        .env("MALLOC_ARENA_MAX", "2")
        .env_remove("FAXGATE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child =
        cmd.spawn().map_err(|e| Error::Io(std::io::Error::other(format!("cannot start the PDF worker: {e}"))))?;
    let deadline = Instant::now() + limits.max_time;
    let (mut stdin, mut stdout, mut stderr) =
        (child.stdin.take().expect("piped"), child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
    // The most the answer can be: `room` fax pages and a header each.
    let page_bytes = (WIDTH as u64).div_ceil(8) * settings.paper.lines(settings.resolution) as u64 + 8;
    let most = 16 + (room as u64 + 1) * page_bytes;
    let (out, err) = std::thread::scope(|s| {
        s.spawn(move || {
            // A worker that refuses early closes its input: not an error here.
            let _ = stdin.write_all(data);
        });
        let out = s.spawn(move || {
            let mut v = Vec::new();
            let _ = (&mut stdout).take(most).read_to_end(&mut v);
            v
        });
        let err = s.spawn(move || {
            let mut v = Vec::new();
            let _ = (&mut stderr).take(64 << 10).read_to_end(&mut v);
            v
        });
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(Error::TimedOut(limits.max_time));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => break Err(Error::Io(e)),
            }
        };
        (status.map(|st| (st, out.join().unwrap_or_default())), err.join().unwrap_or_default())
    });
    let (status, out) = out?;
    let stderr = String::from_utf8_lossy(&err);
    if !status.success() {
        if stderr.contains("memory allocation") || stderr.contains("out of memory") {
            return Err(Error::TooMuchMemory(limits.max_memory));
        }
        if status.code().is_none() {
            // Killed by a signal: the CPU limit, or the kernel.
            return Err(Error::TooMuchMemory(limits.max_memory));
        }
        tracing::warn!(status = %status, stderr = %stderr.trim(), "the PDF worker failed");
        return Err(Error::CorruptPdf);
    }
    decode(&out, settings, room)
}

fn decode(out: &[u8], settings: &Settings, room: usize) -> Result<Vec<Bitmap>> {
    let bad = || Error::Io(std::io::Error::other("the PDF worker's answer is unreadable"));
    let mut r = Reader { b: out };
    if r.take(4).ok_or_else(bad)? != MAGIC {
        return Err(bad());
    }
    match r.u32().ok_or_else(bad)? {
        0 => {
            let n = r.u32().ok_or_else(bad)? as usize;
            if n > room {
                return Err(Error::TooManyPages { pages: n, limit: settings.limits.max_pages });
            }
            let lines = settings.paper.lines(settings.resolution);
            let mut pages = Vec::with_capacity(n);
            for _ in 0..n {
                let (w, h) = (r.u32().ok_or_else(bad)?, r.u32().ok_or_else(bad)?);
                if w != WIDTH || h != lines {
                    return Err(bad());
                }
                let data = r.take(w.div_ceil(8) as usize * h as usize).ok_or_else(bad)?;
                pages.push(Bitmap::from_packed(w, h, data.to_vec())?);
            }
            Ok(pages)
        }
        1 => {
            let (code, a, b) = (r.u32().ok_or_else(bad)?, r.u64().ok_or_else(bad)?, r.u64().ok_or_else(bad)?);
            Err(match code {
                1 => Error::PasswordProtected,
                2 => Error::UnsupportedEncryption,
                3 => Error::NoPages,
                4 => Error::TooManyPages { pages: a as usize, limit: b as usize },
                5 => Error::TimedOut(Duration::from_millis(a)),
                _ => Error::CorruptPdf,
            })
        }
        _ => Err(bad()),
    }
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
}

/// The worker's side: reads a PDF on standard input, draws it in process and
/// answers on standard output.
pub fn serve(args: &WorkerArgs) -> std::io::Result<()> {
    let mut data = Vec::new();
    std::io::stdin().lock().read_to_end(&mut data)?;
    let mut settings = Settings {
        resolution: args.resolution,
        paper: args.paper,
        dither: args.dither,
        pdf_renderer: super::PdfRenderer::Hayro,
        ..Settings::default()
    };
    settings.limits.max_pages = args.max_pages;
    settings.limits.max_time = Duration::from_millis(args.max_time_ms);
    let mut out = Vec::from(*MAGIC);
    match super::pdf::render_hayro(&data, &settings, args.room) {
        Ok(pages) => {
            out.extend(0u32.to_le_bytes());
            out.extend((pages.len() as u32).to_le_bytes());
            for p in &pages {
                out.extend(p.width().to_le_bytes());
                out.extend(p.height().to_le_bytes());
                out.extend(p.data());
            }
        }
        Err(e) => {
            let (code, a, b) = match e {
                Error::PasswordProtected => (1, 0, 0),
                Error::UnsupportedEncryption => (2, 0, 0),
                Error::NoPages => (3, 0, 0),
                Error::TooManyPages { pages, limit } => (4, pages as u64, limit as u64),
                Error::TimedOut(d) => (5, d.as_millis() as u64, 0),
                _ => (0, 0, 0),
            };
            out.extend(1u32.to_le_bytes());
            out.extend((code as u32).to_le_bytes());
            out.extend(a.to_le_bytes());
            out.extend(b.to_le_bytes());
        }
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out)?;
    stdout.flush()
}
