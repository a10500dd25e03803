//! The core side of the mail leg: who may send a fax by mail, to which
//! numbers, and the durable spool of accepted messages.
//!
//! The SMTP protocol lives in `faxgate-smtp`; this module implements its
//! [`Policy`] and [`Sink`] against the directory and the store.
//!
//! # Layout
//! - [`address`]: fax recipients (`<number>@<fax domain>`, RFC 3192 `FAX=`).
//! - [`policy`]: the decisions for AUTH, MAIL and RCPT, deny by default.
//! - [`spool`]: accepted messages and their job records, sealed with the
//!   job's key and flushed before the `250`; the duplicate index.
//! - [`password`]: argon2 hashes of SMTP AUTH passwords.
//! - [`outbox`]: mail faxgate sends, kept until the relay accepts it, with retries.
//!
//! [`Policy`]: faxgate_smtp::Policy
//! [`Sink`]: faxgate_smtp::Sink

pub mod address;
pub mod dmarc;
pub mod outbox;
pub mod password;
pub mod policy;
pub mod spool;

pub use policy::MailPolicy;
pub use spool::{MailJob, Spool};
