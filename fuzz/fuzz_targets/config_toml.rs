//! The configuration file: any text through `Config::parse` (TOML, every
//! key, every check that `check-config` and a reload make): a configuration
//! or a list of problems, each saying what is wrong, never a panic. A
//! configuration that parses needs no restart to become itself, and its
//! log level passes the same check as a reload's.
#![no_main]

use faxgate::config::{Config, check_log_filter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match Config::parse(text) {
        Ok(config) => {
            assert!(config.restart_needed_for(&config).is_empty(), "a configuration differs from itself");
            let _ = config.smtp.max_connections_for(u64::from(text.len() as u32));
            let _ = config.smtp.limits();
            let _ = config.smtp.auth_limits();
            let _ = config.storage.key_dir();
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "a refused configuration without a problem");
            for p in problems {
                assert!(!p.message.trim().is_empty(), "a problem that says nothing: {p:?}");
            }
        }
    }
    let _ = check_log_filter(text);
});
