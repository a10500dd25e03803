//! API tokens: a bearer secret that acts as one [`Principal`] of a tenant
//! or an account.
//!
//! A token reads `fgt_<id>_<secret>`: `id` (8 random bytes, hex) finds its
//! record, `secret` (32 bytes from the OS's random source, hex) proves it.
//! The secret is shown once, when it is made; the record keeps only its
//! SHA-256. A token is tenant data: its record is sealed with its account's
//! key (the tenant's without an account), so that erasing the account or
//! removing the tenant erases it with the rest. An operator token (made only
//! by the operator, and working only with `api.operator_tokens` on) belongs
//! to no tenant; its record is sealed with the installation's
//! `operator-tokens` key.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Directory, Scope};
use crate::Error;
use crate::admin::principal::{Principal, Role};
use crate::retention::account::{account_key, tenant_key};
use crate::store::Batch;
use crate::store::layout::directory as layout;
use crate::types::{AccountId, TenantId};

/// The key operator tokens are sealed with (they belong to no tenant).
fn operator_tokens_key() -> faxgate_retention::KeyId {
    faxgate_retention::KeyId::new("operator-tokens").expect("valid key id")
}

/// The key a token's record is sealed with.
fn token_key(t: &ApiToken) -> Result<faxgate_retention::KeyId, Error> {
    Ok(match (&t.tenant, &t.account) {
        (_, Some(a)) => account_key(a)?,
        (Some(tenant), None) => tenant_key(tenant)?,
        (None, None) => operator_tokens_key(),
    })
}

/// What every token starts with, so that a leaked one is recognised (by
/// secret scanners, in a log).
pub const TOKEN_PREFIX: &str = "fgt_";

/// A token's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Its id (the part of the token before the secret).
    pub id: String,
    /// Its tenant; none for an operator token.
    #[serde(default)]
    pub tenant: Option<TenantId>,
    /// Its account, for the account's roles.
    pub account: Option<AccountId>,
    /// The role it acts with.
    pub role: Role,
    /// A name to tell it by.
    pub name: Option<String>,
    /// When it was made.
    pub created: Timestamp,
    /// When it stops working.
    pub expires: Option<Timestamp>,
    /// When it was revoked.
    pub revoked: Option<Timestamp>,
    /// SHA-256 of the secret, hex. A plain hash (no salt, no slow KDF) is
    /// enough: the secret is 256 random bits, so there is no dictionary to
    /// try and no brute force that a slow hash would make any harder, while
    /// every API request checks one at the cost of a microsecond.
    pub secret_sha256: String,
}

impl ApiToken {
    /// The principal it acts as.
    pub fn principal(&self) -> Result<Principal, Error> {
        Principal::new(self.role, self.tenant.clone(), self.account)
    }

    /// Whether it is revoked or expired at `now`.
    pub fn state(&self, now: Timestamp) -> &'static str {
        match (self.revoked, self.expires) {
            (Some(_), _) => "revoked",
            (None, Some(e)) if e <= now => "expired",
            _ => "active",
        }
    }
}

/// A token just made: its record and the token itself, to show once.
#[derive(Clone, Debug)]
pub struct NewToken {
    /// The record.
    pub record: ApiToken,
    /// `fgt_<id>_<secret>`.
    pub token: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn random_hex(n: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| Error::Invalid(format!("the OS's random source failed: {e}")))?;
    Ok(hex(&buf))
}

fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// The same answer for every token that does not work, so that a caller
/// without the secret learns nothing of which tokens exist.
fn refused() -> Error {
    Error::Forbidden("the API token is not valid".into())
}

impl Directory {
    /// Makes a token for `role` in `tenant` (and `account`, which the
    /// account's roles need), valid until `expires`.
    pub fn token_create(
        &self,
        tenant: Option<&TenantId>,
        account: Option<&AccountId>,
        role: Role,
        name: Option<String>,
        expires: Option<Timestamp>,
    ) -> Result<NewToken, Error> {
        let now = self.now();
        let principal = Principal::new(role, tenant.cloned(), account.copied())?;
        if let Some(n) = &name {
            super::check_text("token name", n, 200)?;
        }
        if expires.is_some_and(|e| e <= now) {
            return Err(Error::Invalid("the token's expiry is not in the future".into()));
        }
        let key = match (tenant, principal.account()) {
            (Some(t), Some(a)) => {
                self.account_get(&Scope::Tenant(t.clone()), a)?;
                account_key(a)?
            }
            (Some(t), None) => {
                self.tenant_get(&Scope::Tenant(t.clone()), t)?;
                tenant_key(t)?
            }
            (None, _) => operator_tokens_key(),
        };
        let (id, secret) = (random_hex(8)?, random_hex(32)?);
        let record = ApiToken {
            id: id.clone(),
            tenant: tenant.cloned(),
            account: account.copied(),
            role,
            name,
            created: now,
            expires,
            revoked: None,
            secret_sha256: digest(&secret),
        };
        let _g = self.lock();
        let main = layout::token(tenant, account, &id);
        let mut b = self.tree().batch();
        b.put_sealed(&main, &key, &record)?;
        b.put_plain(&layout::token_index(&id), &main);
        self.tree().apply(b)?;
        Ok(NewToken { record, token: format!("{TOKEN_PREFIX}{id}_{secret}") })
    }

    /// A token's record by its id.
    pub fn token_get(&self, id: &str) -> Result<Option<ApiToken>, Error> {
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let Some(main) = self.tree().get_plain(&layout::token_index(id))? else { return Ok(None) };
        match self.tree().get_sealed::<ApiToken>(&main) {
            // Its account was erased, its tenant removed: it is gone.
            Err(Error::Crypto(faxgate_retention::Error::KeyDestroyed(_))) => Ok(None),
            other => other,
        }
    }

    /// The tokens of `tenant` (every tenant's: `None`), or of one account.
    pub fn token_list(&self, tenant: Option<&TenantId>, account: Option<&AccountId>) -> Result<Vec<ApiToken>, Error> {
        let prefix = match tenant {
            Some(t) => layout::tokens(t, account),
            None => layout::TOKENS.to_vec(),
        };
        let mut out = Vec::new();
        for k in self.tree().keys_with_prefix(&prefix)? {
            if let Some(t) = self.listed::<ApiToken>(&k)?
                && account.is_none_or(|a| t.account.as_ref() == Some(a))
            {
                out.push(t);
            }
        }
        out.sort_by_key(|t| t.created);
        Ok(out)
    }

    /// Revokes a token: it stops working at once, and stays listed as revoked.
    pub fn token_revoke(&self, id: &str) -> Result<ApiToken, Error> {
        let _g = self.lock();
        let mut t = self.token_get(id)?.ok_or_else(|| Error::NotFound(format!("no token {id}")))?;
        if t.revoked.is_none() {
            t.revoked = Some(self.now());
            let key = token_key(&t)?;
            let mut b = self.tree().batch();
            b.put_sealed(&layout::token(t.tenant.as_ref(), t.account.as_ref(), &t.id), &key, &t)?;
            self.tree().apply(b)?;
        }
        Ok(t)
    }

    /// The principal a token acts as, at the directory's now: refused when
    /// it is malformed, unknown, revoked, expired, or its secret is wrong.
    pub fn authenticate(&self, token: &str) -> Result<(ApiToken, Principal), Error> {
        let rest = token.trim().strip_prefix(TOKEN_PREFIX).ok_or_else(refused)?;
        let (id, secret) = rest.split_once('_').ok_or_else(refused)?;
        let t = self.token_get(id)?.ok_or_else(refused)?;
        let (want, got) = (t.secret_sha256.as_bytes(), digest(secret));
        // Compared in constant time, though a hash leaks little by timing.
        let differ =
            want.len() != got.len() || want.iter().zip(got.as_bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0;
        if differ {
            return Err(refused());
        }
        match t.state(self.now()) {
            "active" => {}
            state => return Err(Error::Forbidden(format!("the API token {} is {state}", t.id))),
        }
        let p = t.principal()?;
        Ok((t, p))
    }

    /// Adds to `b` the removal of `tenant`'s tokens (only `account`'s, with one).
    pub(super) fn remove_tokens(
        &self,
        b: &mut Batch<'_>,
        tenant: &TenantId,
        account: Option<&AccountId>,
    ) -> Result<(), Error> {
        for k in self.tree().keys_with_prefix(&layout::tokens(tenant, account))? {
            if let Some(id) = layout::token_id_of(&k) {
                b.remove(&layout::token_index(&String::from_utf8_lossy(id)));
            }
            b.remove(&k);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::FakeClock;
    use crate::directory::{Branding, Language, Paper, Tenant};

    fn setup() -> (tempfile::TempDir, Directory, FakeClock, AccountId) {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let store = crate::store::Store::open(&data, &data.join("keys")).unwrap();
        let clock = FakeClock::new("2026-03-01T10:00:00Z".parse().unwrap());
        let dir = Directory::open(&store, Arc::new(clock.clone())).unwrap();
        let t = Tenant {
            id: "acme".parse().unwrap(),
            name: "Acme".into(),
            branding: Branding {
                display_name: "Acme Fax".into(),
                from_address: "fax@acme.dk".parse().unwrap(),
                language: Language::Da,
            },
            default_country: "DK".parse().unwrap(),
            fax_domains: vec!["fax.acme.dk".parse().unwrap()],
            paper: Paper::A4,
            time_zone: None,
            header_template: None,
            station_id: None,
        };
        dir.tenant_add(&Scope::Operator, t).unwrap();
        let a = dir.account_add(&Scope::Operator, &"acme".parse().unwrap(), "Hansen", None, None).unwrap();
        (tmp, dir, clock, a.id)
    }

    #[test]
    fn tokens_authenticate_until_they_expire_or_are_revoked() {
        let (_tmp, dir, clock, acc) = setup();
        let acme: TenantId = "acme".parse().unwrap();
        let expires: Timestamp = "2026-04-01T00:00:00Z".parse().unwrap();
        let made = dir
            .token_create(Some(&acme), Some(&acc), Role::AccountUser, Some("scanner".into()), Some(expires))
            .unwrap();
        assert!(made.token.starts_with("fgt_") && made.token.len() == 4 + 16 + 1 + 64, "{}", made.token);
        let secret = made.token.rsplit('_').next().unwrap();
        assert!(!made.record.secret_sha256.contains(secret), "only the hash is kept");
        let (_, p) = dir.authenticate(&made.token).unwrap();
        assert_eq!(p, Principal::AccountUser { tenant: acme.clone(), account: acc });

        // A wrong secret, an unknown id, a malformed token: the same refusal.
        let wrong = format!("{}{}", &made.token[..made.token.len() - 1], "0");
        let wrong = if wrong == made.token { format!("{}1", &made.token[..made.token.len() - 1]) } else { wrong };
        for bad in [wrong.as_str(), "fgt_0011223344556677_00", "nonsense", "fgt_", ""] {
            assert_eq!(dir.authenticate(bad).unwrap_err().to_string(), refused().to_string(), "{bad}");
        }

        clock.set(expires);
        assert!(dir.authenticate(&made.token).unwrap_err().to_string().contains("expired"));

        let admin = dir.token_create(Some(&acme), None, Role::TenantAdmin, None, None).unwrap();
        assert_eq!(dir.authenticate(&admin.token).unwrap().1, Principal::TenantAdmin { tenant: acme.clone() });
        let revoked = dir.token_revoke(&admin.record.id).unwrap();
        assert!(revoked.revoked.is_some());
        assert!(dir.authenticate(&admin.token).unwrap_err().to_string().contains("revoked"));
        assert_eq!(dir.token_list(Some(&acme), None).unwrap().len(), 2);
        assert_eq!(dir.token_list(Some(&acme), Some(&acc)).unwrap().len(), 1);

        // Roles need what they act on.
        assert!(dir.token_create(Some(&acme), None, Role::AccountAdmin, None, None).is_err());
        assert!(dir.token_create(Some(&acme), Some(&acc), Role::TenantAdmin, None, None).is_err());
        let past = Some("2026-01-01T00:00:00Z".parse().unwrap());
        assert!(dir.token_create(Some(&acme), None, Role::TenantAdmin, None, past).is_err());
    }

    #[test]
    fn an_operator_token_belongs_to_no_tenant() {
        let (_tmp, dir, _clock, acc) = setup();
        let acme: TenantId = "acme".parse().unwrap();
        let op = dir.token_create(None, None, Role::Operator, Some("billing".into()), None).unwrap();
        assert_eq!(op.record.tenant, None);
        assert_eq!(dir.authenticate(&op.token).unwrap().1, Principal::Operator);
        // Not among a tenant's tokens; among all.
        dir.token_create(Some(&acme), None, Role::TenantAdmin, None, None).unwrap();
        assert!(dir.token_list(Some(&acme), None).unwrap().iter().all(|t| t.tenant.is_some()));
        assert!(dir.token_list(None, None).unwrap().contains(&op.record));
        // The operator has no tenant or account.
        assert!(dir.token_create(Some(&acme), None, Role::Operator, None, None).is_err());
        assert!(dir.token_create(None, Some(&acc), Role::Operator, None, None).is_err());
        assert!(dir.token_create(None, None, Role::TenantAdmin, None, None).is_err());
        // Removing a tenant leaves it; revoking ends it.
        dir.erase_account(&acc).unwrap();
        dir.tenant_remove(&Scope::Operator, &acme).unwrap();
        assert_eq!(dir.authenticate(&op.token).unwrap().1, Principal::Operator);
        dir.token_revoke(&op.record.id).unwrap();
        assert!(dir.authenticate(&op.token).unwrap_err().to_string().contains("revoked"));
    }

    #[test]
    fn an_erased_account_takes_its_tokens_with_it() {
        let (_tmp, dir, _clock, acc) = setup();
        let acme: TenantId = "acme".parse().unwrap();
        let made = dir.token_create(Some(&acme), Some(&acc), Role::AccountAdmin, None, None).unwrap();
        let tenant_token = dir.token_create(Some(&acme), None, Role::TenantAdmin, None, None).unwrap();
        dir.erase_account(&acc).unwrap();
        assert!(dir.authenticate(&made.token).is_err());
        assert!(dir.token_get(&made.record.id).unwrap().is_none());
        assert_eq!(dir.token_list(Some(&acme), None).unwrap(), vec![tenant_token.record.clone()]);
        dir.tenant_remove(&Scope::Operator, &acme).unwrap();
        assert!(dir.authenticate(&tenant_token.token).is_err());
        assert!(dir.token_list(None, None).unwrap().is_empty());
    }
}
