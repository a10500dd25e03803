//! Retention through the real daemon: the sweep at start, the audit, holds.

use std::time::{Duration, Instant};

use crate::cdr::{cdr, write_cdrs};
use crate::harness::Setup;

fn ago(days: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * days)).to_string()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_daemon_erases_what_is_due_and_the_audit_proves_it() {
    let s = Setup::new();
    s.ok(&["tenant", "add", "alpha", "--name", "Alpha", "--from-address", "fax@alpha.dk", "--country", "DK"]);
    let gone = s.json(&["account", "add", "--tenant", "alpha", "--name", "Gone ApS"]);
    let gone = gone["id"].as_str().unwrap().to_owned();
    s.ok(&["number", "add", "+4533990011", "--account", &gone]);
    s.ok(&["account", "terminate", &gone, "--at", &ago(31)]);
    let stays = s.json(&["account", "add", "--tenant", "alpha", "--name", "Stays ApS"]);
    let stays = stays["id"].as_str().unwrap().to_owned();
    s.ok(&["number", "add", "+4533990022", "--account", &stays]);
    write_cdrs(
        &s,
        &[
            cdr(&ago(800), "alpha", "+4533990011", &["old@gone.dk"]),
            cdr(&ago(500), "alpha", "+4533990022", &["held@stays.dk"]),
            cdr(&ago(3), "alpha", "+4533990022", &["new@stays.dk"]),
        ],
    );
    s.ok(&[
        "retention",
        "hold",
        "add",
        "--number",
        "+4533990022",
        "--case",
        "Sag 42/2026",
        "--until",
        "2099-01-01T00:00:00Z",
    ]);

    // Before any sweep the audit finds what is overdue, and fails.
    let out = s.cli(&["retention", "audit"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("PROBLEMS") && text.contains(&gone) && text.contains("was due for erasure"), "{text}");
    let status = s.json(&["retention", "status"]);
    assert_eq!(status["holds"], 1);
    assert_eq!(status["categories"][0]["items"], 3);

    // The daemon sweeps at start.
    let d = s.start();
    wait_until("the sweep at start", || s.cli(&["retention", "audit"]).status.success());
    let cdrs = s.json(&["cdr", "list"]);
    let emails: Vec<&str> = cdrs.as_array().unwrap().iter().map(|c| c["emails"][0].as_str().unwrap()).collect();
    assert_eq!(emails, ["held@stays.dk", "new@stays.dk"], "the held CDR stays, the old one is gone");
    s.fails(&["account", "show", &gone]);
    s.ok(&["account", "show", &stays]);
    let keys: Vec<String> = std::fs::read_dir(s.data_dir().join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!keys.iter().any(|k| k.contains(&gone)), "{keys:?}");
    let audit = s.json(&["retention", "audit"]);
    assert_eq!(audit["ok"], true, "{audit}");
    assert!(audit["checked"]["sweeps"].as_u64().unwrap() >= 1);
    // The trail names categories and keys, never a number or an address.
    let trail = std::fs::read_to_string(s.data_dir().join("retention-audit.jsonl")).unwrap();
    assert!(trail.contains(&format!("account-{gone}")), "{trail}");
    assert!(!trail.contains("3399") && !trail.contains('@'), "{trail}");

    // Lifting the hold wakes the sweeper; the held CDR goes.
    let holds = s.json(&["retention", "hold", "list"]);
    let id = holds[0]["id"].as_str().unwrap().to_owned();
    s.ok(&["retention", "hold", "remove", &id]);
    wait_until("the sweep after the hold was lifted", || s.json(&["cdr", "list"]).as_array().unwrap().len() == 1);
    assert!(s.json(&["retention", "audit"])["ok"].as_bool().unwrap());
    // Tenants do not manage retention.
    let err = s.fails(&["--as-tenant", "alpha", "retention", "status"]);
    assert!(err.contains("only the operator"), "{err}");
    d.stop();
}

#[test]
fn a_daemon_killed_in_the_middle_of_a_sweep_finishes_it_after_restart() {
    let s = Setup::new();
    // Two index entries per CDR: more entries than the sweep removes in its
    // first batch (20,000).
    let n = 20_000;
    let month = crate::sweep_stall::load_old_month(&s, n);
    let key = s.data_dir().join("keys").join(format!("cdr-{month}.key"));
    assert!(key.exists());
    let trail_path = s.data_dir().join("retention-audit.jsonl");

    // The sweep at start destroys the month's key first, then removes the
    // month's records and index entries a batch at a time. The test build
    // is told to stop for good once the first batch is removed and flushed
    // (`faxgate::test_pause`); kill -9 it there.
    let mut cmd = s.serve_command();
    cmd.env("FAXGATE_TEST_PAUSE", faxgate::test_pause::MONTH_ERASE_BEGUN);
    let d = crate::harness::Daemon::spawn(cmd);
    d.wait_for_log(&format!("test build: paused at {}", faxgate::test_pause::MONTH_ERASE_BEGUN));
    assert!(!key.exists(), "paused in the erasure before the key was destroyed");
    d.kill9();
    let trail = std::fs::read_to_string(&trail_path).unwrap();
    let last: serde_json::Value = serde_json::from_str(trail.lines().last().unwrap()).unwrap();
    assert_eq!(last["begun"], true, "killed after the sweep finished, not in it: {trail}");
    let (left, entries_left) = {
        let store = faxgate::store::Store::open(&s.data_dir(), &s.data_dir().join("keys")).unwrap();
        let tree = store.tree(faxgate::store::TreeName::Cdr).unwrap();
        let entries = tree.keys_with_prefix(faxgate::store::layout::cdr::INDEX).unwrap().len();
        (faxgate::cdr::CdrStore::open(&store).unwrap().places().unwrap().len(), entries)
    };
    // Cut short in the middle: the index entries go first, the records after.
    assert!(left > 0, "every record was gone before the kill");
    assert!(entries_left < 2 * n as usize, "nothing was removed before the kill");
    // Offline, the audit sees the records the cut-short sweep left and the sweep itself.
    let out = s.cli(&["retention", "audit"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && text.contains("cut short"), "{text}");
    eprintln!("killed with {left} of {n} records and {entries_left} of {} index entries left", 2 * n);

    // After a restart, the sweep at start finishes the job.
    let d = s.start();
    wait_until("the sweep after the restart", || s.cli(&["retention", "audit"]).status.success());
    assert!(s.json(&["cdr", "list"]).as_array().unwrap().is_empty());
    // Nothing of the month is left: no record, no index entry without its record.
    let v = s.cli(&["store", "verify"]);
    assert!(v.status.success(), "{}{}", String::from_utf8_lossy(&v.stdout), String::from_utf8_lossy(&v.stderr));
    let audit = s.json(&["retention", "audit"]);
    let interrupted = audit["interrupted_sweeps"].as_array().unwrap();
    assert_eq!(interrupted.len(), 1, "{audit}");
    assert!(interrupted[0]["finished_by"].is_string(), "{audit}");
    // The trail records the key the cut-short sweep destroyed, and how many
    // records the next one erased.
    let entries: Vec<serde_json::Value> =
        std::fs::read_to_string(&trail_path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let finished = entries.iter().rev().find(|e| e["begun"].is_null() && e["request"].is_null()).unwrap();
    let cdr = finished["categories"].as_array().unwrap().iter().find(|c| c["category"] == "cdr").unwrap();
    assert_eq!(cdr["keys_found_destroyed"][0], format!("cdr-{month}"), "{cdr}");
    assert_eq!(cdr["erased"].as_u64().unwrap(), left as u64, "{cdr}");
    d.stop();
}
