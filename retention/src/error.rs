use std::path::PathBuf;

/// Everything that can go wrong in faxgate-retention.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key id that is not of the form the vault accepts.
    #[error("invalid key id {0:?}: use 1 to 100 characters of a-z, 0-9, '-', '_' and '.'")]
    InvalidKeyId(String),
    /// The key was destroyed (or never existed): the data sealed with it is erased.
    #[error("key {0} has been destroyed: the data sealed with it is erased")]
    KeyDestroyed(String),
    /// A key file exists but cannot be read as a key: the data it seals
    /// cannot be opened until it is restored (it is never replaced).
    #[error("key {id} is damaged ({path}): {reason}; restore it from a backup")]
    DamagedKey {
        /// The key's id (its class and owner).
        id: String,
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key directory is readable by others than its owner.
    #[error("key directory {0} must not be accessible to group or others (chmod 0700)")]
    InsecureKeyDir(PathBuf),
    /// A sealed record is malformed or was tampered with.
    #[error("sealed record is corrupt: {0}")]
    Corrupt(&'static str),
    /// A category could not be swept.
    #[error("sweeping {category}: {message}")]
    Sweep {
        /// The category.
        category: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The operating system's random source failed.
    #[error("no randomness available: {0}")]
    Random(getrandom::Error),
    /// An I/O error on a key file or the key directory.
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { context, path: path.into(), source }
    }
}
