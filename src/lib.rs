//! faxgate: the core of the Fax-to-Mail / Mail-to-Fax gateway.
//!
//! # Layout
//! - [`types`]: validated domain types (`E164`, `EmailAddress`, ids).
//! - [`store`]: sled behind a narrow API; records sealed by retention class.
//! - [`directory`]: tenants, accounts, numbers, routes, senders.
//! - [`config`]: the TOML configuration and its checker.
//! - [`admin`]: the admin API (requests, and the Unix socket that serves them).
//! - [`daemon`]: `faxgate serve`: wiring, signals, systemd notification.
//! - [`clock`]: the injected clock.
#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod directory;
mod error;
pub mod mail;
pub mod store;
pub mod types;

pub use error::Error;
