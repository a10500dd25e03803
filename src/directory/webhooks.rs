//! Webhooks: where a tenant or an account wants its fax events POSTed.
//!
//! A webhook is tenant data like an API token: its record (URL, events,
//! the signing secret) is sealed with its account's key (the tenant's
//! without an account), so that erasing the account or removing the tenant
//! erases it with the rest. The secret is shown once, when it is made.
//! Deliveries are [`crate::webhook`]'s.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Directory, Scope};
use crate::Error;
use crate::retention::account::{account_key, tenant_key};
use crate::store::Batch;
use crate::store::layout::directory as layout;
use crate::types::{AccountId, EmailAddress, TenantId};

/// What a webhook is told of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema, clap::ValueEnum)]
pub enum Event {
    /// A fax was received on one of the numbers and mailed.
    #[serde(rename = "fax.received")]
    #[value(name = "fax.received")]
    FaxReceived,
    /// A fax from mail was sent.
    #[serde(rename = "fax.sent")]
    #[value(name = "fax.sent")]
    FaxSent,
    /// A fax from mail failed for good (or was cancelled).
    #[serde(rename = "fax.failed")]
    #[value(name = "fax.failed")]
    FaxFailed,
    /// A number was added, moved or removed (tenant webhooks only).
    #[serde(rename = "number.changed")]
    #[value(name = "number.changed")]
    NumberChanged,
}

impl Event {
    /// Its name, as the payload and the `Faxgate-Event` header say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::FaxReceived => "fax.received",
            Event::FaxSent => "fax.sent",
            Event::FaxFailed => "fax.failed",
            Event::NumberChanged => "number.changed",
        }
    }
}

/// A webhook's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// Its id (8 random bytes, hex).
    pub id: String,
    /// Its tenant.
    pub tenant: TenantId,
    /// Its account: only that account's events; without one, the tenant's.
    pub account: Option<AccountId>,
    /// Where events are POSTed: `https://`, or `http://` to a loopback address.
    pub url: String,
    /// The events it is told of.
    pub events: Vec<Event>,
    /// Whether payloads carry numbers and mail addresses (otherwise ids and results only).
    pub personal_data: bool,
    /// The HMAC-SHA256 key of its signatures (32 bytes, hex).
    pub secret: String,
    /// When it was made.
    pub created: Timestamp,
    /// Deliveries failed in a row.
    pub failures: u32,
    /// When it was disabled after too many failures, and why.
    pub disabled: Option<(Timestamp, String)>,
    /// Where the notice of its disabling is mailed; without one, the
    /// tenant's own From address (absent in records made before it existed).
    #[serde(default)]
    pub notify: Option<EmailAddress>,
}

impl Webhook {
    /// Whether it is told of `event` of `account` (`None`: the tenant's own).
    pub fn wants(&self, event: Event, account: Option<&AccountId>) -> bool {
        self.disabled.is_none()
            && self.events.contains(&event)
            && match &self.account {
                None => true,
                Some(own) => account == Some(own) && event != Event::NumberChanged,
            }
    }

    /// Its record without the secret, for listings.
    pub fn view(&self) -> WebhookView {
        WebhookView {
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            account: self.account,
            url: self.url.clone(),
            events: self.events.clone(),
            personal_data: self.personal_data,
            created: self.created,
            failures: self.failures,
            disabled: self.disabled.clone(),
            notify: self.notify.clone(),
            state: if self.disabled.is_some() { WebhookState::Disabled } else { WebhookState::Active },
        }
    }
}

/// Whether a webhook is told of events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookState {
    /// It is.
    Active,
    /// Failures in a row disabled it; it is enabled again by hand.
    Disabled,
}

/// A webhook as listed: its record without the secret, and its state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookView {
    /// Its id (8 random bytes, hex).
    pub id: String,
    /// Its tenant.
    pub tenant: TenantId,
    /// Its account: only that account's events; without one, the tenant's.
    pub account: Option<AccountId>,
    /// Where events are POSTed.
    pub url: String,
    /// The events it is told of.
    pub events: Vec<Event>,
    /// Whether payloads carry numbers and mail addresses.
    pub personal_data: bool,
    /// When it was made.
    #[schema(value_type = String, format = DateTime)]
    pub created: Timestamp,
    /// Deliveries failed in a row.
    pub failures: u32,
    /// When it was disabled after too many failures, and why: `[when, why]`.
    #[schema(value_type = Option<Vec<String>>, min_items = 2, max_items = 2)]
    pub disabled: Option<(Timestamp, String)>,
    /// Where the notice of its disabling is mailed; none: the tenant's From address.
    pub notify: Option<EmailAddress>,
    /// `active`, or `disabled` after failures.
    pub state: WebhookState,
}

/// The URL a webhook may have: `https://host…`, or `http://` to loopback
/// (a receiver on the same machine); no credentials in it; at most 2,000 bytes.
pub fn check_url(url: &str) -> Result<(), Error> {
    let bad = |why: &str| Error::Invalid(format!("webhook URL {url:?}: {why}"));
    if url.len() > 2000 || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("too long, or has spaces or control characters"));
    }
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("not an http(s) URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    if authority.contains('@') {
        return Err(bad("credentials do not belong in it; the signature authenticates faxgate"));
    }
    let host = host_of(authority);
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match scheme {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(bad("use https (plain http only to a loopback address)")),
        _ => Err(bad("not an http(s) URL")),
    }
}

/// The host of a URL's authority: without the port, an IPv6 address without its brackets.
fn host_of(authority: &str) -> &str {
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    }
}

/// A webhook URL as a notice shows it: its host, and the URL with scheme,
/// host and path only (the query and fragment, which may carry a
/// receiver's token, left out).
pub fn shown_url(url: &str) -> (String, String) {
    let cut = url.split(['?', '#']).next().unwrap_or("");
    let authority = cut.split_once("://").map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
    (host_of(authority).to_owned(), cut.to_owned())
}

impl Directory {
    /// Makes a webhook of `tenant` (and `account`), whose disabling is
    /// mailed to `notify` (the tenant's From address without one); its
    /// secret is in the record returned, to show once.
    pub fn webhook_create(
        &self,
        tenant: &TenantId,
        account: Option<&AccountId>,
        url: &str,
        events: Vec<Event>,
        personal_data: bool,
        notify: Option<EmailAddress>,
    ) -> Result<Webhook, Error> {
        check_url(url)?;
        let mut events = events;
        events.sort_by_key(|e| e.as_str());
        events.dedup();
        if events.is_empty() {
            return Err(Error::Invalid("a webhook needs at least one event".into()));
        }
        if account.is_some() && events.contains(&Event::NumberChanged) {
            return Err(Error::Invalid("number.changed is for a tenant's webhooks, not an account's".into()));
        }
        let scope = Scope::Tenant(tenant.clone());
        self.tenant_get(&scope, tenant)?;
        let key = match account {
            Some(a) => {
                if self.account_get(&scope, a)?.tenant != *tenant {
                    return Err(Error::NotFound(format!("no account {a}")));
                }
                account_key(a)?
            }
            None => tenant_key(tenant)?,
        };
        let hook = Webhook {
            id: random_hex(8)?,
            tenant: tenant.clone(),
            account: account.copied(),
            url: url.to_owned(),
            events,
            personal_data,
            secret: random_hex(32)?,
            created: self.now(),
            failures: 0,
            disabled: None,
            notify,
        };
        let _g = self.lock();
        let main = layout::webhook(tenant, account, &hook.id);
        let mut b = self.tree().batch();
        b.put_sealed(&main, &key, &hook)?;
        b.put_plain(&layout::webhook_index(&hook.id), &main);
        self.tree().apply(b)?;
        Ok(hook)
    }

    /// A webhook by its id.
    pub fn webhook_get(&self, id: &str) -> Result<Option<Webhook>, Error> {
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let Some(main) = self.tree().get_plain(&layout::webhook_index(id))? else { return Ok(None) };
        match self.tree().get_sealed::<Webhook>(&main) {
            Err(Error::Crypto(faxgate_retention::Error::KeyDestroyed(_))) => Ok(None),
            other => other,
        }
    }

    /// The webhooks of `tenant` (every tenant's: `None`), or of one account.
    pub fn webhook_list(&self, tenant: Option<&TenantId>, account: Option<&AccountId>) -> Result<Vec<Webhook>, Error> {
        let prefix = match tenant {
            Some(t) => layout::webhooks(t, account),
            None => layout::WEBHOOKS.to_vec(),
        };
        let mut out = Vec::new();
        for k in self.tree().keys_with_prefix(&prefix)? {
            if let Some(w) = self.listed::<Webhook>(&k)?
                && account.is_none_or(|a| w.account.as_ref() == Some(a))
            {
                out.push(w);
            }
        }
        out.sort_by_key(|w| w.created);
        Ok(out)
    }

    /// Writes a webhook's record again (its failures, its state).
    pub fn webhook_save(&self, w: &Webhook) -> Result<(), Error> {
        let _g = self.lock();
        let main = layout::webhook(&w.tenant, w.account.as_ref(), &w.id);
        if !self.tree().contains(&main)? {
            return Err(Error::NotFound(format!("no webhook {}", w.id)));
        }
        let key = match &w.account {
            Some(a) => account_key(a)?,
            None => tenant_key(&w.tenant)?,
        };
        let mut b = self.tree().batch();
        b.put_sealed(&main, &key, w)?;
        self.tree().apply(b)
    }

    /// Removes a webhook.
    pub fn webhook_remove(&self, id: &str) -> Result<Webhook, Error> {
        let _g = self.lock();
        let w = self.webhook_get(id)?.ok_or_else(|| Error::NotFound(format!("no webhook {id}")))?;
        let mut b = self.tree().batch();
        b.remove(&layout::webhook(&w.tenant, w.account.as_ref(), &w.id));
        b.remove(&layout::webhook_index(&w.id));
        self.tree().apply(b)?;
        Ok(w)
    }

    /// Adds to `b` the removal of `tenant`'s webhooks (only `account`'s, with one).
    pub(super) fn remove_webhooks(
        &self,
        b: &mut Batch<'_>,
        tenant: &TenantId,
        account: Option<&AccountId>,
    ) -> Result<(), Error> {
        for k in self.tree().keys_with_prefix(&layout::webhooks(tenant, account))? {
            if let Some(id) = layout::token_id_of(&k) {
                b.remove(&layout::webhook_index(&String::from_utf8_lossy(id)));
            }
            b.remove(&k);
        }
        Ok(())
    }
}

fn random_hex(n: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| Error::Invalid(format!("the OS's random source failed: {e}")))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_or_loopback_http_without_credentials() {
        for ok in ["https://hooks.example.com/fax", "http://127.0.0.1:8080/h", "http://[::1]:9/x", "http://localhost/x"]
        {
            check_url(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, why) in [
            ("http://hooks.example.com/fax", "use https"),
            ("ftp://x/y", "not an http(s) URL"),
            ("https://user:pw@example.com/", "credentials"),
            ("https:///path", "no host"),
            ("https://exa mple.com", "spaces"),
            ("hooks.example.com", "not an http(s) URL"),
            ("http://127.0.0.1.evil.example/", "use https"),
        ] {
            let e = check_url(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_shown_url_has_no_query_or_fragment() {
        for (url, host, shown) in [
            ("https://hooks.example.com/fax?token=s3cr3t#x", "hooks.example.com", "https://hooks.example.com/fax"),
            ("http://127.0.0.1:8080/h", "127.0.0.1", "http://127.0.0.1:8080/h"),
            ("http://[::1]:9#frag", "::1", "http://[::1]:9"),
            ("https://example.com?a=b", "example.com", "https://example.com"),
        ] {
            assert_eq!(shown_url(url), (host.to_owned(), shown.to_owned()), "{url}");
        }
    }

    #[test]
    fn a_record_made_before_notify_existed_still_reads() {
        let old = r#"{"id":"00ff","tenant":"acme","account":null,"url":"https://h.example/x","events":["fax.sent"],
            "personal_data":false,"secret":"ab","created":"2026-01-01T00:00:00Z","failures":0,"disabled":null}"#;
        let w: Webhook = serde_json::from_str(old).unwrap();
        assert_eq!(w.notify, None);
    }
}
