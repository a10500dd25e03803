//! `faxgate cdr list` and `faxgate cdr export` against a running daemon.

use faxgate::cdr::{Cdr, CdrStore, Direction, PageEvent, Transport};
use faxgate::store::Store;

use crate::harness::Setup;

pub(crate) fn cdr(start: &str, tenant: &str, called: &str, emails: &[&str]) -> Cdr {
    let start: jiff::Timestamp = start.parse().unwrap();
    Cdr {
        id: CdrStore::new_id(),
        correlation_id: format!("<{}@mail.example.dk>", start.as_second()),
        direction: Direction::MailToFax,
        tenant: tenant.parse().unwrap(),
        account: None,
        calling: Some("+4570203040".parse().unwrap()),
        called: Some(called.parse().unwrap()),
        emails: emails.iter().map(|e| e.parse().unwrap()).collect(),
        smtp_client: Some("192.0.2.10".parse().unwrap()),
        sip_signalling: Some("127.0.0.1:5060".parse().unwrap()),
        sip_media: Some("127.0.0.1:40000".parse().unwrap()),
        start,
        answer: Some(start + jiff::SignedDuration::from_secs(2)),
        end: start + jiff::SignedDuration::from_secs(61),
        t30_code: Some(0),
        t30_text: Some("OK".into()),
        sip_status: Some(200),
        pages: 1,
        pages_total: Some(1),
        transport: Some(Transport::T38),
        bit_rate: Some(14400),
        ecm: Some(true),
        resolution: Some("204x196".into()),
        remote_station: Some("REMOTE FAX".into()),
        attempt: 1,
        timeline: vec![PageEvent {
            page: 1,
            at: start + jiff::SignedDuration::from_secs(50),
            bad_rows: 0,
            ecm_retries: 0,
        }],
        learned: None,
    }
}

/// Writes CDRs into the setup's store while no daemon runs.
pub(crate) fn write_cdrs(s: &Setup, cdrs: &[Cdr]) {
    let store = Store::open(&s.data_dir(), &s.data_dir().join("keys")).unwrap();
    let w = CdrStore::open(&store).unwrap();
    for c in cdrs {
        w.write(c).unwrap();
    }
}

#[test]
fn cdrs_are_listed_filtered_and_exported() {
    let s = Setup::new();
    write_cdrs(
        &s,
        &[
            cdr("2026-03-01T10:00:00Z", "alpha", "+4533221100", &["a@alpha-kunde.dk"]),
            cdr("2026-03-15T10:00:00Z", "beta", "+4587654321", &["b@beta-kunde.dk"]),
            cdr("2026-04-02T08:30:00Z", "alpha", "+4587654321", &["c@alpha-kunde.dk"]),
        ],
    );
    let _d = s.start();
    assert_eq!(s.json(&["cdr", "list"]).as_array().unwrap().len(), 3);
    let alpha = s.json(&["cdr", "list", "--tenant", "alpha"]);
    assert_eq!(alpha.as_array().unwrap().len(), 2);
    let n = s.json(&["cdr", "list", "--number", "+4587654321"]);
    assert_eq!(n.as_array().unwrap().len(), 2);
    let w = s.json(&["cdr", "list", "--since", "2026-03-10T00:00:00Z", "--until", "2026-04-01T00:00:00Z"]);
    assert_eq!(w.as_array().unwrap().len(), 1);
    assert_eq!(w[0]["tenant"], "beta");
    let human = s.ok(&["cdr", "list", "--tenant", "beta"]);
    assert!(human.contains("+4570203040 -> +4587654321") && human.contains("pages 1/1"), "{human}");
    // A tenant sees only its own CDRs.
    let own = s.json(&["--as-tenant", "beta", "cdr", "list"]);
    assert_eq!(own.as_array().unwrap().len(), 1);
    s.fails(&["--as-tenant", "beta", "cdr", "list", "--tenant", "alpha"]);

    // CSV, read back by Python's csv module.
    let out = s.path().join("cdr.csv");
    s.ok(&["cdr", "export", "--format", "csv", "--out", out.to_str().unwrap()]);
    let check = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import csv,sys\nrows=list(csv.DictReader(open(sys.argv[1])))\n\
             print(len(rows), rows[0]['called'], rows[2]['start'], rows[1]['emails'], rows[0]['transport'])",
        )
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "3 +4533221100 2026-04-02T08:30:00Z b@beta-kunde.dk t38",
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // JSON lines: one CDR a line.
    let jsonl = s.ok(&["cdr", "export", "--format", "jsonl", "--tenant", "alpha"]);
    let lines: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["timeline"][0]["page"], 1);
}
