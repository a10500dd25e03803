//! Where an account may send faxes: by default only to numbers of its
//! tenant's own country, and never to premium-rate numbers. An account
//! opens international or premium-rate destinations with an explicit allow
//! (`faxgate account change --allow-international`, `--allow-premium`).

use crate::directory::Account;
use crate::types::{Country, E164};

/// Whether `account` (of a tenant in `home`) may fax `to`; the error says
/// why not, in words for the sender.
pub fn check(account: &Account, home: Country, to: &E164) -> Result<(), String> {
    if to.is_premium() && !account.allow_premium {
        return Err(format!("{to} is a premium-rate number, which this account may not call"));
    }
    if to.region() != Some(home) && !account.allow_international {
        return Err(format!("{to} is outside {home}; this account may send faxes to national numbers only"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::AccountId;

    fn account(international: bool, premium: bool) -> Account {
        Account {
            id: AccountId::generate(),
            tenant: "t".parse().unwrap(),
            name: "a".into(),
            reference: None,
            paper: None,
            created: "2026-01-01T00:00:00Z".parse().unwrap(),
            terminated_at: None,
            allow_international: international,
            allow_premium: premium,
            cover_page: None,
            station_id: None,
        }
    }

    #[test]
    fn national_only_by_default() {
        let dk: Country = "DK".parse().unwrap();
        let a = account(false, false);
        assert!(check(&a, dk, &E164::parse("+4533221100", None).unwrap()).is_ok());
        let e = check(&a, dk, &E164::parse("+493012345678", None).unwrap()).unwrap_err();
        assert!(e.contains("national numbers only"), "{e}");
        assert!(check(&account(true, false), dk, &E164::parse("+493012345678", None).unwrap()).is_ok());
    }

    #[test]
    fn premium_rate_needs_its_own_allow() {
        let de: Country = "DE".parse().unwrap();
        let n = E164::parse("+499001234567", None).unwrap();
        assert!(n.is_premium());
        let e = check(&account(true, false), de, &n).unwrap_err();
        assert!(e.contains("premium-rate"), "{e}");
        assert!(check(&account(true, true), de, &n).is_ok());
    }
}
