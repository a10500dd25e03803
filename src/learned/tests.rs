use faxgate_t38::sip::CallReport;
use faxgate_t38::{CompletionCode, FaxResult, FaxSettings};
use jiff::SignedDuration;

use super::*;
use crate::clock::{Clock, FakeClock};

fn store() -> (tempfile::TempDir, Store) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let store = Store::open(&data, &data.join("keys")).unwrap();
    (tmp, store)
}

/// A call that got through: over T.38 or audio, at `rate`, with or without ECM.
fn report(t38: bool, t38_initial_refused: bool, rate: u32, ecm: bool) -> CallReport {
    CallReport {
        t38,
        t38_initial_refused,
        result: Some(FaxResult {
            code: CompletionCode(0),
            text: "OK".into(),
            pages: 1,
            pages_in_file: Some(1),
            bit_rate: rate,
            ecm,
            remote_ident: None,
        }),
        ..CallReport::default()
    }
}

fn alpha() -> TenantId {
    "alpha".parse().unwrap()
}

fn number() -> E164 {
    "+4533221100".parse().unwrap()
}

const DAYS: u32 = 30;

/// The first call finds T.38 refused and goes on audio; the second starts
/// in audio (and is noted so); the knowledge is gone `learn_days` after it
/// was learned, even though calls using it kept getting through, and the
/// expired entry is erased when it is read.
#[test]
fn learned_fallback_used_on_the_second_call_and_expired_after_the_period() {
    let (_tmp, store) = store();
    let clock = FakeClock::new("2026-03-10T09:00:00Z".parse().unwrap());
    let l = Learning::open(&store).unwrap();
    let (t, n) = (alpha(), number());

    // First call: nothing learned yet; T.38 in the INVITE refused, the fax went on audio.
    assert_eq!(l.get(&t, &n, clock.now(), DAYS).unwrap(), None);
    let first = report(false, true, 14_400, true);
    let learned = l.record(&t, &n, needed_after(&first, None), None, clock.now(), DAYS).unwrap().unwrap();
    assert!(learned.audio && !learned.ecm_off && learned.rate.is_none());
    assert_eq!(learned.expires, clock.now() + SignedDuration::from_hours(24 * 30));

    // Second call, a day later: starts in audio.
    clock.advance(SignedDuration::from_hours(24));
    let used = l.get(&t, &n, clock.now(), DAYS).unwrap().expect("learned");
    let mut settings = FaxSettings::default();
    assert!(used.apply(&mut settings), "starts in audio");
    assert_eq!(settings, FaxSettings::default(), "ECM and modems as they were");
    assert_eq!(used.note(), "audio");
    // It went on audio without trying T.38: still needs audio, and the entry is not refreshed.
    let second = report(false, false, 14_400, true);
    let after = l.record(&t, &n, needed_after(&second, Some(&used)), Some(&used), clock.now(), DAYS).unwrap();
    assert_eq!(after.as_ref(), Some(&used));

    // Just before the period ends it is still used; at its end it is gone, and erased.
    clock.set(learned.expires - SignedDuration::from_secs(1));
    assert!(l.get(&t, &n, clock.now(), DAYS).unwrap().is_some());
    assert_eq!(l.list(None, clock.now()).unwrap().len(), 1);
    clock.set(learned.expires);
    assert_eq!(l.get(&t, &n, clock.now(), DAYS).unwrap(), None);
    assert!(l.entries().unwrap().is_empty(), "erased on read");
    assert!(l.list(None, clock.now()).unwrap().is_empty());
}

/// A shorter `learn_days` now ends older knowledge sooner; 0 uses and learns nothing.
#[test]
fn learn_days_applies_at_read_and_zero_turns_learning_off() {
    let (_tmp, store) = store();
    let now: Timestamp = "2026-03-10T09:00:00Z".parse().unwrap();
    let l = Learning::open(&store).unwrap();
    let (t, n) = (alpha(), number());
    let need = Needed { audio: true, ..Needed::default() };
    assert_eq!(l.record(&t, &n, need, None, now, 0).unwrap(), None);
    assert!(l.entries().unwrap().is_empty());
    l.record(&t, &n, need, None, now, DAYS).unwrap();
    assert_eq!(l.get(&t, &n, now, 0).unwrap(), None, "off: not used");
    assert!(l.get(&t, &n, now + SignedDuration::from_hours(24 * 6), 7).unwrap().is_some());
    assert_eq!(l.get(&t, &n, now + SignedDuration::from_hours(24 * 7), 7).unwrap(), None);
    assert!(l.entries().unwrap().is_empty());
}

/// A call at full capability forgets the destination; a new need replaces the old one, from now.
#[test]
fn full_capability_forgets_and_a_new_need_replaces() {
    let (_tmp, store) = store();
    let mut now: Timestamp = "2026-03-10T09:00:00Z".parse().unwrap();
    let l = Learning::open(&store).unwrap();
    let (t, n) = (alpha(), number());
    let slow = report(true, false, 9_600, false);
    let first = l.record(&t, &n, needed_after(&slow, None), None, now, DAYS).unwrap().unwrap();
    assert_eq!((first.audio, first.ecm_off, first.rate), (false, true, Some(9_600)));
    assert_eq!(first.note(), "ecm-off 9600");
    let mut s = FaxSettings::default();
    assert!(!first.apply(&mut s));
    assert!(!s.ecm && !s.modems.v17 && s.modems.v29 && s.modems.v27ter);

    // Slower still: replaced, learned anew.
    now += SignedDuration::from_hours(48);
    let used = l.get(&t, &n, now, DAYS).unwrap().unwrap();
    let slower = report(true, false, 4_800, false);
    let second = l.record(&t, &n, needed_after(&slower, Some(&used)), Some(&used), now, DAYS).unwrap().unwrap();
    assert_eq!((second.rate, second.learned), (Some(4_800), now));
    let mut s = FaxSettings::default();
    second.apply(&mut s);
    assert!(!s.modems.v17 && !s.modems.v29 && s.modems.v27ter);

    // T.38, ECM, 14,400 bit/s: forgotten.
    let full = report(true, false, 14_400, true);
    assert_eq!(l.record(&t, &n, needed_after(&full, None), None, now, DAYS).unwrap(), None);
    assert_eq!(l.get(&t, &n, now, DAYS).unwrap(), None);
    assert!(l.entries().unwrap().is_empty());

    // A call that started in audio but that the peer switched to T.38 does not need audio.
    let used = l.record(&t, &n, Needed { audio: true, ..Needed::default() }, None, now, DAYS).unwrap().unwrap();
    assert_eq!(needed_after(&report(true, false, 14_400, true), Some(&used)), Needed::default());
}

/// Knowledge is per tenant; the number is never in the store's files in
/// plaintext; forgetting removes it.
#[test]
fn per_tenant_sealed_and_forgotten() {
    let (tmp, store) = store();
    let now: Timestamp = "2026-03-10T09:00:00Z".parse().unwrap();
    let l = Learning::open(&store).unwrap();
    let (a, b): (TenantId, TenantId) = (alpha(), "beta".parse().unwrap());
    let n = number();
    l.record(&a, &n, Needed { audio: true, ..Needed::default() }, None, now, DAYS).unwrap();
    assert!(l.get(&b, &n, now, DAYS).unwrap().is_none(), "not another tenant's");
    assert_eq!(l.list(Some(&b), now).unwrap(), []);
    assert_eq!(l.list(Some(&a), now).unwrap().len(), 1);
    store.flush().unwrap();
    for f in walk(tmp.path()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!bytes.windows(10).any(|w| w == b"4533221100"), "{} holds the number", f.display());
    }
    assert!(!l.forget(&b, &n).unwrap());
    assert!(l.forget(&a, &n).unwrap());
    assert!(l.get(&a, &n, now, DAYS).unwrap().is_none());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[test]
fn month_key_deadline_is_the_months_end_plus_the_period() {
    let t: Timestamp = "2026-02-10T09:00:00Z".parse().unwrap();
    assert_eq!(month_key(t).unwrap().as_str(), "learned-2026-02");
    assert_eq!(month_key_deadline(t, 30), "2026-03-31T00:00:00Z".parse().unwrap());
    assert_eq!(month_key_deadline("2026-12-31T23:59:59Z".parse().unwrap(), 0), "2027-01-01T00:00:00Z".parse().unwrap());
}
