//! The SIP side of the fax leg, on top of `rsipstack` (transport,
//! transactions, dialogs, digest authentication).
//!
//! - [`call`]: call control of one call, sans-IO: re-INVITE timing, glare,
//!   refusals, refreshes, hanging up; `now` and events in, actions and the
//!   next deadline out.
//! - [`ua`]: the user agent and the driver of [`call`]: trunk source
//!   filtering, admission of incoming calls, outgoing calls, OPTIONS and
//!   REGISTER.
//! - [`session_timer`]: RFC 4028 session timers (headers, refresh and expiry).
//! - [`cause`]: final SIP status to the causes the queue acts on.

pub mod call;
pub mod cause;
pub mod session_timer;
pub mod ua;

pub use call::{CallState, Refusal};
pub use cause::CallError;
pub use ua::{
    CallOptions, CallReport, IncomingCall, Needed, Router, UaConfig, UaStats, UserAgent, log_filter, screen_invite,
};
