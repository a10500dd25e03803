//! The SIP user agent of the fax leg, on top of `rsipstack` (transport,
//! transactions, dialogs, digest authentication).
//!
//! - [`cause`]: final SIP status to the causes the queue acts on.
//! - [`ua`]: the user agent: trunk source filtering, incoming and outgoing
//!   fax calls, switching to T.38, OPTIONS and REGISTER.

pub mod cause;
pub mod ua;

pub use cause::CallError;
pub use ua::{CallReport, CallState, IncomingCall, Refusal, Router, UaConfig, UaStats, UserAgent, screen_invite};
