//! A tenant's rating rules ([`crate::billing::Rating`]), sealed with the
//! tenant's key: removing the tenant removes them. The operator sets the
//! wholesale table (what the reseller pays); the tenant's admin sets only
//! the retail table (what its customers pay), the wholesale one kept.

use super::{Directory, Scope};
use crate::Error;
use crate::billing::Rating;
use crate::billing::{Closure, Level};
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

    /// The closure of `tenant`'s `month` at `level`, if it is closed.
    pub fn closure_get(&self, tenant: &TenantId, level: Level, month: &str) -> Result<Option<Closure>, Error> {
        self.tree().get_sealed::<Closure>(&layout::closure(tenant, level.as_str(), month))
    }

    /// Every closed month of `tenant` at `level`, in the order they were closed.
    pub fn closures(&self, tenant: &TenantId, level: Level) -> Result<Vec<Closure>, Error> {
        let mut out = Vec::new();
        for k in self.tree().keys_with_prefix(&layout::closures(tenant))? {
            if let Some(c) = self.tree().get_sealed::<Closure>(&k)?
                && c.level == level
            {
                out.push(c);
            }
        }
        out.sort_by(|a, b| a.watermark.cmp(&b.watermark));
        Ok(out)
    }

    /// Records `c`; refused when its month is closed already.
    pub fn closure_add(&self, c: &Closure) -> Result<(), Error> {
        let _g = self.lock();
        let key = layout::closure(&c.tenant, c.level.as_str(), &c.month);
        if self.tree().contains(&key)? {
            return Err(Error::Conflict(format!("{} {} of {} is closed already", c.level.as_str(), c.month, c.tenant)));
        }
        let mut b = self.tree().batch();
        b.put_sealed(&key, &tenant_key(&c.tenant)?, c)?;
        self.tree().apply(b)
    }
}
