//! The admin audit class: each entry of the audit of admin changes
//! ([`crate::admin::audit`]) is erased `retention.admin_audit` (default a
//! year) after it was written; the key of a month of entries carries the
//! month's end plus the period as its deadline and is destroyed once it has
//! passed, so that nothing written that month can be read again. An entry
//! that cannot be read any more (its key is gone) is removed at once.
//! Like CDRs and accounts, nothing of it is erased while the clock is not
//! trusted: a clock far ahead would erase an audit that is still owed.

use faxgate_retention::KeyId;
use faxgate_retention::audit::CategoryResult;
use jiff::Timestamp;

use super::audit::{CategoryStatus, Findings};
use super::policy::after;
use super::{Class, Hold, Retention, earliest};
use crate::Error;
use crate::admin::audit::{AdminAudit, KEY_PREFIX, month_key_deadline};

/// What a month key of the admin audit is for; its deadline is set when
/// it is first used.
pub(super) fn describe(id: &KeyId) -> Option<faxgate_retention::vault::KeyMeta> {
    let month = id.as_str().strip_prefix(KEY_PREFIX)?;
    Some(faxgate_retention::vault::KeyMeta { class: "admin_audit".into(), owner: month.into(), deadline: None })
}

/// The first moment of the month a key's id names (`admin-audit-YYYY-MM`).
fn month_start(id: &KeyId) -> Option<Timestamp> {
    let month = id.as_str().strip_prefix(KEY_PREFIX)?;
    let first: jiff::civil::Date = format!("{month}-01").parse().ok()?;
    Some(first.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp())
}

/// Erases the entries due at `now` and those that cannot be read, then
/// destroys the month keys whose deadline has passed (key first, then what
/// it still seals, then its tombstone). With `erase` false (the clock is
/// not trusted) it only says what is due.
pub fn sweep(
    audit: &AdminAudit,
    store: &crate::store::Store,
    now: Timestamp,
    erase: bool,
) -> Result<CategoryResult, Error> {
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
        // The period as configured now (it may have been shortened).
        let want = month_start(&k.id).map(|m| month_key_deadline(m, audit.period()));
        match want.into_iter().chain(meta.deadline).min() {
            Some(d) if d <= now && erase => due_keys.push(k.id.clone()),
            Some(d) if d <= now => earliest(&mut out.next_due, d),
            Some(d) => {
                if meta.deadline != Some(d) {
                    vault.set_deadline(&k.id, Some(d))?;
                }
                earliest(&mut out.next_due, d)
            }
            None => out.faults.push(format!("key {} has no deadline and names no month", k.id)),
        }
    }
    for kid in &due_keys {
        vault.destroy(kid)?;
        out.keys_destroyed.push(kid.to_string());
    }
    let mut gone = Vec::new();
    for (k, e) in audit.entries()? {
        match e {
            Some(e) if after(e.at, audit.period()) > now => {
                earliest(&mut out.next_due, after(e.at, audit.period()));
                earliest(&mut out.oldest_remaining, e.at);
            }
            Some(e) if !erase => earliest(&mut out.next_due, after(e.at, audit.period())),
            _ if !erase => {}
            _ => gone.push(k),
        }
    }
    out.erased += gone.len();
    audit.remove(&gone)?;
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
pub(crate) struct AdminAuditClass;

impl Class for AdminAuditClass {
    fn name(&self) -> &'static str {
        "admin_audit"
    }

    fn needs_trusted_clock(&self) -> bool {
        true
    }

    fn move_deadlines(&self, _r: &Retention, _now: Timestamp, _holds: &[Hold]) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }

    fn sweep(&self, r: &Retention, now: Timestamp, _holds: &[Hold], erase: bool) -> Result<CategoryResult, Error> {
        sweep(&AdminAudit::open(&r.store, r.policy.admin_audit)?, &r.store, now, erase)
    }

    fn audit(&self, r: &Retention, _now: Timestamp, _holds: &[Hold], f: &mut Findings) -> Result<(), Error> {
        let audit = AdminAudit::open(&r.store, r.policy.admin_audit)?;
        for (_, e) in audit.entries()? {
            f.checked.admin_audit += 1;
            match e {
                None => f.problems.push("an unreadable admin audit entry remains".into()),
                Some(e) if f.overdue(after(e.at, audit.period())) => f.problems.push(format!(
                    "admin audit entry {} of {} was due for erasure at {}",
                    e.seq,
                    e.at,
                    after(e.at, audit.period())
                )),
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn status(&self, r: &Retention, _now: Timestamp) -> Result<Option<CategoryStatus>, Error> {
        let audit = AdminAudit::open(&r.store, r.policy.admin_audit)?;
        let entries: Vec<_> = audit.entries()?.into_iter().filter_map(|(_, e)| e).collect();
        Ok(Some(CategoryStatus {
            category: self.name().into(),
            items: entries.len(),
            oldest: entries.iter().map(|e| e.at).min(),
            next_due: entries.iter().map(|e| after(e.at, audit.period())).min(),
        }))
    }
}
