//! The fax-history endpoint under a full store: `GET /v1/cdrs` of one
//! tenant's month, page by page (100 a page), on a store of 1,000,000 CDRs
//! over the last twelve months (two tenants), through the real daemon
//! (release build) and a real HTTPS client on loopback, one request at a
//! time on a kept-alive connection. Prints the latency percentiles of every
//! page of the month, then of pages asked again at random.
//!
//! `cargo bench --bench api_history` (1,000,000 CDRs; `FAXGATE_BENCH_CDRS`
//! for another count, `FAXGATE_BENCH_CACHE_MIB` for `storage.cache_mib`). Results go in BENCHMARKS.md. Without `--bench`
//! (`cargo test --all-targets`) it is a smoke run over 2,000 CDRs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faxgate::cdr::{Cdr, CdrStore, example};
use faxgate::store::Store;
use jiff::{SignedDuration, Timestamp, ToSpan};

const BIN: &str = env!("CARGO_BIN_EXE_faxgate");

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n: u64 = std::env::var("FAXGATE_BENCH_CDRS").ok().and_then(|v| v.parse().ok()).unwrap_or(if bench {
        1_000_000
    } else {
        2_000
    });
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");

    // The last twelve months of CDRs, alternately of tenants alpha and beta
    // (within the retention period, so the daemon's sweep leaves them).
    let now = Timestamp::now();
    let first = now - SignedDuration::from_hours(360 * 24);
    let step = SignedDuration::from_nanos((355 * 86_400 * 1_000_000_000i64) / n.max(1) as i64);
    let t = Instant::now();
    {
        let store = Store::open(&data, &data.join("keys")).unwrap();
        let cdrs = CdrStore::open(&store).unwrap();
        let mut i = 0;
        while i < n {
            let batch: Vec<Cdr> = (i..(i + 10_000).min(n)).map(|j| example(j, first + step * j as i32)).collect();
            cdrs.write_many(&batch).unwrap();
            i += batch.len() as u64;
        }
        store.flush().unwrap();
    }
    println!("store: {n} CDRs written in {:.1?}", t.elapsed());

    // The daemon, with the API on.
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(dir.join("api.crt"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("api.key"), cert.key_pair.serialize_pem()).unwrap();
    let config = dir.join("faxgate.toml");
    // `storage.cache_mib`: FAXGATE_BENCH_CACHE_MIB, or the default.
    let cache_mib: u64 = std::env::var("FAXGATE_BENCH_CACHE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(faxgate::store::DEFAULT_CACHE_MIB);
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = \"{d}/data\"\ncache_mib = {cache_mib}\n[admin]\nsocket = \"{d}/admin.sock\"\n[api]\nlisten = \"127.0.0.1:0\"\n\
             certificate = \"{d}/api.crt\"\nkey = \"{d}/api.key\"\nrequests_per_minute = 1000000\nburst = 100000\n\
             [log]\nlevel = \"warn\"\ntarget = \"stderr\"\n",
            d = dir.display(),
        ),
    )
    .unwrap();
    let t = Instant::now();
    let mut daemon = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut base = None;
    for line in BufReader::new(daemon.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("faxgate: api ") {
            base = Some(a.to_owned());
        }
        if line == "faxgate: ready" {
            break;
        }
    }
    let base = base.expect("the daemon announced its API");
    println!("daemon ready in {:.1?}", t.elapsed());
    let cli = |args: &[&str]| {
        let out = Command::new(BIN).arg("--config").arg(&config).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    cli(&["tenant", "add", "alpha", "--name", "Alpha", "--from-address", "fax@alpha.dk", "--country", "DK"]);
    let token = cli(&["token", "create", "--tenant", "alpha", "--role", "tenant-admin"]).trim().to_owned();

    let root = ureq::tls::Certificate::from_der(cert.cert.der()).to_owned();
    let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![root]))).build();
    let agent: ureq::Agent = ureq::Agent::config_builder().tls_config(tls).build().into();
    let auth = format!("Bearer {token}");
    let get = |path: &str| -> (Duration, serde_json::Value) {
        let t = Instant::now();
        let mut r = agent.get(format!("{base}{path}")).header("Authorization", &auth).call().unwrap();
        let v: serde_json::Value = r.body_mut().read_json().unwrap();
        (t.elapsed(), v)
    };

    // A month in the middle of the year, every page of it.
    let month = (now - SignedDuration::from_hours(180 * 24)).to_zoned(jiff::tz::TimeZone::UTC);
    let since = month.first_of_month().unwrap().start_of_day().unwrap();
    let until = since.checked_add(1.month()).unwrap();
    let query = format!("/v1/cdrs?since={}&until={}&limit=100", since.timestamp(), until.timestamp());
    let mut times = Vec::new();
    let mut cursors = vec![String::new()];
    let mut found = 0;
    let t = Instant::now();
    loop {
        let cursor = cursors.last().unwrap();
        let path = if cursor.is_empty() { query.clone() } else { format!("{query}&cursor={cursor}") };
        let (took, v) = get(&path);
        times.push(took);
        let items = v["items"].as_array().unwrap();
        assert!(items.iter().all(|c| c["tenant"] == "alpha"), "another tenant's CDR");
        found += items.len();
        match v["next"].as_str() {
            Some(next) => cursors.push(next.to_owned()),
            None => break,
        }
    }
    let walk = t.elapsed();
    times.sort();
    println!(
        "one tenant's month ({} to {}), every page of 100: {found} CDRs in {} pages, {walk:.2?}; \
         per page p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        since.date(),
        until.date(),
        times.len(),
        percentile(&times, 0.50),
        percentile(&times, 0.99),
        times.last().unwrap()
    );
    assert!(found > 0);

    // Pages asked again in a scattered order (as users jump around).
    let mut again = Vec::new();
    let rounds = if bench { 1000 } else { 50 };
    for i in 0..rounds {
        let c = &cursors[(i * 7919) % cursors.len()];
        let path = if c.is_empty() { query.clone() } else { format!("{query}&cursor={c}") };
        again.push(get(&path).0);
    }
    again.sort();
    println!(
        "{rounds} pages of the month in scattered order: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        percentile(&again, 0.50),
        percentile(&again, 0.99),
        again.last().unwrap()
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.id())).unwrap_or_default();
    let field =
        |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned()).unwrap_or_default();
    println!("daemon memory: RSS {}, peak {} (storage.cache_mib = {cache_mib})", field("VmRSS:"), field("VmHWM:"));
    nix_term(&mut daemon);
}

fn nix_term(daemon: &mut std::process::Child) {
    let _ = Command::new("kill").arg("-TERM").arg(daemon.id().to_string()).status();
    let _ = daemon.wait();
}
