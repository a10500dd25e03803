#![allow(unreachable_pub)]
//! Integration tests: they start the real `faxgate` binary.

mod dns;
mod harness;

mod api;
mod api_fax;
mod billing;
mod cdr;
mod claims;
mod config;
mod crash;
mod daemon;
mod directory;
mod drain;
mod durability;
mod fax_cli;
mod fidelity;
mod gateway;
mod gdpr;
mod hostile;
mod log_privacy;
mod mail;
mod metrics;
mod outbox;
mod package;
mod pdf_worker;
mod postfix;
mod principals;
mod queue;
mod reload;
mod retention;
mod sweep_stall;
mod systemd;
mod trust;
mod webhooks;
