#![allow(unreachable_pub)]
//! Integration tests: they start the real `faxgate` binary.

mod dns;
mod harness;

mod config;
mod daemon;
mod directory;
mod durability;
mod mail;
mod outbox;
mod postfix;
mod systemd;
