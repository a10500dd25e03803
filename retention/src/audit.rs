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
}

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

    /// Appends an entry and fsyncs it.
    pub fn append(&self, e: &AuditEntry) -> Result<(), Error> {
        let mut line = serde_json::to_vec(e).map_err(|e| Error::Corrupt(if e.is_io() { "io" } else { "encoding" }))?;
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&self.path)
            .map_err(|e| Error::io("cannot open audit trail", &self.path, e))?;
        f.write_all(&line).map_err(|e| Error::io("cannot append to audit trail", &self.path, e))?;
        f.sync_all().map_err(|e| Error::io("cannot fsync audit trail", &self.path, e))
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
