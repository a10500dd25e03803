//! The CDR class: a CDR is erased one period (`retention.cdr`, default one
//! year) after its communication started. CDRs are sealed with the key of
//! their calendar month (UTC); once the last CDR a month could hold has
//! expired (the first instant of the next month plus the period) the key is
//! destroyed, then the month's records and index entries are removed: from
//! then on nothing of that month can be decrypted, wherever its bytes remain.
//! Single expired CDRs of a month whose key is still needed are removed one
//! by one. A legal hold on a number or an account keeps its CDRs, and the
//! month's key with them.

use std::collections::BTreeMap;

use faxgate_retention::KeyId;
use faxgate_retention::audit::CategoryResult;
use jiff::Timestamp;

use super::audit::{CategoryStatus, Findings};
use super::holds::{held_cdr, hold_end};
use super::policy::after;
use super::{Class, Hold, Retention, earliest, or_fault};
use crate::Error;
use crate::cdr::{Cdr, parse_place};

/// The key of the CDRs of one calendar month (UTC) of communication.
pub fn month_key(y: i16, m: i8) -> Result<KeyId, Error> {
    Ok(KeyId::new(format!("cdr-{y:04}-{m:02}"))?)
}

/// The month a key of [`month_key`] is for.
pub fn month_of_key(k: &KeyId) -> Option<(i16, i8)> {
    let rest = k.as_str().strip_prefix("cdr-")?;
    Some((rest.get(..4)?.parse().ok()?, rest.get(5..7)?.parse().ok()?))
}

/// What a month key is for: the month's CDRs, until the last of them has expired.
pub(super) fn describe(id: &KeyId, policy: &super::Policy) -> Option<faxgate_retention::vault::KeyMeta> {
    let (y, m) = month_of_key(id)?;
    Some(faxgate_retention::vault::KeyMeta {
        class: "cdr".into(),
        owner: format!("{y:04}-{m:02}"),
        deadline: Some(after(month_end(y, m), policy.cdr)),
    })
}

/// The first instant of the month after `(y, m)`, UTC.
fn month_end(y: i16, m: i8) -> Timestamp {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    jiff::civil::date(ny, nm, 1).to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).unwrap_or(Timestamp::MAX)
}

/// One CDR month as the store holds it: the places of its CDRs with their starts.
#[derive(Debug, Default)]
struct Month {
    places: Vec<(Vec<u8>, Timestamp)>,
}

/// Every month with CDRs or a key.
fn months(r: &Retention) -> Result<BTreeMap<(i16, i8), Month>, Error> {
    let mut months: BTreeMap<(i16, i8), Month> = BTreeMap::new();
    for p in r.cdrs.places()? {
        if let Some((month, start)) = parse_place(&p) {
            months.entry(month).or_default().places.push((p, start));
        }
    }
    let vault = r.store.vault();
    for id in vault.list()?.into_iter().map(|k| k.id).chain(vault.tombstones()?) {
        if let Some(month) = month_of_key(&id) {
            months.entry(month).or_default();
        }
    }
    Ok(months)
}

/// A CDR, or `None` when its month's key is gone.
fn load(r: &Retention, place: &[u8]) -> Result<Option<Cdr>, Error> {
    match r.cdrs.get(place) {
        Err(Error::Crypto(faxgate_retention::Error::KeyDestroyed(_))) => Ok(None),
        other => other,
    }
}

fn is_held(r: &Retention, place: &[u8], holds: &[Hold]) -> Result<bool, Error> {
    Ok(!holds.is_empty() && load(r, place)?.is_some_and(|c| held_cdr(&c, holds)))
}

/// The deadline a month's key should carry: the month's end plus the
/// period, or the end of the holds keeping some of its CDRs past that.
fn month_deadline(r: &Retention, (y, m): (i16, i8), held: usize, holds: &[Hold]) -> Timestamp {
    let base = after(month_end(y, m), r.policy.cdr);
    match (held, hold_end(holds)) {
        (1.., Some(end)) => base.max(end),
        _ => base,
    }
}

/// A month's CDRs past their own period: (due and not held, held).
fn due_places(
    r: &Retention,
    month: &Month,
    now: Timestamp,
    holds: &[Hold],
    out: &mut CategoryResult,
) -> Result<(Vec<Vec<u8>>, usize), Error> {
    let mut due = Vec::new();
    let mut held = 0;
    // In time order (see `layout::cdr`): the first CDR not due yet is the
    // earliest of those left, and none after it is due.
    for (place, start) in &month.places {
        let at = after(*start, r.policy.cdr);
        if at > now {
            earliest(&mut out.next_due, at);
            earliest(&mut out.oldest_remaining, *start);
            break;
        } else if is_held(r, place, holds)? {
            held += 1;
            earliest(&mut out.oldest_remaining, *start);
            if let Some(t) = hold_end(holds) {
                earliest(&mut out.next_due, t);
            }
        } else {
            due.push(place.clone());
        }
    }
    Ok((due, held))
}

/// The class.
#[derive(Debug)]
pub(crate) struct CdrClass;

impl Class for CdrClass {
    fn name(&self) -> &'static str {
        "cdr"
    }

    fn needs_trusted_clock(&self) -> bool {
        true
    }

    fn move_deadlines(&self, r: &Retention, now: Timestamp, holds: &[Hold]) -> Result<Vec<String>, Error> {
        let mut faults = Vec::new();
        let mut scratch = CategoryResult::default();
        for (month, m) in months(r)? {
            let key = month_key(month.0, month.1)?;
            or_fault(&mut faults, || {
                let (_, held) = due_places(r, &m, now, holds, &mut scratch)?;
                r.store.vault().set_deadline(&key, Some(month_deadline(r, month, held, holds)))?;
                Ok(())
            })?;
        }
        Ok(faults)
    }

    fn sweep(&self, r: &Retention, now: Timestamp, holds: &[Hold], erase: bool) -> Result<CategoryResult, Error> {
        let mut out = CategoryResult::default();
        let vault = r.store.vault();
        let mut faults = Vec::new();
        for ((y, m), month) in months(r)? {
            let key = month_key(y, m)?;
            let swept = or_fault(&mut faults, || {
                let (due, held) = due_places(r, &month, now, holds, &mut out)?;
                let tombstoned = vault.is_tombstoned(&key);
                let deadline = match vault.meta(&key)? {
                    Some(meta) => {
                        let want = month_deadline(r, (y, m), held, holds);
                        if meta.deadline != Some(want) {
                            vault.set_deadline(&key, Some(want))?;
                        }
                        Some(want)
                    }
                    None => None,
                };
                if !erase {
                    if let Some(d) = deadline {
                        earliest(&mut out.next_due, d);
                    }
                    return Ok(());
                }
                match deadline {
                    // The key's own deadline has passed: key first, then every record of the month.
                    Some(d) if d <= now => {
                        vault.destroy(&key)?;
                        out.keys_destroyed.push(key.to_string());
                        out.erased += month.places.len();
                        r.cdrs.erase_month((y, m))?;
                        vault.clear_tombstone(&key)?;
                    }
                    Some(d) => {
                        earliest(&mut out.next_due, d);
                        out.erased += due.len();
                        r.cdrs.remove(&due)?;
                    }
                    // Destroyed by a sweep cut short (its tombstone says so), or
                    // gone with the month past its deadline: the records cannot
                    // be read and are due; they go. A key lost before its
                    // deadline is damage for `store verify`, and nothing goes.
                    None if tombstoned || after(month_end(y, m), r.policy.cdr) <= now => {
                        if !month.places.is_empty() {
                            out.keys_found_destroyed.push(key.to_string());
                        }
                        out.erased += month.places.len();
                        r.cdrs.erase_month((y, m))?;
                        vault.clear_tombstone(&key)?;
                    }
                    None => out.faults.push(format!(
                        "key {key} is missing before its deadline: {} CDRs of {y:04}-{m:02} cannot be read (run faxgate store verify)",
                        month.places.len()
                    )),
                }
                out.held += held;
                Ok(())
            });
            swept?;
        }
        out.faults.extend(faults);
        Ok(out)
    }

    fn audit(&self, r: &Retention, _now: Timestamp, holds: &[Hold], f: &mut Findings) -> Result<(), Error> {
        let mut faults = Vec::new();
        for ((y, m), month) in &months(r)? {
            or_fault(&mut faults, || {
                let mut month_held = false;
                // Overdue CDRs of the month: how many, and the oldest.
                let mut late: Option<(usize, Timestamp)> = None;
                for (place, start) in &month.places {
                    f.checked.cdrs += 1;
                    if f.overdue(after(*start, r.policy.cdr)) {
                        if is_held(r, place, holds)? {
                            month_held = true;
                            continue;
                        }
                        late = Some(late.map_or((1, *start), |(n, s)| (n + 1, s.min(*start))));
                    }
                }
                if let Some((count, start)) = late {
                    let due = after(start, r.policy.cdr);
                    f.problems.push(match count {
                        1 => format!("a CDR of {y:04}-{m:02} (started {start}) was due for erasure at {due}"),
                        _ => format!(
                            "{count} CDRs of {y:04}-{m:02} were due for erasure, the oldest (started {start}) at {due}"
                        ),
                    });
                }
                let key = month_key(*y, *m)?;
                let key_due = after(month_end(*y, *m), r.policy.cdr);
                if r.store.vault().get(&key)?.is_some() {
                    f.checked.keys += 1;
                    if f.overdue(key_due) && !month_held {
                        f.problems.push(format!("key {key} was due for destruction at {key_due}"));
                    }
                }
                Ok(())
            })?;
        }
        f.problems.extend(faults);
        Ok(())
    }

    fn status(&self, r: &Retention, _now: Timestamp) -> Result<Option<CategoryStatus>, Error> {
        let months = months(r)?;
        let mut next = None::<Timestamp>;
        let mut oldest = None::<Timestamp>;
        for ((y, m), month) in &months {
            for (_, s) in &month.places {
                earliest(&mut next, after(*s, r.policy.cdr));
                earliest(&mut oldest, *s);
            }
            // A damaged key counts as there: it is not destroyed.
            if !matches!(r.store.vault().get(&month_key(*y, *m)?), Ok(None)) {
                earliest(&mut next, after(month_end(*y, *m), r.policy.cdr));
            }
        }
        let items = months.values().map(|m| m.places.len()).sum();
        Ok(Some(CategoryStatus { category: self.name().into(), items, oldest, next_due: next }))
    }
}
