//! Domain types that validate when they are parsed.
//!
//! A value of one of these types is known good: an [`E164`] is a valid
//! international number, an [`EmailAddress`] a syntactically valid address
//! with a lower-cased domain, a [`TenantId`] a slug. Errors say what is wrong
//! in words a customer or a sysadmin understands.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a text is not a phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a valid fax number: {reason}")]
pub struct NumberError {
    /// What was given.
    pub input: String,
    /// Why it was refused.
    pub reason: String,
}

/// A country, by its ISO 3166-1 alpha-2 code (`DK`, `DE`, `US`...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Country(phonenumber::country::Id);

impl Country {
    /// The two-letter code.
    pub fn code(&self) -> &str {
        self.0.as_ref()
    }
}

impl FromStr for Country {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let up = s.trim().to_ascii_uppercase();
        if up.len() == 2
            && let Ok(id) = phonenumber::country::Id::from_str(&up)
        {
            return Ok(Country(id));
        }
        Err(format!("{s:?} is not a country code: use ISO 3166-1 alpha-2 such as DK, DE, SE, GB or US"))
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Country {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A phone number in E.164 form, `+` and up to 15 digits (ITU-T E.164 §6).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(String);

impl E164 {
    /// Loads the numbering plan (libphonenumber's metadata, read on first
    /// use) now: at start, rather than in the first call or mail after it.
    /// In a debug build that first use takes about a second, long enough for
    /// a caller to repeat its INVITE.
    pub fn load_numbering_plan() {
        let _ = &*phonenumber::metadata::DATABASE;
        let _ = E164::parse("+4533221100", None);
    }

    /// The number a SIP URI's user part names (`+4533221100` or
    /// `4533221100`), if it is one.
    pub fn from_sip_user(user: &str) -> Option<E164> {
        let u = user.trim();
        let candidate = if u.starts_with('+') { u.to_owned() } else { format!("+{u}") };
        E164::parse(&candidate, None).ok()
    }

    /// Parses an international number (`+45 33 22 11 00`, `0049 30 1234567`
    /// only with a default country that dials `00` abroad) or, with
    /// `default_country`, a national one (`33 22 11 00` with DK). Spaces,
    /// dots, dashes, slashes and parentheses are tolerated.
    pub fn parse(input: &str, default_country: Option<Country>) -> Result<Self, NumberError> {
        let fail = |reason: &str| NumberError { input: input.to_owned(), reason: reason.to_owned() };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(fail("it is empty"));
        }
        let mut digits = 0usize;
        for (i, c) in trimmed.char_indices() {
            match c {
                '0'..='9' => digits += 1,
                '+' if i == 0 => {}
                '+' => return Err(fail("'+' may only stand first")),
                ' ' | '.' | '-' | '/' | '(' | ')' => {}
                c if c.is_alphabetic() => return Err(fail("it contains letters")),
                c => return Err(fail(&format!("it contains {c:?}, which is not part of a phone number"))),
            }
        }
        if digits < 3 {
            return Err(fail("it has too few digits"));
        }
        let international = trimmed.starts_with('+');
        if digits > 17 || (international && digits > 15) {
            return Err(fail("it has too many digits (E.164 allows at most 15)"));
        }
        if !international && default_country.is_none() {
            return Err(fail("it has no country code: write it as +<country code><number>"));
        }
        let country = default_country.map(|c| c.0);
        let parsed = phonenumber::parse(country, trimmed).map_err(|e| {
            use phonenumber::ParseError as P;
            fail(match e {
                P::InvalidCountryCode => "its country code does not exist",
                P::TooShortAfterIdd | P::TooShortNsn => "it is too short",
                P::TooLong => "it is too long",
                _ => "it is not a phone number",
            })
        })?;
        if !parsed.is_valid() {
            let region = parsed
                .country()
                .id()
                .map(|id| id.as_ref().to_owned())
                .unwrap_or_else(|| format!("+{}", parsed.code().value()));
            return Err(fail(&format!("it is not a number in use in {region} (wrong length or number range)")));
        }
        Ok(E164(parsed.format().mode(phonenumber::Mode::E164).to_string()))
    }

    /// The country the number belongs to, when the numbering plan says.
    pub fn region(&self) -> Option<Country> {
        phonenumber::parse(None, &self.0).ok()?.country().id().map(Country)
    }

    /// True for premium-rate and shared-cost numbers (the caller pays
    /// more than for an ordinary call).
    pub fn is_premium(&self) -> bool {
        use phonenumber::Type;
        phonenumber::parse(None, &self.0).is_ok_and(|n| {
            matches!(n.number_type(&phonenumber::metadata::DATABASE), Type::PremiumRate | Type::SharedCost)
        })
    }

    /// Accepts a string already in E.164 form without checking the number
    /// plan. Only for values this program wrote itself.
    pub fn new_unchecked(s: impl Into<String>) -> Self {
        E164(s.into())
    }

    /// The number as `+<digits>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without the `+`.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for E164 {
    type Err = NumberError;
    fn from_str(s: &str) -> Result<Self, NumberError> {
        E164::parse(s, None)
    }
}

impl Serialize for E164 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for E164 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        E164::parse(&s, None).map_err(serde::de::Error::custom)
    }
}

/// Why a text is not an e-mail address or a mail domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a valid {what}: {reason}")]
pub struct AddressError {
    /// What was given.
    pub input: String,
    /// "e-mail address" or "mail domain".
    pub what: &'static str,
    /// Why it was refused.
    pub reason: String,
}

/// A mail domain (`fax.example.net`), lower-cased.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Domain(String);

impl Domain {
    /// The domain as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Domain {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, AddressError> {
        let fail = |reason: &str| AddressError { input: s.to_owned(), what: "mail domain", reason: reason.to_owned() };
        let d = s.trim().trim_end_matches('.').to_ascii_lowercase();
        if d.is_empty() {
            return Err(fail("it is empty"));
        }
        if d.len() > 253 {
            return Err(fail("it is longer than 253 characters"));
        }
        if !d.contains('.') {
            return Err(fail("it has no dot"));
        }
        for label in d.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(fail("each label must have 1 to 63 characters"));
            }
            if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(fail("use letters, digits, '-' and '.' only (IDNs in their xn-- form)"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(fail("a label must not start or end with '-'"));
            }
        }
        Ok(Domain(d))
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Domain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// An e-mail address, `local@domain`, with the domain lower-cased.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// The part before the `@`.
    pub fn user(&self) -> &str {
        self.0.rsplit_once('@').map(|(u, _)| u).unwrap_or("")
    }

    /// The part after the `@`.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for EmailAddress {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, AddressError> {
        let fail = |reason: String| AddressError { input: s.to_owned(), what: "e-mail address", reason };
        let t = s.trim();
        let Some((user, domain)) = t.rsplit_once('@') else {
            return Err(fail("it has no '@'".into()));
        };
        if user.is_empty() {
            return Err(fail("nothing stands before the '@'".into()));
        }
        let domain: Domain = domain.parse().map_err(|e: AddressError| fail(format!("its domain: {}", e.reason)))?;
        let joined = format!("{user}@{domain}");
        if !email_address::EmailAddress::is_valid(&joined) {
            return Err(fail("its local part is not valid (RFC 5322)".into()));
        }
        Ok(EmailAddress(joined))
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A tenant (reseller), named by a slug the operator chooses: 1 to 32 of
/// `a-z`, `0-9` and `-`, starting with a letter.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TenantId(String);

impl TenantId {
    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TenantId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = (1..=32).contains(&s.len())
            && s.as_bytes()[0].is_ascii_lowercase()
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(TenantId(s.to_owned()))
        } else {
            Err(format!("{s:?} is not a tenant id: use 1 to 32 characters of a-z, 0-9 and '-', starting with a letter"))
        }
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $ctor:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A fresh id.
            pub fn generate() -> Self {
                $name(uuid::Uuid::$ctor())
            }

            /// The id as text, without dashes, behind its prefix.
            pub fn to_text(&self) -> String {
                format!(concat!($prefix, "{}"), self.0.simple())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                s.strip_prefix($prefix)
                    .and_then(|hex| (hex.len() == 32).then_some(hex))
                    .and_then(|hex| uuid::Uuid::try_parse(hex).ok())
                    .map($name)
                    .ok_or_else(|| format!(concat!("{:?} is not a valid id: expected ", $prefix, " and 32 hex digits"), s))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_text())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_text())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

random_id!(
    /// An account (a reseller's customer): random, so that it says nothing of whom it names.
    AccountId, "acc-", new_v4
);
random_id!(
    /// A job (one fax to send or one fax received), ordered by creation time.
    JobId, "job-", now_v7
);

#[cfg(test)]
mod tests {
    use super::*;

    fn dk() -> Option<Country> {
        Some("DK".parse().unwrap())
    }

    fn ok(input: &str, country: &str) -> String {
        let c = if country.is_empty() { None } else { Some(country.parse().unwrap()) };
        match E164::parse(input, c) {
            Ok(n) => n.to_string(),
            Err(e) => panic!("{input} with {country}: {e}"),
        }
    }

    #[test]
    fn danish_numbers() {
        assert_eq!(ok("33 22 11 00", "DK"), "+4533221100");
        assert_eq!(ok("33221100", "DK"), "+4533221100");
        assert_eq!(ok("+45 33 22 11 00", ""), "+4533221100");
        assert_eq!(ok("0045 33.22.11.00", "DK"), "+4533221100");
        assert_eq!(ok("+45-33-22-11-00", "SE"), "+4533221100");
    }

    #[test]
    fn german_numbers() {
        assert_eq!(ok("0049 30 1234567", "DK"), "+49301234567");
        assert_eq!(ok("030 1234567", "DE"), "+49301234567");
        assert_eq!(ok("(030) 123 456-7", "DE"), "+49301234567");
        assert_eq!(ok("+49 89 12345678", ""), "+498912345678");
    }

    #[test]
    fn swedish_numbers() {
        assert_eq!(ok("08-123 456 78", "SE"), "+46812345678");
        assert_eq!(ok("+46 8 123 456 78", ""), "+46812345678");
        assert_eq!(ok("00 46 8 123 456 78", "DK"), "+46812345678");
    }

    #[test]
    fn uk_numbers() {
        assert_eq!(ok("020 7946 0018", "GB"), "+442079460018");
        assert_eq!(ok("+44 (0)20 7946 0018", ""), "+442079460018");
        assert_eq!(ok("0161 496 0000", "GB"), "+441614960000");
    }

    #[test]
    fn us_numbers() {
        assert_eq!(ok("(212) 555-0100", "US"), "+12125550100");
        assert_eq!(ok("212.555.0100", "US"), "+12125550100");
        assert_eq!(ok("+1 212 555 0100", "DK"), "+12125550100");
        assert_eq!(ok("011 45 33 22 11 00", "US"), "+4533221100");
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            ("hello", "letters"),
            ("33 22 11 00", "no country code"),
            ("+45 33 22 11 00 99 88 77 66 55", "too many digits"),
            ("12", "too few digits"),
            ("33#221100", "'#'"),
            ("33+221100", "'+' may only stand first"),
            ("+999 1234567", "country code"),
            ("1234", "not a number in use"),
        ];
        for (input, why) in cases {
            let err = E164::parse(input, if input == "33 22 11 00" { None } else { dk() }).unwrap_err();
            assert!(err.to_string().contains(why), "{input:?}: {err} (wanted {why:?})");
        }
    }

    #[test]
    fn addresses() {
        let a: EmailAddress = " Jens@Example.DK ".parse().unwrap();
        assert_eq!(a.as_str(), "Jens@example.dk");
        assert_eq!(a.user(), "Jens");
        assert_eq!(a.domain(), "example.dk");
        for bad in ["", "no-at", "@example.dk", "a@", "a@nodot", "a b@example.dk", "a@exa mple.dk", "a@-x.dk"] {
            let e = bad.parse::<EmailAddress>().unwrap_err();
            assert!(e.to_string().contains("not a valid e-mail address"), "{bad}: {e}");
        }
        assert!("fax.reseller.dk".parse::<Domain>().is_ok());
        assert!("fax_reseller".parse::<Domain>().is_err());
    }

    #[test]
    fn ids() {
        let a = AccountId::generate();
        assert_eq!(a.to_string().parse::<AccountId>().unwrap(), a);
        assert!("acc-xyz".parse::<AccountId>().is_err());
        assert!("job-0123".parse::<JobId>().is_err());
        assert!("acme".parse::<TenantId>().is_ok());
        assert!("Acme".parse::<TenantId>().is_err());
        assert!("1acme".parse::<TenantId>().is_err());
        assert!("".parse::<TenantId>().is_err());
    }
}
