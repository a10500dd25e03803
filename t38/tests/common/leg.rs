//! A fax leg (`faxleg`) in its own process, for the SIP tests: its address
//! from its first line, its JSON reports, its counters, and its log (printed
//! when a test fails).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub struct Leg {
    child: Child,
    pub addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    pub log: PathBuf,
    name: String,
}

impl Leg {
    /// Starts `faxleg` with `args`; its log goes to `<dir>/<name>.log`,
    /// with the SIP library's message dumps.
    pub fn start(name: &str, dir: &Path, args: &[&str]) -> Self {
        Self::start_with_log(name, dir, args, "info,rsipstack=info")
    }

    /// [`Leg::start`] with the log filter `rust_log`.
    pub fn start_with_log(name: &str, dir: &Path, args: &[&str], rust_log: &str) -> Self {
        let log = dir.join(format!("{name}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_faxleg"))
            .args(args)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("faxleg runs");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let Ok(first) = rx.recv_timeout(Duration::from_secs(10)) else {
            let _ = child.kill();
            panic!(
                "{name}: faxleg did not print its address; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        let addr = first.strip_prefix("listening ").expect("listening line").parse().unwrap();
        Self { child, addr, lines: rx, log, name: name.into() }
    }

    /// The next JSON line (a call report, an error or the counters).
    pub fn json(&self, within: Duration) -> Value {
        let l = self
            .lines
            .recv_timeout(within)
            .unwrap_or_else(|_| panic!("{}: no report within {within:?}\n{}", self.name, self.log_tail()));
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("{}: {e}: {l}", self.name))
    }

    /// The counters (`stats` on stdin).
    pub fn stats(&mut self) -> Value {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "stats").unwrap();
        stdin.flush().unwrap();
        loop {
            let v = self.json(Duration::from_secs(5));
            if v.get("dropped_foreign").is_some() {
                return v;
            }
        }
    }

    /// Refuses new calls from now on (`drain` on stdin); returns once done.
    pub fn drain(&mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "drain").unwrap();
        stdin.flush().unwrap();
        // Lines are read in order: once the counters come, the drain is on.
        self.stats();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let s = self.log_text();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Leg {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.name, self.log_tail());
        }
    }
}
