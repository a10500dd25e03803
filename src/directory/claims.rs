//! Claims: a fax domain or a From: address that a tenant's admin asks for
//! takes effect only once it is proven theirs. Until then it is a claim,
//! listed with the tenant as pending, and it routes nothing: mail to a
//! pending fax domain is not taken, and mails keep the From: address in
//! effect.
//!
//! The proof is a TXT record `faxgate-verify=<token>` at
//! `_faxgate-challenge.<domain>` (the address's domain for a From:
//! address), looked up through the configured resolvers by whoever calls
//! [`Directory::claim_verified`] (the DNS is asked outside the directory's
//! lock; this module only judges what it answered), or the operator's
//! word ([`Directory::claim_approve`]). The operator's own changes are
//! trusted and take effect at once; removing a domain does too. A From:
//! address at one of the tenant's fax domains needs no proof of its own:
//! the domain was proven.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Directory, Scope, Tenant};
use crate::Error;
use crate::retention::account::tenant_key;
use crate::store::Batch;
use crate::store::layout::directory as layout;
use crate::types::{Domain, EmailAddress, TenantId};

/// The label the proof is published under: `_faxgate-challenge.<domain>`.
pub const CHALLENGE_LABEL: &str = "_faxgate-challenge";

/// What the proof's TXT record says before the token.
pub const TXT_PREFIX: &str = "faxgate-verify=";

/// What is claimed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Claimed {
    /// A fax domain (`<number>@<domain>`).
    FaxDomain(Domain),
    /// The From: address of the tenant's mails.
    FromAddress(EmailAddress),
}

impl Claimed {
    /// What it is called (in paths and on the command line): the domain or the address.
    pub fn name(&self) -> &str {
        match self {
            Claimed::FaxDomain(d) => d.as_str(),
            Claimed::FromAddress(a) => a.as_str(),
        }
    }

    /// The domain whose DNS holds the proof.
    pub fn domain(&self) -> &str {
        match self {
            Claimed::FaxDomain(d) => d.as_str(),
            Claimed::FromAddress(a) => a.domain(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Claimed::FaxDomain(_) => "fax_domain",
            Claimed::FromAddress(_) => "from_address",
        }
    }

    fn describe(&self) -> String {
        match self {
            Claimed::FaxDomain(d) => format!("fax domain {d}"),
            Claimed::FromAddress(a) => format!("From: address {a}"),
        }
    }
}

/// A claim waiting for its proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// What is claimed.
    pub claimed: Claimed,
    /// The token the proof must carry (16 random bytes, hex).
    pub token: String,
    /// When it was made.
    pub created: Timestamp,
}

/// A claim as listed: what to publish to prove it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClaimView {
    /// `fax_domain` or `from_address`.
    pub kind: String,
    /// The domain or the address.
    pub claim: String,
    /// The name of the TXT record to publish.
    pub record: String,
    /// The text it must hold.
    pub txt: String,
    /// When it was made.
    #[schema(value_type = String, format = DateTime)]
    pub since: Timestamp,
}

impl Claim {
    fn new(claimed: Claimed, now: Timestamp) -> Result<Claim, Error> {
        Ok(Claim { claimed, token: super::tokens::random_hex(16)?, created: now })
    }

    /// The name of the TXT record that proves it.
    pub fn record(&self) -> String {
        format!("{CHALLENGE_LABEL}.{}", self.claimed.domain())
    }

    /// The text that record must hold.
    pub fn txt(&self) -> String {
        format!("{TXT_PREFIX}{}", self.token)
    }

    /// Whether `name` (a domain or an address, as given) names it.
    pub fn is(&self, name: &str) -> bool {
        self.claimed.name().eq_ignore_ascii_case(name.trim().trim_end_matches('.'))
    }

    /// As listed.
    pub fn view(&self) -> ClaimView {
        ClaimView {
            kind: self.claimed.kind().into(),
            claim: self.claimed.name().into(),
            record: self.record(),
            txt: self.txt(),
            since: self.created,
        }
    }

    fn is_domain(&self, d: &Domain) -> bool {
        matches!(&self.claimed, Claimed::FaxDomain(x) if x == d)
    }

    fn is_from(&self) -> bool {
        matches!(self.claimed, Claimed::FromAddress(_))
    }
}

/// How a change to a tenant's fax domains and From: address is made in
/// `scope`: the operator's at once, a tenant admin's as claims.
pub(super) struct ClaimChange<'a> {
    pub(super) add_domains: Vec<Domain>,
    pub(super) remove_domains: &'a [Domain],
    pub(super) from_address: Option<EmailAddress>,
}

impl Directory {
    pub(super) fn load_claims(&self, id: &TenantId) -> Result<Vec<Claim>, Error> {
        Ok(self.tree().get_sealed(&layout::claims(id))?.unwrap_or_default())
    }

    pub(super) fn put_claims(&self, b: &mut Batch<'_>, id: &TenantId, claims: &[Claim]) -> Result<(), Error> {
        match claims.is_empty() {
            true => b.remove(&layout::claims(id)),
            false => b.put_sealed(&layout::claims(id), &tenant_key(id)?, &claims)?,
        }
        Ok(())
    }

    /// The claims of a tenant the scope sees, oldest first.
    pub fn claim_list(&self, scope: &Scope, tenant: &TenantId) -> Result<Vec<Claim>, Error> {
        self.tenant_get(scope, tenant)?;
        self.load_claims(tenant)
    }

    /// One claim of a tenant the scope sees, by the domain or address it claims.
    pub fn claim_get(&self, scope: &Scope, tenant: &TenantId, name: &str) -> Result<Claim, Error> {
        self.claim_list(scope, tenant)?
            .into_iter()
            .find(|c| c.is(name))
            .ok_or_else(|| Error::NotFound(format!("tenant {tenant} has no pending claim {}", name.trim())))
    }

    /// Applies a change's domains and From: address to `t` and `claims`:
    /// the operator's at once (a claim for the same thing is then done
    /// with), a tenant admin's additions as claims, refused at once when
    /// another tenant holds the domain. Removals take effect at once,
    /// whether the domain is in effect or claimed.
    pub(super) fn change_claimed(
        &self,
        scope: &Scope,
        t: &mut Tenant,
        claims: &mut Vec<Claim>,
        ch: ClaimChange<'_>,
    ) -> Result<(), Error> {
        for d in ch.remove_domains {
            if !t.fax_domains.contains(d) && !claims.iter().any(|c| c.is_domain(d)) {
                return Err(Error::NotFound(format!("tenant {} has no fax domain {d}", t.id)));
            }
        }
        t.fax_domains.retain(|d| !ch.remove_domains.contains(d));
        claims.retain(|c| !ch.remove_domains.iter().any(|d| c.is_domain(d)));
        let now = self.now();
        for d in ch.add_domains {
            if t.fax_domains.contains(&d) {
                continue;
            }
            match scope {
                Scope::Operator => {
                    claims.retain(|c| !c.is_domain(&d));
                    t.fax_domains.push(d);
                }
                Scope::Tenant(_) if claims.iter().any(|c| c.is_domain(&d)) => {}
                Scope::Tenant(_) => {
                    if self.tenant_for_domain(&d)?.is_some_and(|owner| owner.id != t.id) {
                        return Err(Error::Conflict(format!("fax domain {d} cannot be added")));
                    }
                    claims.push(Claim::new(Claimed::FaxDomain(d), now)?);
                }
            }
        }
        t.fax_domains.sort();
        t.fax_domains.dedup();
        if let Some(a) = ch.from_address {
            let proven = *scope == Scope::Operator
                || a == t.branding.from_address
                || t.fax_domains.iter().any(|d| d.as_str() == a.domain());
            let same = |c: &Claim| matches!(&c.claimed, Claimed::FromAddress(x) if *x == a);
            if proven {
                // In effect now. The operator's change leaves a claim for
                // another address to be proven; the tenant's admin has then
                // no other address waiting.
                match scope {
                    Scope::Operator => claims.retain(|c| !same(c)),
                    Scope::Tenant(_) => claims.retain(|c| !c.is_from()),
                }
                t.branding.from_address = a;
            } else if !claims.iter().any(same) {
                claims.retain(|c| !c.is_from());
                claims.push(Claim::new(Claimed::FromAddress(a), now)?);
            }
        }
        Ok(())
    }

    /// Grants a claim whose proof the DNS was asked for: `found` is the
    /// text of the TXT records at its [`Claim::record`]. Refused, saying
    /// which record to publish, when none of them is its [`Claim::txt`].
    pub fn claim_verified(
        &self,
        scope: &Scope,
        tenant: &TenantId,
        name: &str,
        found: &[String],
    ) -> Result<Tenant, Error> {
        let _g = self.lock();
        let c = self.claim_get(scope, tenant, name)?;
        let want = c.txt();
        if !found.iter().any(|f| f.trim() == want) {
            let seen = match found {
                [] => "there is none".to_owned(),
                f => format!("it holds {}", f.iter().take(3).map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ")),
            };
            return Err(Error::Conflict(format!(
                "{} is not verified yet: publish a TXT record {} with the text {want} ({seen}), then verify again",
                c.claimed.describe(),
                c.record()
            )));
        }
        self.grant(scope, tenant, c)
    }

    /// Grants a claim without DNS: the operator's word (operator only).
    pub fn claim_approve(&self, scope: &Scope, tenant: &TenantId, name: &str) -> Result<Tenant, Error> {
        if *scope != Scope::Operator {
            return Err(Error::Forbidden("only the operator may approve a claim".into()));
        }
        let _g = self.lock();
        let c = self.claim_get(scope, tenant, name)?;
        self.grant(scope, tenant, c)
    }

    /// The claim takes effect and is done with, in one batch; a domain
    /// another tenant holds by now is refused (named to the operator only).
    fn grant(&self, scope: &Scope, tenant: &TenantId, c: Claim) -> Result<Tenant, Error> {
        let old = self.tenant_get(scope, tenant)?;
        let mut t = old.clone();
        match c.claimed {
            Claimed::FaxDomain(d) => {
                t.fax_domains.push(d);
                t.fax_domains.sort();
                t.fax_domains.dedup();
            }
            Claimed::FromAddress(a) => t.branding.from_address = a,
        }
        let mut claims = self.load_claims(tenant)?;
        claims.retain(|x| x.token != c.token);
        self.save_tenant(scope, &t, Some(&old), Some(&claims))?;
        Ok(t)
    }
}
