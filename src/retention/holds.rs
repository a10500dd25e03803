//! Legal holds: data under a case is kept past its period until the hold
//! ends. The classes ask `held_cdr` and `held_mail`; the hold class
//! itself removes holds that have ended (they name numbers).

use faxgate_retention::KeyId;
use faxgate_retention::audit::CategoryResult;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::audit::{CategoryStatus, Findings};
use super::{Class, Retention, earliest};
use crate::Error;
use crate::cdr::Cdr;
use crate::gateway::FaxJob;
use crate::store::layout::holds as layout;
use crate::store::{Store, Tree, TreeName};
use crate::types::{AccountId, E164};

/// What a hold covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldTarget {
    /// Every CDR with this calling or called number, and the account owning it.
    Number(E164),
    /// The account's data and its CDRs.
    Account(AccountId),
}

/// A legal hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Its id.
    pub id: String,
    /// What it covers.
    pub target: HoldTarget,
    /// The case reference.
    pub case: String,
    /// When it ends.
    pub until: Timestamp,
    /// When it was placed.
    pub created: Timestamp,
}

/// The holds, sealed with an install-wide key (they name numbers).
#[derive(Clone, Debug)]
pub struct Holds {
    tree: Tree,
}

/// The key the holds are sealed with.
fn key_id() -> KeyId {
    KeyId::new("legal-holds").expect("valid key id")
}

/// Whether a hold keeps this CDR: one on its calling or called number, or on its account.
pub(crate) fn held_cdr(c: &Cdr, holds: &[Hold]) -> bool {
    holds.iter().any(|h| match &h.target {
        HoldTarget::Number(n) => c.calling.as_ref() == Some(n) || c.called.as_ref() == Some(n),
        HoldTarget::Account(a) => c.account.as_ref() == Some(a),
    })
}

/// Whether a hold keeps the documents of a mail faxed by these jobs.
pub(crate) fn held_mail(jobs: &[FaxJob], holds: &[Hold]) -> bool {
    holds.iter().any(|h| match &h.target {
        HoldTarget::Account(a) => jobs.iter().any(|j| &j.account == a),
        HoldTarget::Number(n) => jobs.iter().any(|j| &j.to == n || j.caller.as_ref() == Some(n)),
    })
}

/// The earliest end of the holds that keep something.
pub(crate) fn hold_end(holds: &[Hold]) -> Option<Timestamp> {
    holds.iter().map(|h| h.until).min()
}

impl Holds {
    /// The holds in `store`.
    pub fn open(store: &Store) -> Result<Self, Error> {
        Ok(Holds { tree: store.tree(TreeName::Holds)? })
    }

    /// Places a hold.
    pub fn add(&self, target: HoldTarget, case: &str, until: Timestamp, now: Timestamp) -> Result<Hold, Error> {
        if case.trim().is_empty() || case.len() > 200 {
            return Err(Error::Invalid("a hold needs a case reference of 1 to 200 characters".into()));
        }
        if until <= now {
            return Err(Error::Invalid(format!("a hold must end in the future, not at {until}")));
        }
        let h = Hold {
            id: format!("hold-{}", uuid::Uuid::now_v7().simple()),
            target,
            case: case.trim().to_owned(),
            until,
            created: now,
        };
        let mut b = self.tree.batch();
        b.put_sealed(&layout::hold(&h.id), &key_id(), &h)?;
        self.tree.apply(b)?;
        Ok(h)
    }

    /// Every hold, ended ones included.
    pub fn list(&self) -> Result<Vec<Hold>, Error> {
        let mut out = Vec::new();
        for k in self.tree.keys_with_prefix(layout::ALL)? {
            if let Some(h) = self.tree.get_sealed::<Hold>(&k)? {
                out.push(h);
            }
        }
        Ok(out)
    }

    /// The holds in force at `now`.
    pub fn active(&self, now: Timestamp) -> Result<Vec<Hold>, Error> {
        Ok(self.list()?.into_iter().filter(|h| h.until > now).collect())
    }

    /// Lifts a hold.
    pub fn remove(&self, id: &str) -> Result<Hold, Error> {
        let key = layout::hold(id);
        let h: Hold = self.tree.get_sealed(&key)?.ok_or_else(|| Error::NotFound(format!("no hold {id}")))?;
        let mut b = self.tree.batch();
        b.remove(&key);
        self.tree.apply(b)?;
        Ok(h)
    }
}

/// The class of the holds themselves.
#[derive(Debug)]
pub(crate) struct HoldClass;

impl Class for HoldClass {
    fn name(&self) -> &'static str {
        "legal_hold"
    }

    fn move_deadlines(&self, _r: &Retention, _now: Timestamp, _holds: &[Hold]) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }

    fn sweep(&self, r: &Retention, now: Timestamp, _holds: &[Hold], _erase: bool) -> Result<CategoryResult, Error> {
        let mut out = CategoryResult::default();
        for h in r.holds.list()? {
            if h.until <= now {
                r.holds.remove(&h.id)?;
                out.erased += 1;
            } else {
                earliest(&mut out.next_due, h.until);
            }
        }
        Ok(out)
    }

    fn audit(&self, _r: &Retention, _now: Timestamp, _holds: &[Hold], _f: &mut Findings) -> Result<(), Error> {
        Ok(())
    }

    fn status(&self, _r: &Retention, _now: Timestamp) -> Result<Option<CategoryStatus>, Error> {
        Ok(None)
    }
}
