//! faxgate-t38: the fax leg.
//!
//! # Layout
//! - `ffi`: the thin wrapper over spandsp (through `spandsp-sys`), the one
//!   module in the workspace allowed `unsafe`. C callbacks only record into a
//!   boxed per-terminal context; spandsp logs go to `tracing` (target `spandsp`).
//! - [`session`]: a sans-IO fax session (send or receive a TIFF over T.38 IFP
//!   packets or G.711 audio): `now` in, packets, events and the next deadline out.
//! - [`udptl`]: the UDPTL codec of T.38 Annex D (redundancy and parity FEC,
//!   loss recovery, duplicate suppression, `T38FaxMaxDatagram` rules).
//! - [`rtp`]: RTP packets and a jitter buffer for G.711.
//! - [`g711`]: A-law and µ-law companding.
//! - [`sdp`]: SDP for audio and T.38; offer and answer as pure functions.
//! - [`media`]: the media of one call (sans-IO, switching from G.711 to
//!   T.38) and the one loop that drives it over UDP, on a runtime of its own.
//! - [`sip`]: call control (sans-IO, [`sip::call`]), session timers
//!   ([`sip::session_timer`]), the user agent on rsipstack that drives call
//!   control ([`sip::ua`]), and failure causes.
//! - [`trunk`]: trunk configuration types.
//! - With the `testing` feature: `pair` (two sessions joined in memory on
//!   simulated time, with latency, loss and reordering), `loopback` (the
//!   `faxgate fax loopback` diagnostic, on `pair`), `testpage` (bilevel
//!   TIFF test pages) and `sipp_peer` (the port a SIPp peer took).
//!
//! The `faxleg` binary runs one fax leg on its own (tests, SIPp benchmarks).
#![deny(unsafe_code)]

mod ffi;

pub mod g711;
#[cfg(feature = "testing")]
pub mod loopback;
pub mod media;
#[cfg(feature = "testing")]
pub mod pair;
pub mod rtp;
pub mod sdp;
pub mod session;
pub mod sip;
#[cfg(feature = "testing")]
pub mod sipp_peer;
#[cfg(feature = "testing")]
pub mod testpage;
pub mod trunk;
pub mod udptl;

pub use session::{
    CompletionCode, Direction, Event, FaxResult, FaxSession, FaxSettings, Negotiated, PageStats, SessionConfig,
    Transmit, Transport,
};

/// CPU time used by the calling thread so far.
pub fn thread_cpu_time() -> std::time::Duration {
    ffi::thread_cpu_time()
}

/// Everything that can go wrong in the fax leg.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a media or signalling socket, or on a file.
    #[error("fax leg I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A setting is out of range; the text says which.
    #[error("invalid fax setting: {0}")]
    InvalidSetting(&'static str),
    /// A file to send does not exist.
    #[error("no such file: {}", .0.display())]
    NoSuchFile(std::path::PathBuf),
    /// spandsp could not create or run a terminal.
    #[error("spandsp: {0}")]
    Spandsp(&'static str),
    /// A packet from the network is malformed; the text says how.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// An IFP packet does not fit the datagram size the far end accepts.
    #[error("IFP packet of {len} octets exceeds the {max}-octet limit")]
    IfpTooLarge {
        /// Its length.
        len: usize,
        /// The largest IFP that fits.
        max: usize,
    },
    /// Audio fed to a T.38 session, or IFP packets to an audio session.
    #[error("input does not match the session's transport")]
    WrongTransport,
    /// A TIFF could not be written or a page description is invalid.
    #[error("test page: {0}")]
    TestPage(String),
    /// SIP signalling failed (bind, transaction, dialog); the text says how.
    #[error("SIP: {0}")]
    Sip(String),
    /// The simulated call did not finish within its time limit.
    #[error("simulated call still running after {0:?}")]
    Timeout(std::time::Duration),
}
