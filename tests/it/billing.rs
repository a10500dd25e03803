//! `faxgate billing` as a reseller's billing clerk and the operator use it:
//! rating rules set by the operator (wholesale) and the tenant's admin
//! (retail only), a month's CDRs rated into a CSV that matches its schema
//! (checked row by row) with its summary beside it, the same export again
//! to the byte, a restricted number's row kept with the number withheld
//! and counted, and `billing check` reconciling the export with the CDRs.

use std::path::Path;

use crate::cdr::{cdr, write_cdrs};
use crate::harness::Setup;

const RULES: &str = r#"
currency = "DKK"

[wholesale]
unit = "page"
incoming = "page"
price = { national = 0.10, mobile = 0.12, toll_free = 0, premium = 2.5, international = 0.45, incoming = 0.05 }

[retail]
unit = "minute"
show_digits = 4
zones = { eu = ["DE", "SE"] }
price = { national = 0.25, mobile = 0.35, toll_free = 0, premium = 5, international = 1.25, international-eu = 0.75 }
"#;

fn rows(csv_text: &str, schema: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(schema).unwrap()).unwrap();
    let v = jsonschema::validator_for(&s).unwrap();
    let mut r = csv::Reader::from_reader(csv_text.as_bytes());
    let h = r.headers().unwrap().clone();
    let columns: Vec<&str> = s["x-csv-columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(h.iter().collect::<Vec<_>>(), columns);
    r.records()
        .map(|row| {
            let row = row.unwrap();
            let obj: serde_json::Map<String, serde_json::Value> =
                h.iter().zip(row.iter()).map(|(k, v)| (k.to_owned(), v.into())).collect();
            let obj = serde_json::Value::Object(obj);
            let errors: Vec<String> = v.iter_errors(&obj).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{errors:?} in {obj}");
            h.iter().zip(row.iter()).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
        })
        .collect()
}

#[test]
fn a_month_is_rated_reconciled_and_restriction_does_not_change_the_money() {
    let s = Setup::new();
    s.add_tenant("acme");
    let acc = s.json(&["account", "add", "--tenant", "acme", "--name", "Hansen ApS", "--reference", "K-1001"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // November: national (2 pages, 67 s answered), premium, EU, unanswered,
    // one received; and one in October.
    let mut list = Vec::new();
    for (at, n) in [
        ("2026-11-02T09:00:00Z", "+4533221100"),
        ("2026-11-03T09:00:00Z", "+4590123456"),
        ("2026-11-04T09:00:00Z", "+4930123456"),
        ("2026-11-05T09:00:00Z", "+4533221101"),
        ("2026-11-06T09:00:00Z", "+4533221102"),
        ("2026-10-30T09:00:00Z", "+4533221100"),
    ] {
        let mut c = cdr(at, "acme", n, &["boss@hansen.dk"]);
        c.account = Some(acc.parse().unwrap());
        c.answer = Some(c.start + jiff::SignedDuration::from_secs(3));
        c.end = c.start + jiff::SignedDuration::from_secs(70);
        c.pages = 2;
        list.push(c);
    }
    list[3].answer = None;
    list[3].pages = 0;
    list[4].direction = faxgate::cdr::Direction::FaxToMail;
    write_cdrs(&s, &list);

    let rules = s.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    s.ok(&["billing", "rules", "set", "--tenant", "acme", rules.to_str().unwrap()]);
    // The tenant's admin sets only the retail table; the wholesale one stays.
    let err = s.fails(&["--as-tenant", "acme", "billing", "rules", "set", rules.to_str().unwrap()]);
    assert!(err.contains("the wholesale table is the operator's"), "{err}");
    let retail_only = RULES.split("[retail]").collect::<Vec<_>>();
    let retail_only =
        format!("currency = \"DKK\"\n[retail]{}", retail_only[1].replace("national = 0.25", "national = 0.30"));
    std::fs::write(&rules, retail_only).unwrap();
    s.ok(&["--as-tenant", "acme", "billing", "rules", "set", rules.to_str().unwrap()]);
    let shown = s.json(&["billing", "rules", "show", "--tenant", "acme"]);
    assert_eq!(shown["wholesale"]["price"]["national"], "0.1", "{shown}");
    assert_eq!(shown["retail"]["price"]["national"], "0.3", "{shown}");

    // Retail: per started minute (70 s answered 3 s in: 67 s, 2 minutes).
    let out = s.path().join("acme-2026-11.csv");
    s.ok(&[
        "billing",
        "export",
        "--tenant",
        "acme",
        "--month",
        "2026-11",
        "--level",
        "retail",
        "--out",
        out.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&out).unwrap();
    eprintln!("{text}");
    let schema = s.path().join("acme-2026-11.csv.schema.json");
    let r = rows(&text, &schema);
    assert_eq!(r.len(), 3, "national, premium, EU; not the unanswered, not the received (free at retail): {text}");
    let get = |i: usize, k: &str| r[i][k].clone();
    assert_eq!((get(0, "class"), get(0, "units"), get(0, "amount")), ("national".into(), "2".into(), "0.60".into()));
    assert_eq!((get(1, "class"), get(1, "amount")), ("premium".into(), "10.00".into()));
    assert_eq!((get(2, "class"), get(2, "amount")), ("international-eu".into(), "1.50".into()));
    assert_eq!(get(0, "number"), "+45****1100");
    assert_eq!((get(0, "account"), get(0, "reference")), (acc.clone(), "K-1001".to_owned()));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path().join("acme-2026-11.csv.summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["total"]["amount"], "12.10", "{summary}");
    assert_eq!(summary["accounts"][&acc]["by_class"]["premium"]["amount"], "10.00", "{summary}");

    // The same as JSONL, each line matching its schema.
    let jsonl = s.path().join("acme-2026-11.jsonl");
    s.ok(&[
        "billing",
        "export",
        "--tenant",
        "acme",
        "--month",
        "2026-11",
        "--format",
        "jsonl",
        "--out",
        jsonl.to_str().unwrap(),
    ]);
    let js: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path().join("acme-2026-11.jsonl.schema.json")).unwrap())
            .unwrap();
    let v = jsonschema::validator_for(&js).unwrap();
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&jsonl).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for l in &lines {
        let errors: Vec<String> = v.iter_errors(l).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?} in {l}");
    }
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["row", "row", "row", "account", "summary"]);
    assert_eq!(lines[4]["total"]["amount"], "12.10");

    // Wholesale: per page, the received fax too.
    let w = s.ok(&["billing", "export", "--tenant", "acme", "--month", "2026-11", "--level", "wholesale"]);
    let w: Vec<&str> = w.lines().skip(1).collect();
    assert_eq!(w.len(), 4, "{w:?}");
    assert!(w.iter().any(|l| l.contains(",fax-to-mail,incoming,") && l.contains(",0.05,0.10,")), "{w:?}");

    // The same again: the same bytes. Reconciled with the CDRs.
    let again = s.path().join("again.csv");
    s.ok(&["billing", "export", "--tenant", "acme", "--month", "2026-11", "--out", again.to_str().unwrap()]);
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&out).unwrap());
    let check = s.json(&["billing", "check", "--tenant", "acme", "--month", "2026-11", "--level", "wholesale"]);
    assert_eq!(check["differences"], serde_json::json!([]), "{check}");
    assert_eq!((check["cdrs"].as_u64(), check["billable"].as_u64()), (Some(5), Some(4)), "{check}");

    // A restricted number: its row stays, the number withheld, counted; the money is the same.
    s.ok(&["gdpr", "restrict", "--number", "+4590123456"]);
    s.ok(&["billing", "export", "--tenant", "acme", "--month", "2026-11", "--out", again.to_str().unwrap()]);
    let text = std::fs::read_to_string(&again).unwrap();
    let r = rows(&text, &schema);
    assert_eq!(r.len(), 3, "{text}");
    assert_eq!((r[1]["number"].as_str(), r[1]["restricted"].as_str(), r[1]["amount"].as_str()), ("", "true", "10.00"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path().join("again.csv.summary.json")).unwrap()).unwrap();
    assert_eq!((summary["withheld"].as_u64(), summary["total"]["amount"].as_str()), (Some(1), Some("12.10")));

    // Closing November: its export stays as it is; a CDR of November
    // written later (a call finished after a stop) is an adjustment of
    // the next month, provisional in December's export until that is closed.
    let before = s.ok(&["billing", "export", "--tenant", "acme", "--month", "2026-11"]);
    let closed = s.json(&["billing", "close", "--tenant", "acme", "--month", "2026-11"]);
    assert_eq!((closed["rows"].as_u64(), closed["amount"].as_str()), (Some(3), Some("12.10")), "{closed}");
    let err = s.fails(&["billing", "close", "--tenant", "acme", "--month", "2026-11"]);
    assert!(err.contains("closed already"), "{err}");
    let err = s.fails(&["--as-tenant", "acme", "billing", "close", "--month", "2026-10", "--level", "wholesale"]);
    assert!(err.contains("only the operator"), "{err}");
    let mut late = cdr("2026-11-20T09:00:00Z", "acme", "+4533221100", &["boss@hansen.dk"]);
    late.account = Some(acc.parse().unwrap());
    late.answer = Some(late.start + jiff::SignedDuration::from_secs(3));
    late.end = late.start + jiff::SignedDuration::from_secs(70);
    late.pages = 2;
    write_cdrs(&s, &[late.clone()]);
    assert_eq!(
        s.ok(&["billing", "export", "--tenant", "acme", "--month", "2026-11"]),
        before,
        "a closed month changed"
    );
    let check = s.json(&["billing", "check", "--tenant", "acme", "--month", "2026-11"]);
    assert_eq!((check["late"].as_u64(), &check["differences"]), (Some(1), &serde_json::json!([])), "{check}");
    let december = s.path().join("dec.csv");
    s.ok(&["billing", "export", "--tenant", "acme", "--month", "2026-12", "--out", december.to_str().unwrap()]);
    let r = rows(&std::fs::read_to_string(&december).unwrap(), &s.path().join("dec.csv.schema.json"));
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0]["cdr"].as_str(), r[0]["adjustment_for"].as_str(), r[0]["amount"].as_str()),
        (late.id.as_str(), "2026-11", "0.60")
    );
    let this_month = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).strftime("%Y-%m").to_string();
    let err = s.fails(&["billing", "close", "--tenant", "acme", "--month", &this_month]);
    assert!(err.contains("has not ended"), "{err}");

    // Bad input: a clear error.
    assert!(s.fails(&["billing", "export", "--tenant", "acme", "--month", "2026-13"]).contains("YYYY-MM"));
    s.add_tenant("beta");
    assert!(s.fails(&["billing", "export", "--tenant", "beta", "--month", "2026-11"]).contains("no rating rules"));
}
