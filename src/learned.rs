//! What calls to a destination needed, learned per tenant: a destination
//! that took audio (T.38 refused), ECM off or a rate below 14,400 bit/s is
//! called that way from the start next time, for `fax.learn_days` after it
//! was learned. Then a call at full capability tries again and learns anew.
//!
//! In: a call's [`Needed`] with what it was started with ([`Learning::record`]);
//! out: the [`Learned`] entry a call starts with ([`Learning::get`]), which
//! [`Learned::apply`]s to its settings. An entry is keyed by a keyed hash of
//! tenant and number ([`crate::store::layout::learned`]) and sealed with the
//! key of the month it was learned in ([`month_key`]); the retention class
//! [`crate::retention::learned`] erases it when it expires and destroys the
//! month's key once everything learned in that month has expired.

use faxgate_retention::KeyId;
use faxgate_t38::FaxSettings;
use faxgate_t38::sip::{CallReport, Needed};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::store::layout::learned as layout;
use crate::store::{Store, Tree, TreeName};
use crate::types::{E164, TenantId};

/// What calls to one destination of one tenant needed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learned {
    /// The tenant whose calls learned it.
    pub tenant: TenantId,
    /// The destination.
    pub number: E164,
    /// G.711 audio: the destination refused T.38.
    pub audio: bool,
    /// No error correction mode.
    pub ecm_off: bool,
    /// The rate it went at, below 14,400 bit/s.
    pub rate: Option<u32>,
    /// When it was learned.
    pub learned: Timestamp,
    /// When it is forgotten (`learned` plus `fax.learn_days` at the time).
    pub expires: Timestamp,
}

impl Learned {
    /// What it says, compactly, as the CDR notes it: `audio ecm-off 9600`.
    pub fn note(&self) -> String {
        let mut parts = Vec::new();
        if self.audio {
            parts.push("audio".to_owned());
        }
        if self.ecm_off {
            parts.push("ecm-off".to_owned());
        }
        if let Some(r) = self.rate {
            parts.push(r.to_string());
        }
        parts.join(" ")
    }

    /// `settings` as a call to this destination starts: ECM off, and V.17
    /// (9,600 bit/s and below) or V.29 too (4,800 and below) not offered
    /// when it went that slowly; a modem is kept when it is the last one.
    /// Returns whether the call starts in audio without asking for T.38.
    /// A rate of 12,000 bit/s is V.17's own: the modem stays.
    pub fn apply(&self, settings: &mut FaxSettings) -> bool {
        if self.ecm_off {
            settings.ecm = false;
        }
        if let Some(r) = self.rate {
            let m = &mut settings.modems;
            if r <= 9_600 && (m.v29 || m.v27ter) {
                m.v17 = false;
            }
            if r <= 4_800 && m.v27ter {
                m.v29 = false;
            }
        }
        self.audio
    }

    fn needed(&self) -> Needed {
        Needed { audio: self.audio, ecm_off: self.ecm_off, lower_rate: self.rate }
    }
}

/// What a call that got through needed, as [`CallReport::needed`] says,
/// knowing what it `used`: a call that started in audio never tried T.38,
/// so it still needs audio unless the peer itself switched to T.38.
pub fn needed_after(report: &CallReport, used: Option<&Learned>) -> Needed {
    let mut n = report.needed();
    if used.is_some_and(|u| u.audio) && !report.t38 {
        n.audio = true;
    }
    n
}

/// The key that seals what was learned in the month of `t` (UTC).
pub fn month_key(t: Timestamp) -> Result<KeyId, Error> {
    let (y, m) = crate::store::layout::cdr::month_of(t);
    Ok(KeyId::new(format!("{KEY_PREFIX}{y:04}-{m:02}"))?)
}

/// The prefix of the month keys' ids.
pub const KEY_PREFIX: &str = "learned-";

/// The last moment anything learned in `t`'s month with `days` may be
/// kept: the month's end plus `days`. The month's key carries it.
pub fn month_key_deadline(t: Timestamp, days: u32) -> Timestamp {
    let utc = t.to_zoned(jiff::tz::TimeZone::UTC);
    let first = utc.date().first_of_month();
    let next = first.checked_add(jiff::Span::new().months(1)).unwrap_or(first);
    let end = next.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).unwrap_or(t);
    end + days_span(days)
}

fn days_span(days: u32) -> SignedDuration {
    SignedDuration::from_hours(24 * i64::from(days))
}

/// An entry's store key, and what it holds (`None`: unreadable, its key is gone).
pub(crate) type Entry = (Vec<u8>, Option<Learned>);

/// The learned entries of a store.
#[derive(Clone, Debug)]
pub struct Learning {
    store: Store,
    tree: Tree,
}

impl Learning {
    /// The entries of `store`.
    pub fn open(store: &Store) -> Result<Self, Error> {
        Ok(Learning { store: store.clone(), tree: store.tree(TreeName::Learned)? })
    }

    /// What calls of `tenant` to `number` start with at `now`, when
    /// learning is on (`days` > 0). An entry past its expiry, or older than
    /// `days` now say, is erased here and not used.
    pub fn get(&self, tenant: &TenantId, number: &E164, now: Timestamp, days: u32) -> Result<Option<Learned>, Error> {
        if days == 0 {
            return Ok(None);
        }
        let k = layout::entry(&self.store, tenant, number);
        let l = match self.tree.get_sealed::<Learned>(&k) {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(None),
            // Its month's key is gone: it has expired.
            Err(Error::Crypto(faxgate_retention::Error::KeyDestroyed(_))) => {
                self.remove_key(&k)?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if now >= l.expires.min(l.learned + days_span(days)) {
            self.remove_key(&k)?;
            return Ok(None);
        }
        Ok(Some(l))
    }

    /// Learns from a call of `tenant` to `number` that got through at `now`
    /// with `needed` ([`needed_after`]), having started with `used` (what was learned before,
    /// if the call started with it). A call at full capability forgets the
    /// destination; a need other than the one it started with is learned
    /// (replacing it, from now); the same need again leaves the entry as it
    /// was, so that it still expires `days` after it was first learned and
    /// the next call then tries full capability. With `days` 0 nothing is
    /// learned. Returns the entry as it now stands.
    pub fn record(
        &self,
        tenant: &TenantId,
        number: &E164,
        needed: Needed,
        used: Option<&Learned>,
        now: Timestamp,
        days: u32,
    ) -> Result<Option<Learned>, Error> {
        if days == 0 {
            return Ok(None);
        }
        let k = layout::entry(&self.store, tenant, number);
        if !needed.audio && !needed.ecm_off && needed.lower_rate.is_none() {
            self.remove_key(&k)?;
            return Ok(None);
        }
        if let Some(u) = used.filter(|u| u.needed() == needed) {
            return Ok(Some(u.clone()));
        }
        let l = Learned {
            tenant: tenant.clone(),
            number: number.clone(),
            audio: needed.audio,
            ecm_off: needed.ecm_off,
            rate: needed.lower_rate,
            learned: now,
            expires: now + days_span(days),
        };
        let kid = month_key(now)?;
        let vault = self.store.vault();
        vault.get_or_create(&kid)?;
        let deadline = month_key_deadline(now, days);
        if vault.meta(&kid)?.and_then(|m| m.deadline).is_none_or(|d| d < deadline) {
            vault.set_deadline(&kid, Some(deadline))?;
        }
        let mut b = self.tree.batch();
        b.put_sealed(&k, &kid, &l)?;
        self.tree.apply(b)?;
        Ok(Some(l))
    }

    /// What is known of `number` in `tenant` at `now`, read only (for an
    /// export).
    pub fn find(&self, tenant: &TenantId, number: &E164, now: Timestamp) -> Result<Option<Learned>, Error> {
        match self.tree.get_sealed::<Learned>(&layout::entry(&self.store, tenant, number)) {
            Ok(l) => Ok(l.filter(|l| l.expires > now)),
            Err(Error::Crypto(faxgate_retention::Error::KeyDestroyed(_))) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Forgets `number` in `tenant`; whether there was an entry.
    pub fn forget(&self, tenant: &TenantId, number: &E164) -> Result<bool, Error> {
        let k = layout::entry(&self.store, tenant, number);
        let was = self.tree.contains(&k)?;
        self.remove_key(&k)?;
        Ok(was)
    }

    /// The entries of `tenant` (or of every tenant) not expired at `now`.
    pub fn list(&self, tenant: Option<&TenantId>, now: Timestamp) -> Result<Vec<Learned>, Error> {
        let mut out = Vec::new();
        for k in self.tree.keys_with_prefix(&layout::tenant(tenant))? {
            match self.tree.get_sealed::<Learned>(&k) {
                Ok(Some(l)) if l.expires > now => out.push(l),
                Ok(_) | Err(Error::Crypto(faxgate_retention::Error::KeyDestroyed(_))) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| (&a.tenant, a.learned).cmp(&(&b.tenant, b.learned)));
        Ok(out)
    }

    /// Every entry's key with what it holds: `None` when it cannot be read
    /// any more (its month's key is gone). For the retention class.
    pub(crate) fn entries(&self) -> Result<Vec<Entry>, Error> {
        let mut out = Vec::new();
        for k in self.tree.keys_with_prefix(&[])? {
            match self.tree.get_sealed::<Learned>(&k) {
                Ok(Some(l)) => out.push((k, Some(l))),
                Ok(None) => {}
                Err(Error::Crypto(faxgate_retention::Error::KeyDestroyed(_))) => out.push((k, None)),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    pub(crate) fn remove_key(&self, k: &[u8]) -> Result<(), Error> {
        if self.tree.contains(k)? {
            let mut b = self.tree.batch();
            b.remove(k);
            self.tree.apply(b)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
