//! Fax recipients: `<number>@<fax domain>` and `FAX=<number>@<fax domain>`
//! (RFC 3192 section 3), the number international (`+4533221100`,
//! `004533221100`) or national in the tenant's default country, with
//! spaces (in a quoted local part), dots and dashes tolerated.

use crate::types::{Country, Domain, E164};

/// Why a recipient address is not a fax recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientError {
    /// It has no `@`, or its domain is not a domain.
    Malformed(String),
    /// The local part is not a fax number; the text says why.
    BadNumber(String),
}

/// Splits a forward path into its local part (quotes removed) and domain.
pub fn split(address: &str) -> Result<(String, Domain), RecipientError> {
    let (local, domain) =
        address.rsplit_once('@').ok_or_else(|| RecipientError::Malformed(format!("{address} has no domain")))?;
    let domain: Domain =
        domain.parse().map_err(|e: crate::types::AddressError| RecipientError::Malformed(e.to_string()))?;
    let local = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')).unwrap_or(local);
    Ok((local.to_owned(), domain))
}

/// The fax number a local part names, national numbers read in `country`.
pub fn number(local: &str, country: Country) -> Result<E164, RecipientError> {
    let bad = |reason: String| RecipientError::BadNumber(format!("{local:?} is not a fax number: {reason}"));
    let n = match local.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("FAX=") => &local[4..],
        _ => local,
    };
    if n.contains('/') {
        return Err(bad("sub-addresses and other RFC 3192 parameters (/T33S=...) are not supported".into()));
    }
    E164::parse(n, Some(country)).map_err(|e| bad(e.reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dk() -> Country {
        "DK".parse().unwrap()
    }

    #[test]
    fn forms_of_a_number() {
        for local in [
            "+4533221100",
            "4533221100",
            "FAX=+4533221100",
            "fax=33221100",
            "33221100",
            "33.22.11.00",
            "+45-3322-1100",
            "+45 33 22 11 00",
            "004533221100",
        ] {
            assert_eq!(number(local, dk()).unwrap().as_str(), "+4533221100", "{local}");
        }
        assert_eq!(number("+493012345678", dk()).unwrap().as_str(), "+493012345678");
    }

    #[test]
    fn bad_numbers_say_why() {
        let RecipientError::BadNumber(m) = number("hello", dk()).unwrap_err() else { panic!() };
        assert!(m.contains("letters"), "{m}");
        let RecipientError::BadNumber(m) = number("+45123", dk()).unwrap_err() else { panic!() };
        assert!(m.contains("too short") || m.contains("not a number in use"), "{m}");
        let RecipientError::BadNumber(m) = number("FAX=+4533221100/T33S=12", dk()).unwrap_err() else { panic!() };
        assert!(m.contains("T33S"), "{m}");
    }

    #[test]
    fn split_unquotes() {
        let (l, d) = split("\"+45 33 22 11 00\"@Fax.Example.NET").unwrap();
        assert_eq!(l, "+45 33 22 11 00");
        assert_eq!(d.as_str(), "fax.example.net");
        assert!(matches!(split("nodomain"), Err(RecipientError::Malformed(_))));
    }
}
