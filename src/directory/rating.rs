//! A tenant's rating rules ([`crate::billing::Rating`]), sealed with the
//! tenant's key: removing the tenant removes them. The operator sets the
//! wholesale table (what the reseller pays); the tenant's admin sets only
//! the retail table (what its customers pay), the wholesale one kept.

use super::{Directory, Scope};
use crate::Error;
use crate::billing::Rating;
use crate::retention::account::tenant_key;
use crate::store::layout::directory as layout;
use crate::types::TenantId;

impl Directory {
    /// The rating rules of `tenant`, if it has any.
    pub fn rating_get(&self, scope: &Scope, tenant: &TenantId) -> Result<Option<Rating>, Error> {
        self.tenant_get(scope, tenant)?;
        self.tree().get_sealed::<Rating>(&layout::rating(tenant))
    }

    /// Sets the rating rules of `tenant`. In a tenant's scope, `rules` may
    /// not name a wholesale table: the operator's stays as it is.
    pub fn rating_set(&self, scope: &Scope, tenant: &TenantId, mut rules: Rating) -> Result<Rating, Error> {
        let current = self.rating_get(scope, tenant)?;
        if let Scope::Tenant(_) = scope {
            if rules.wholesale.is_some() {
                return Err(Error::Forbidden(
                    "the wholesale table is the operator's: leave it out, and it stays as it is".into(),
                ));
            }
            rules.wholesale = current.and_then(|c| c.wholesale);
        }
        rules.check()?;
        let _g = self.lock();
        let mut b = self.tree().batch();
        b.put_sealed(&layout::rating(tenant), &tenant_key(tenant)?, &rules)?;
        self.tree().apply(b)?;
        Ok(rules)
    }
}
