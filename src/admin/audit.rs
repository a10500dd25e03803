//! The audit of admin changes: who changed what, on which object, when,
//! and with what result; one entry per admin request that changes
//! something (GDPR requests and disclosures included), whatever it ended in.
//!
//! Entries are appended, never changed, in the `admin-audit` tree under a
//! sequence number (big-endian, so the tree's order is the order of
//! appending, across restarts), each sealed with the key of its month
//! ([`month_key`]). Objects are named by ids; numbers and addresses only by
//! the keyed hash the log shows (`faxgate log hash`). The retention class
//! [`crate::retention::admin_audit`] erases entries `retention.admin_audit`
//! after they were written and destroys a month's key once all of its
//! entries are due.

use std::sync::{Arc, Mutex};

use faxgate_retention::KeyId;
use jiff::{Span, Timestamp};
use serde::{Deserialize, Serialize};

use super::principal::Op;
use crate::Error;
use crate::retention::policy::after;
use crate::store::{Store, Tree, TreeName};
use crate::types::TenantId;

/// The prefix of the month keys' ids.
pub const KEY_PREFIX: &str = "admin-audit-";

/// One entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Its place in the audit, in the order entries were appended.
    pub seq: u64,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Who: `uid 1000 (alice)` for the admin socket, `token <id>` for an API token.
    pub by: String,
    /// The principal it acted as (`operator`, `tenant-admin acme`, ...).
    pub principal: String,
    /// What.
    pub op: Op,
    /// The tenant whose data it concerned, if one.
    pub tenant: Option<TenantId>,
    /// Which objects, by id or keyed hash (`account:acc-…`, `number:n:3fa9c2d1`).
    pub objects: Vec<String>,
    /// `ok`, or the kind of error it ended in.
    pub result: String,
}

/// The key that seals the entries written in `t`'s month (UTC).
pub fn month_key(t: Timestamp) -> Result<KeyId, Error> {
    let (y, m) = crate::store::layout::cdr::month_of(t);
    Ok(KeyId::new(format!("{KEY_PREFIX}{y:04}-{m:02}"))?)
}

/// The first moment after the month of `t` (UTC).
pub fn month_end(t: Timestamp) -> Timestamp {
    let first = t.to_zoned(jiff::tz::TimeZone::UTC).date().first_of_month();
    let next = first.checked_add(Span::new().months(1)).unwrap_or(first);
    next.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).unwrap_or(t)
}

/// The deadline of the key of `t`'s month: when its last entry is due.
pub fn month_key_deadline(t: Timestamp, period: Span) -> Timestamp {
    after(month_end(t), period)
}

/// An entry's store key, and the entry (`None`: its key is gone).
pub(crate) type Stored = (Vec<u8>, Option<AuditEntry>);

/// The audit of a store.
#[derive(Clone, Debug)]
pub struct AdminAudit {
    store: Store,
    tree: Tree,
    period: Span,
    /// The next sequence number; appending holds it.
    next: Arc<Mutex<u64>>,
}

impl AdminAudit {
    /// The audit of `store`, its entries kept for `period`.
    pub fn open(store: &Store, period: Span) -> Result<Self, Error> {
        let tree = store.tree(TreeName::AdminAudit)?;
        let last =
            tree.keys_with_prefix(&[])?.last().and_then(|k| Some(u64::from_be_bytes(k.as_slice().try_into().ok()?)));
        Ok(AdminAudit { store: store.clone(), tree, period, next: Arc::new(Mutex::new(last.map_or(0, |l| l + 1))) })
    }

    /// Appends `entry` (its `seq` is given here); returns the sequence number.
    pub fn append(&self, mut entry: AuditEntry) -> Result<u64, Error> {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        entry.seq = *next;
        let kid = month_key(entry.at)?;
        let vault = self.store.vault();
        vault.get_or_create(&kid)?;
        let deadline = month_key_deadline(entry.at, self.period);
        if vault.meta(&kid)?.and_then(|m| m.deadline).is_none_or(|d| d < deadline) {
            vault.set_deadline(&kid, Some(deadline))?;
        }
        let mut b = self.tree.batch();
        b.put_sealed(&entry.seq.to_be_bytes(), &kid, &entry)?;
        self.tree.apply(b)?;
        *next += 1;
        Ok(entry.seq)
    }

    /// The entries at or after `since` of `tenant` (of every tenant and of
    /// none: `None`), in the order they were appended.
    pub fn list(&self, tenant: Option<&TenantId>, since: Option<Timestamp>) -> Result<Vec<AuditEntry>, Error> {
        Ok(self
            .entries()?
            .into_iter()
            .filter_map(|(_, e)| e)
            .filter(|e| tenant.is_none_or(|t| e.tenant.as_ref() == Some(t)))
            .filter(|e| since.is_none_or(|s| e.at >= s))
            .collect())
    }

    /// Every entry with its store key, in order; `None` for one whose key is gone.
    pub(crate) fn entries(&self) -> Result<Vec<Stored>, Error> {
        let mut out = Vec::new();
        for k in self.tree.keys_with_prefix(&[])? {
            match self.tree.get_sealed::<AuditEntry>(&k) {
                Ok(Some(e)) => out.push((k, Some(e))),
                Ok(None) => {}
                Err(Error::Crypto(faxgate_retention::Error::KeyDestroyed(_))) => out.push((k, None)),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Removes the entries under `keys`.
    pub(crate) fn remove(&self, keys: &[Vec<u8>]) -> Result<(), Error> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut b = self.tree.batch();
        for k in keys {
            b.remove(k);
        }
        self.tree.apply(b)
    }

    /// How long entries are kept.
    pub fn period(&self) -> Span {
        self.period
    }
}
