//! faxgate-t38: the fax leg.
//!
//! # Layout
//! `ffi` (the one module in the workspace allowed `unsafe`) wraps spandsp;
//! fax sessions over T.38 and G.711, UDPTL, RTP, SDP and the SIP user agent
//! build on it.
#![deny(unsafe_code)]

/// Everything that can go wrong in the fax leg.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a media or signalling socket.
    #[error("fax leg I/O: {0}")]
    Io(#[from] std::io::Error),
}
