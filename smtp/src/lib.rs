//! faxgate-smtp: the mail leg.
//!
//! # Layout
//! The ESMTP listener (a sans-IO session with a thin tokio layer) and
//! outgoing mail through lettre arrive with the mail-leg work; until then
//! this crate holds only its error type.
#![forbid(unsafe_code)]

/// Everything that can go wrong in the mail leg.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a mail connection.
    #[error("mail I/O: {0}")]
    Io(#[from] std::io::Error),
}
