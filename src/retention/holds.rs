//! Legal holds: data under a case is kept past its period until the hold ends.

use faxgate_retention::KeyId;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::store::{Store, Tree};
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

fn key_id() -> KeyId {
    KeyId::new("legal-holds").expect("valid key id")
}

impl Holds {
    /// The holds in `store`.
    pub fn open(store: &Store) -> Result<Self, Error> {
        Ok(Holds { tree: store.tree("holds")? })
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
        b.put_sealed(h.id.as_bytes(), &key_id(), &h)?;
        self.tree.apply(b)?;
        Ok(h)
    }

    /// Every hold, ended ones included.
    pub fn list(&self) -> Result<Vec<Hold>, Error> {
        let mut out = Vec::new();
        for k in self.tree.keys_with_prefix(b"")? {
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
        let h: Hold = self.tree.get_sealed(id.as_bytes())?.ok_or_else(|| Error::NotFound(format!("no hold {id}")))?;
        let mut b = self.tree.batch();
        b.remove(id.as_bytes());
        self.tree.apply(b)?;
        Ok(h)
    }
}
