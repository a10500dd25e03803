//! faxgate: the core of the Fax-to-Mail / Mail-to-Fax gateway. The legs
//! (`faxgate-smtp`, `faxgate-t38`) and the retention mechanism
//! (`faxgate-retention`) know nothing of each other; this crate wires them.
//! The `faxgate` command line is the binary's (`src/cli/`, `src/main.rs`).
//!
//! # Layout
//! - [`types`]: validated domain types (`E164`, `EmailAddress`, ids).
//! - [`store`]: sled behind a narrow API; [`store::layout`] owns every tree and key encoding.
//! - [`directory`]: tenants, accounts, numbers, routes, senders, claims waiting for proof.
//! - [`dns`]: the DNS resolvers configured, for DMARC and for claims.
//! - [`mail`]: the mail leg's core side: sender policy, the spool of accepted mail, the outbox.
//! - [`document`]: mail parts to fax pages (G4 TIFF), received faxes to PDF, cover pages.
//! - [`gateway`]: mail to fax (`outbound`), fax to mail (`inbound`), reports.
//! - [`cdr`]: call detail records and their store.
//! - [`learned`]: what calls to a destination needed, learned per tenant.
//! - [`retention`]: one file per retention class; the audit and status.
//! - [`gdpr`]: data-subject requests and lawful disclosure.
//! - [`config`]: the TOML configuration and its checker.
//! - [`admin`]: the operations the CLI asks of the daemon, and the Unix socket that serves them.
//! - [`daemon`]: `faxgate serve`: wiring, signals, systemd notification.
//! - [`clock`]: the injected clock.
//! - [`test_pause`]: points where a test build can be told to pause (`FAXGATE_TEST_PAUSE`).
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod billing;
pub mod cdr;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod directory;
pub mod dns;
pub mod document;
mod error;
pub mod gateway;
pub mod gdpr;
pub mod learned;
pub mod mail;
pub mod metrics;
pub mod retention;
pub mod sockets;
pub mod store;
pub mod test_pause;
pub mod types;
pub mod webhook;

pub use error::Error;
