//! The directory file of `faxgate directory apply`: any text parsed as the
//! CLI parses it, and what parses planned and checked against a directory
//! seeded with `directory.example.toml` (a dry run, with and without prune:
//! every change is made on a staged directory and every check runs, nothing
//! is written). Problems are reported with their place; never a panic.
//! Every few inputs one that applies cleanly is applied for real, so the
//! directory it is checked against changes too.
#![no_main]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use faxgate::clock::{Clock, FakeClock};
use faxgate::directory::{Directory, DirectoryFile, Scope};
use faxgate::store::Store;
use libfuzzer_sys::fuzz_target;

const EXAMPLE: &str = include_str!("../../directory.example.toml");

fn directory() -> &'static Directory {
    static DIR: OnceLock<Directory> = OnceLock::new();
    DIR.get_or_init(|| {
        let data = std::env::temp_dir().join(format!("faxgate-fuzz-directory-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let store = Store::open(&data, &data.join("keys")).unwrap();
        let clock: Arc<dyn Clock> = Arc::new(FakeClock::new("2026-01-15T10:00:00Z".parse().unwrap()));
        let dir = Directory::open(&store, clock).unwrap();
        let file: DirectoryFile = toml::from_str(EXAMPLE).expect("the example parses");
        let report = dir.apply(&Scope::Operator, &file, false, false, Some(EXAMPLE)).unwrap();
        assert!(report.problems.is_empty(), "the example applies: {:?}", report.problems);
        dir
    })
}

fuzz_target!(|input: (bool, &str)| {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let (prune, text) = input;
    let Ok(file) = toml::from_str::<DirectoryFile>(text) else { return };
    let dir = directory();
    let dry = RUNS.fetch_add(1, Ordering::Relaxed) % 16 != 0;
    match dir.apply(&Scope::Operator, &file, prune, dry, Some(text)) {
        Ok(report) => {
            for p in &report.problems {
                assert!(!p.message.trim().is_empty(), "a problem that says nothing");
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
