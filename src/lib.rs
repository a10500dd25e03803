//! faxgate: the core of the Fax-to-Mail / Mail-to-Fax gateway.
//!
//! # Layout
//! - [`types`]: validated domain types (`E164`, `EmailAddress`, ids).
//! - [`store`]: sled behind a narrow API; records sealed by retention class.
//! - [`directory`]: tenants, accounts, numbers, routes, senders.
//! - [`document`]: mail parts to fax pages (G4 TIFF), received faxes to PDF, cover pages.
//! - [`config`]: the TOML configuration and its checker.
//! - [`admin`]: the admin API (requests, and the Unix socket that serves them).
//! - [`gateway`]: mail to fax and fax to mail: jobs, retries, reports, CDRs.
//! - [`daemon`]: `faxgate serve`: wiring, signals, systemd notification.
//! - [`clock`]: the injected clock.
//! - [`cli_fax`]: `faxgate fax loopback`, the fax engine (`faxgate-t38`) on its own.
#![forbid(unsafe_code)]

pub mod admin;
pub mod cdr;
pub mod cli;
pub mod cli_fax;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod directory;
pub mod document;
mod error;
pub mod gateway;
pub mod gdpr;
pub mod mail;
pub mod retention;
pub mod store;
pub mod types;

pub use error::Error;
