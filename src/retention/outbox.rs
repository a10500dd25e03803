//! The outbox class: an outgoing message (a report, a received fax) lives
//! until the relay accepts it (then [`crate::mail::outbox`] removes it and
//! destroys its key). One given up on (a 5xx reply, or 5 days without
//! success) is kept `retention.outbox_failed` (default 7 days) for the
//! operator to see why, then erased with its key. The markers that keep a
//! report from being mailed twice (a keyed hash and a time) go after
//! `retention.report_markers` (default 30 days). A record that cannot be
//! read any more (its key is gone) is due at once.

use faxgate_retention::KeyId;
use faxgate_retention::audit::CategoryResult;
use jiff::Timestamp;

use super::audit::{CategoryStatus, Findings};
use super::policy::{Policy, after};
use super::{Class, Hold, Retention, earliest, or_fault};
use crate::Error;
use crate::mail::outbox::{OutRecord, OutState};
use crate::store::layout::outbox as layout;
use crate::store::{Store, TreeName};
use crate::types::JobId;

/// The key of one outgoing message.
pub fn message_key(id: &JobId) -> Result<KeyId, Error> {
    Ok(KeyId::new(format!("job-out-{}", id.to_text()))?)
}

/// What an outgoing message's key is for: the message, with no end while
/// it is tried (it is destroyed when the relay accepts the message).
pub(super) fn describe(id: &KeyId) -> Option<faxgate_retention::vault::KeyMeta> {
    let owner = id.as_str().strip_prefix("job-out-")?;
    Some(faxgate_retention::vault::KeyMeta { class: "outbox".into(), owner: owner.into(), deadline: None })
}

/// A record of the outbox with a retention deadline.
#[derive(Clone, Debug)]
pub struct OutboxDeadline {
    key: Vec<u8>,
    message_key: Option<KeyId>,
    /// `message` or `report marker`.
    pub what: &'static str,
    /// When it failed or was set (none: unreadable).
    pub since: Option<Timestamp>,
    /// When it is to be erased.
    pub due: Timestamp,
}

/// When each record of the outbox that has a retention deadline is due.
/// Messages still being tried have none: they are given up on after
/// [`crate::mail::outbox::EXPIRY`].
pub fn deadlines(store: &Store, policy: &Policy) -> Result<Vec<OutboxDeadline>, Error> {
    let tree = store.tree(TreeName::Outbox)?;
    let mut out = Vec::new();
    for k in tree.keys_with_prefix(layout::MESSAGES)? {
        let r = match tree.get_sealed::<OutRecord>(&k) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(Error::Crypto(_)) => {
                out.push(OutboxDeadline {
                    key: k,
                    message_key: None,
                    what: "message",
                    since: None,
                    due: Timestamp::MIN,
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        if r.state != OutState::Failed {
            continue;
        }
        out.push(OutboxDeadline {
            key: k,
            message_key: Some(message_key(&r.id)?),
            what: "message",
            since: Some(r.next_attempt),
            due: after(r.next_attempt, policy.outbox_failed),
        });
    }
    for k in tree.keys_with_prefix(layout::ONCES)? {
        let at = tree
            .get_plain(&k)?
            .and_then(|v| String::from_utf8_lossy(&v).parse::<i64>().ok())
            .and_then(|ms| Timestamp::from_millisecond(ms).ok());
        let due = at.map_or(Timestamp::MIN, |t| after(t, policy.report_markers));
        out.push(OutboxDeadline { key: k, message_key: None, what: "report marker", since: at, due });
    }
    Ok(out)
}

/// Moves each failed message's key deadline to when it failed plus
/// `outbox_failed`; returns the faults met.
fn move_deadlines(store: &Store, policy: &Policy) -> Result<Vec<String>, Error> {
    let mut faults = Vec::new();
    for d in deadlines(store, policy)? {
        if let Some(kid) = &d.message_key {
            or_fault(&mut faults, || store.vault().set_deadline(kid, Some(d.due)).map_err(Error::from))?;
        }
    }
    Ok(faults)
}

/// Erases what is due at `now`: messages whose key's own deadline has
/// passed (key first), report markers past theirs, and the records of
/// messages whose key an erasure cut short had destroyed.
pub fn sweep(store: &Store, policy: &Policy, now: Timestamp) -> Result<CategoryResult, Error> {
    let tree = store.tree(TreeName::Outbox)?;
    let vault = store.vault();
    let mut out = CategoryResult { faults: move_deadlines(store, policy)?, ..Default::default() };
    for k in vault.list()? {
        let Some(id) = k.id.as_str().strip_prefix("job-out-").and_then(|i| i.parse::<JobId>().ok()) else { continue };
        if k.meta.is_none() {
            out.faults.push(format!("key {} is damaged: {}", k.id, k.damage.as_deref().unwrap_or("")));
            continue;
        }
        match k.meta.as_ref().and_then(|m| m.deadline) {
            Some(d) if d <= now => {
                vault.destroy(&k.id)?;
                out.keys_destroyed.push(k.id.to_string());
                let mut b = tree.batch();
                b.remove(&layout::message(&id));
                tree.apply(b)?;
                vault.clear_tombstone(&k.id)?;
                out.erased += 1;
            }
            Some(d) => earliest(&mut out.next_due, d),
            None => {}
        }
    }
    for kid in vault.tombstones()? {
        if let Some(id) = kid.as_str().strip_prefix("job-out-").and_then(|i| i.parse::<JobId>().ok()) {
            let mut b = tree.batch();
            b.remove(&layout::message(&id));
            tree.apply(b)?;
            vault.clear_tombstone(&kid)?;
            out.keys_found_destroyed.push(kid.to_string());
        }
    }
    let mut b = tree.batch();
    for d in deadlines(store, policy)? {
        if d.what != "report marker" {
            if let Some(s) = d.since {
                earliest(&mut out.oldest_remaining, s);
            }
            continue;
        }
        if d.due > now {
            earliest(&mut out.next_due, d.due);
            continue;
        }
        b.remove(&d.key);
        out.erased += 1;
    }
    tree.apply(b)?;
    Ok(out)
}

/// The class.
#[derive(Debug)]
pub(crate) struct OutboxClass;

impl Class for OutboxClass {
    fn name(&self) -> &'static str {
        "outbox"
    }

    fn move_deadlines(&self, r: &Retention, _now: Timestamp, _holds: &[Hold]) -> Result<Vec<String>, Error> {
        move_deadlines(&r.store, &r.policy)
    }

    fn sweep(&self, r: &Retention, now: Timestamp, _holds: &[Hold], _erase: bool) -> Result<CategoryResult, Error> {
        sweep(&r.store, &r.policy, now)
    }

    fn audit(&self, r: &Retention, _now: Timestamp, _holds: &[Hold], f: &mut Findings) -> Result<(), Error> {
        for d in deadlines(&r.store, &r.policy)? {
            f.checked.outbox += 1;
            if f.overdue(d.due) {
                match d.since {
                    Some(t) => f.problems.push(format!("an outbox {} of {t} was due for erasure at {}", d.what, d.due)),
                    None => f.problems.push(format!("an unreadable outbox {} remains", d.what)),
                }
            }
        }
        Ok(())
    }

    fn status(&self, r: &Retention, _now: Timestamp) -> Result<Option<CategoryStatus>, Error> {
        let outbox = deadlines(&r.store, &r.policy)?;
        Ok(Some(CategoryStatus {
            category: self.name().into(),
            items: outbox.len(),
            oldest: outbox.iter().filter_map(|d| d.since).min(),
            next_due: outbox.iter().map(|d| d.due).min(),
        }))
    }
}
