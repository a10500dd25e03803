//! The account class: all data of an account (the account, its numbers,
//! routes and senders, sealed with the account's key) is erased one period
//! (`retention.account_after_termination`, default 30 days) after the
//! reseller terminated it: the termination moves the deadline of the
//! account's key, and once that has passed the key is destroyed and the
//! records removed. A legal hold on the account, or on one of its numbers,
//! moves the deadline to the hold's end. A key that belongs to no account
//! is reported by the audit and kept: it is not a reason to erase. A
//! tenant's own record is sealed with the tenant's key, destroyed when the
//! operator removes the tenant.

use std::collections::HashSet;

use faxgate_retention::KeyId;
use faxgate_retention::audit::CategoryResult;
use jiff::Timestamp;

use super::audit::{CategoryStatus, Findings};
use super::holds::hold_end;
use super::policy::after;
use super::{Class, Hold, HoldTarget, Retention, earliest, or_fault};
use crate::Error;
use crate::directory::Scope;
use crate::types::{AccountId, TenantId};

const ACCOUNT: &str = "account-";

/// The key of one account's directory data.
pub fn account_key(id: &AccountId) -> Result<KeyId, Error> {
    Ok(KeyId::new(format!("{ACCOUNT}{}", id.to_text()))?)
}

/// The key of one tenant's own record.
pub fn tenant_key(id: &TenantId) -> Result<KeyId, Error> {
    Ok(KeyId::new(format!("tenant-{id}"))?)
}

/// What an account's or a tenant's key is for: its directory data, with no
/// end until the account is terminated (a tenant's ends when it is removed).
pub(super) fn describe(id: &KeyId) -> Option<faxgate_retention::vault::KeyMeta> {
    let meta = |class: &str, owner: &str| faxgate_retention::vault::KeyMeta {
        class: class.into(),
        owner: owner.into(),
        deadline: None,
    };
    if let Some(a) = account_of_key(id) {
        return Some(meta("account", a));
    }
    id.as_str().strip_prefix("tenant-").map(|t| meta("tenant", t))
}

/// The account id text an account key names.
fn account_of_key(k: &KeyId) -> Option<&str> {
    k.as_str().strip_prefix(ACCOUNT)
}

/// Whether a hold keeps the account: one on the account, or on one of its numbers.
fn held(r: &Retention, id: &AccountId, holds: &[Hold]) -> Result<bool, Error> {
    for h in holds {
        match &h.target {
            HoldTarget::Account(a) if a == id => return Ok(true),
            HoldTarget::Number(n) => {
                if r.directory.lookup_number(n)?.is_some_and(|rec| rec.account == *id) {
                    return Ok(true);
                }
            }
            HoldTarget::Account(_) => {}
        }
    }
    Ok(false)
}

/// The deadline an account's key should carry: none while it is active;
/// its termination plus the period, or the end of the holds keeping it.
fn account_deadline(r: &Retention, a: &crate::directory::Account, holds: &[Hold]) -> Result<Option<Timestamp>, Error> {
    let Some(t) = a.terminated_at else { return Ok(None) };
    let base = after(t, r.policy.account_after_termination);
    Ok(Some(match held(r, &a.id, holds)? {
        true => hold_end(holds).map_or(base, |e| base.max(e)),
        false => base,
    }))
}

/// The class.
#[derive(Debug)]
pub(crate) struct AccountClass;

impl Class for AccountClass {
    fn name(&self) -> &'static str {
        "account"
    }

    fn needs_trusted_clock(&self) -> bool {
        true
    }

    fn move_deadlines(&self, r: &Retention, _now: Timestamp, holds: &[Hold]) -> Result<Vec<String>, Error> {
        let mut faults = Vec::new();
        for a in r.directory.account_list(&Scope::Operator, None)? {
            or_fault(&mut faults, || {
                let want = account_deadline(r, &a, holds)?;
                r.store.vault().set_deadline(&account_key(&a.id)?, want)?;
                Ok(())
            })?;
        }
        Ok(faults)
    }

    fn sweep(&self, r: &Retention, now: Timestamp, holds: &[Hold], erase: bool) -> Result<CategoryResult, Error> {
        let mut out = CategoryResult { faults: self.move_deadlines(r, now, holds)?, ..Default::default() };
        let mut held_ids = HashSet::new();
        for a in r.directory.account_list(&Scope::Operator, None)? {
            if let Some(t) = a.terminated_at
                && t <= now
            {
                earliest(&mut out.oldest_remaining, t);
                if after(t, r.policy.account_after_termination) <= now && held(r, &a.id, holds)? {
                    held_ids.insert(a.id.to_text());
                }
            }
        }
        out.held = held_ids.len();
        let vault = r.store.vault();
        for k in vault.list()? {
            let Some(id) = account_of_key(&k.id) else { continue };
            let Some(meta) = &k.meta else {
                out.faults.push(format!("key {} is damaged: {}", k.id, k.damage.as_deref().unwrap_or("")));
                continue;
            };
            match meta.deadline {
                // Its own deadline has passed: the account's data goes, key first.
                Some(d) if d <= now && erase => {
                    let Ok(account) = id.parse::<AccountId>() else { continue };
                    let removed = r.directory.erase_account(&account)?;
                    out.erased += 1 + removed.numbers + removed.senders;
                    out.keys_destroyed.push(k.id.to_string());
                }
                Some(d) => earliest(&mut out.next_due, d.max(now)),
                None => {}
            }
        }
        // Erasures cut short after the key was destroyed: finish them.
        for id in vault.tombstones()? {
            if let Some(account) = account_of_key(&id).and_then(|a| a.parse::<AccountId>().ok()) {
                let removed = r.directory.erase_account(&account)?;
                out.erased += removed.numbers + removed.senders;
                out.keys_found_destroyed.push(id.to_string());
            }
        }
        Ok(out)
    }

    fn audit(&self, r: &Retention, _now: Timestamp, holds: &[Hold], f: &mut Findings) -> Result<(), Error> {
        let mut living = HashSet::new();
        for a in r.directory.account_list(&Scope::Operator, None)? {
            f.checked.accounts += 1;
            living.insert(a.id.to_text());
            if let Some(t) = a.terminated_at {
                let due = after(t, r.policy.account_after_termination);
                if f.overdue(due) && !held(r, &a.id, holds)? {
                    f.problems.push(format!("account {} (terminated {t}) was due for erasure at {due}", a.id));
                }
            }
        }
        for k in r.store.vault().list()? {
            if let Some(id) = account_of_key(&k.id) {
                f.checked.keys += 1;
                if !living.contains(id) {
                    f.problems.push(format!("key {} belongs to no account", k.id));
                }
            }
        }
        Ok(())
    }

    fn status(&self, r: &Retention, _now: Timestamp) -> Result<Option<CategoryStatus>, Error> {
        let mut items = 0;
        let mut next = None::<Timestamp>;
        for a in r.directory.account_list(&Scope::Operator, None)? {
            if let Some(t) = a.terminated_at {
                items += 1;
                earliest(&mut next, after(t, r.policy.account_after_termination));
            }
        }
        Ok(Some(CategoryStatus { category: self.name().into(), items, oldest: None, next_due: next }))
    }
}
