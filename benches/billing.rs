//! The billing export of one tenant's month on a store of 1,000,000 CDRs
//! over the last twelve months (two tenants): `faxgate billing export` and
//! `faxgate billing check` (release build) against the running daemon, as
//! an operator runs them, three times each; the time is the command's, from
//! start to the file written. Target: under 10 s.
//!
//! `cargo bench --bench billing` (1,000,000 CDRs; `FAXGATE_BENCH_CDRS` for
//! another count). Results go in BENCHMARKS.md. Without `--bench` (`cargo
//! test --all-targets`) it is a smoke run over 2,000 CDRs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use faxgate::cdr::{Cdr, CdrStore, example};
use faxgate::store::Store;
use jiff::{SignedDuration, Timestamp};

const BIN: &str = env!("CARGO_BIN_EXE_faxgate");

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

    let config = dir.join("faxgate.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = \"{d}/data\"\n[admin]\nsocket = \"{d}/admin.sock\"\n[log]\nlevel = \"warn\"\ntarget = \"stderr\"\n",
            d = dir.display(),
        ),
    )
    .unwrap();
    let t = Instant::now();
    let mut daemon =
        Command::new(BIN).arg("--config").arg(&config).arg("serve").stdout(Stdio::piped()).spawn().unwrap();
    for line in BufReader::new(daemon.stdout.take().unwrap()).lines() {
        if line.unwrap() == "faxgate: ready" {
            break;
        }
    }
    println!("daemon ready in {:.1?}", t.elapsed());
    let cli = |args: &[&str]| {
        let out = Command::new(BIN).arg("--config").arg(&config).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    cli(&["tenant", "add", "alpha", "--name", "Alpha", "--from-address", "fax@alpha.dk", "--country", "DK"]);
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rating.example.toml");
    cli(&["billing", "rules", "set", "--tenant", "alpha", rules]);

    let month = (now - SignedDuration::from_hours(180 * 24)).to_zoned(jiff::tz::TimeZone::UTC);
    let month = month.first_of_month().unwrap().strftime("%Y-%m").to_string();
    let out = dir.join("alpha.csv");
    for level in ["wholesale", "retail"] {
        for run in 1..=3 {
            let t = Instant::now();
            let (_, said) = cli(&[
                "billing",
                "export",
                "--tenant",
                "alpha",
                "--month",
                &month,
                "--level",
                level,
                "--out",
                out.to_str().unwrap(),
            ]);
            let took = t.elapsed();
            let rows = std::fs::read_to_string(&out).unwrap().lines().count() - 1;
            println!("billing export {level} {month}, run {run}: {took:.2?}, {rows} rows; {}", said.trim());
        }
    }
    let t = Instant::now();
    let (check, _) = cli(&["billing", "check", "--tenant", "alpha", "--month", &month, "--level", "wholesale"]);
    let v: serde_json::Value = serde_json::from_str(&check).unwrap();
    assert_eq!(v["differences"], serde_json::json!([]), "{check}");
    println!(
        "billing check wholesale {month}: {:.2?}, {} CDRs, {} billable, no difference",
        t.elapsed(),
        v["cdrs"],
        v["billable"]
    );
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}
