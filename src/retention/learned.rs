//! The learned class: what calls to a destination needed
//! ([`crate::learned`]) is kept until its expiry (`fax.learn_days` after it
//! was learned), then erased; the key of a month of learning carries the
//! month's end plus `fax.learn_days` as its deadline and is destroyed once
//! it has passed, so that nothing learned that month can be read again. An
//! entry that cannot be read any more (its key is gone) is erased at once.

use faxgate_retention::KeyId;
use faxgate_retention::audit::CategoryResult;
use jiff::Timestamp;

use super::audit::{CategoryStatus, Findings};
use super::{Class, Hold, Retention, earliest};
use crate::Error;
use crate::learned::{KEY_PREFIX, Learning};

/// What a month key of learned entries is for; its deadline is set when
/// it is first used.
pub(super) fn describe(id: &KeyId) -> Option<faxgate_retention::vault::KeyMeta> {
    let month = id.as_str().strip_prefix(KEY_PREFIX)?;
    Some(faxgate_retention::vault::KeyMeta { class: "learned".into(), owner: month.into(), deadline: None })
}

/// The end of the month a key's id names (`learned-YYYY-MM`).
fn month_end(id: &KeyId) -> Option<Timestamp> {
    let month = id.as_str().strip_prefix(KEY_PREFIX)?;
    let first: jiff::civil::Date = format!("{month}-01").parse().ok()?;
    let t = first.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(crate::learned::month_key_deadline(t, 0))
}

/// Erases the entries expired at `now` and those that cannot be read, then
/// destroys the month keys whose deadline has passed (key first, then what
/// it still seals, then its tombstone).
pub fn sweep(learning: &Learning, store: &crate::store::Store, now: Timestamp) -> Result<CategoryResult, Error> {
    let mut out = CategoryResult::default();
    let vault = store.vault();
    let mut due_keys: Vec<KeyId> = Vec::new();
    for k in vault.list()? {
        if !k.id.as_str().starts_with(KEY_PREFIX) {
            continue;
        }
        let Some(meta) = &k.meta else {
            out.faults.push(format!("key {} is damaged: {}", k.id, k.damage.as_deref().unwrap_or("")));
            continue;
        };
        match meta.deadline {
            Some(d) if d <= now => due_keys.push(k.id.clone()),
            Some(d) => earliest(&mut out.next_due, d),
            // Made, but the daemon stopped before the deadline was written
            // (it is written before anything is sealed with the key): the
            // key seals nothing, and learning later that month moves the
            // deadline on. The month's end, so that it is not kept for ever.
            None => match month_end(&k.id) {
                Some(d) => {
                    vault.set_deadline(&k.id, Some(d))?;
                    earliest(&mut out.next_due, d);
                }
                None => out.faults.push(format!("key {} has no deadline and names no month", k.id)),
            },
        }
    }
    for kid in &due_keys {
        vault.destroy(kid)?;
        out.keys_destroyed.push(kid.to_string());
    }
    for (k, l) in learning.entries()? {
        match l {
            Some(l) if l.expires > now => {
                earliest(&mut out.next_due, l.expires);
                earliest(&mut out.oldest_remaining, l.learned);
            }
            _ => {
                learning.remove_key(&k)?;
                out.erased += 1;
            }
        }
    }
    for kid in vault.tombstones()? {
        if !kid.as_str().starts_with(KEY_PREFIX) {
            continue;
        }
        vault.clear_tombstone(&kid)?;
        if !due_keys.contains(&kid) {
            out.keys_found_destroyed.push(kid.to_string());
        }
    }
    Ok(out)
}

/// The class.
#[derive(Debug)]
pub(crate) struct LearnedClass;

impl Class for LearnedClass {
    fn name(&self) -> &'static str {
        "learned"
    }

    fn move_deadlines(&self, _r: &Retention, _now: Timestamp, _holds: &[Hold]) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }

    fn sweep(&self, r: &Retention, now: Timestamp, _holds: &[Hold], _erase: bool) -> Result<CategoryResult, Error> {
        sweep(&Learning::open(&r.store)?, &r.store, now)
    }

    fn audit(&self, r: &Retention, _now: Timestamp, _holds: &[Hold], f: &mut Findings) -> Result<(), Error> {
        for (_, l) in Learning::open(&r.store)?.entries()? {
            f.checked.learned += 1;
            match l {
                None => f.problems.push("an unreadable learned entry remains".into()),
                Some(l) if f.overdue(l.expires) => {
                    f.problems.push(format!("a learned entry of {} was due for erasure at {}", l.learned, l.expires))
                }
                Some(_) => {}
            }
        }
        for k in r.store.vault().list()? {
            if !k.id.as_str().starts_with(KEY_PREFIX) {
                continue;
            }
            if let Some(d) = k.meta.as_ref().and_then(|m| m.deadline).filter(|d| f.overdue(*d)) {
                f.problems.push(format!("key {} was due for destruction at {d}", k.id));
            }
        }
        Ok(())
    }

    fn status(&self, r: &Retention, _now: Timestamp) -> Result<Option<CategoryStatus>, Error> {
        let entries: Vec<_> = Learning::open(&r.store)?.entries()?.into_iter().filter_map(|(_, l)| l).collect();
        Ok(Some(CategoryStatus {
            category: self.name().into(),
            items: entries.len(),
            oldest: entries.iter().map(|l| l.learned).min(),
            next_due: entries.iter().map(|l| l.expires).min(),
        }))
    }
}
