//! CDR store benchmark: insert rate (each CDR flushed, as in service), the
//! query for one number in one month, the erasure of one month by the
//! retention sweeper, and bytes on disk per CDR, with where they go; beside
//! it, the same CDRs as plain sled records and in SQLite.
//!
//! `cargo bench --bench cdr` (1,000,000 CDRs over 12 months; set
//! `FAXGATE_BENCH_CDRS` for another count). Results go in BENCHMARKS.md.

use std::sync::Arc;
use std::time::Instant;

use faxgate::cdr::{Cdr, CdrFilter, CdrStore, encode};
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
    where_the_bytes_go(&store, n, bytes);

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
    drop((sweeper, retention, directory, cdrs, store));

    plain_sled(n, year_start, step);
    sqlite(n, year_start, step);
}

/// The bytes of one CDR (the series' first) as stored, part by part, in
/// this layout and in the first (JSON records, text keys), and what sled
/// adds on disk.
fn where_the_bytes_go(store: &Store, n: u64, on_disk: u64) {
    use faxgate::store::layout::cdr as layout;
    let c = cdr(0, "2025-01-01T00:00:00Z".parse().unwrap());
    // The envelope (faxgate_retention::seal): version, key id length, key
    // id (`cdr-YYYY-MM`), XChaCha20 nonce (24), Poly1305 tag (16).
    let envelope = 2 + "cdr-2025-01".len() + 24 + 16;
    let place = layout::place(c.start, &c.id);
    let calling = layout::index_entry(store, c.calling.as_ref().unwrap(), &place);
    let called = layout::index_entry(store, c.called.as_ref().unwrap(), &place);
    let record = encode(&c).unwrap().len();
    let total = place.len() + record + envelope + calling.len() + called.len();
    println!(
        "one CDR, this layout: record {record} bytes before sealing + {envelope} envelope, place key {}, \
         two index keys {} + {} (empty values): {total} bytes; sled on disk, per CDR, {} more ({:.2}x)",
        place.len(),
        calling.len(),
        called.len(),
        (on_disk / n).saturating_sub(total as u64),
        (on_disk / n) as f64 / total as f64,
    );
    let old_place = layout::v1::place(c.start, &c.id);
    let old_index = layout::v1::index_entry(store, c.calling.as_ref().unwrap(), &old_place);
    let json = serde_json::to_vec(&c).unwrap().len();
    println!(
        "one CDR, first layout: JSON record {json} bytes + {envelope} envelope, place key {}, two index keys {} \
         each: {} bytes",
        old_place.len(),
        old_index.len(),
        old_place.len() + json + envelope + 2 * old_index.len()
    );
}

/// The same CDRs as plain sled records: the compact encoding, not sealed,
/// under the same place, no index; batches of 10,000, one flush each.
fn plain_sled(n: u64, year_start: Timestamp, step: SignedDuration) {
    let tmp = tempfile::tempdir().unwrap();
    let db = sled::Config::new().path(tmp.path().join("db")).mode(sled::Mode::HighThroughput).open().unwrap();
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let mut b = sled::Batch::default();
        for j in i..(i + 10_000).min(n) {
            let c = cdr(j, year_start + step * j as i32);
            b.insert(faxgate::store::layout::cdr::place(c.start, &c.id), encode(&c).unwrap());
        }
        db.apply_batch(b).unwrap();
        db.flush().unwrap();
        i = (i + 10_000).min(n);
    }
    db.flush().unwrap();
    let took = t.elapsed();
    let bytes = dir_size(&tmp.path().join("db"));
    println!(
        "plain sled (compact record, not sealed, no index): {} bytes per CDR; loaded at {:.0}/s",
        bytes / n,
        n as f64 / took.as_secs_f64()
    );
}

/// The same CDRs in SQLite (bundled), not encrypted: one row each, a
/// column per field (the timeline as JSON), an index on each number with
/// the start; transactions of 10,000 rows. Then January 2025 deleted.
fn sqlite(n: u64, year_start: Timestamp, step: SignedDuration) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("cdr.sqlite");
    let mut db = rusqlite::Connection::open(&path).unwrap();
    db.execute_batch(
        "CREATE TABLE cdr (id TEXT PRIMARY KEY, correlation_id TEXT, direction INTEGER, tenant TEXT, account TEXT,
           calling TEXT, called TEXT, emails TEXT, smtp_client TEXT, sip_signalling TEXT, sip_media TEXT,
           start INTEGER, answer INTEGER, end INTEGER, t30_code INTEGER, t30_text TEXT, sip_status INTEGER,
           pages INTEGER, pages_total INTEGER, transport INTEGER, bit_rate INTEGER, ecm INTEGER, resolution TEXT,
           remote_station TEXT, attempt INTEGER, timeline TEXT, learned TEXT);
         CREATE INDEX cdr_calling ON cdr (calling, start);
         CREATE INDEX cdr_called ON cdr (called, start);",
    )
    .unwrap();
    let ms = |t: Option<Timestamp>| t.map(|t| t.as_millisecond());
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let tx = db.transaction().unwrap();
        {
            let mut insert = tx.prepare_cached("INSERT INTO cdr VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)").unwrap();
            for j in i..(i + 10_000).min(n) {
                let c = cdr(j, year_start + step * j as i32);
                let emails: Vec<String> = c.emails.iter().map(|e| e.to_string()).collect();
                insert
                    .execute(rusqlite::params![
                        c.id,
                        c.correlation_id,
                        c.direction as u8,
                        c.tenant.to_string(),
                        c.account.map(|a| a.to_text()),
                        c.calling.as_ref().map(|n| n.as_str().to_owned()),
                        c.called.as_ref().map(|n| n.as_str().to_owned()),
                        emails.join(" "),
                        c.smtp_client.map(|a| a.to_string()),
                        c.sip_signalling.map(|a| a.to_string()),
                        c.sip_media.map(|a| a.to_string()),
                        c.start.as_millisecond(),
                        ms(c.answer),
                        c.end.as_millisecond(),
                        c.t30_code,
                        c.t30_text,
                        c.sip_status,
                        c.pages,
                        c.pages_total,
                        c.transport.map(|t| t as u8),
                        c.bit_rate,
                        c.ecm,
                        c.resolution,
                        c.remote_station,
                        c.attempt,
                        serde_json::to_string(&c.timeline).unwrap(),
                        c.learned,
                    ])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        i = (i + 10_000).min(n);
    }
    let took = t.elapsed();
    let bytes = std::fs::metadata(&path).unwrap().len();
    println!(
        "SQLite (a row, two number indexes, not encrypted): {} bytes per CDR; loaded at {:.0}/s",
        bytes / n,
        n as f64 / took.as_secs_f64()
    );
    let feb: Timestamp = "2025-02-01T00:00:00Z".parse().unwrap();
    let t = Instant::now();
    let gone = db.execute("DELETE FROM cdr WHERE start < ?1", [feb.as_millisecond()]).unwrap();
    println!("SQLite: deleted one month ({gone} rows) in {:.2?}", t.elapsed());
}
