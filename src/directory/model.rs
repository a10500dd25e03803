//! The records of the directory.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::types::{AccountId, Country, Domain, E164, EmailAddress, TenantId};

/// Who is asking: the operator sees everything, a tenant only its own data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The operator (the sysadmin's CLI, the daemon itself).
    Operator,
    /// A reseller's admin.
    Tenant(TenantId),
}

/// The language of the mails faxgate sends for a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Danish.
    Da,
    /// English.
    #[default]
    En,
}

/// Paper size of fax pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Paper {
    /// ISO A4, 210 x 297 mm.
    #[default]
    A4,
    /// US Letter, 8.5 x 11 in.
    Letter,
}

/// How a tenant's mails are branded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Branding {
    /// Display name in the From: header and the reports.
    pub display_name: String,
    /// The From: address.
    pub from_address: EmailAddress,
    /// Language of reports and received-fax mails.
    pub language: Language,
}

/// A reseller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tenant {
    /// Its slug.
    pub id: TenantId,
    /// Its name.
    pub name: String,
    /// Branding of the mails sent on its behalf.
    pub branding: Branding,
    /// How its customers' national numbers are read.
    pub default_country: Country,
    /// The mail domains its customers send faxes to (`<number>@<domain>`).
    pub fax_domains: Vec<Domain>,
    /// Paper size of its fax pages, unless an account overrides it.
    pub paper: Paper,
    /// Its time zone (IANA name) for the page header and its mails; unset: UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// The page header of its faxes (see [`crate::document::header`]); unset:
    /// `[fax] header`; empty: none.
    #[serde(default)]
    pub header_template: Option<String>,
    /// The station id its faxes are sent with, unless an account has its
    /// own; unset: `[fax] ident`.
    #[serde(default)]
    pub station_id: Option<String>,
}

impl Tenant {
    /// Its time zone: the one named, else UTC.
    pub fn tz(&self) -> jiff::tz::TimeZone {
        self.time_zone
            .as_deref()
            .and_then(|z| crate::document::header::time_zone(z).ok())
            .unwrap_or(jiff::tz::TimeZone::UTC)
    }
}

/// Whether an account is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    /// Served.
    Active,
    /// Terminated by its reseller; its data is erased after the retention period.
    Terminated,
}

/// A reseller's customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Account {
    /// Random id.
    pub id: AccountId,
    /// Its reseller.
    pub tenant: TenantId,
    /// Its name.
    pub name: String,
    /// The reseller's own reference for it (customer number), unique per tenant.
    pub reference: Option<String>,
    /// Paper size override.
    pub paper: Option<Paper>,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    pub created: Timestamp,
    /// When it was (or will be) terminated.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub terminated_at: Option<Timestamp>,
    /// It may send faxes abroad (default: national numbers only).
    #[serde(default)]
    pub allow_international: bool,
    /// It may send faxes to premium-rate and shared-cost numbers.
    #[serde(default)]
    pub allow_premium: bool,
    /// A cover page in front of its faxes from mail: `None` follows
    /// `[fax] cover_page`; a mail's `X-Fax-Cover` header overrides both.
    #[serde(default)]
    pub cover_page: Option<bool>,
    /// The station id its faxes are sent with (TSI and page header); unset:
    /// its tenant's.
    #[serde(default)]
    pub station_id: Option<String>,
}

impl Account {
    /// Its status at `now`.
    pub fn status(&self, now: Timestamp) -> AccountStatus {
        match self.terminated_at {
            Some(t) if t <= now => AccountStatus::Terminated,
            _ => AccountStatus::Active,
        }
    }
}

/// The attachment format of a received fax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentFormat {
    /// A PDF.
    #[default]
    Pdf,
    /// The received TIFF.
    Tiff,
    /// Both.
    Both,
}

/// Where a received fax is mailed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Route {
    /// The mailbox.
    pub email: EmailAddress,
    /// What is attached.
    pub format: AttachmentFormat,
}

/// A fax number (DID) of an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FaxNumber {
    /// The number.
    pub number: E164,
    /// Its tenant.
    pub tenant: TenantId,
    /// Its account.
    pub account: AccountId,
    /// Where faxes received on it go.
    pub routes: Vec<Route>,
}

/// Which mail senders a sender entry covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SenderPattern {
    /// One address.
    Address(EmailAddress),
    /// Every address of a domain (written `@domain`).
    Domain(Domain),
}

impl SenderPattern {
    /// The canonical text (`user@domain` or `@domain`), used for blinding.
    pub fn canonical(&self) -> String {
        match self {
            SenderPattern::Address(a) => format!("{}@{}", a.user().to_lowercase(), a.domain()),
            SenderPattern::Domain(d) => format!("@{d}"),
        }
    }
}

impl std::str::FromStr for SenderPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        match t.strip_prefix('@') {
            Some(d) => d.parse().map(SenderPattern::Domain).map_err(|e: crate::types::AddressError| e.to_string()),
            None => t.parse().map(SenderPattern::Address).map_err(|e: crate::types::AddressError| e.to_string()),
        }
    }
}

impl std::fmt::Display for SenderPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SenderPattern::Address(a) => write!(f, "{a}"),
            SenderPattern::Domain(d) => write!(f, "@{d}"),
        }
    }
}

impl Serialize for SenderPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SenderPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// How a sender proves it is who it says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SenderAuth {
    /// It must log in with SMTP AUTH.
    SmtpAuth,
    /// Its message must pass DMARC-aligned SPF or DKIM.
    Dmarc,
}

/// Which envelope senders (MAIL FROM) a sender that logs in may use. The
/// failure report of a fax goes to the envelope sender, with the original
/// mail attached: a login must not let anyone have it sent elsewhere.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EnvelopeFrom {
    /// Only its own address, the user name it logs in with.
    #[default]
    Own,
    /// Any address that a sender entry of its account allows (its own, a
    /// colleague's, one of a whole `@domain` entry).
    Account,
}

/// A mail sender allowed to send faxes for an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// The address or domain.
    pub pattern: SenderPattern,
    /// Its tenant.
    pub tenant: TenantId,
    /// Its account.
    pub account: AccountId,
    /// The caller number its faxes are sent as.
    pub caller_number: Option<E164>,
    /// How it must authenticate.
    pub auth: SenderAuth,
    /// Which envelope senders it may use once logged in.
    #[serde(default)]
    pub envelope_from: EnvelopeFrom,
    /// The argon2id hash of its SMTP AUTH password (an address entry with
    /// `auth = smtp-auth` only; the user name is the address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}
