//! The deletion audit trail: one JSON line per sweep, appended and fsynced.
//!
//! An entry names categories, counts and key ids, never a person: it can be
//! shown to an auditor as it is.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::Error;

/// What a sweep did in one category.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CategoryResult {
    /// The category (`cdr`, `account`, ...).
    pub category: String,
    /// Records erased.
    pub erased: usize,
    /// Keys destroyed.
    pub keys_destroyed: Vec<String>,
    /// Items due but kept under a legal hold.
    pub held: usize,
    /// The time the oldest remaining item refers to (communication, termination...).
    pub oldest_remaining: Option<Timestamp>,
    /// The next time something in this category becomes due.
    pub next_due: Option<Timestamp>,
    /// Keys an interrupted sweep destroyed before it could record them,
    /// found gone by this one (their records were erased now).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys_found_destroyed: Vec<String>,
    /// What this category could not do, and why (a damaged key, named).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<String>,
    /// Why this category erased nothing in this sweep (the clock is not trusted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<String>,
}

/// A disclosure of traffic data on a lawful request, or an erasure on a
/// data subject's request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// `disclosure` or `gdpr-erase`.
    pub kind: String,
    /// The case reference.
    pub case: Option<String>,
    /// The authority that asked.
    pub authority: Option<String>,
    /// The subject, as a keyed hash (`faxgate` can tell whether a given
    /// number or address is meant; the trail itself names no one).
    pub subject: String,
    /// The period asked for.
    pub since: Option<Timestamp>,
    /// The end of that period.
    pub until: Option<Timestamp>,
    /// Records concerned.
    pub records: usize,
}

/// One sweep, or one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When it ran (by the injected clock).
    pub at: Timestamp,
    /// Per category (a sweep).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<CategoryResult>,
    /// A request (a disclosure, an erasure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestRecord>,
    /// The start of a sweep, written before it erases anything: a start
    /// with no finished sweep after it marks a sweep that a crash cut short.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub begun: bool,
}

impl AuditEntry {
    /// Whether this is a finished sweep (not a start, not a request).
    pub fn is_sweep(&self) -> bool {
        self.request.is_none() && !self.begun
    }
}

/// Sweeps a crash cut short: starts with no finished sweep after them,
/// each with the finished sweep that followed (`None` if none did yet). The
/// last start counts too when no sweep is `running` now.
pub fn interrupted(trail: &[AuditEntry], running: bool) -> Vec<(Timestamp, Option<Timestamp>)> {
    let mut out = Vec::new();
    let mut open: Option<Timestamp> = None;
    for e in trail {
        if e.begun {
            if let Some(t) = open.replace(e.at) {
                out.push((t, None));
            }
        } else if e.is_sweep() {
            open = None;
            for o in out.iter_mut().filter(|o: &&mut (Timestamp, Option<Timestamp>)| o.1.is_none()) {
                o.1 = Some(e.at);
            }
        }
    }
    if let Some(t) = open.filter(|_| !running) {
        out.push((t, None));
    }
    out
}

/// Appends to the trail are serialised within the process, so that the
/// repair of a torn last line cannot race another append.
static APPEND: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The audit trail file.
#[derive(Clone, Debug)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    /// The trail at `path` (created on the first append).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        AuditLog { path: path.into() }
    }

    /// Appends an entry and fsyncs it. A last line cut short by a crash
    /// during an earlier append (never acknowledged) is cut off first, so
    /// that it cannot swallow this entry.
    pub fn append(&self, e: &AuditEntry) -> Result<(), Error> {
        let mut line = serde_json::to_vec(e).map_err(|e| Error::Corrupt(if e.is_io() { "io" } else { "encoding" }))?;
        line.push(b'\n');
        let _g = APPEND.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(0o640)
            .open(&self.path)
            .map_err(|e| Error::io("cannot open audit trail", &self.path, e))?;
        self.cut_torn_tail(&mut f)?;
        f.write_all(&line).map_err(|e| Error::io("cannot append to audit trail", &self.path, e))?;
        f.sync_all().map_err(|e| Error::io("cannot fsync audit trail", &self.path, e))
    }

    fn cut_torn_tail(&self, f: &mut std::fs::File) -> Result<(), Error> {
        use std::io::{Read, Seek, SeekFrom};
        let io = |e| Error::io("cannot repair audit trail", &self.path, e);
        let len = f.metadata().map_err(io)?.len();
        if len == 0 {
            return Ok(());
        }
        let mut last = [0u8];
        f.seek(SeekFrom::Start(len - 1)).map_err(io)?;
        f.read_exact(&mut last).map_err(io)?;
        if last[0] == b'\n' {
            return Ok(());
        }
        // Back to the end of the last whole line.
        let mut keep = 0u64;
        let mut pos = len;
        let mut buf = vec![0u8; 4096];
        while pos > 0 {
            let n = buf.len().min(pos as usize);
            pos -= n as u64;
            f.seek(SeekFrom::Start(pos)).map_err(io)?;
            f.read_exact(&mut buf[..n]).map_err(io)?;
            if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
                keep = pos + i as u64 + 1;
                break;
            }
        }
        tracing::warn!(bytes = len - keep, "audit trail: a line cut short by a crash was removed");
        f.set_len(keep).map_err(io)?;
        f.sync_all().map_err(io)
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> Result<Vec<AuditEntry>, Error> {
        let f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("cannot open audit trail", &self.path, e)),
        };
        let mut out = Vec::new();
        for (i, line) in BufReader::new(f).lines().enumerate() {
            let line = line.map_err(|e| Error::io("cannot read audit trail", &self.path, e))?;
            if line.trim().is_empty() {
                continue;
            }
            // A line cut short by a crash during an append is the last one: skip it.
            match serde_json::from_str(&line) {
                Ok(e) => out.push(e),
                Err(_) => tracing::warn!(line = i + 1, "audit trail: unreadable line skipped"),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: &str, begun: bool) -> AuditEntry {
        AuditEntry { at: at.parse().unwrap(), categories: Vec::new(), request: None, begun }
    }

    #[test]
    fn a_torn_last_line_is_cut_off_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("trail.jsonl"));
        log.append(&entry("2025-01-01T00:00:00Z", false)).unwrap();
        let mut text = std::fs::read_to_string(dir.path().join("trail.jsonl")).unwrap();
        text.push_str("{\"at\":\"2025-01-02T00:00:00Z\",\"beg");
        std::fs::write(dir.path().join("trail.jsonl"), text).unwrap();
        log.append(&entry("2025-01-03T00:00:00Z", false)).unwrap();
        let at: Vec<String> = log.entries().unwrap().iter().map(|e| e.at.to_string()).collect();
        assert_eq!(at, ["2025-01-01T00:00:00Z", "2025-01-03T00:00:00Z"]);
        // A torn first line, with no whole line before it.
        std::fs::write(dir.path().join("trail.jsonl"), "{\"at\":").unwrap();
        log.append(&entry("2025-01-04T00:00:00Z", false)).unwrap();
        assert_eq!(log.entries().unwrap().len(), 1);
    }

    #[test]
    fn starts_without_a_finished_sweep_are_interrupted_sweeps() {
        let trail = [
            entry("2025-01-01T00:00:00Z", true),
            entry("2025-01-01T00:00:01Z", false),
            entry("2025-01-02T00:00:00Z", true),
            entry("2025-01-03T00:00:00Z", true),
            entry("2025-01-03T00:00:05Z", false),
            entry("2025-01-04T00:00:00Z", true),
        ];
        let got = |running| -> Vec<(String, Option<String>)> {
            interrupted(&trail, running).into_iter().map(|(a, b)| (a.to_string(), b.map(|b| b.to_string()))).collect()
        };
        let first = ("2025-01-02T00:00:00Z".to_owned(), Some("2025-01-03T00:00:05Z".to_owned()));
        // The last start is a sweep in progress, or one cut short when none runs.
        assert_eq!(got(true), std::slice::from_ref(&first));
        assert_eq!(got(false), [first, ("2025-01-04T00:00:00Z".to_owned(), None)]);
        assert!(!trail[0].is_sweep() && trail[1].is_sweep());
    }
}
