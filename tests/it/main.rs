#![allow(unreachable_pub)]
//! Integration tests: they start the real `faxgate` binary.

mod harness;

mod cdr;
mod config;
mod daemon;
mod directory;
mod durability;
mod gdpr;
mod retention;
mod systemd;
