//! The command parser on arbitrary lines: it must not panic, and what it
//! accepts must hold together (an address it returns is within the limits).
#![no_main]

use faxgate_smtp::command::{self, Command, MAX_PATH};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    match command::parse(line) {
        Ok(Command::Mail { from, .. }) => assert!(from.len() <= MAX_PATH),
        Ok(Command::Rcpt { to, .. }) => assert!(!to.is_empty() && to.len() <= MAX_PATH && to.contains('@')),
        Ok(Command::Ehlo(d) | Command::Helo(d)) => assert!(!d.is_empty() && d.len() <= 255),
        _ => {}
    }
});
