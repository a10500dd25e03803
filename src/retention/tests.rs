use std::sync::Arc;

use faxgate_retention::Sweeper;
use jiff::SignedDuration;

use super::*;
use crate::cdr::tests::sample;
use crate::clock::{Clock, FakeClock};
use crate::directory::{Branding, Language, Paper, Scope, SenderAuth, Tenant};
use crate::retention::cdr::month_key;
use crate::retention::documents::job_key;
use crate::store::layout::mail as layout;
use crate::store::{Store, TreeName};
use faxgate_retention::KeyId;

struct World {
    tmp: tempfile::TempDir,
    store: Store,
    dir: Directory,
    cdrs: CdrStore,
    retention: Retention,
    clock: FakeClock,
}

fn world(at: &str) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let store = Store::open(&data, &data.join("keys")).unwrap();
    let clock = FakeClock::new(at.parse().unwrap());
    let dir = Directory::open(&store, Arc::new(clock.clone())).unwrap();
    dir.tenant_add(
        &Scope::Operator,
        Tenant {
            id: "alpha".parse().unwrap(),
            name: "Alpha".into(),
            branding: Branding {
                display_name: "Alpha".into(),
                from_address: "fax@alpha.dk".parse().unwrap(),
                language: Language::Da,
            },
            default_country: "DK".parse().unwrap(),
            fax_domains: vec!["fax.alpha.dk".parse().unwrap()],
            paper: Paper::A4,
            time_zone: None,
            header_template: None,
            station_id: None,
        },
    )
    .unwrap();
    let cdrs = CdrStore::open(&store).unwrap();
    // Deadlines to the instant: no sweep window.
    let policy = Policy { sweep_window: jiff::Span::new(), ..Policy::default() };
    let retention = Retention::new(&store, &dir, policy, Arc::new(clock.clone())).unwrap();
    World { tmp, store, dir, cdrs, retention, clock }
}

fn sweeper(w: &World) -> Sweeper {
    Sweeper::new(w.retention.categories(), w.retention.audit_log(), Arc::new(w.clock.clone()))
}

fn key_file(w: &World, id: &str) -> std::path::PathBuf {
    w.store.vault().dir().join(format!("{id}.key"))
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|x| x == needle)
}

fn all_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for f in all_files(from) {
        let rel = f.strip_prefix(from).unwrap();
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, dest).unwrap();
    }
}

#[test]
fn erasure_holds_against_a_disk_read() {
    let w = world("2025-01-10T09:00:00Z");
    let op = Scope::Operator;
    let gone =
        w.dir.account_add(&op, &"alpha".parse().unwrap(), "Ærø Blikkenslager ApS", Some("kunde-0042"), None).unwrap();
    w.dir
        .number_add(
            &op,
            &gone.id,
            "+45 33 99 12 34",
            vec![crate::directory::Route {
                email: "mads.aeroe@blik-aeroe.dk".parse().unwrap(),
                format: crate::directory::AttachmentFormat::Pdf,
            }],
        )
        .unwrap();
    w.dir
        .sender_add(&op, &gone.id, "@blik-aeroe.dk".parse().unwrap(), None, SenderAuth::Dmarc, Default::default())
        .unwrap();
    let stays = w.dir.account_add(&op, &"alpha".parse().unwrap(), "Stays", None, None).unwrap();
    w.dir.number_add(&op, &stays.id, "+45 87 65 43 21", vec![]).unwrap();
    // January 2025 CDRs (due early 2026) and one from June (due mid 2026).
    let mut jan = sample("2025-01-10T09:30:00Z", "alpha", "+4533991234");
    jan.emails = vec!["mads.aeroe@blik-aeroe.dk".parse().unwrap()];
    w.cdrs.write(&jan).unwrap();
    w.cdrs.write(&sample("2025-01-31T23:00:00Z", "alpha", "+4533991234")).unwrap();
    let june = sample("2025-06-02T12:00:00Z", "alpha", "+4587654321");
    w.cdrs.write(&june).unwrap();

    let key_bytes = |id: &str| w.store.vault().get(&KeyId::new(id).unwrap()).unwrap().unwrap().bytes().to_vec();
    let acc_key = key_bytes(&format!("account-{}", gone.id));
    let jan_key = key_bytes("cdr-2025-01");
    assert!(key_file(&w, "cdr-2025-01").exists());

    w.dir.account_terminate(&op, &gone.id, None).unwrap();
    w.store.flush().unwrap();
    // What an attacker might find later: a copy of the store as it is now.
    let snapshot = w.tmp.path().join("old-copy");
    copy_dir(&w.store.data_dir().join("db"), &snapshot.join("db"));

    // Nothing is due yet: the audit is clean, the sweep erases nothing.
    assert!(w.retention.audit(w.clock.now()).unwrap().ok);
    let first = sweeper(&w).sweep().unwrap();
    assert!(first.categories.iter().all(|c| c.erased == 0 && c.keys_destroyed.is_empty()), "{first:?}");
    let acc = first.categories.iter().find(|c| c.category == "account").unwrap();
    assert_eq!(acc.next_due.unwrap().to_string(), "2025-02-09T09:00:00Z");

    // 30 days after termination, the account is due; the audit says so before the sweep.
    w.clock.advance(SignedDuration::from_hours(24 * 30));
    let before = w.retention.audit(w.clock.now()).unwrap();
    assert!(!before.ok && before.problems.iter().any(|p| p.contains(&gone.id.to_string())), "{before:?}");
    let s = sweeper(&w).sweep().unwrap();
    let acc = s.categories.iter().find(|c| c.category == "account").unwrap();
    assert_eq!(acc.erased, 3, "{acc:?}"); // the account, its number, its sender
    assert!(!key_file(&w, &format!("account-{}", gone.id)).exists());
    assert!(w.dir.lookup_number(&"+4533991234".parse().unwrap()).unwrap().is_none());
    assert!(w.dir.lookup_number(&"+4587654321".parse().unwrap()).unwrap().is_some());

    // February 2026: January 2025's CDRs and key are due; June's are not.
    w.clock.set("2026-02-01T00:00:00Z".parse().unwrap());
    let s = sweeper(&w).sweep().unwrap();
    let cdr = s.categories.iter().find(|c| c.category == "cdr").unwrap();
    assert_eq!((cdr.erased, cdr.keys_destroyed.clone()), (2, vec!["cdr-2025-01".to_string()]), "{cdr:?}");
    assert_eq!(cdr.oldest_remaining, Some(june.start));
    assert_eq!(cdr.next_due.unwrap().to_string(), "2026-06-02T12:00:00Z");
    assert_eq!(w.cdrs.list(&Default::default()).unwrap(), vec![june]);
    let audit = w.retention.audit(w.clock.now()).unwrap();
    assert!(audit.ok, "{audit:?}");
    assert_eq!(audit.checked.sweeps, 3);

    // Scan every byte under the data directory: no destroyed key, no plaintext.
    let needles: Vec<&[u8]> = vec![
        &acc_key,
        &jan_key,
        b"4533991234",
        b"33991234",
        b"mads.aeroe",
        b"blik-aeroe.dk",
        "Ærø Blikkenslager".as_bytes(),
        b"kunde-0042",
    ];
    for f in all_files(w.store.data_dir()).into_iter().chain(all_files(&snapshot)) {
        let bytes = std::fs::read(&f).unwrap();
        for n in &needles {
            assert!(!find(&bytes, n), "{:?} found in {}", String::from_utf8_lossy(n), f.display());
        }
    }
    // The old segments still hold the sealed records, and they cannot be opened.
    drop(w.retention);
    let World { store, dir, cdrs, tmp, .. } = w;
    let key_dir = store.vault().dir().to_owned();
    drop((dir, cdrs, store));
    let old = Store::open(&snapshot, &key_dir).unwrap();
    let old_cdrs = CdrStore::open(&old).unwrap();
    let mut refused = 0;
    for p in old_cdrs.places().unwrap() {
        match old_cdrs.get(&p) {
            Err(Error::Crypto(faxgate_retention::Error::KeyDestroyed(k))) => {
                assert_eq!(k, "cdr-2025-01");
                refused += 1;
            }
            Ok(Some(c)) => assert_eq!(c.start.to_string(), "2025-06-02T12:00:00Z"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(refused, 2);
    let old_dir = Directory::open(&old, Arc::new(crate::clock::SystemClock)).unwrap();
    let err = old_dir.lookup_number(&"+4533991234".parse().unwrap()).unwrap_err();
    assert!(matches!(err, Error::Crypto(faxgate_retention::Error::KeyDestroyed(_))), "{err}");
    drop(tmp);
}

#[test]
fn legal_holds_keep_data_until_they_end() {
    let w = world("2025-03-01T00:00:00Z");
    let op = Scope::Operator;
    let a = w.dir.account_add(&op, &"alpha".parse().unwrap(), "Held", None, None).unwrap();
    w.dir.number_add(&op, &a.id, "+45 33 99 55 66", vec![]).unwrap();
    w.cdrs.write(&sample("2025-03-01T10:00:00Z", "alpha", "+4533995566")).unwrap();
    w.cdrs.write(&sample("2025-03-02T10:00:00Z", "alpha", "+4587654321")).unwrap();
    w.dir.account_terminate(&op, &a.id, None).unwrap();
    let hold = w
        .retention
        .holds()
        .add(
            HoldTarget::Number("+4533995566".parse().unwrap()),
            "Case 2025-117",
            "2026-09-01T00:00:00Z".parse().unwrap(),
            w.clock.now(),
        )
        .unwrap();
    w.clock.set("2026-05-01T00:00:00Z".parse().unwrap());
    let s = sweeper(&w).sweep().unwrap();
    let cdr = s.categories.iter().find(|c| c.category == "cdr").unwrap();
    let acc = s.categories.iter().find(|c| c.category == "account").unwrap();
    assert_eq!((cdr.erased, cdr.held, cdr.keys_destroyed.len()), (1, 1, 0), "{cdr:?}");
    assert_eq!((acc.erased, acc.held), (0, 1), "{acc:?}");
    assert_eq!(cdr.next_due, Some(hold.until));
    assert!(w.retention.audit(w.clock.now()).unwrap().ok);
    // The hold ends: everything goes, the hold record too.
    w.clock.set("2026-09-01T00:00:01Z".parse().unwrap());
    let s = sweeper(&w).sweep().unwrap();
    let by = |n: &str| s.categories.iter().find(|c| c.category == n).unwrap().clone();
    assert_eq!(by("cdr").erased, 1);
    assert_eq!(by("cdr").keys_destroyed, vec!["cdr-2025-03".to_string()]);
    assert_eq!(by("account").erased, 2);
    assert_eq!(by("legal_hold").erased, 1);
    assert!(w.retention.holds().list().unwrap().is_empty());
    assert!(w.retention.audit(w.clock.now()).unwrap().ok);
}

#[test]
fn a_hold_on_an_account_keeps_its_cdrs_and_its_data_and_nothing_else() {
    let w = world("2025-03-01T00:00:00Z");
    let op = Scope::Operator;
    let a = w.dir.account_add(&op, &"alpha".parse().unwrap(), "Under investigation", None, None).unwrap();
    let other = w.dir.account_add(&op, &"alpha".parse().unwrap(), "Not held", None, None).unwrap();
    w.dir.number_add(&op, &a.id, "+4533995577", vec![]).unwrap();
    for (acc, day) in [(&a, "01"), (&a, "02"), (&other, "03")] {
        let mut c = sample(&format!("2025-03-{day}T10:00:00Z"), "alpha", "+4533995577");
        c.account = Some(acc.id);
        w.cdrs.write(&c).unwrap();
    }
    w.dir.account_terminate(&op, &a.id, None).unwrap();
    w.dir.account_terminate(&op, &other.id, None).unwrap();
    let hold = w
        .retention
        .holds()
        .add(HoldTarget::Account(a.id), "Sag 9/2026", "2026-06-01T00:00:00Z".parse().unwrap(), w.clock.now())
        .unwrap();
    w.clock.set("2026-05-01T00:00:00Z".parse().unwrap());
    let s = sweeper(&w).sweep().unwrap();
    let by = |n: &str| s.categories.iter().find(|c| c.category == n).unwrap().clone();
    assert_eq!((by("cdr").erased, by("cdr").held), (1, 2), "the other account's CDR goes");
    assert_eq!((by("account").erased, by("account").held), (1, 1), "the other account goes");
    assert!(by("cdr").keys_destroyed.is_empty(), "the month's key stays while any CDR of it is held");
    assert!(w.dir.account_get(&op, &a.id).is_ok() && w.dir.account_get(&op, &other.id).is_err());
    assert!(w.dir.lookup_number(&"+4533995577".parse().unwrap()).unwrap().is_some());
    let audit = w.retention.audit(w.clock.now()).unwrap();
    assert!(audit.ok, "held data is not overdue: {audit:?}");
    assert_eq!(by("cdr").next_due, Some(hold.until));
    // The hold ends: the account, its number and its CDRs go, and the month's key.
    w.clock.set(hold.until);
    let s = sweeper(&w).sweep().unwrap();
    let by = |n: &str| s.categories.iter().find(|c| c.category == n).unwrap().clone();
    assert_eq!(by("cdr").erased, 2);
    assert_eq!(by("cdr").keys_destroyed, ["cdr-2025-03"]);
    assert_eq!(by("account").erased, 2, "the account and its number");
    assert!(w.dir.lookup_number(&"+4533995577".parse().unwrap()).unwrap().is_none());
    assert!(w.retention.audit(w.clock.now()).unwrap().ok);
}

#[test]
fn a_key_without_records_is_reported_and_kept_until_its_own_deadline() {
    let w = world("2025-03-01T00:00:00Z");
    // An account key with no account: records lost, or an erasure cut short.
    // Nothing says it is due, so it is a fault to report, not a reason to erase.
    let orphan = KeyId::new("account-acc-0123456789abcdef0123456789abcdef").unwrap();
    w.store.vault().get_or_create(&orphan).unwrap();
    let a = w.retention.audit(w.clock.now()).unwrap();
    assert!(!a.ok && a.problems[0].contains("belongs to no account"), "{a:?}");
    let s = sweeper(&w).sweep().unwrap();
    assert!(s.categories.iter().all(|c| c.keys_destroyed.is_empty()), "{s:?}");
    assert!(w.store.vault().get(&orphan).unwrap().is_some(), "kept");
    assert!(!w.retention.audit(w.clock.now()).unwrap().ok, "still reported");
    // Its own recorded deadline passing is what destroys it.
    w.store.vault().set_deadline(&orphan, Some("2025-03-02T00:00:00Z".parse().unwrap())).unwrap();
    w.clock.set("2025-03-02T00:00:00Z".parse().unwrap());
    let s = sweeper(&w).sweep().unwrap();
    assert!(s.categories.iter().any(|c| c.keys_destroyed.contains(&orphan.to_string())), "{s:?}");
    assert!(w.store.vault().get(&orphan).unwrap().is_none());
    assert!(w.retention.audit(w.clock.now()).unwrap().ok);
}

/// A clock that follows tokio's paused time.
#[derive(Debug)]
struct TokioClock(Timestamp, tokio::time::Instant);
impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.0 + SignedDuration::try_from(self.1.elapsed()).unwrap()
    }
    fn elapsed(&self) -> std::time::Duration {
        self.1.elapsed()
    }
}

#[tokio::test(start_paused = true)]
async fn deadlines_seconds_apart_are_swept_together_at_the_end_of_their_window() {
    let w = world("2024-06-01T00:00:00Z");
    let first: Timestamp = "2024-06-01T10:00:01Z".parse().unwrap();
    let cdrs: Vec<_> = (0..300)
        .map(|i| sample(&(first + SignedDuration::from_secs(7 * i)).to_string(), "alpha", "+4533990011"))
        .collect();
    w.cdrs.write_many(&cdrs).unwrap();
    let clock = Arc::new(TokioClock("2025-06-01T09:30:00Z".parse().unwrap(), tokio::time::Instant::now()));
    let sweeper = Sweeper::new(w.retention.categories(), w.retention.audit_log(), clock.clone())
        .with_window(Policy::default().window());
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(sweeper.run(Arc::new(tokio::sync::Notify::new()), stop.clone()));
    // The CDRs fall due from 10:00:01 to 10:34:54; the sweeper wakes once, at 11:00.
    tokio::time::sleep(std::time::Duration::from_secs(3 * 3600)).await;
    let sweeps: Vec<_> = w.retention.audit_log().entries().unwrap().into_iter().filter(|e| e.is_sweep()).collect();
    let at: Vec<String> = sweeps.iter().map(|e| e.at.to_string()).collect();
    assert_eq!(at, ["2025-06-01T09:30:00Z", "2025-06-01T11:00:00Z"]);
    let cdr = sweeps[1].categories.iter().find(|c| c.category == "cdr").unwrap();
    assert_eq!(cdr.erased, 300);
    assert!(w.cdrs.places().unwrap().is_empty());
    // Within its window an item is not yet overdue; after it, the audit says so.
    let late = sample("2024-06-02T10:00:00Z", "alpha", "+4533990011");
    w.cdrs.write(&late).unwrap();
    let windowed = Retention::new(&w.store, &w.dir, Policy::default(), Arc::new(w.clock.clone())).unwrap();
    assert!(windowed.audit("2025-06-02T10:59:59Z".parse().unwrap()).unwrap().ok);
    assert!(!windowed.audit("2025-06-02T11:00:00Z".parse().unwrap()).unwrap().ok);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_sleeps_until_the_next_deadline() {
    let w = world("2025-01-01T00:00:00Z");
    let clock = Arc::new(TokioClock("2025-01-01T00:00:00Z".parse().unwrap(), tokio::time::Instant::now()));
    let op = Scope::Operator;
    let a = w.dir.account_add(&op, &"alpha".parse().unwrap(), "Leaving", None, None).unwrap();
    w.dir.account_terminate(&op, &a.id, Some("2025-01-01T00:00:00Z".parse().unwrap())).unwrap();
    let sweeper = Sweeper::new(w.retention.categories(), w.retention.audit_log(), clock.clone());
    let wake = Arc::new(tokio::sync::Notify::new());
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(sweeper.run(wake.clone(), stop.clone()));
    // Sleep (in paused time) past the 30 days; the sweeper wakes by itself.
    tokio::time::sleep(std::time::Duration::from_secs(31 * 86_400)).await;
    let entries: Vec<_> = w.retention.audit_log().entries().unwrap().into_iter().filter(|e| e.is_sweep()).collect();
    assert!(entries.len() >= 2, "{entries:?}");
    let erased_at =
        entries.iter().find(|e| e.categories.iter().any(|c| c.category == "account" && c.erased > 0)).unwrap().at;
    assert_eq!(erased_at.to_string(), "2025-01-31T00:00:00Z");
    // It slept until the deadline rather than polling: one sweep at start, one at the deadline.
    assert_eq!(entries.len(), 2, "{entries:?}");
    stop.cancel();
    task.await.unwrap();
}

#[test]
fn boundaries_one_year_to_the_millisecond_month_ends_and_leap_days() {
    let w = world("2024-01-01T00:00:00Z");
    let leap = sample("2024-02-29T12:00:00Z", "alpha", "+4533990001");
    let end_of_jan = sample("2024-01-31T23:59:59.999Z", "alpha", "+4533990002");
    let start_of_feb = sample("2024-02-01T00:00:00Z", "alpha", "+4533990003");
    for c in [&leap, &end_of_jan, &start_of_feb] {
        w.cdrs.write(c).unwrap();
    }
    let left = || {
        w.cdrs.list(&Default::default()).unwrap().into_iter().map(|c| c.called.unwrap().to_string()).collect::<Vec<_>>()
    };
    let jan_key = || w.store.vault().get(&month_key(2024, 1).unwrap()).unwrap().is_some();
    // One millisecond before its first anniversary, the January CDR stays.
    w.clock.set("2025-01-31T23:59:59.998Z".parse().unwrap());
    sweeper(&w).sweep().unwrap();
    assert_eq!(left(), ["+4533990002", "+4533990003", "+4533990001"]);
    assert!(w.retention.audit(w.clock.now()).unwrap().ok);
    // At the anniversary it goes; January's key stays until February 1st.
    w.clock.set("2025-01-31T23:59:59.999Z".parse().unwrap());
    sweeper(&w).sweep().unwrap();
    assert_eq!(left(), ["+4533990003", "+4533990001"]);
    assert!(jan_key());
    w.clock.set("2025-02-01T00:00:00Z".parse().unwrap());
    let s = sweeper(&w).sweep().unwrap();
    assert!(!jan_key(), "{s:?}");
    assert_eq!(left(), ["+4533990001"], "February 1st 2024 is a year old at February 1st 2025");
    // The leap-day CDR is a year old on February 28th 2025.
    w.clock.set("2025-02-27T23:59:59Z".parse().unwrap());
    sweeper(&w).sweep().unwrap();
    assert_eq!(left(), ["+4533990001"]);
    w.clock.set("2025-02-28T12:00:00Z".parse().unwrap());
    sweeper(&w).sweep().unwrap();
    assert!(left().is_empty());
    // February's key: the last February 2024 CDR could have started on the 29th at 23:59:59.999.
    assert!(w.store.vault().get(&month_key(2024, 2).unwrap()).unwrap().is_some());
    w.clock.set("2025-03-01T00:00:00Z".parse().unwrap());
    sweeper(&w).sweep().unwrap();
    assert!(w.store.vault().get(&month_key(2024, 2).unwrap()).unwrap().is_none());
    assert!(w.retention.audit(w.clock.now()).unwrap().ok);
    // No index entry outlives its CDR.
    assert!(
        w.cdrs
            .list(&crate::cdr::CdrFilter { number: Some("+4533990001".parse().unwrap()), ..Default::default() })
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_crash_in_the_middle_of_a_sweep_is_finished_by_the_next() {
    let w = world("2024-03-01T00:00:00Z");
    for i in 0..5 {
        w.cdrs.write(&sample(&format!("2024-03-0{}T10:00:00Z", i + 1), "alpha", "+4533990011")).unwrap();
    }
    w.clock.set("2025-04-02T00:00:00Z".parse().unwrap());
    // The state a crash leaves after the key was destroyed and before the records went.
    w.store.vault().destroy(&month_key(2024, 3).unwrap()).unwrap();
    let a = w.retention.audit(w.clock.now()).unwrap();
    assert!(!a.ok && a.problems.iter().all(|p| p.contains("2024-03")), "{a:?}");
    let s = sweeper(&w).sweep().unwrap();
    let cdr = s.categories.iter().find(|c| c.category == "cdr").unwrap();
    assert_eq!(cdr.erased, 5);
    assert!(cdr.keys_destroyed.is_empty(), "already destroyed: {cdr:?}");
    assert_eq!(cdr.keys_found_destroyed, ["cdr-2024-03"], "the cut-short sweep's key is recorded");
    assert!(w.cdrs.places().unwrap().is_empty());
    assert!(w.retention.audit(w.clock.now()).unwrap().ok);
    // An audit line cut short by the crash does not stop the trail from being read.
    let path = w.store.data_dir().join("retention-audit.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"at\":\"2025-04-02T00:00:00Z\",\"categ");
    std::fs::write(&path, text).unwrap();
    let trail = w.retention.audit_log().entries().unwrap();
    assert_eq!(trail.iter().filter(|e| e.is_sweep()).count(), 1);
    assert_eq!(trail.len(), 2, "the sweep's start and the sweep");
}

#[test]
fn fax_documents_and_finished_jobs_are_erased_after_the_grace_and_hold_against_a_disk_read() {
    use crate::gateway::{Attempt, FaxJob, JobState, Outcome};
    use crate::types::{AccountId, JobId};
    let mut w = world("2026-03-01T10:00:00Z");
    // A grace of one day before documents go.
    let policy = Policy { document_grace: jiff::Span::new().days(1), ..Default::default() };
    w.retention = Retention::new(&w.store, &w.dir, policy, Arc::new(w.clock.clone())).unwrap();
    // A mail with its pages, and the finished, reported job that faxed it.
    let mut pages = crate::document::Pages::new(Default::default());
    pages.add_text("Fortroligt tilbud til Ærø Blikkenslager ApS, kunde 0042").unwrap();
    let tiff = pages.to_tiff().unwrap();
    let page_bytes = tiff[tiff.len() / 2..tiff.len() / 2 + 48].to_vec();
    let message = b"From: mads.aeroe@blik-aeroe.dk\r\nSubject: Tilbud\r\n\r\nHemmeligt tilbud\r\n".to_vec();
    let (mail, fax) = (JobId::generate(), JobId::generate());
    let now = w.clock.now();
    let job = FaxJob {
        id: fax,
        mail_job: mail,
        correlation_id: "<tilbud@blik-aeroe.dk>".into(),
        tenant: "alpha".parse().unwrap(),
        account: AccountId::generate(),
        mail_from: "mads.aeroe@blik-aeroe.dk".into(),
        subject: "Tilbud".into(),
        to: "+4533991234".parse().unwrap(),
        caller: None,
        smtp_client: Some("192.0.2.7".parse().unwrap()),
        pages_total: 1,
        created: now,
        state: JobState::Done,
        next_at: now,
        attempts: vec![Attempt {
            start: now,
            end: now + SignedDuration::from_secs(60),
            cdr_id: "cdr-x".into(),
            outcome: Outcome::Sent { pages: 1 },
            remote_station: None,
        }],
        safer: false,
        reported: true,
    };
    let tree = w.store.tree(TreeName::Mail).unwrap();
    let mail_key = job_key(&mail).unwrap();
    let mut b = tree.batch();
    b.put_sealed_bytes(&layout::pages(&mail), &mail_key, &tiff).unwrap();
    b.put_sealed(&layout::fax_job(&fax), &job_key(&fax).unwrap(), &job).unwrap();
    tree.apply(b).unwrap();
    w.store.put_file(&mail.to_text(), &mail_key, &message).unwrap();
    let keys = [
        w.store.vault().get(&job_key(&mail).unwrap()).unwrap().unwrap().bytes().to_vec(),
        w.store.vault().get(&job_key(&fax).unwrap()).unwrap().unwrap().bytes().to_vec(),
    ];
    w.store.flush().unwrap();
    let snapshot = w.tmp.path().join("old-copy");
    copy_dir(&w.store.data_dir().join("db"), &snapshot.join("db"));
    copy_dir(&w.store.file_dir(), &snapshot.join("spool"));

    // Within the grace: kept, and the sweeper knows when it is due.
    let s = sweeper(&w).sweep().unwrap();
    let docs = s.categories.iter().find(|c| c.category == "documents").unwrap();
    assert_eq!(docs.erased, 0, "{docs:?}");
    assert_eq!(docs.next_due.unwrap().to_string(), "2026-03-02T10:01:00Z");
    // A legal hold on the number keeps them past the grace.
    let hold = w
        .retention
        .holds()
        .add(
            HoldTarget::Number("+4533991234".parse().unwrap()),
            "case-7",
            "2026-03-05T00:00:00Z".parse().unwrap(),
            w.clock.now(),
        )
        .unwrap();
    w.clock.set("2026-03-03T00:00:00Z".parse().unwrap());
    let s = sweeper(&w).sweep().unwrap();
    let docs = s.categories.iter().find(|c| c.category == "documents").unwrap();
    assert_eq!((docs.erased, docs.held), (0, 1), "{docs:?}");
    assert!(w.retention.audit(w.clock.now()).unwrap().ok, "held documents are not overdue");
    let status = w.retention.status(w.clock.now()).unwrap();
    let st = status.categories.iter().find(|c| c.category == "documents").unwrap();
    assert_eq!((st.items, st.next_due.unwrap().to_string()), (1, "2026-03-02T10:01:00Z".to_owned()));
    w.retention.holds().remove(&hold.id).unwrap();
    // Due and no longer held: the audit finds them before the sweep.
    let a = w.retention.audit(w.clock.now()).unwrap();
    assert!(!a.ok && a.problems.iter().any(|p| p.contains("documents and jobs of mail")), "{a:?}");
    assert_eq!(a.checked.documents, 1);
    let s = sweeper(&w).sweep().unwrap();
    let docs = s.categories.iter().find(|c| c.category == "documents").unwrap();
    assert_eq!((docs.erased, docs.keys_destroyed.len()), (2, 2), "{docs:?}");
    assert!(
        tree.get_plain(&layout::fax_job(&fax)).unwrap().is_none()
            && tree.get_plain(&layout::pages(&mail)).unwrap().is_none()
    );
    assert_eq!(w.store.files().unwrap(), Vec::<String>::new(), "the message file is removed");
    assert!(w.retention.audit(w.clock.now()).unwrap().ok);

    // No page image, message text or key bytes anywhere under the data
    // directory or in the old copy; the old copy's records cannot be opened.
    let needles: Vec<&[u8]> = vec![&page_bytes, &keys[0], &keys[1], b"Hemmeligt tilbud", b"mads.aeroe", b"4533991234"];
    for f in all_files(w.store.data_dir()).into_iter().chain(all_files(&snapshot)) {
        let bytes = std::fs::read(&f).unwrap();
        for n in &needles {
            assert!(!find(&bytes, n), "{:?} found in {}", String::from_utf8_lossy(n), f.display());
        }
    }
    let key_dir = w.store.vault().dir().to_owned();
    drop(tree);
    let World { store, dir, cdrs, retention, tmp, .. } = w;
    drop((retention, dir, cdrs, store));
    let old = Store::open(&snapshot, &key_dir).unwrap();
    let old_tree = old.tree(TreeName::Mail).unwrap();
    let err = old_tree.get_sealed_bytes(&layout::pages(&mail)).unwrap_err();
    assert!(matches!(err, Error::Crypto(faxgate_retention::Error::KeyDestroyed(_))), "{err}");
    let err = old.get_file(&mail.to_text()).unwrap_err();
    assert!(matches!(err, Error::Crypto(faxgate_retention::Error::KeyDestroyed(_))), "{err}");
    drop(tmp);
}

/// Learned entries: an expired one is flagged by the audit until a sweep
/// erases it; the month's key is destroyed after the month's end plus the
/// period, and what it sealed cannot be read from an old copy of the store.
#[test]
fn learned_entries_expire_and_their_month_key_goes() {
    use crate::learned::Learning;
    use faxgate_t38::sip::Needed;
    let w = world("2025-01-10T09:00:00Z");
    let l = Learning::open(&w.store).unwrap();
    let alpha: crate::types::TenantId = "alpha".parse().unwrap();
    let (old, new): (crate::types::E164, crate::types::E164) =
        ("+4533221100".parse().unwrap(), "+4533221101".parse().unwrap());
    let audio = Needed { audio: true, ..Needed::default() };
    let first = l.record(&alpha, &old, audio, None, w.clock.now(), 30).unwrap().unwrap();
    assert_eq!(
        w.store.vault().meta(&KeyId::new("learned-2025-01").unwrap()).unwrap().unwrap().deadline,
        Some("2025-03-03T00:00:00Z".parse().unwrap())
    );
    w.clock.advance(SignedDuration::from_hours(24 * 20));
    l.record(&alpha, &new, audio, None, w.clock.now(), 30).unwrap();
    let s = sweeper(&w).sweep().unwrap();
    let c = s.categories.iter().find(|c| c.category == "learned").unwrap();
    assert_eq!((c.erased, c.next_due), (0, Some(first.expires)), "{c:?}");
    assert!(w.retention.audit(w.clock.now()).unwrap().ok);

    // The first has expired: the audit says so until the sweep erases it.
    w.clock.set(first.expires);
    let a = w.retention.audit(w.clock.now()).unwrap();
    assert!(!a.ok && a.problems.iter().any(|p| p.contains("learned entry")), "{a:?}");
    assert_eq!(a.checked.learned, 2);
    let s = sweeper(&w).sweep().unwrap();
    let c = s.categories.iter().find(|c| c.category == "learned").unwrap();
    assert_eq!(c.erased, 1, "{c:?}");
    assert!(w.retention.audit(w.clock.now()).unwrap().ok);
    assert_eq!(l.list(None, w.clock.now()).unwrap().len(), 1);
    w.store.flush().unwrap();
    let snapshot = w.tmp.path().join("old-copy");
    copy_dir(&w.store.data_dir().join("db"), &snapshot.join("db"));

    // March 3rd: everything learned in January has expired; its key goes.
    w.clock.set("2025-03-03T00:00:00Z".parse().unwrap());
    let s = sweeper(&w).sweep().unwrap();
    let c = s.categories.iter().find(|c| c.category == "learned").unwrap();
    assert_eq!((c.erased, c.keys_destroyed.clone()), (1, vec!["learned-2025-01".to_string()]), "{c:?}");
    assert!(!key_file(&w, "learned-2025-01").exists());
    assert!(l.entries().unwrap().is_empty());
    let a = w.retention.audit(w.clock.now()).unwrap();
    assert!(a.ok, "{a:?}");
    // The old copy's entry is sealed with a key that no longer exists.
    let old_store = Store::open(&snapshot, &w.store.data_dir().join("keys")).unwrap();
    let old_l = Learning::open(&old_store).unwrap();
    assert!(matches!(old_l.entries().unwrap()[..], [(_, None)]));
}

/// A learned month key made by a daemon that stopped before it wrote the
/// key's deadline (nothing is sealed with it yet) gets its month's end from
/// the sweep, and goes then; it is not kept for ever.
#[test]
fn a_learned_month_key_without_a_deadline_gets_the_months_end() {
    let w = world("2025-01-10T09:00:00Z");
    let kid = KeyId::new("learned-2025-01").unwrap();
    w.store.vault().get_or_create(&kid).unwrap();
    assert_eq!(w.store.vault().meta(&kid).unwrap().unwrap().deadline, None);
    sweeper(&w).sweep().unwrap();
    assert_eq!(w.store.vault().meta(&kid).unwrap().unwrap().deadline, Some("2025-02-01T00:00:00Z".parse().unwrap()));
    w.clock.set("2025-02-01T00:00:00Z".parse().unwrap());
    let s = sweeper(&w).sweep().unwrap();
    let c = s.categories.iter().find(|c| c.category == "learned").unwrap();
    assert_eq!(c.keys_destroyed, vec!["learned-2025-01".to_string()], "{c:?}");
    assert!(w.retention.audit(w.clock.now()).unwrap().ok);
}

fn audit_entry(at: Timestamp, tenant: &str) -> crate::admin::AuditEntry {
    crate::admin::AuditEntry {
        seq: 0,
        at,
        by: "uid 0 (root)".into(),
        principal: "operator".into(),
        op: crate::admin::Op::TenantChange,
        tenant: Some(tenant.parse().unwrap()),
        objects: vec![format!("tenant:{tenant}")],
        result: "ok".into(),
    }
}

/// Admin audit entries are kept `retention.admin_audit` (a year) after they
/// were written, one by one; a month's key goes once the last of its
/// entries is due, and an old copy of the store cannot read them then.
#[test]
fn admin_audit_entries_expire_after_their_period_and_their_month_key_goes() {
    use crate::admin::AdminAudit;
    let w = world("2025-01-10T09:00:00Z");
    let audit = AdminAudit::open(&w.store, w.retention.policy().admin_audit).unwrap();
    let first = w.clock.now();
    audit.append(audit_entry(first, "alpha")).unwrap();
    w.clock.advance(SignedDuration::from_hours(24 * 10));
    let second = w.clock.now();
    audit.append(audit_entry(second, "beta")).unwrap();
    assert_eq!(
        w.store.vault().meta(&KeyId::new("admin-audit-2025-01").unwrap()).unwrap().unwrap().deadline,
        Some("2026-02-01T00:00:00Z".parse().unwrap())
    );
    let status = w.retention.status(w.clock.now()).unwrap();
    assert!(serde_json::to_string(&status).unwrap().contains("admin_audit"), "{status:?}");

    // Half a year on: nothing is due.
    w.clock.set("2025-07-01T00:00:00Z".parse().unwrap());
    let s = sweeper(&w).sweep().unwrap();
    let c = s.categories.iter().find(|c| c.category == "admin_audit").unwrap();
    assert_eq!((c.erased, c.next_due), (0, Some("2026-01-10T09:00:00Z".parse().unwrap())), "{c:?}");
    assert_eq!(audit.list(None, None).unwrap().len(), 2);

    // A year after the first: the audit sees it overdue until the sweep erases it.
    w.clock.set("2026-01-10T09:00:00Z".parse().unwrap());
    let a = w.retention.audit(w.clock.now()).unwrap();
    assert!(!a.ok && a.problems.iter().any(|p| p.contains("admin audit entry 0")), "{a:?}");
    assert_eq!(a.checked.admin_audit, 2);
    let s = sweeper(&w).sweep().unwrap();
    let c = s.categories.iter().find(|c| c.category == "admin_audit").unwrap();
    assert_eq!(c.erased, 1, "{c:?}");
    let left = audit.list(None, None).unwrap();
    assert_eq!((left.len(), left[0].seq, left[0].at), (1, 1, second));
    assert!(w.retention.audit(w.clock.now()).unwrap().ok);
    w.store.flush().unwrap();
    let snapshot = w.tmp.path().join("old-copy");
    copy_dir(&w.store.data_dir().join("db"), &snapshot.join("db"));

    // February 2026: every January entry is due, and the month's key goes.
    w.clock.set("2026-02-01T00:00:00Z".parse().unwrap());
    let s = sweeper(&w).sweep().unwrap();
    let c = s.categories.iter().find(|c| c.category == "admin_audit").unwrap();
    assert_eq!((c.erased, c.keys_destroyed.clone()), (1, vec!["admin-audit-2025-01".to_string()]), "{c:?}");
    assert!(!key_file(&w, "admin-audit-2025-01").exists());
    assert!(audit.list(None, None).unwrap().is_empty());
    assert!(w.retention.audit(w.clock.now()).unwrap().ok);
    let old_store = Store::open(&snapshot, &w.store.data_dir().join("keys")).unwrap();
    let old = AdminAudit::open(&old_store, w.retention.policy().admin_audit).unwrap();
    assert!(matches!(old.entries().unwrap()[..], [(_, None)]));
}

/// The audit's order is the order of appending, across a reopening of the
/// store; the entries are sealed (no tenant id or object in the clear on disk).
#[test]
fn admin_audit_order_survives_a_restart_and_entries_are_sealed() {
    use crate::admin::AdminAudit;
    let w = world("2025-01-10T09:00:00Z");
    let data = w.store.data_dir().to_owned();
    let period = w.retention.policy().admin_audit;
    {
        let audit = AdminAudit::open(&w.store, period).unwrap();
        assert_eq!(audit.append(audit_entry(w.clock.now(), "zulu-tenant")).unwrap(), 0);
        assert_eq!(audit.append(audit_entry(w.clock.now(), "zulu-tenant")).unwrap(), 1);
    }
    let World { tmp, store, dir, cdrs, retention, clock } = w;
    drop((dir, cdrs, retention));
    store.flush().unwrap();
    drop(store);
    for f in all_files(&data.join("db")) {
        assert!(!find(&std::fs::read(&f).unwrap(), b"zulu-tenant"), "{} holds a tenant id in clear", f.display());
    }
    let store = Store::open(&data, &data.join("keys")).unwrap();
    let audit = AdminAudit::open(&store, period).unwrap();
    // The clock went back meanwhile: order is still the order of appending.
    clock.set("2024-12-01T00:00:00Z".parse().unwrap());
    assert_eq!(audit.append(audit_entry(clock.now(), "alpha")).unwrap(), 2);
    let seqs: Vec<u64> = audit.list(None, None).unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![0, 1, 2]);
    assert_eq!(audit.list(Some(&"alpha".parse().unwrap()), None).unwrap().len(), 1);
    drop(tmp);
}

/// A wall clock set far ahead erases nothing of the admin audit: its
/// erasure waits for a trusted clock, as that of CDRs and accounts does.
#[test]
fn a_clock_far_ahead_erases_no_admin_audit_entry() {
    use crate::admin::AdminAudit;
    let w = world("2025-01-10T09:00:00Z");
    let audit = AdminAudit::open(&w.store, w.retention.policy().admin_audit).unwrap();
    audit.append(audit_entry(w.clock.now(), "alpha")).unwrap();
    sweeper(&w).sweep().unwrap();
    w.clock.jump(SignedDuration::from_hours(24 * 430));
    let s = sweeper(&w).sweep().unwrap();
    let c = s.categories.iter().find(|c| c.category == "admin_audit").unwrap();
    assert!(c.suspended.is_some(), "{c:?}");
    assert_eq!((c.erased, c.keys_destroyed.len()), (0, 0), "{c:?}");
    assert_eq!(audit.list(None, None).unwrap().len(), 1);
    assert!(key_file(&w, "admin-audit-2025-01").exists());
}
