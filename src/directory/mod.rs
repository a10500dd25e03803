//! The directory: tenants, accounts, fax numbers, routes and senders, the
//! data that says who may do what.
//!
//! # Rules it keeps
//! - A number belongs to one account; a sender (an address or a domain) to
//!   one account; a fax domain to one tenant.
//! - Every call takes a [`Scope`]. A tenant scope sees and changes only that
//!   tenant's data: another tenant's account, number or sender is reported
//!   as not found, exactly as if it did not exist. Only the operator adds or
//!   removes tenants.
//! - Nothing personal is stored in plaintext: tenant records are sealed with
//!   the tenant's key, everything of an account (the account, its numbers,
//!   routes and senders) with the account's key, so destroying that key
//!   erases it all. Lookup keys derived from numbers, addresses, domains and
//!   references are blinded.
//! - Every change is one atomic batch, flushed before the call returns.
//!   Changes are serialised by one lock, so a check (is this number free?)
//!   and the write that depends on it cannot interleave with another change.
//!
//! # Layout of the `directory` tree
//! ```text
//! t\0<tenant>                      sealed Tenant (tenant key)
//! tc\0<tenant>                     sealed Vec<Claim>, claims waiting for proof (tenant key)
//! d\0<blind(domain)>               tenant id            (fax domain index)
//! a\0<tenant>\0<account>           sealed Account (account key)
//! ai\0<account>                    tenant id            (account index)
//! ar\0<blind(tenant, reference)>   account id           (reference index)
//! n\0<blind(number)>               sealed FaxNumber (account key)
//! an\0<account>\0<blind(number)>   ""                   (numbers of an account)
//! s\0<blind(pattern)>              sealed Sender (account key)
//! as\0<account>\0<blind(pattern)>  ""                   (senders of an account)
//! tk\0<tenant>\0<account>\0<id>    sealed ApiToken (account key, or tenant key without an account)
//! ti\0<id>                         the token's record key (token index)
//! wh\0<tenant>\0<account>\0<id>    sealed Webhook (account key, or tenant key without an account)
//! wi\0<id>                         the webhook's record key (webhook index)
//! ```

mod apply;
mod claims;
mod model;
mod rating;
mod tokens;
pub mod webhooks;

use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use apply::{ApplyProblem, ApplyReport, DirectoryFile};
pub use claims::{CHALLENGE_LABEL, Claim, ClaimView, Claimed, TXT_PREFIX};
pub use model::*;
pub use tokens::{ApiToken, NewToken, TOKEN_PREFIX};
pub use webhooks::{Webhook, WebhookView};

use crate::Error;
use crate::clock::Clock;
use crate::retention::account::{account_key, tenant_key};
use crate::store::layout::directory::{self as layout, Owned};
use crate::store::{Batch, Store, Tree, TreeName};
use crate::types::{AccountId, Country, Domain, E164, EmailAddress, TenantId};

/// A new tenant, or a tenant's full description.
pub type NewTenant = Tenant;

/// A change to a tenant: fields left `None` stay as they are.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantChange {
    /// New name.
    pub name: Option<String>,
    /// New display name.
    pub display_name: Option<String>,
    /// New From: address.
    pub from_address: Option<EmailAddress>,
    /// New language.
    pub language: Option<Language>,
    /// New default country.
    pub default_country: Option<Country>,
    /// Paper size.
    pub paper: Option<Paper>,
    /// Time zone (IANA name); `Clear`: UTC.
    #[serde(default)]
    pub time_zone: Patch<String>,
    /// Page header template (empty: no header); `Clear`: `[fax] header`.
    #[serde(default)]
    pub header_template: Patch<String>,
    /// Station id; `Clear`: `[fax] ident`.
    #[serde(default)]
    pub station_id: Patch<String>,
    /// Fax domains to add.
    #[serde(default)]
    pub add_domains: Vec<Domain>,
    /// Fax domains to remove.
    #[serde(default)]
    pub remove_domains: Vec<Domain>,
}

/// How a change treats an optional field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Patch<T> {
    /// Leave it as it is.
    #[default]
    Keep,
    /// Clear it.
    Clear,
    /// Set it.
    Set(T),
}

impl<T> Patch<T> {
    /// `Set(v)` for `Some(v)`, `Keep` for `None`.
    pub fn set_if(v: Option<T>) -> Self {
        v.map_or(Patch::Keep, Patch::Set)
    }

    /// The change from `old` to `new`: `Keep` when they are equal.
    pub fn between(old: &Option<T>, new: Option<T>) -> Self
    where
        T: PartialEq,
    {
        match new {
            _ if *old == new => Patch::Keep,
            Some(v) => Patch::Set(v),
            None => Patch::Clear,
        }
    }

    fn apply(self, field: &mut Option<T>) {
        match self {
            Patch::Keep => {}
            Patch::Clear => *field = None,
            Patch::Set(v) => *field = Some(v),
        }
    }
}

/// A change to an account.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountChange {
    /// New name.
    pub name: Option<String>,
    /// New reference.
    #[serde(default)]
    pub reference: Patch<String>,
    /// New paper override.
    #[serde(default)]
    pub paper: Patch<Paper>,
    /// Allow or forbid faxes abroad.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_international: Option<bool>,
    /// Allow or forbid premium-rate numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_premium: Option<bool>,
    /// Cover page on or off (`Set`), or as `[fax] cover_page` says (`Clear`).
    #[serde(default)]
    pub cover_page: Patch<bool>,
    /// Station id; `Clear`: the tenant's.
    #[serde(default)]
    pub station_id: Patch<String>,
}

/// A change to a sender.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SenderChange {
    /// New caller number.
    #[serde(default)]
    pub caller_number: Patch<String>,
    /// New authentication rule.
    pub auth: Option<SenderAuth>,
    /// New rule for the envelope sender after a login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope_from: Option<EnvelopeFrom>,
    /// New SMTP AUTH password (stored only as an argon2id hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// What removing an account erased.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Removed {
    /// Numbers removed.
    pub numbers: usize,
    /// Senders removed.
    pub senders: usize,
}

/// The directory.
#[derive(Debug, Clone)]
pub struct Directory {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    tree: Tree,
    write: Mutex<()>,
    clock: Arc<dyn Clock>,
}

pub(crate) fn check_text(field: &str, value: &str, max: usize) -> Result<(), Error> {
    if value.trim().is_empty() {
        return Err(Error::Invalid(format!("{field} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(Error::Invalid(format!("{field} is longer than {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::Invalid(format!("{field} contains control characters")));
    }
    Ok(())
}

/// Checks a tenant's time zone, page header template and station id, and an
/// account's station id: each must be one the gateway can use.
pub fn check_fax_settings(
    time_zone: Option<&str>,
    header_template: Option<&str>,
    station_id: Option<&str>,
) -> Result<(), Error> {
    use crate::document::header;
    if let Some(z) = time_zone {
        header::time_zone(z).map_err(Error::Invalid)?;
    }
    if let Some(t) = header_template {
        t.parse::<header::Template>().map_err(Error::Invalid)?;
    }
    if let Some(s) = station_id {
        header::check_station_id(s).map_err(Error::Invalid)?;
    }
    Ok(())
}

impl Directory {
    /// The directory in `store`.
    pub fn open(store: &Store, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let tree = store.tree(TreeName::Directory)?;
        Ok(Directory { inner: Arc::new(Inner { store: store.clone(), tree, write: Mutex::new(()), clock }) })
    }

    /// A directory whose changes are held back until [`Directory::commit`]:
    /// a set of changes is checked as a whole (each with every check it
    /// makes alone), then written in one atomic batch, or not at all. No key
    /// is made for a held-back change, and erasures (which destroy keys) are
    /// refused in it.
    pub fn staged(&self) -> Directory {
        let i = &self.inner;
        Directory {
            inner: Arc::new(Inner {
                store: i.store.clone(),
                tree: i.tree.staged(),
                write: Mutex::new(()),
                clock: i.clock.clone(),
            }),
        }
    }

    /// Writes what a [`Directory::staged`] directory held back, in one batch.
    pub fn commit(&self) -> Result<(), Error> {
        self.inner.tree.commit()
    }

    /// A record for a listing: one whose key is damaged is left out (and
    /// logged, naming the key), so that one tenant's or account's damaged
    /// key does not keep the others from being listed.
    fn listed<T: serde::de::DeserializeOwned>(&self, k: &[u8]) -> Result<Option<T>, Error> {
        match self.tree().get_sealed::<T>(k) {
            Err(e @ Error::Crypto(faxgate_retention::Error::DamagedKey { .. })) => {
                tracing::error!(error = %e, "a record left out of a listing: its key is damaged");
                Ok(None)
            }
            other => other,
        }
    }

    fn refuse_if_staged(&self, what: &str) -> Result<(), Error> {
        match self.inner.tree.is_staged() {
            true => Err(Error::Invalid(format!("{what} cannot be part of a set of changes; do it on its own"))),
            false => Ok(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.inner.write.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tree(&self) -> &Tree {
        &self.inner.tree
    }

    /// Now, by the directory's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// The directory's clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    fn visible(scope: &Scope, tenant: &TenantId) -> bool {
        match scope {
            Scope::Operator => true,
            Scope::Tenant(t) => t == tenant,
        }
    }

    // ---- tenants -------------------------------------------------------

    fn load_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, Error> {
        self.tree().get_sealed(&layout::tenant(id))
    }

    /// A tenant the scope may see.
    pub fn tenant_get(&self, scope: &Scope, id: &TenantId) -> Result<Tenant, Error> {
        let not_found = || Error::NotFound(format!("no tenant {id}"));
        if !Self::visible(scope, id) {
            return Err(not_found());
        }
        self.load_tenant(id)?.ok_or_else(not_found)
    }

    /// The tenants the scope may see.
    pub fn tenant_list(&self, scope: &Scope) -> Result<Vec<Tenant>, Error> {
        let mut out = Vec::new();
        for k in self.tree().keys_with_prefix(layout::TENANTS)? {
            if let Some(t) = self.listed::<Tenant>(&k)?
                && Self::visible(scope, &t.id)
            {
                out.push(t);
            }
        }
        Ok(out)
    }

    fn validate_tenant(t: &Tenant) -> Result<(), Error> {
        check_text("name", &t.name, 200)?;
        check_text("display name", &t.branding.display_name, 200)?;
        check_fax_settings(t.time_zone.as_deref(), t.header_template.as_deref(), t.station_id.as_deref())
    }

    fn put_domains(&self, scope: &Scope, b: &mut Batch<'_>, t: &Tenant, old: Option<&Tenant>) -> Result<(), Error> {
        if let Some(old) = old {
            for d in old.fax_domains.iter().filter(|d| !t.fax_domains.contains(d)) {
                b.remove(&layout::domain(&self.inner.store, d));
            }
        }
        for d in &t.fax_domains {
            let k = layout::domain(&self.inner.store, d);
            if let Some(owner) = self.tree().get_plain(&k)?
                && owner != t.id.as_str().as_bytes()
            {
                // Said as it is to the operator only: to a tenant, another
                // tenant's domain is not there.
                return Err(Error::Conflict(match scope {
                    Scope::Operator => {
                        format!("fax domain {d} already belongs to tenant {}", String::from_utf8_lossy(&owner))
                    }
                    Scope::Tenant(_) => format!("fax domain {d} cannot be added"),
                }));
            }
            b.put_plain(&k, t.id.as_str().as_bytes());
        }
        Ok(())
    }

    /// Adds a tenant (operator only).
    pub fn tenant_add(&self, scope: &Scope, t: NewTenant) -> Result<Tenant, Error> {
        if *scope != Scope::Operator {
            return Err(Error::Forbidden("only the operator can add tenants".into()));
        }
        Self::validate_tenant(&t)?;
        let _g = self.lock();
        if self.load_tenant(&t.id)?.is_some() {
            return Err(Error::Conflict(format!("tenant {} already exists", t.id)));
        }
        let mut t = t;
        t.fax_domains.sort();
        t.fax_domains.dedup();
        let mut b = self.tree().batch();
        self.put_domains(scope, &mut b, &t, None)?;
        b.put_sealed(&layout::tenant(&t.id), &tenant_key(&t.id)?, &t)?;
        self.tree().apply(b)?;
        Ok(t)
    }

    /// Changes a tenant. A tenant admin's new fax domains and From:
    /// address become claims (see [`claims`]); the operator's take effect.
    pub fn tenant_change(&self, scope: &Scope, id: &TenantId, ch: TenantChange) -> Result<Tenant, Error> {
        let _g = self.lock();
        let old = self.tenant_get(scope, id)?;
        let mut t = old.clone();
        if let Some(v) = ch.name {
            t.name = v;
        }
        if let Some(v) = ch.display_name {
            t.branding.display_name = v;
        }
        if let Some(v) = ch.language {
            t.branding.language = v;
        }
        if let Some(v) = ch.default_country {
            t.default_country = v;
        }
        if let Some(v) = ch.paper {
            t.paper = v;
        }
        ch.time_zone.apply(&mut t.time_zone);
        ch.header_template.apply(&mut t.header_template);
        ch.station_id.apply(&mut t.station_id);
        let before = self.load_claims(id)?;
        let mut claims = before.clone();
        let change = claims::ClaimChange {
            add_domains: ch.add_domains,
            remove_domains: &ch.remove_domains,
            from_address: ch.from_address,
        };
        self.change_claimed(scope, &mut t, &mut claims, change)?;
        Self::validate_tenant(&t)?;
        self.save_tenant(scope, &t, Some(&old), (claims != before).then_some(claims.as_slice()))?;
        Ok(t)
    }

    fn save_tenant(
        &self,
        scope: &Scope,
        t: &Tenant,
        old: Option<&Tenant>,
        claims: Option<&[Claim]>,
    ) -> Result<(), Error> {
        let mut b = self.tree().batch();
        self.put_domains(scope, &mut b, t, old)?;
        b.put_sealed(&layout::tenant(&t.id), &tenant_key(&t.id)?, t)?;
        if let Some(c) = claims {
            self.put_claims(&mut b, &t.id, c)?;
        }
        self.tree().apply(b)
    }

    /// Removes a tenant that has no accounts left (operator only).
    pub fn tenant_remove(&self, scope: &Scope, id: &TenantId) -> Result<(), Error> {
        if *scope != Scope::Operator {
            return Err(Error::Forbidden("only the operator can remove tenants".into()));
        }
        let _g = self.lock();
        let t = self.tenant_get(scope, id)?;
        let accounts = self.tree().keys_with_prefix(&layout::accounts(Some(id)))?.len();
        if accounts > 0 {
            return Err(Error::Conflict(format!("tenant {id} still has {accounts} account(s): remove them first")));
        }
        self.refuse_if_staged("removing a tenant")?;
        let key = tenant_key(id)?;
        self.inner.store.vault().destroy(&key)?;
        let mut b = self.tree().batch();
        for d in &t.fax_domains {
            b.remove(&layout::domain(&self.inner.store, d));
        }
        b.remove(&layout::tenant(id));
        b.remove(&layout::claims(id));
        self.remove_tokens(&mut b, id, None)?;
        self.remove_webhooks(&mut b, id, None)?;
        b.remove(&layout::rating(id));
        for k in self.tree().keys_with_prefix(&layout::closures(id))? {
            b.remove(&k);
        }
        self.tree().apply(b)?;
        self.inner.store.vault().clear_tombstone(&key)?;
        Ok(())
    }

    /// The tenant whose fax domain `domain` is.
    pub fn tenant_for_domain(&self, domain: &Domain) -> Result<Option<Tenant>, Error> {
        let Some(id) = self.tree().get_plain(&layout::domain(&self.inner.store, domain))? else {
            return Ok(None);
        };
        let id: TenantId = String::from_utf8_lossy(&id).parse().map_err(Error::Invalid)?;
        self.load_tenant(&id)
    }

    // ---- accounts ------------------------------------------------------

    fn reference_key(&self, tenant: &TenantId, reference: &str) -> Vec<u8> {
        layout::reference(&self.inner.store, tenant, reference)
    }

    fn load_account(&self, id: &AccountId) -> Result<Option<Account>, Error> {
        let Some(tenant) = self.tree().get_plain(&layout::account_tenant(id))? else { return Ok(None) };
        let tenant: TenantId = String::from_utf8_lossy(&tenant).parse().map_err(Error::Invalid)?;
        self.tree().get_sealed(&layout::account(&tenant, id))
    }

    /// An account the scope may see.
    pub fn account_get(&self, scope: &Scope, id: &AccountId) -> Result<Account, Error> {
        match self.load_account(id)? {
            Some(a) if Self::visible(scope, &a.tenant) => Ok(a),
            _ => Err(Error::NotFound(format!("no account {id}"))),
        }
    }

    /// The account of a tenant with the reseller's reference `reference`.
    pub fn account_by_reference(
        &self,
        scope: &Scope,
        tenant: &TenantId,
        reference: &str,
    ) -> Result<Option<Account>, Error> {
        if !Self::visible(scope, tenant) {
            return Ok(None);
        }
        let Some(id) = self.tree().get_plain(&self.reference_key(tenant, reference))? else { return Ok(None) };
        let id: AccountId = String::from_utf8_lossy(&id).parse().map_err(Error::Invalid)?;
        self.load_account(&id)
    }

    /// The accounts the scope may see, of one tenant or all.
    pub fn account_list(&self, scope: &Scope, tenant: Option<&TenantId>) -> Result<Vec<Account>, Error> {
        let tenant = match (scope, tenant) {
            (Scope::Tenant(own), Some(t)) if own != t => return Err(Error::NotFound(format!("no tenant {t}"))),
            (Scope::Tenant(own), _) => Some(own),
            (Scope::Operator, t) => t,
        };
        if let Some(t) = tenant {
            self.tenant_get(scope, t)?;
        }
        let prefix = layout::accounts(tenant);
        let mut out = Vec::new();
        for k in self.tree().keys_with_prefix(&prefix)? {
            if let Some(a) = self.listed::<Account>(&k)? {
                out.push(a);
            }
        }
        out.sort_by(|a, b| (&a.tenant, &a.name).cmp(&(&b.tenant, &b.name)));
        Ok(out)
    }

    /// Adds an account to a tenant.
    pub fn account_add(
        &self,
        scope: &Scope,
        tenant: &TenantId,
        name: &str,
        reference: Option<&str>,
        paper: Option<Paper>,
    ) -> Result<Account, Error> {
        check_text("name", name, 200)?;
        if let Some(r) = reference {
            check_text("reference", r, 100)?;
        }
        let _g = self.lock();
        self.tenant_get(scope, tenant)?;
        if let Some(r) = reference
            && self.tree().contains(&self.reference_key(tenant, r))?
        {
            return Err(Error::Conflict(format!("tenant {tenant} already has an account with reference {r:?}")));
        }
        let a = Account {
            id: AccountId::generate(),
            tenant: tenant.clone(),
            name: name.trim().to_owned(),
            reference: reference.map(|r| r.trim().to_owned()),
            paper,
            created: self.now(),
            terminated_at: None,
            allow_international: false,
            allow_premium: false,
            cover_page: None,
            station_id: None,
        };
        self.save_account(&a, None)?;
        Ok(a)
    }

    fn save_account(&self, a: &Account, old: Option<&Account>) -> Result<(), Error> {
        let mut b = self.tree().batch();
        if let Some(old_ref) = old.and_then(|o| o.reference.as_deref())
            && a.reference.as_deref() != Some(old_ref)
        {
            b.remove(&self.reference_key(&a.tenant, old_ref));
        }
        if let Some(r) = &a.reference {
            b.put_plain(&self.reference_key(&a.tenant, r), a.id.to_text().as_bytes());
        }
        b.put_plain(&layout::account_tenant(&a.id), a.tenant.as_str().as_bytes());
        b.put_sealed(&layout::account(&a.tenant, &a.id), &account_key(&a.id)?, a)?;
        self.tree().apply(b)
    }

    /// Changes an account.
    pub fn account_change(&self, scope: &Scope, id: &AccountId, ch: AccountChange) -> Result<Account, Error> {
        let _g = self.lock();
        let old = self.account_get(scope, id)?;
        let mut a = old.clone();
        if let Some(n) = ch.name {
            check_text("name", &n, 200)?;
            a.name = n.trim().to_owned();
        }
        if let Patch::Set(r) = &ch.reference {
            check_text("reference", r, 100)?;
            if old.reference.as_ref() != Some(r) && self.tree().contains(&self.reference_key(&a.tenant, r))? {
                return Err(Error::Conflict(format!(
                    "tenant {} already has an account with reference {r:?}",
                    a.tenant
                )));
            }
        }
        ch.reference.apply(&mut a.reference);
        ch.paper.apply(&mut a.paper);
        if let Some(v) = ch.allow_international {
            a.allow_international = v;
        }
        if let Some(v) = ch.allow_premium {
            a.allow_premium = v;
        }
        ch.cover_page.apply(&mut a.cover_page);
        ch.station_id.apply(&mut a.station_id);
        check_fax_settings(None, None, a.station_id.as_deref())?;
        self.save_account(&a, Some(&old))?;
        Ok(a)
    }

    /// Terminates an account now or at `at`; its data is erased once the
    /// retention period after termination has passed.
    pub fn account_terminate(&self, scope: &Scope, id: &AccountId, at: Option<Timestamp>) -> Result<Account, Error> {
        let _g = self.lock();
        let old = self.account_get(scope, id)?;
        let mut a = old.clone();
        a.terminated_at = Some(at.unwrap_or_else(|| self.now()));
        self.save_account(&a, Some(&old))?;
        Ok(a)
    }

    /// Undoes a termination (before the account's data is erased).
    pub fn account_reactivate(&self, scope: &Scope, id: &AccountId) -> Result<Account, Error> {
        let _g = self.lock();
        let old = self.account_get(scope, id)?;
        let mut a = old.clone();
        a.terminated_at = None;
        self.save_account(&a, Some(&old))?;
        Ok(a)
    }

    /// Removes an account with its numbers and senders now (see [`Directory::erase_account`]).
    pub fn account_remove(&self, scope: &Scope, id: &AccountId) -> Result<Removed, Error> {
        let a = self.account_get(scope, id)?;
        self.erase_account(&a.id)
    }

    /// Erases an account's data without opening it: destroys its key first
    /// (from then on nothing of it can be read), then removes the account,
    /// its numbers and senders and their index entries, then clears the
    /// key's tombstone. Run again after a crash, it finishes the work.
    pub fn erase_account(&self, id: &AccountId) -> Result<Removed, Error> {
        self.refuse_if_staged("erasing an account")?;
        let _g = self.lock();
        let key = account_key(id)?;
        let vault = self.inner.store.vault();
        vault.destroy(&key)?;
        let mut b = self.tree().batch();
        let mut removed = Removed { numbers: 0, senders: 0 };
        for (kind, count) in [(Owned::Numbers, &mut removed.numbers), (Owned::Senders, &mut removed.senders)] {
            for k in self.tree().keys_with_prefix(&kind.index_prefix(id))? {
                if let Some(record) = kind.record_of_index(id, &k) {
                    b.remove(&record);
                }
                b.remove(&k);
                *count += 1;
            }
        }
        let id_text = id.to_text();
        for k in self.tree().keys_with_prefix(layout::REFERENCES)? {
            if self.tree().get_plain(&k)?.is_some_and(|v| v == id_text.as_bytes()) {
                b.remove(&k);
            }
        }
        if let Some(t) = self.tree().get_plain(&layout::account_tenant(id))?
            && let Ok(tenant) = String::from_utf8_lossy(&t).parse::<TenantId>()
        {
            b.remove(&layout::account(&tenant, id));
            self.remove_tokens(&mut b, &tenant, Some(id))?;
            self.remove_webhooks(&mut b, &tenant, Some(id))?;
        }
        b.remove(&layout::account_tenant(id));
        self.tree().apply(b)?;
        vault.clear_tombstone(&key)?;
        Ok(removed)
    }

    // ---- numbers and routes -------------------------------------------

    fn number_keys(&self, account: &AccountId, n: &E164) -> (Vec<u8>, Vec<u8>) {
        layout::number(&self.inner.store, account, n)
    }

    /// Reads a number as a scope writes it: national numbers in a tenant
    /// scope are read with the tenant's default country.
    fn parse_number(&self, scope: &Scope, text: &str) -> Result<E164, Error> {
        let country = match scope {
            Scope::Tenant(t) => self.load_tenant(t)?.map(|t| t.default_country),
            Scope::Operator => None,
        };
        E164::parse(text, country).map_err(|e| Error::Invalid(e.to_string()))
    }

    /// The number record and its account, whoever owns it (for the legs).
    pub fn lookup_number(&self, n: &E164) -> Result<Option<FaxNumber>, Error> {
        self.tree().get_sealed(&layout::number_record(&self.inner.store, n))
    }

    /// A number the scope may see.
    pub fn number_get(&self, scope: &Scope, number: &str) -> Result<FaxNumber, Error> {
        let n = self.parse_number(scope, number)?;
        match self.lookup_number(&n)? {
            Some(r) if Self::visible(scope, &r.tenant) => Ok(r),
            _ => Err(Error::NotFound(format!("no fax number {n}"))),
        }
    }

    fn keys_of(&self, kind: Owned, account: &AccountId) -> Result<Vec<Vec<u8>>, Error> {
        let index = self.tree().keys_with_prefix(&kind.index_prefix(account))?;
        Ok(index.iter().filter_map(|k| kind.record_of_index(account, k)).collect())
    }

    fn accounts_in(
        &self,
        scope: &Scope,
        account: Option<&AccountId>,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<AccountId>, Error> {
        Ok(match account {
            Some(a) => vec![self.account_get(scope, a)?.id],
            None => self.account_list(scope, tenant)?.into_iter().map(|a| a.id).collect(),
        })
    }

    /// The numbers the scope may see, of one account, one tenant or all.
    pub fn number_list(
        &self,
        scope: &Scope,
        account: Option<&AccountId>,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<FaxNumber>, Error> {
        let mut out = Vec::new();
        for a in self.accounts_in(scope, account, tenant)? {
            for k in self.keys_of(Owned::Numbers, &a)? {
                if let Some(n) = self.listed::<FaxNumber>(&k)? {
                    out.push(n);
                }
            }
        }
        out.sort_by(|a, b| a.number.cmp(&b.number));
        Ok(out)
    }

    /// Adds a number to an account, read with the tenant's default country.
    pub fn number_add(
        &self,
        scope: &Scope,
        account: &AccountId,
        number: &str,
        routes: Vec<Route>,
    ) -> Result<FaxNumber, Error> {
        let _g = self.lock();
        let a = self.account_get(scope, account)?;
        let tenant = self.tenant_get(scope, &a.tenant)?;
        let n = E164::parse(number, Some(tenant.default_country)).map_err(|e| Error::Invalid(e.to_string()))?;
        if let Some(existing) = self.lookup_number(&n)? {
            // Another account's number is named to the operator only.
            return Err(Error::Conflict(match scope {
                _ if existing.account == a.id => format!("fax number {n} already belongs to this account"),
                Scope::Operator => format!("fax number {n} already belongs to account {}", existing.account),
                Scope::Tenant(_) => format!("fax number {n} cannot be added"),
            }));
        }
        let mut routes = routes;
        routes.dedup_by(|x, y| x.email == y.email);
        let rec = FaxNumber { number: n, tenant: a.tenant.clone(), account: a.id, routes };
        self.save_number(&rec)?;
        Ok(rec)
    }

    fn save_number(&self, rec: &FaxNumber) -> Result<(), Error> {
        let (main, idx) = self.number_keys(&rec.account, &rec.number);
        let mut b = self.tree().batch();
        b.put_sealed(&main, &account_key(&rec.account)?, rec)?;
        b.put_plain(&idx, b"");
        self.tree().apply(b)
    }

    /// Moves a number to another account (of the same tenant, unless the
    /// operator moves it); its routes go with it.
    pub fn number_move(&self, scope: &Scope, number: &str, to: &AccountId) -> Result<FaxNumber, Error> {
        let _g = self.lock();
        let mut rec = self.number_get(scope, number)?;
        let target = self.account_get(scope, to)?;
        if rec.account == target.id {
            return Ok(rec);
        }
        let (_, old_idx) = self.number_keys(&rec.account, &rec.number);
        let (main, idx) = self.number_keys(&target.id, &rec.number);
        rec.account = target.id;
        rec.tenant = target.tenant;
        let mut b = self.tree().batch();
        b.remove(&old_idx);
        b.put_sealed(&main, &account_key(&rec.account)?, &rec)?;
        b.put_plain(&idx, b"");
        self.tree().apply(b)?;
        Ok(rec)
    }

    /// Removes a number.
    pub fn number_remove(&self, scope: &Scope, number: &str) -> Result<FaxNumber, Error> {
        let _g = self.lock();
        let rec = self.number_get(scope, number)?;
        let (main, idx) = self.number_keys(&rec.account, &rec.number);
        let mut b = self.tree().batch();
        b.remove(&main);
        b.remove(&idx);
        self.tree().apply(b)?;
        Ok(rec)
    }

    /// Adds a route to a number, or changes the format of an existing one.
    pub fn route_set(
        &self,
        scope: &Scope,
        number: &str,
        email: EmailAddress,
        format: AttachmentFormat,
    ) -> Result<FaxNumber, Error> {
        let _g = self.lock();
        let mut rec = self.number_get(scope, number)?;
        match rec.routes.iter_mut().find(|r| r.email == email) {
            Some(r) => r.format = format,
            None => rec.routes.push(Route { email, format }),
        }
        self.save_number(&rec)?;
        Ok(rec)
    }

    /// Removes a route from a number.
    pub fn route_remove(&self, scope: &Scope, number: &str, email: &EmailAddress) -> Result<FaxNumber, Error> {
        let _g = self.lock();
        let mut rec = self.number_get(scope, number)?;
        let before = rec.routes.len();
        rec.routes.retain(|r| &r.email != email);
        if rec.routes.len() == before {
            return Err(Error::NotFound(format!("fax number {} has no route to {email}", rec.number)));
        }
        self.save_number(&rec)?;
        Ok(rec)
    }

    /// Replaces all routes of a number.
    pub fn routes_replace(&self, scope: &Scope, number: &str, routes: Vec<Route>) -> Result<FaxNumber, Error> {
        let _g = self.lock();
        let mut rec = self.number_get(scope, number)?;
        rec.routes = routes;
        self.save_number(&rec)?;
        Ok(rec)
    }

    // ---- senders -------------------------------------------------------

    fn sender_keys(&self, account: &AccountId, p: &SenderPattern) -> (Vec<u8>, Vec<u8>) {
        layout::sender(&self.inner.store, account, &p.canonical())
    }

    fn load_sender(&self, p: &SenderPattern) -> Result<Option<Sender>, Error> {
        self.tree().get_sealed(&layout::sender_record(&self.inner.store, &p.canonical()))
    }

    /// The sender entry covering a mail address: the address itself first,
    /// then its domain (for the mail leg).
    pub fn lookup_sender(&self, address: &EmailAddress) -> Result<Option<Sender>, Error> {
        if let Some(s) = self.load_sender(&SenderPattern::Address(address.clone()))? {
            return Ok(Some(s));
        }
        let domain: Domain =
            address.domain().parse().map_err(|e: crate::types::AddressError| Error::Invalid(e.to_string()))?;
        self.load_sender(&SenderPattern::Domain(domain))
    }

    /// A sender entry the scope may see.
    pub fn sender_get(&self, scope: &Scope, pattern: &SenderPattern) -> Result<Sender, Error> {
        match self.load_sender(pattern)? {
            Some(s) if Self::visible(scope, &s.tenant) => Ok(s),
            _ => Err(Error::NotFound(format!("no sender {pattern}"))),
        }
    }

    /// The sender entries the scope may see, of one account, one tenant or all.
    pub fn sender_list(
        &self,
        scope: &Scope,
        account: Option<&AccountId>,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<Sender>, Error> {
        let mut out = Vec::new();
        for a in self.accounts_in(scope, account, tenant)? {
            for k in self.keys_of(Owned::Senders, &a)? {
                if let Some(s) = self.listed::<Sender>(&k)? {
                    out.push(s);
                }
            }
        }
        out.sort_by_key(|s| s.pattern.to_string());
        Ok(out)
    }

    /// Allows a sender to send faxes for an account.
    pub fn sender_add(
        &self,
        scope: &Scope,
        account: &AccountId,
        pattern: SenderPattern,
        caller_number: Option<&str>,
        auth: SenderAuth,
        envelope_from: EnvelopeFrom,
    ) -> Result<Sender, Error> {
        let _g = self.lock();
        let a = self.account_get(scope, account)?;
        let tenant = self.tenant_get(scope, &a.tenant)?;
        let caller_number = caller_number
            .map(|c| {
                E164::parse(c, Some(tenant.default_country)).map_err(|e| Error::Invalid(format!("caller number: {e}")))
            })
            .transpose()?;
        if let Some(existing) = self.load_sender(&pattern)? {
            return Err(Error::Conflict(match scope {
                _ if existing.account == a.id => format!("sender {pattern} is already allowed for this account"),
                Scope::Operator => format!("sender {pattern} already belongs to account {}", existing.account),
                Scope::Tenant(_) => format!("sender {pattern} cannot be added"),
            }));
        }
        let s = Sender {
            pattern,
            tenant: a.tenant.clone(),
            account: a.id,
            caller_number,
            auth,
            envelope_from,
            password_hash: None,
        };
        self.save_sender(&s)?;
        Ok(s)
    }

    fn save_sender(&self, s: &Sender) -> Result<(), Error> {
        let (main, idx) = self.sender_keys(&s.account, &s.pattern);
        let mut b = self.tree().batch();
        b.put_sealed(&main, &account_key(&s.account)?, s)?;
        b.put_plain(&idx, b"");
        self.tree().apply(b)
    }

    /// Changes a sender entry.
    pub fn sender_change(&self, scope: &Scope, pattern: &SenderPattern, ch: SenderChange) -> Result<Sender, Error> {
        let _g = self.lock();
        let mut s = self.sender_get(scope, pattern)?;
        match ch.caller_number {
            Patch::Keep => {}
            Patch::Clear => s.caller_number = None,
            Patch::Set(c) => {
                let tenant = self.tenant_get(scope, &s.tenant)?;
                let n = E164::parse(&c, Some(tenant.default_country))
                    .map_err(|e| Error::Invalid(format!("caller number: {e}")))?;
                s.caller_number = Some(n);
            }
        }
        if let Some(a) = ch.auth {
            s.auth = a;
        }
        if let Some(e) = ch.envelope_from {
            s.envelope_from = e;
        }
        if s.auth != SenderAuth::SmtpAuth {
            s.password_hash = None;
        }
        if let Some(p) = ch.password {
            if s.auth != SenderAuth::SmtpAuth || !matches!(s.pattern, SenderPattern::Address(_)) {
                return Err(Error::Invalid(
                    "only an address sender with --auth smtp-auth has an SMTP password (its user name is the address)"
                        .into(),
                ));
            }
            s.password_hash = Some(crate::mail::password::hash(&p)?);
        }
        self.save_sender(&s)?;
        Ok(s)
    }

    /// Gives a sender entry another pattern (a rectified address), keeping
    /// everything else, its SMTP password among it; in one batch.
    pub fn sender_rename(&self, scope: &Scope, from: &SenderPattern, to: SenderPattern) -> Result<Sender, Error> {
        let _g = self.lock();
        let mut s = self.sender_get(scope, from)?;
        if self.load_sender(&to)?.is_some() {
            return Err(Error::Conflict(format!("sender {to} cannot be added")));
        }
        let (old_main, old_idx) = self.sender_keys(&s.account, &s.pattern);
        s.pattern = to;
        let (main, idx) = self.sender_keys(&s.account, &s.pattern);
        let mut b = self.tree().batch();
        b.remove(&old_main);
        b.remove(&old_idx);
        b.put_sealed(&main, &account_key(&s.account)?, &s)?;
        b.put_plain(&idx, b"");
        self.tree().apply(b)?;
        Ok(s)
    }

    /// Removes a sender entry.
    pub fn sender_remove(&self, scope: &Scope, pattern: &SenderPattern) -> Result<Sender, Error> {
        let _g = self.lock();
        let s = self.sender_get(scope, pattern)?;
        let (main, idx) = self.sender_keys(&s.account, &s.pattern);
        let mut b = self.tree().batch();
        b.remove(&main);
        b.remove(&idx);
        self.tree().apply(b)?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests;
