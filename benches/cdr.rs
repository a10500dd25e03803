//! CDR store benchmark: insert rate (each CDR flushed, as in service), the
//! query for one number in one month, the erasure of one month by the
//! retention sweeper, and bytes on disk per CDR.
//!
//! `cargo bench --bench cdr` (1,000,000 CDRs over 12 months; set
//! `FAXGATE_BENCH_CDRS` for another count). Results go in BENCHMARKS.md.

use std::sync::Arc;
use std::time::Instant;

use faxgate::cdr::{Cdr, CdrFilter, CdrStore};
use faxgate::clock::{Clock, FakeClock};
use faxgate::directory::Directory;
use faxgate::retention::{Policy, Retention};
use faxgate::store::Store;
use jiff::{SignedDuration, Timestamp};

use faxgate::cdr::example as cdr;

fn dir_size(p: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() { dir_size(&e.path()) } else { m.len() };
    }
    total
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not: then only a smoke run.
    let bench = std::env::args().any(|a| a == "--bench");
    let n: u64 = std::env::var("FAXGATE_BENCH_CDRS").ok().and_then(|v| v.parse().ok()).unwrap_or(if bench {
        1_000_000
    } else {
        2_000
    });
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let store = Store::open(&data, &data.join("keys")).unwrap();
    let cdrs = CdrStore::open(&store).unwrap();
    let year_start: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
    let step = SignedDuration::from_secs(365 * 86_400 / n.max(1) as i64).max(SignedDuration::from_millis(1));

    // Insert rate with a flush per CDR, as the service writes them.
    let flushed = 5_000.min(n);
    let t = Instant::now();
    for i in 0..flushed {
        cdrs.write(&cdr(i, year_start + step * i as i32)).unwrap();
    }
    let per_cdr = t.elapsed() / flushed as u32;
    println!(
        "insert, each CDR sealed and flushed: {flushed} in {:.2?} = {:.0}/s ({per_cdr:.2?} each)",
        t.elapsed(),
        flushed as f64 / t.elapsed().as_secs_f64()
    );

    // Load the rest in batches.
    let t = Instant::now();
    let mut i = flushed;
    while i < n {
        let batch: Vec<Cdr> = (i..(i + 10_000).min(n)).map(|j| cdr(j, year_start + step * j as i32)).collect();
        cdrs.write_many(&batch).unwrap();
        i += batch.len() as u64;
    }
    println!(
        "load, batches of 10,000: {} in {:.2?} = {:.0}/s",
        n - flushed,
        t.elapsed(),
        (n - flushed) as f64 / t.elapsed().as_secs_f64()
    );
    store.flush().unwrap();
    let bytes = dir_size(&data.join("db"));
    println!(
        "store on disk: {:.1} MiB for {n} CDRs = {} bytes per CDR (sealed record and two index entries)",
        bytes as f64 / 1048576.0,
        bytes / n
    );

    // One number in one month: the number and month of a CDR in the middle of the year.
    let probe = cdr(n * 5 / 12 + 7, year_start + step * (n * 5 / 12 + 7) as i32);
    let month = probe.start.to_zoned(jiff::tz::TimeZone::UTC).first_of_month().unwrap().start_of_day().unwrap();
    let filter = CdrFilter {
        number: probe.called.clone(),
        since: Some(month.timestamp()),
        until: Some(month.checked_add(jiff::Span::new().months(1)).unwrap().timestamp()),
        tenant: None,
        account: None,
    };
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..20 {
        let t = Instant::now();
        found = cdrs.list(&filter).unwrap().len();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "query, one number in one month: {found} CDR(s) in {:.2?} (median of 20, max {:.2?})",
        times[10], times[19]
    );
    assert!(found >= 1, "the query finds the CDR it was built from");

    // The sweeper erasing one month (January 2025) out of the whole year.
    let clock = FakeClock::new("2026-02-01T00:00:00Z".parse().unwrap());
    let directory = Directory::open(&store, Arc::new(clock.clone())).unwrap();
    let retention = Retention::new(&store, &directory, Policy::default(), Arc::new(clock.clone())).unwrap();
    let sweeper = retention.sweeper(Arc::new(clock.clone())).with_window(SignedDuration::ZERO);
    let before = cdrs.places().unwrap().len();
    let t = Instant::now();
    let entry = sweeper.sweep().unwrap();
    let took = t.elapsed();
    let after = cdrs.places().unwrap().len();
    let c = entry.categories.iter().find(|c| c.category == "cdr").unwrap();
    println!(
        "sweep at {}: erased {} CDRs (one month) of {before}, destroyed {:?}, in {took:.2?}; {after} remain",
        clock.now(),
        c.erased,
        c.keys_destroyed
    );
    let t = Instant::now();
    sweeper.sweep().unwrap();
    println!("sweep with nothing due over {after} CDRs: {:.2?}", t.elapsed());
}
