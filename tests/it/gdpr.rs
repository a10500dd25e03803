//! Data-subject requests, disclosure and the billing export through the CLI.

use std::path::Path;

use crate::cdr::{cdr, write_cdrs};
use crate::harness::Setup;

fn validator(schema: &Path) -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(schema).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

/// Checks a CSV export against its schema: the header is the schema's
/// columns in order, and each row, read as an object of header to cell, is valid.
fn check_csv(text: &str, schema: &Path) -> usize {
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(schema).unwrap()).unwrap();
    let v = validator(schema);
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let h = r.headers().unwrap().clone();
    let columns: Vec<&str> = s["x-csv-columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(h.iter().collect::<Vec<_>>(), columns);
    let mut n = 0;
    for row in r.records() {
        let row = row.unwrap();
        let obj: serde_json::Map<String, serde_json::Value> =
            h.iter().zip(row.iter()).map(|(k, v)| (k.to_owned(), v.into())).collect();
        let obj = serde_json::Value::Object(obj);
        let errors: Vec<String> = v.iter_errors(&obj).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?} in {obj}");
        n += 1;
    }
    n
}

fn check_jsonl(text: &str, schema: &Path) -> usize {
    let v = validator(schema);
    for line in text.lines() {
        let obj: serde_json::Value = serde_json::from_str(line).unwrap();
        let errors: Vec<String> = v.iter_errors(&obj).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?} in {obj}");
    }
    text.lines().count()
}

#[test]
fn subject_export_erase_restrict_and_disclosure() {
    let s = Setup::new();
    s.ok(&["tenant", "add", "alpha", "--name", "Alpha", "--from-address", "fax@alpha.dk", "--country", "DK"]);
    let a = s.json(&["account", "add", "--tenant", "alpha", "--name", "Tove Ditlevsen"]);
    let a = a["id"].as_str().unwrap().to_owned();
    s.ok(&["number", "add", "+4533990201", "--account", &a, "--route", "tove@vesterbro.dk"]);
    s.ok(&["sender", "add", "tove@vesterbro.dk", "--account", &a, "--auth", "dmarc"]);
    write_cdrs(
        &s,
        &[
            cdr("2026-03-02T10:00:00Z", "alpha", "+4533990201", &["tove@vesterbro.dk"]),
            cdr("2026-03-20T10:00:00Z", "alpha", "+4587654321", &["other@x.dk"]),
            cdr("2026-04-01T10:00:00Z", "alpha", "+4533990201", &["tove@vesterbro.dk"]),
        ],
    );
    let _d = s.start();

    // Export: four files; subject.json valid against schema.json.
    let out = s.path().join("export");
    let said = s.ok(&["gdpr", "export", "--email", "tove@vesterbro.dk", "--out", out.to_str().unwrap()]);
    assert!(said.contains("1 account(s), 1 number(s), 1 sender(s), 2 CDR(s)"), "{said}");
    let subject: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("subject.json")).unwrap()).unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("schema.json")).unwrap()).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(&subject).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let dir_csv = std::fs::read_to_string(out.join("directory.csv")).unwrap();
    assert!(dir_csv.lines().count() == 5 && dir_csv.contains("route,alpha"), "{dir_csv}");
    assert_eq!(check_csv(&dir_csv, &out.join("directory.schema.json")), 4);
    let cdrs_csv = std::fs::read_to_string(out.join("cdrs.csv")).unwrap();
    assert_eq!(check_csv(&cdrs_csv, &out.join("cdrs.schema.json")), 2);

    // Billing: one month of one tenant, with duration and result.
    let bill = s.ok(&["cdr", "export", "--tenant", "alpha", "--month", "2026-03", "--format", "csv"]);
    let mut r = csv::Reader::from_reader(bill.as_bytes());
    let h = r.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    let col = |name: &str| h.iter().position(|x| x == name).unwrap();
    assert_eq!(&rows[0][col("duration_s")], "59.0");
    assert_eq!(&rows[0][col("result")], "ok");
    assert!(s.fails(&["cdr", "export", "--month", "2026-13", "--format", "csv"]).contains("not a month"));
    // Written to a file, each export has its schema beside it, and matches it.
    let billing = s.path().join("alpha-2026-03.csv");
    s.ok(&[
        "cdr",
        "export",
        "--tenant",
        "alpha",
        "--month",
        "2026-03",
        "--format",
        "csv",
        "--out",
        billing.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&billing).unwrap();
    assert_eq!(check_csv(&text, &s.path().join("alpha-2026-03.csv.schema.json")), 2);
    let jsonl = s.path().join("all.jsonl");
    s.ok(&["cdr", "export", "--format", "jsonl", "--out", jsonl.to_str().unwrap()]);
    let text = std::fs::read_to_string(&jsonl).unwrap();
    assert_eq!(check_jsonl(&text, &s.path().join("all.jsonl.schema.json")), 3);
    // `faxgate schema` prints the same documents.
    let printed: serde_json::Value = serde_json::from_str(&s.ok(&["schema", "cdr-csv"])).unwrap();
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path().join("alpha-2026-03.csv.schema.json")).unwrap())
            .unwrap();
    assert_eq!(printed, written);
    assert!(s.fails(&["schema", "nothing"]).contains("subject-export"));

    // Restrict: the subject's CDRs leave listings and billing, not legal exports.
    s.ok(&["gdpr", "restrict", "--number", "+4533990201"]);
    assert_eq!(s.json(&["cdr", "list"]).as_array().unwrap().len(), 1);
    let bill = s.ok(&["cdr", "export", "--tenant", "alpha", "--month", "2026-03", "--format", "csv"]);
    assert_eq!(bill.lines().count(), 2, "only the other number's CDR is billed: {bill}");
    // ... and out of directory listings and shows.
    assert!(s.json(&["number", "list"]).as_array().unwrap().is_empty());
    assert!(s.json(&["account", "show", &a])["numbers"].as_array().unwrap().is_empty());
    assert!(s.fails(&["number", "show", "+4533990201"]).contains("restricted (GDPR Art. 18)"));
    s.ok(&["gdpr", "restrict", "--email", "tove@vesterbro.dk"]);
    assert!(s.json(&["sender", "list"]).as_array().unwrap().is_empty());
    assert!(s.fails(&["sender", "show", "tove@vesterbro.dk"]).contains("restricted"));
    // The subject's own export still has everything, marked restricted.
    let said =
        s.ok(&["gdpr", "export", "--email", "tove@vesterbro.dk", "--out", s.path().join("again").to_str().unwrap()]);
    assert!(said.contains("1 sender(s), 2 CDR(s) (restricted)"), "{said}");
    s.ok(&["gdpr", "restrict", "--email", "tove@vesterbro.dk", "--lift"]);
    assert_eq!(s.json(&["sender", "list"]).as_array().unwrap().len(), 1);
    let disclosed = s.path().join("case.jsonl");
    s.ok(&[
        "disclosure",
        "export",
        "--number",
        "+4533990201",
        "--since",
        "2026-03-01T00:00:00Z",
        "--until",
        "2026-05-01T00:00:00Z",
        "--case",
        "SA-77/2026",
        "--authority",
        "Rigspolitiet",
        "--out",
        disclosed.to_str().unwrap(),
    ]);
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&disclosed).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["case"], "SA-77/2026");
    assert_eq!(lines[0]["records"], 2);
    assert_eq!(lines.len(), 3);
    let text = std::fs::read_to_string(&disclosed).unwrap();
    assert_eq!(check_jsonl(&text, &s.path().join("case.jsonl.schema.json")), 3);
    s.ok(&["gdpr", "restrict", "--number", "+4533990201", "--lift"]);
    assert_eq!(s.json(&["cdr", "list"]).as_array().unwrap().len(), 3);
    assert_eq!(s.json(&["number", "list"]).as_array().unwrap().len(), 1);

    // Erase: directory data now, CDRs listed with their deadlines.
    let r = s.json(&["gdpr", "erase", "--email", "tove@vesterbro.dk"]);
    assert_eq!(r["erased"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["cdrs_kept"][0]["erase_on"], "2027-03-02T10:00:00Z");
    assert!(s.json(&["number", "show", "+4533990201"])["routes"].as_array().unwrap().is_empty());
    s.fails(&["sender", "show", "tove@vesterbro.dk"]);
    // Both requests are in the audit trail, with the case, and without the subject in clear.
    let trail = std::fs::read_to_string(s.data_dir().join("retention-audit.jsonl")).unwrap();
    assert!(
        trail.contains("\"kind\":\"disclosure\"") && trail.contains("SA-77/2026") && trail.contains("gdpr-erase"),
        "{trail}"
    );
    assert!(!trail.contains("vesterbro") && !trail.contains("33990201"), "{trail}");
}
