//! The answers of the directory's requests as shown (the CLI's `--json`,
//! the API's bodies): built from these types, which the OpenAPI document
//! describes, so that the two cannot differ.

use jiff::Timestamp;
use serde::Serialize;

use crate::directory::{
    Account, AccountStatus, ApiToken, ClaimView, EnvelopeFrom, FaxNumber, Sender, SenderAuth, SenderPattern, Tenant,
    Webhook, WebhookView,
};
use crate::types::{AccountId, E164, TenantId};

use super::Role;

/// A tenant as shown: with its claims waiting for proof.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TenantView {
    /// The tenant.
    #[serde(flatten)]
    pub tenant: Tenant,
    /// Fax domains and From: addresses waiting for their DNS proof, each
    /// with the TXT record that proves it.
    pub pending: Vec<ClaimView>,
}

/// A tenant removed.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TenantRemoved {
    /// Its id.
    pub removed: TenantId,
}

/// An account as shown: with its status now.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AccountView {
    /// The account.
    #[serde(flatten)]
    pub account: Account,
    /// Whether it is served now.
    pub status: AccountStatus,
}

impl AccountView {
    /// `a` at `now`.
    pub fn of(a: Account, now: Timestamp) -> Self {
        let status = a.status(now);
        AccountView { account: a, status }
    }
}

/// One account with its numbers and senders.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AccountDetail {
    /// The account.
    #[serde(flatten)]
    pub account: AccountView,
    /// Its fax numbers.
    pub numbers: Vec<FaxNumber>,
    /// Its senders.
    pub senders: Vec<SenderView>,
}

/// Whether a sender has an SMTP AUTH password.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PasswordSet {
    /// It has one.
    Set,
    /// It has none.
    None,
}

/// A sender as shown: whether a password is set, never its hash.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SenderView {
    /// The address, or `@domain`.
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
    pub envelope_from: EnvelopeFrom,
    /// Whether it has an SMTP AUTH password.
    pub smtp_password: PasswordSet,
}

impl From<Sender> for SenderView {
    fn from(s: Sender) -> Self {
        SenderView {
            pattern: s.pattern,
            tenant: s.tenant,
            account: s.account,
            caller_number: s.caller_number,
            auth: s.auth,
            envelope_from: s.envelope_from,
            smtp_password: if s.password_hash.is_some() { PasswordSet::Set } else { PasswordSet::None },
        }
    }
}

/// Whether a token works.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenState {
    /// It works.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked.
    Revoked,
}

/// An API token as listed: never its secret, nor its hash.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    /// Its id (the part of the token before the secret).
    pub id: String,
    /// Its tenant; none for an operator token.
    pub tenant: Option<TenantId>,
    /// Its account, for the account's roles.
    pub account: Option<AccountId>,
    /// The role it acts with.
    pub role: Role,
    /// A name to tell it by.
    pub name: Option<String>,
    /// When it was made.
    #[schema(value_type = String, format = DateTime)]
    pub created: Timestamp,
    /// When it stops working.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires: Option<Timestamp>,
    /// When it was revoked.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked: Option<Timestamp>,
    /// Whether it works now.
    pub state: TokenState,
}

impl TokenView {
    /// `t` at `now`.
    pub fn of(t: &ApiToken, now: Timestamp) -> Self {
        let state = match t.state(now) {
            "revoked" => TokenState::Revoked,
            "expired" => TokenState::Expired,
            _ => TokenState::Active,
        };
        TokenView {
            id: t.id.clone(),
            tenant: t.tenant.clone(),
            account: t.account,
            role: t.role,
            name: t.name.clone(),
            created: t.created,
            expires: t.expires,
            revoked: t.revoked,
            state,
        }
    }
}

/// A token made: the token itself, shown this once, and its record.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TokenMade {
    /// `fgt_<id>_<secret>`: the bearer token.
    pub token: String,
    /// Its record.
    pub record: TokenView,
}

/// A webhook made: its signing secret, shown this once, and its record.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookMade {
    /// The HMAC-SHA256 key of its signatures (32 bytes, hex).
    pub secret: String,
    /// Its record.
    pub record: WebhookView,
}

impl From<&Webhook> for WebhookMade {
    fn from(w: &Webhook) -> Self {
        WebhookMade { secret: w.secret.clone(), record: w.view() }
    }
}
