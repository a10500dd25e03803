//! The crash harness: mixed traffic through the real binary, SIGKILL at
//! random points, and the invariants checked after every cycle.
//!
//! One daemon with its two loopback trunks pointing at each other: every
//! mail submitted over SMTP (STARTTLS, AUTH) becomes an outgoing call on one
//! trunk and an incoming call on the other, whose pages are mailed into the
//! Maildir; the sender gets a report. Sweeps are asked for at random points
//! (the documents and outbox sweeps erase delivered content as the calls
//! finish; CDRs more than a year old, seeded at the start, are erased by the
//! first sweep). Media time runs 5 times real time (the test clock).
//!
//! Each cycle starts the daemon, submits mail from a second thread, asks for
//! sweeps, and kills the daemon with SIGKILL after a random time (sometimes
//! before it is ready). With the daemon down, the store must verify and
//! every CDR seen before must still be there, none twice. At the end the
//! daemon runs until every accepted mail has its report, and then:
//! - every message answered 250 ended as a fax or a failure report, with
//!   exactly one report;
//! - no fax was sent twice after it completed (one successful outgoing CDR
//!   per message at most);
//! - no CDR was lost or written twice;
//! - the store verifies and the deletion audit passes.
//!
//! `FAXGATE_CRASH_CYCLES` (default 30) and `FAXGATE_CRASH_SEED` (default:
//! the time) set the run; `scripts/crash-harness.sh` runs 1,000 cycles on a
//! release build. A summary line (`crash harness: ...`) gives the figures.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cdr::{cdr, write_cdrs};
use crate::gateway::{Gw, Opts, start};
use crate::harness::Setup;

/// Submits one mail; true when the server answered 250 to its data.
fn submit(addr: &str, ca: &Path, subject: &str) -> bool {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let script = format!(
        r#"
import smtplib, ssl, sys
from email.message import EmailMessage
m = EmailMessage()
m["From"] = "boss@customer.test"
m["To"] = "33221100@fax.acme.test"
m["Subject"] = "{subject}"
m["Message-ID"] = "<{subject}@customer.test>"
m.set_content("Crash harness page: {subject}.")
ctx = ssl.create_default_context(cafile="{ca}")
try:
    s = smtplib.SMTP("{host}", {port}, local_hostname="client.test", timeout=20)
    s.starttls(context=ctx)
    s.login("boss@customer.test", "fax-secret-42")
    r = s.send_message(m)
except Exception as e:
    print("not accepted:", e)
    sys.exit(1)
print("accepted" if r == {{}} else "refused %r" % r)
try:
    s.quit()
except Exception:
    pass
"#,
        ca = ca.display(),
    );
    let out = Command::new("/usr/bin/python3").arg("-c").arg(&script).output().unwrap();
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("accepted")
}

/// The CDRs, read with the daemon running or not.
fn cdr_list(setup: &Setup) -> Vec<serde_json::Value> {
    setup.json(&["cdr", "list"]).as_array().cloned().unwrap_or_default()
}

/// The reports in the Maildir, by the subject of the mail they answer.
fn reports(setup: &Setup) -> BTreeMap<String, Vec<PathBuf>> {
    let dir = setup.data_dir().join("maildir/new");
    let mut by: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for p in std::fs::read_dir(&dir).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_else(|_| Vec::new()) {
        let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
        if !text.contains("To: boss@customer.test") {
            continue;
        }
        if let Some(at) = text.find("crash-") {
            let subject: String = text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
            by.entry(subject).or_default().push(p);
        }
    }
    by
}

struct Tally {
    accepted: BTreeSet<String>,
    submitted: u32,
    kills_before_ready: u32,
    kills: u32,
    sweeps: u32,
    checks: u32,
}

/// With the daemon down: the store verifies, and every CDR seen before is
/// still there, none twice. Returns the CDR ids.
fn check_down(setup: &Setup, seen: &BTreeSet<String>, cycle: u32, tally: &mut Tally) -> BTreeSet<String> {
    let v = setup.cli(&["store", "verify"]);
    assert!(
        v.status.success(),
        "cycle {cycle}: the store does not verify after a kill:\n{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    let list = cdr_list(setup);
    let ids: Vec<String> = list.iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect();
    let set: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(set.len(), ids.len(), "cycle {cycle}: a CDR listed twice");
    let lost: Vec<_> = seen.difference(&set).collect();
    assert!(lost.is_empty(), "cycle {cycle}: CDRs lost after a kill: {lost:?}");
    // One CDR per attempt of a job, and per incoming call.
    let mut attempts = BTreeSet::new();
    for c in &list {
        if c["direction"] == "mail-to-fax" {
            let key = (c["correlation_id"].as_str().unwrap_or("").to_owned(), c["attempt"].as_u64());
            assert!(attempts.insert(key.clone()), "cycle {cycle}: two CDRs for one attempt {key:?}: {list:#?}");
        }
    }
    tally.checks += 1;
    set
}

#[test]
fn kill_9_at_random_points_loses_nothing_and_sends_nothing_twice() {
    let cycles: u32 = std::env::var("FAXGATE_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let seed: u64 = std::env::var("FAXGATE_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("crash harness: {cycles} cycles, seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let began = Instant::now();
    let g = start(Opts { retry: "[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]", channels: 4, ..Default::default() });
    let Gw { setup, daemon, ca, .. } = g;
    assert!(daemon.stop().success());
    // CDRs of a communication more than a year ago: the first sweep erases them.
    let old_at = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 400)).to_string();
    // Each of its own mail: a kill before the first sweep leaves all three,
    // and they must not read as two CDRs for one attempt.
    let expired: Vec<_> = (0..3)
        .map(|i| {
            let mut c = cdr(&old_at, "acme", "+4533221100", &["boss@customer.test"]);
            c.correlation_id = format!("<expired-{i}@mail.example.dk>");
            c
        })
        .collect();
    write_cdrs(&setup, &expired);
    let expired: BTreeSet<String> = expired.into_iter().map(|c| c.id).collect();

    let mut tally =
        Tally { accepted: BTreeSet::new(), submitted: 0, kills_before_ready: 0, kills: 0, sweeps: 0, checks: 0 };
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut next_mail = 0u32;
    for cycle in 0..cycles {
        // Sometimes killed while starting (recovery running), before ready.
        if rng.u64(..8) == 0 {
            let mut cmd = setup.serve_command();
            cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
            let mut child = cmd.spawn().unwrap();
            std::thread::sleep(Duration::from_millis(rng.u64(..1500)));
            child.kill().unwrap();
            child.wait().unwrap();
            tally.kills_before_ready += 1;
            seen = check_down(&setup, &seen, cycle, &mut tally).difference(&expired).cloned().collect();
            continue;
        }
        let daemon = setup.start();
        let submission = daemon.announced("submission");
        // Mail from a second thread until the kill.
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let mails = rng.u64(..3) as u32;
        let first = next_mail;
        next_mail += mails;
        let sender = {
            let (stop, accepted, ca, submission) = (stop.clone(), accepted.clone(), ca.clone(), submission.clone());
            let pause: Vec<u64> = (0..mails).map(|_| rng.u64(..1500)).collect();
            std::thread::spawn(move || {
                for (i, p) in pause.into_iter().enumerate() {
                    std::thread::sleep(Duration::from_millis(p));
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let subject = format!("crash-{seed:x}-{}", first + i as u32);
                    if submit(&submission, &ca, &subject) {
                        accepted.lock().unwrap().push(subject);
                    }
                }
            })
        };
        tally.submitted += mails;
        // A sweep at a random point of some cycles.
        let alive = rng.u64(..6000) + 200;
        let sweep_at = if rng.u64(..3) == 0 { Some(rng.u64(..alive)) } else { None };
        let t0 = Instant::now();
        if let Some(at) = sweep_at {
            std::thread::sleep(Duration::from_millis(at));
            let out = setup.cli(&["retention", "sweep"]);
            assert!(out.status.success(), "cycle {cycle}: sweep failed: {}", String::from_utf8_lossy(&out.stderr));
            tally.sweeps += 1;
        }
        std::thread::sleep(Duration::from_millis(alive).saturating_sub(t0.elapsed()));
        daemon.kill9();
        tally.kills += 1;
        stop.store(true, Ordering::SeqCst);
        sender.join().unwrap();
        tally.accepted.extend(accepted.lock().unwrap().drain(..));
        seen = check_down(&setup, &seen, cycle, &mut tally).difference(&expired).cloned().collect();
        if (cycle + 1) % 50 == 0 {
            eprintln!(
                "crash harness: {} cycles done in {:.0} s, {} mails answered 250, {} CDRs, {} checks, 0 violations so far",
                cycle + 1,
                began.elapsed().as_secs_f64(),
                tally.accepted.len(),
                seen.len(),
                tally.checks
            );
        }
    }

    // The last run: until every accepted mail has its report.
    let daemon = setup.start();
    let until = Instant::now() + Duration::from_secs(60 + 15 * tally.accepted.len() as u64);
    loop {
        let r = reports(&setup);
        if tally.accepted.iter().all(|s| r.contains_key(s)) {
            break;
        }
        let missing: Vec<_> = tally.accepted.iter().filter(|s| !r.contains_key(*s)).collect();
        assert!(Instant::now() < until, "no report for {missing:?}; log:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = setup.cli(&["retention", "sweep"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    setup.ok(&["retention", "audit"]);
    let r = reports(&setup);
    for s in &tally.accepted {
        assert_eq!(r[s].len(), 1, "{s}: {} reports: {:?}", r[s].len(), r[s]);
    }
    let unasked: Vec<_> = r.keys().filter(|s| !tally.accepted.contains(*s)).collect();
    // A mail whose 250 was lost with the kill may still have been accepted:
    // its report is right, and it is counted.
    let list = cdr_list(&setup);
    let mut delivered: BTreeMap<String, u32> = BTreeMap::new();
    for c in list.iter().filter(|c| c["direction"] == "mail-to-fax" && c["t30_code"] == 0) {
        *delivered.entry(c["correlation_id"].as_str().unwrap_or("").to_owned()).or_default() += 1;
    }
    let twice: Vec<_> = delivered.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "faxes sent twice after they completed: {twice:?}");
    let delivered_reports =
        r.values().flatten().filter(|p| std::fs::read_to_string(p).unwrap().contains(" delivered (")).count();
    let faxes_in = maildir_faxes(&setup);
    assert!(faxes_in >= delivered_reports, "{delivered_reports} delivered reports but {faxes_in} faxes mailed in");
    assert!(daemon.stop().success());
    let ids = check_down(&setup, &seen, cycles, &mut tally);
    assert!(ids.is_disjoint(&expired), "the CDRs more than a year old were not erased");
    eprintln!(
        "crash harness: {cycles} cycles ({} SIGKILLs while serving, {} while starting) in {:.0} s; {} mails \
         submitted, {} answered 250 (+{} whose answer was cut off), {} delivered reports, {} faxes mailed in, \
         {} CDRs, {} sweeps asked; {} invariant checks, 0 violations",
        tally.kills,
        tally.kills_before_ready,
        began.elapsed().as_secs_f64(),
        tally.submitted,
        tally.accepted.len(),
        unasked.len(),
        delivered_reports,
        faxes_in,
        ids.len(),
        tally.sweeps,
        tally.checks,
    );
}

/// The faxes mailed into the Maildir (not reports).
fn maildir_faxes(setup: &Setup) -> usize {
    let dir = setup.data_dir().join("maildir/new");
    std::fs::read_dir(&dir)
        .map(|r| {
            r.flatten()
                .filter(|e| {
                    String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).contains("To: inbox@customer.test")
                })
                .count()
        })
        .unwrap_or(0)
}
