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
//! so; the daemon itself never runs short.
//!
//! Workers are kept between documents (a fresh process pays hayro's start:
//! its bundled fonts and caches, about 30 ms a document): each takes one
//! request at a time on its standard input (the settings and the PDF) and
//! answers on its standard output (the pages, packed black and white, or the
//! reason it refused). A worker that fails, is killed at the deadline or has
//! drawn [`USES`] documents is ended and replaced. The address-space limit
//! holds for each worker's whole life, and glibc returns large blocks to the
//! system when they are freed, so one document's images do not count
//! against the next.
//!
//! Rendering stays in process where no worker executable is set
//! ([`isolate_with`]): in the unit tests and the benchmark.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use clap::ValueEnum;

use super::fax_page::{Bitmap, WIDTH};
use super::{Dither, Error, Paper, Resolution, Result, Settings};

static WORKER: OnceLock<PathBuf> = OnceLock::new();

/// Idle workers, by the address-space limit they run under.
static IDLE: Mutex<Vec<(u64, Worker)>> = Mutex::new(Vec::new());

/// Documents a worker draws before it is replaced.
pub const USES: u32 = 200;

/// Idle workers kept at most.
const KEPT: usize = 4;

/// Draws PDFs in workers started from `exe` (faxgate's own executable) from
/// now on, for the whole process.
pub fn isolate_with(exe: PathBuf) {
    let _ = WORKER.set(exe);
}

/// The worker executable, if PDFs are drawn in workers.
pub fn isolated() -> Option<&'static Path> {
    WORKER.get().map(PathBuf::as_path)
}

const REQUEST: &[u8; 4] = b"FXQ1";
const MAGIC: &[u8; 4] = b"FXW1";

fn name<T: ValueEnum>(v: T) -> String {
    v.to_possible_value().map(|p| p.get_name().to_owned()).unwrap_or_default()
}

fn parse<T: ValueEnum>(s: &str) -> std::io::Result<T> {
    T::from_str(s, true).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

struct Worker {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    uses: u32,
}

impl Worker {
    fn start(exe: &Path, memory: u64) -> Result<Worker> {
        let mut child = Command::new("prlimit")
            .arg(format!("--as={memory}"))
            .arg("--")
            .arg(exe)
            .arg("render-worker")
            // Few malloc arenas: each reserves 64 MiB of address space.
            .env("MALLOC_ARENA_MAX", "2")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::Io(std::io::Error::other(format!("cannot start the PDF worker: {e}"))))?;
        let stdin = BufWriter::new(child.stdin.take().expect("piped"));
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        Ok(Worker { child, stdin, stdout, uses: 0 })
    }

    fn end(mut self) -> Option<std::process::ExitStatus> {
        let _ = self.child.kill();
        self.child.wait().ok()
    }

    /// How the worker ended by itself, waiting up to `grace` for it (its
    /// pipes close a moment before it can be waited for); None if it was
    /// still running, and then it is killed.
    fn ended_by_itself(mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if std::time::Instant::now() < until => std::thread::sleep(Duration::from_millis(5)),
                _ => {
                    self.end();
                    return None;
                }
            }
        }
    }
}

/// Ends the idle workers and waits for them (a command line run does this
/// before it exits, so that their CPU time is counted as its own).
pub fn shutdown() {
    let idle: Vec<(u64, Worker)> = std::mem::take(&mut *IDLE.lock().unwrap_or_else(|p| p.into_inner()));
    for (_, mut w) in idle {
        // Closing its input ends a worker between requests.
        drop(w.stdin);
        let _ = w.child.wait();
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u32).to_le_bytes());
    out.extend(s.as_bytes());
}

/// Renders a PDF with hayro in a worker; refuses more than `room` pages.
pub fn render(exe: &Path, data: &[u8], settings: &Settings, room: usize) -> Result<Vec<Bitmap>> {
    let limits = &settings.limits;
    let memory = limits.max_memory;
    let idle = {
        let mut pool = IDLE.lock().unwrap_or_else(|p| p.into_inner());
        pool.iter().position(|(m, _)| *m == memory).map(|i| pool.swap_remove(i).1)
    };
    let mut w = match idle {
        Some(w) => w,
        None => Worker::start(exe, memory)?,
    };
    let mut req = Vec::with_capacity(64 + data.len());
    req.extend(REQUEST);
    put_str(&mut req, &name(settings.resolution));
    put_str(&mut req, &name(settings.paper));
    put_str(&mut req, &name(settings.dither));
    req.extend((room as u64).to_le_bytes());
    req.extend((limits.max_pages as u64).to_le_bytes());
    req.extend((limits.max_time.as_millis() as u64).to_le_bytes());
    req.extend((data.len() as u64).to_le_bytes());
    req.extend(data);
    // The most the answer can be: `room` fax pages and a header each.
    let page_bytes = (WIDTH as u64).div_ceil(8) * settings.paper.lines(settings.resolution) as u64 + 8;
    let most = 64 + (room as u64 + 1) * page_bytes;
    // Write and read on a thread of their own; this one keeps the deadline.
    let (tx, rx) = mpsc::channel();
    let pid = w.child.id();
    let (mut stdin, mut stdout) = (w.stdin, w.stdout);
    let io = std::thread::spawn(move || {
        let answer = (|| -> std::io::Result<Vec<u8>> {
            stdin.write_all(&req)?;
            stdin.flush()?;
            let mut len = [0u8; 8];
            stdout.read_exact(&mut len)?;
            let len = u64::from_le_bytes(len);
            if len > most {
                return Err(std::io::Error::other("answer too long"));
            }
            let mut v = vec![0u8; len as usize];
            stdout.read_exact(&mut v)?;
            Ok(v)
        })();
        let _ = tx.send(());
        (answer, stdin, stdout)
    });
    let in_time = rx.recv_timeout(limits.max_time).is_ok();
    if !in_time {
        // Killing the worker ends its pipes, and with them the thread.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
    }
    let (answer, stdin, stdout) = io.join().map_err(|_| Error::CorruptPdf)?;
    w.stdin = stdin;
    w.stdout = stdout;
    if !in_time {
        w.end();
        return Err(Error::TimedOut(limits.max_time));
    }
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            // The worker died in the document: out of memory (Rust aborts
            // when an allocation fails, and a stack that cannot grow under
            // the limit ends in a signal too), or another end. A worker still
            // running gave an answer that cannot be read.
            use std::os::unix::process::ExitStatusExt;
            return Err(match w.ended_by_itself(Duration::from_secs(1)) {
                Some(status) if status.signal().is_some() => Error::TooMuchMemory(memory),
                Some(status) => {
                    tracing::warn!(error = %e, %status, "the PDF worker failed");
                    Error::CorruptPdf
                }
                None => {
                    tracing::warn!(error = %e, "the PDF worker's answer is unreadable; the worker was stopped");
                    Error::CorruptPdf
                }
            });
        }
    };
    w.uses += 1;
    if w.uses < USES {
        let mut pool = IDLE.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < KEPT {
            pool.push((memory, w));
        } else {
            drop(pool);
            w.end();
        }
    } else {
        w.end();
    }
    decode(&answer, settings, room)
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

/// The worker's side: takes requests on standard input until it closes,
/// draws each PDF in process and answers on standard output.
pub fn serve() -> std::io::Result<()> {
    let mut input = BufReader::new(std::io::stdin().lock());
    let mut output = BufWriter::new(std::io::stdout().lock());
    loop {
        let mut magic = [0u8; 4];
        match input.read_exact(&mut magic) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            other => other?,
        }
        if &magic != REQUEST {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a render request"));
        }
        let text = |r: &mut BufReader<std::io::StdinLock<'_>>| -> std::io::Result<String> {
            let mut n = [0u8; 4];
            r.read_exact(&mut n)?;
            let mut b = vec![0u8; (u32::from_le_bytes(n) as usize).min(64)];
            r.read_exact(&mut b)?;
            String::from_utf8(b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        };
        let number = |r: &mut BufReader<std::io::StdinLock<'_>>| -> std::io::Result<u64> {
            let mut n = [0u8; 8];
            r.read_exact(&mut n)?;
            Ok(u64::from_le_bytes(n))
        };
        let resolution: Resolution = parse(&text(&mut input)?)?;
        let paper: Paper = parse(&text(&mut input)?)?;
        let dither: Dither = parse(&text(&mut input)?)?;
        let room = number(&mut input)? as usize;
        let max_pages = number(&mut input)? as usize;
        let max_time = Duration::from_millis(number(&mut input)?);
        let mut data = vec![0u8; number(&mut input)? as usize];
        input.read_exact(&mut data)?;
        let mut settings =
            Settings { resolution, paper, dither, pdf_renderer: super::PdfRenderer::Hayro, ..Settings::default() };
        settings.limits.max_pages = max_pages;
        settings.limits.max_time = max_time;
        let mut out = Vec::from(*MAGIC);
        match super::pdf::render_hayro(&data, &settings, room) {
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
                let (code, a, b): (u32, u64, u64) = match e {
                    Error::PasswordProtected => (1, 0, 0),
                    Error::UnsupportedEncryption => (2, 0, 0),
                    Error::NoPages => (3, 0, 0),
                    Error::TooManyPages { pages, limit } => (4, pages as u64, limit as u64),
                    Error::TimedOut(d) => (5, d.as_millis() as u64, 0),
                    _ => (0, 0, 0),
                };
                out.extend(1u32.to_le_bytes());
                out.extend(code.to_le_bytes());
                out.extend(a.to_le_bytes());
                out.extend(b.to_le_bytes());
            }
        }
        output.write_all(&(out.len() as u64).to_le_bytes())?;
        output.write_all(&out)?;
        output.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in worker: a shell script doing `body` in place of
    /// `faxgate render-worker`, to see how each way of failing is told.
    fn misbehaving(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let exe = dir.join("worker.sh");
        std::fs::write(&exe, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        exe
    }

    /// Settings of their own: workers are pooled by memory limit, so no
    /// real worker left idle by another test is picked up.
    fn settings(k: u64) -> Settings {
        let mut s = Settings::default();
        s.limits.max_memory = (1 << 30) + 4096 * k;
        s.limits.max_time = Duration::from_secs(20);
        s
    }

    #[test]
    fn a_worker_ended_by_a_signal_is_out_of_memory() {
        let dir = tempfile::tempdir().unwrap();
        let exe = misbehaving(dir.path(), "kill -s ABRT $$");
        let e = render(&exe, b"%PDF-1.4", &settings(1), 5).unwrap_err();
        assert!(matches!(e, Error::TooMuchMemory(_)), "{e}");
    }

    #[test]
    fn a_worker_that_exits_is_a_failure_not_memory() {
        let dir = tempfile::tempdir().unwrap();
        let exe = misbehaving(dir.path(), "exit 3");
        let e = render(&exe, b"%PDF-1.4", &settings(2), 5).unwrap_err();
        assert!(matches!(e, Error::CorruptPdf), "{e}");
    }

    #[test]
    fn a_live_worker_with_an_unreadable_answer_is_stopped_and_not_called_out_of_memory() {
        let dir = tempfile::tempdir().unwrap();
        // An answer length far over what five pages can take, then nothing.
        let pid = dir.path().join("pid");
        let exe = misbehaving(
            dir.path(),
            &format!("echo $$ > {}\nprintf '\\377\\377\\377\\377\\377\\377\\377\\177'\nexec sleep 60", pid.display()),
        );
        let started = std::time::Instant::now();
        let e = render(&exe, b"%PDF-1.4", &settings(3), 5).unwrap_err();
        assert!(matches!(e, Error::CorruptPdf), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        // The worker was stopped, not left running.
        let pid: i32 = std::fs::read_to_string(&pid).unwrap().trim().parse().unwrap();
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        assert!(!alive, "the worker {pid} still runs");
    }
}
