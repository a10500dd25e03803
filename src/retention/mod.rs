//! Retention in the core: one file per retention class, each with its
//! period, the keys it names, what its sweep erases and what the audit
//! checks of it. [`Retention`] runs the classes for the sweeper (the
//! mechanism in the faxgate-retention crate), for `faxgate retention audit`
//! and for `retention status`.
//!
//! # Layout
//! - [`policy`]: the periods (`[retention]` in the configuration).
//! - [`cdr`]: CDRs, erased per month by destroying the month's key.
//! - [`account`]: a terminated account's directory data (and tenants' keys).
//! - [`documents`]: a mail's message, pages and fax jobs once every recipient
//!   is final; duplicate-detection entries after 24 hours.
//! - [`outbox`]: outgoing mail given up on, and report markers.
//! - [`learned`]: what calls to a destination needed, after `fax.learn_days`.
//! - [`admin_audit`]: the audit of admin changes, after `retention.admin_audit`.
//! - [`holds`]: legal holds, which keep data past its period, and their end.
//! - [`audit`]: the independent audit and the status, over every class.
//! - [`clock_watch`]: erasure of CDRs and accounts waits while the clock is not trusted.
//!
//! A new class is one file implementing `Class`, listed in `CLASSES`.
//!
//! Every key carries its deadline in the vault (made with it, see
//! [`key_names`]). A sweep first moves the deadlines to what the records
//! say (a termination, a mail finished, a legal hold), then destroys the
//! keys whose own deadline has passed, key first, then their records, then
//! the key's tombstone. A key is never destroyed because no record was found
//! that needs it: such a key is reported by the audit. A damaged key is
//! named in the sweep's faults and skipped; the rest goes on.

pub mod account;
pub mod admin_audit;
pub mod audit;
pub mod cdr;
pub mod clock_watch;
pub mod documents;
pub mod holds;
pub mod learned;
pub mod outbox;
pub mod policy;

use std::sync::{Arc, Mutex};

use faxgate_retention::audit::{AuditLog, CategoryResult};
use faxgate_retention::vault::{ByName, Describe, KeyMeta};
use faxgate_retention::{Category, KeyId, Sweeper};
use jiff::Timestamp;

pub use audit::{AuditCounts, AuditReport, CategoryStatus, InterruptedSweep, RetentionStatus};
pub use clock_watch::{ClockWatch, Suspension};
pub use holds::{Hold, HoldTarget, Holds};
pub use policy::Policy;

use crate::Error;
use crate::cdr::CdrStore;
use crate::clock::Clock;
use crate::directory::Directory;
use crate::store::Store;

/// One retention class.
pub(crate) trait Class: std::fmt::Debug + Send + Sync {
    /// Its name in the audit trail and in `retention status`.
    fn name(&self) -> &'static str;
    /// Whether its erasure waits while the clock is not trusted (CDRs and accounts).
    fn needs_trusted_clock(&self) -> bool {
        false
    }
    /// Moves the deadlines its keys carry to what its records say at `now`
    /// with `holds` in force; returns the faults met (damaged keys, named).
    fn move_deadlines(&self, r: &Retention, now: Timestamp, holds: &[Hold]) -> Result<Vec<String>, Error>;
    /// Erases what is due at `now` and not kept by one of `holds` (the holds
    /// in force). With `erase` false (the clock is not trusted) it only
    /// reports what is due.
    fn sweep(&self, r: &Retention, now: Timestamp, holds: &[Hold], erase: bool) -> Result<CategoryResult, Error>;
    /// Records in `findings` what is kept past its period at `now`.
    fn audit(&self, r: &Retention, now: Timestamp, holds: &[Hold], findings: &mut audit::Findings)
    -> Result<(), Error>;
    /// What is due when; `None` for a class with nothing to show.
    fn status(&self, r: &Retention, now: Timestamp) -> Result<Option<CategoryStatus>, Error>;
}

/// The classes, in the order the sweeper runs them.
pub(crate) const CLASSES: &[&dyn Class] = &[
    &cdr::CdrClass,
    &account::AccountClass,
    &documents::DocumentClass,
    &outbox::OutboxClass,
    &learned::LearnedClass,
    &admin_audit::AdminAuditClass,
    &holds::HoldClass,
];

/// Everything the retention classes work on.
#[derive(Clone, Debug)]
pub struct Retention {
    store: Store,
    directory: Directory,
    cdrs: CdrStore,
    holds: Holds,
    policy: Policy,
    watch: ClockWatch,
    /// Sweeps, and a directory erasure on request, one at a time.
    lock: Arc<Mutex<()>>,
}

impl Retention {
    /// Retention over `store` with `policy`, by `clock`.
    pub fn new(store: &Store, directory: &Directory, policy: Policy, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let watch = ClockWatch::open(store.data_dir(), clock, policy.max_jump())?;
        Ok(Retention {
            store: store.clone(),
            directory: directory.clone(),
            cdrs: CdrStore::open(store)?,
            holds: Holds::open(store)?,
            policy,
            watch,
            lock: Arc::new(Mutex::new(())),
        })
    }

    /// Keeps sweeps from running while the guard lives (a backup).
    pub fn pause_sweeps(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The clock watch.
    pub fn clock_watch(&self) -> &ClockWatch {
        &self.watch
    }

    /// An operator confirms the time: erasure resumes, and the trail records
    /// it, acknowledging the sweeps dated after now (run while the clock was
    /// ahead). Returns the suspension it ended.
    pub fn confirm_clock(&self, now: Timestamp) -> Result<Option<Suspension>, Error> {
        let was = self.watch.confirm()?;
        let latest_ahead = self.audit_log().entries()?.iter().map(|e| e.at).filter(|&t| t > now).max();
        let record = faxgate_retention::audit::RequestRecord {
            kind: audit::CLOCK_CONFIRMED.into(),
            case: None,
            authority: None,
            subject: String::new(),
            since: was.as_ref().map(|s| s.since),
            until: latest_ahead,
            records: 0,
        };
        self.audit_log().append(&faxgate_retention::audit::AuditEntry {
            at: now,
            categories: Vec::new(),
            request: Some(record),
            begun: false,
        })?;
        Ok(was)
    }

    /// Moves every key's deadline to what the records say now (after a
    /// termination, a reactivation, a legal hold placed or lifted); returns
    /// the faults met.
    pub fn move_deadlines(&self, now: Timestamp) -> Result<Vec<String>, Error> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let holds = self.holds.active(now)?;
        let mut faults = Vec::new();
        for class in CLASSES {
            faults.extend(class.move_deadlines(self, now, &holds)?);
        }
        Ok(faults)
    }

    /// The legal holds.
    pub fn holds(&self) -> &Holds {
        &self.holds
    }

    /// The periods.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The audit trail.
    pub fn audit_log(&self) -> AuditLog {
        AuditLog::new(self.store.data_dir().join("retention-audit.jsonl"))
    }

    /// The sweeper's categories: every class.
    pub fn categories(&self) -> Vec<Arc<dyn Category>> {
        CLASSES.iter().map(|&class| Arc::new(Swept { retention: self.clone(), class }) as Arc<dyn Category>).collect()
    }

    /// The sweeper over every class, on `clock`, with the policy's window.
    pub fn sweeper(&self, clock: Arc<dyn Clock>) -> Sweeper {
        Sweeper::new(self.categories(), self.audit_log(), clock).with_window(self.policy.window())
    }
}

/// A class as the sweeper sees it.
#[derive(Debug)]
struct Swept {
    retention: Retention,
    class: &'static dyn Class,
}

impl Category for Swept {
    fn name(&self) -> &'static str {
        self.class.name()
    }

    fn sweep(&self, now: Timestamp) -> Result<CategoryResult, faxgate_retention::Error> {
        let name = self.class.name();
        let r = &self.retention;
        let _g = r.lock.lock().unwrap_or_else(|p| p.into_inner());
        let run = || -> Result<CategoryResult, Error> {
            let holds = r.holds.active(now)?;
            let suspended = match self.class.needs_trusted_clock() {
                true => r.watch.check()?,
                false => None,
            };
            let mut out = self.class.sweep(r, now, &holds, suspended.is_none())?;
            out.suspended = suspended.map(|s| format!("erasure suspended since {}: {}", s.since, s.reason));
            Ok(out)
        };
        run().map_err(|e| faxgate_retention::Error::Sweep { category: name, message: e.to_string() })
    }
}

/// Says what each key is for, for the vault: the class whose file names
/// it, its owner, and the deadline it has when it is made.
#[derive(Debug)]
struct KeyNames {
    policy: Policy,
}

impl Describe for KeyNames {
    fn describe(&self, id: &KeyId) -> KeyMeta {
        outbox::describe(id)
            .or_else(|| documents::describe(id))
            .or_else(|| cdr::describe(id, &self.policy))
            .or_else(|| account::describe(id))
            .or_else(|| learned::describe(id))
            .or_else(|| admin_audit::describe(id))
            .unwrap_or_else(|| ByName.describe(id))
    }
}

/// The keys the vault and the audit trail say were destroyed on purpose:
/// records sealed with them are erased, awaiting removal, not damaged.
pub fn destroyed_keys(store: &Store) -> Result<std::collections::HashSet<String>, Error> {
    let mut out: std::collections::HashSet<String> =
        store.vault().tombstones()?.into_iter().map(|k| k.to_string()).collect();
    let trail = AuditLog::new(store.data_dir().join("retention-audit.jsonl"));
    for e in trail.entries()? {
        for c in e.categories {
            out.extend(c.keys_destroyed);
            out.extend(c.keys_found_destroyed);
        }
    }
    Ok(out)
}

/// The vault's describer for `policy` (see [`KeyNames`]).
pub fn key_names(policy: &Policy) -> Arc<dyn Describe> {
    Arc::new(KeyNames { policy: policy.clone() })
}

/// The fault to report when `e` says a key is damaged (the caller skips what it seals).
pub(crate) fn key_fault(e: &Error) -> Option<String> {
    match e {
        Error::Crypto(faxgate_retention::Error::DamagedKey { .. }) => Some(e.to_string()),
        _ => None,
    }
}

/// Runs `f`; a damaged key becomes a fault in `faults`, other errors pass.
pub(crate) fn or_fault<T>(faults: &mut Vec<String>, f: impl FnOnce() -> Result<T, Error>) -> Result<Option<T>, Error> {
    match f() {
        Ok(v) => Ok(Some(v)),
        Err(e) => match key_fault(&e) {
            Some(fault) => {
                tracing::error!(fault = %fault, "retention: skipped what a damaged key seals");
                faults.push(fault);
                Ok(None)
            }
            None => Err(e),
        },
    }
}

/// The earliest of `t` and what `slot` holds.
pub(crate) fn earliest(slot: &mut Option<Timestamp>, t: Timestamp) {
    *slot = Some(slot.map_or(t, |s| s.min(t)));
}

#[cfg(test)]
mod tests;
