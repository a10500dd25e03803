//! faxgate-smtp: the mail leg.
//!
//! faxgate refuses a bad fax during the SMTP session, with a reason, rather
//! than accepting it and bouncing later. This crate holds the protocol; the
//! decisions (who may send, which recipients exist) and the durable storage
//! belong to the core, which implements [`Policy`] and [`Sink`].
//!
//! # Layout
//! - [`command`]: the command parser (RFC 5321, 1870, 6152, 6531, 4954).
//! - [`reply`]: replies with enhanced status codes (RFC 3463).
//! - [`session`]: the sans-IO ESMTP session: bytes and `now` in; replies,
//!   questions for the core and the next deadline out.
//! - [`server`]: the thin tokio layer: listeners, connection limits, TLS
//!   (STARTTLS, RFC 3207, and implicit TLS), one task per connection.
//! - [`throttle`]: AUTH failures per client address and user name: delays
//!   and lockouts.
//! - [`listen`]: what any accept loop needs: a pause after a failed
//!   `accept`, log lines counted rather than repeated.
//! - [`tls`]: the rustls server configuration from PEM files.
//! - [`outgoing`]: outgoing mail through lettre: MIME building, a relay
//!   (STARTTLS, implicit TLS, AUTH) or a local Maildir.
//! - [`Error`]: the crate's one error type.
#![forbid(unsafe_code)]

pub mod command;
pub mod listen;
pub mod outgoing;
pub mod reply;
pub mod server;
pub mod session;
pub mod throttle;
pub mod tls;

use std::future::Future;

pub use command::{Body, MailParams};
pub use reply::{Enhanced, Reply};
pub use session::{Context, Limits, Message, SessionConfig, Transaction};
pub use throttle::{AuthLimits, AuthThrottle};

/// The decisions the session asks for. Each answer is the reply the client
/// gets: a 2xx accepts, anything else refuses with its reason.
pub trait Policy: Send + Sync + 'static {
    /// AUTH: may `user` log in with `password`? `235` accepts.
    fn auth(&self, context: &Context, user: &str, password: &str) -> impl Future<Output = Reply> + Send;
    /// MAIL FROM: may this sender send? `250` accepts.
    fn mail_from(&self, context: &Context, from: &str, params: &MailParams) -> impl Future<Output = Reply> + Send;
    /// RCPT TO: is this recipient accepted in this transaction? `250` accepts.
    fn rcpt_to(&self, context: &Context, transaction: &Transaction, to: &str) -> impl Future<Output = Reply> + Send;
}

/// Where accepted messages go.
pub trait Sink: Send + Sync + 'static {
    /// Checks and stores a message; returns `250` only once it is durable
    /// (flushed to disk), since the client forgets it when it reads the `250`.
    fn deliver(&self, message: Message) -> impl Future<Output = Reply> + Send;
}

/// Everything that can go wrong in the mail leg.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a mail connection.
    #[error("mail I/O: {0}")]
    Io(#[from] std::io::Error),
    /// An outgoing message cannot be built.
    #[error("outgoing mail: {0}")]
    Message(String),
    /// A certificate or key file cannot be read or used.
    #[error("TLS {what} {path}: {reason}")]
    Tls {
        /// What was being loaded ("certificate", "key").
        what: &'static str,
        /// Its path.
        path: String,
        /// Why it failed.
        reason: String,
    },
}
