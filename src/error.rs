//! The core's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the faxgate core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another process holds the data directory.
    #[error("data directory {dir} is in use by another faxgate process{}; stop it first, or let the CLI talk to the running daemon", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    InUse {
        /// The data directory.
        dir: PathBuf,
        /// The holder's pid, if it wrote one.
        pid: Option<u32>,
    },
    /// The thing asked for does not exist (or belongs to another tenant).
    #[error("{0}")]
    NotFound(String),
    /// The change would break a rule of the directory (a number owned twice, ...).
    #[error("{0}")]
    Conflict(String),
    /// A value given is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The configuration is not valid.
    #[error("configuration {path}:\n{report}")]
    Config {
        /// The configuration file.
        path: String,
        /// Every problem found, one a line, with key path and line number.
        report: String,
    },
    /// The store is damaged: what is wrong, named (a tree, a key, records).
    #[error("the store is damaged: {what}")]
    Damaged {
        /// What is wrong.
        what: String,
    },
    /// sled failed.
    #[error("store: {0}")]
    Sled(sled::Error),
    /// A key, a seal or an open failed.
    #[error("store: {0}")]
    Crypto(#[from] faxgate_retention::Error),
    /// A record could not be encoded or decoded.
    #[error("store: record {what}: {source}")]
    Codec {
        /// Which record.
        what: String,
        /// The serde error.
        source: serde_json::Error,
    },
    /// An I/O error.
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The path.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

impl Error {
    /// A short, stable name of the error's kind, for the admin API and scripts.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InUse { .. } => "in_use",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Invalid(_) | Error::Config { .. } => "invalid",
            Error::Forbidden(_) => "forbidden",
            Error::Damaged { .. } | Error::Crypto(faxgate_retention::Error::DamagedKey { .. }) => "damaged",
            _ => "internal",
        }
    }

    pub(crate) fn io(context: &'static str, path: PathBuf) -> impl FnOnce(std::io::Error) -> Error + use<> {
        move |source| Error::Io { context, path, source }
    }
}

impl From<sled::Error> for Error {
    /// sled's own corruption check is damage like any other: named, and
    /// never run on.
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Corruption { at, .. } => Error::Damaged {
                what: format!(
                    "sled cannot read its own files (corrupted data{}); restore the store from a backup \
                     (faxgate restore)",
                    at.map(|p| format!(" at {p:?}")).unwrap_or_default()
                ),
            },
            other => Error::Sled(other),
        }
    }
}
