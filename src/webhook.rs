//! Webhook deliveries: each event a webhook wants ([`crate::directory::webhooks`])
//! becomes a delivery in a durable queue, POSTed until its receiver answers
//! 2xx, with backoff, as the outbox sends mail.
//!
//! - **The event**: a delivery is written (sealed with the account's key,
//!   the tenant's without one, flushed) when the event happens, with its
//!   body fixed then: `{"id", "event", "created", "tenant", "account", ...}`,
//!   ids and results, and numbers and mail addresses only for a webhook
//!   made with `personal_data`.
//! - **The POST**: `Content-Type: application/json`, `Faxgate-Event`,
//!   `Faxgate-Delivery` (the delivery's id, the same on every attempt and
//!   for the same event, so that a receiver can drop repeats) and
//!   `Faxgate-Signature: t=<unix seconds>,v1=<hex>`, where the hex is
//!   HMAC-SHA256, keyed with the webhook's secret (its 64 hex characters,
//!   as bytes), of `<t>.<body>`. A receiver recomputes it, compares in
//!   constant time, and refuses a `t` more than 5 minutes from its clock
//!   (the replay window). No redirect is followed.
//! - **Retries**: a failed attempt (no answer in 10 s, or not 2xx) is
//!   tried again after `webhooks.retry_delays` (the first, then the next
//!   ...); after the last, the delivery is dropped. A webhook whose
//!   attempts fail `webhooks.max_failures` times in a row is disabled, its
//!   pending deliveries dropped, that logged at WARN and mailed through the
//!   outbox to its `notify` address (the tenant's From address without
//!   one); its listing says `disabled` and why. Delivered is removed
//!   (flushed) before the next attempt of anything, so that a restart does
//!   not deliver it again; a crash between the 2xx and the removal does
//!   (the receiver sees the same `Faxgate-Delivery` twice).
//!
//! Time is the injected clock's; [`Webhooks::deliver_due`] does one round,
//! which the daemon's task runs when woken and when the next is due.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::clock::Clock;
use crate::directory::webhooks::{Event, Webhook, shown_url};
use crate::directory::{Directory, Scope};
use crate::gateway::report;
use crate::mail::outbox::Outbox;
use crate::retention::account::{account_key, tenant_key};
use crate::store::{Store, Tree, TreeName};
use crate::types::{AccountId, TenantId};

/// `[webhooks]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Seconds before each retry of a failed delivery.
    #[serde(default = "default_delays")]
    pub retry_delays: Vec<u64>,
    /// Failed attempts in a row that disable a webhook.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
}

fn default_delays() -> Vec<u64> {
    vec![60, 300, 900, 3600, 3600, 3600, 21600]
}

fn default_max_failures() -> u32 {
    20
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig { retry_delays: default_delays(), max_failures: default_max_failures() }
    }
}

/// A delivery waiting to be made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Its id: the same for the same event and webhook.
    pub id: String,
    /// The webhook.
    pub webhook: String,
    /// Its tenant.
    pub tenant: TenantId,
    /// The webhook's account.
    pub account: Option<AccountId>,
    /// The event.
    pub event: Event,
    /// What is POSTed.
    pub body: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it is next tried.
    pub next: Timestamp,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

fn delivery_key(id: &str) -> Vec<u8> {
    let mut k = b"w\0".to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

const PREFIX: &[u8] = b"w\0";

/// The signature header's value for `body` at `t` (unix seconds).
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{t}.{body}").as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// The webhooks' queue and its deliverer.
#[derive(Clone)]
pub struct Webhooks {
    tree: Tree,
    directory: Directory,
    clock: Arc<dyn Clock>,
    config: WebhookConfig,
    agent: ureq::Agent,
    /// Where the notice of a disabled webhook is queued.
    outbox: Outbox,
    /// Wakes the delivering task (an event was queued).
    pub wake: Arc<Notify>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Webhooks {
    /// The queue in `store`'s outbox tree; notices of disabled webhooks go
    /// to `outbox` (the one the daemon delivers from).
    pub fn open(
        store: &Store,
        directory: Directory,
        clock: Arc<dyn Clock>,
        config: WebhookConfig,
        outbox: Outbox,
    ) -> Result<Self, Error> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(concat!("faxgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Webhooks {
            tree: store.tree(TreeName::Outbox)?,
            directory,
            clock,
            config,
            agent,
            outbox,
            wake: Arc::new(Notify::new()),
        })
    }

    /// Queues `event` of `tenant` (and `account`, whose it is) for every
    /// webhook that wants it: `about` names what it is about (a job, a
    /// CDR: the same `about` makes the same delivery id), `fields` go in
    /// every payload, `personal` only in those of webhooks made with
    /// `personal_data`. Returns how many were queued.
    pub fn emit(
        &self,
        tenant: &TenantId,
        account: Option<&AccountId>,
        event: Event,
        about: &str,
        fields: Value,
        personal: Value,
    ) -> Result<usize, Error> {
        let hooks = self.directory.webhook_list(Some(tenant), None)?;
        let now = self.clock.now();
        let mut b = self.tree.batch();
        let mut n = 0;
        for w in hooks.iter().filter(|w| w.wants(event, account)) {
            let digest = Sha256::digest(format!("{}\0{}\0{about}", w.id, event.as_str()).as_bytes());
            let id = format!("wd-{}", digest[..16].iter().map(|b| format!("{b:02x}")).collect::<String>());
            let mut body = json!({
                "id": id,
                "event": event.as_str(),
                "created": now,
                "tenant": tenant,
                "account": account,
            });
            let extra = fields.as_object().into_iter().flatten();
            let private = personal.as_object().into_iter().flatten().filter(|_| w.personal_data);
            for (k, v) in extra.chain(private) {
                body[k] = v.clone();
            }
            let d = Delivery {
                id: id.clone(),
                webhook: w.id.clone(),
                tenant: tenant.clone(),
                account: w.account,
                event,
                body: body.to_string(),
                attempts: 0,
                next: now,
                last_error: None,
            };
            b.put_sealed(&delivery_key(&id), &seal_key(&d)?, &d)?;
            n += 1;
        }
        if n > 0 {
            self.tree.apply(b)?;
            self.wake.notify_one();
        }
        Ok(n)
    }

    /// The deliveries waiting, oldest first.
    pub fn pending(&self) -> Result<Vec<Delivery>, Error> {
        let mut out = Vec::new();
        for k in self.tree.keys_with_prefix(PREFIX)? {
            match self.tree.get_sealed::<Delivery>(&k) {
                Ok(Some(d)) => out.push(d),
                Ok(None) => {}
                // Its account erased, its tenant removed: gone with them.
                Err(Error::Crypto(faxgate_retention::Error::KeyDestroyed(_))) => self.remove(&k)?,
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|d| d.next);
        Ok(out)
    }

    fn remove(&self, key: &[u8]) -> Result<(), Error> {
        let mut b = self.tree.batch();
        b.remove(key);
        self.tree.apply(b)
    }

    fn save(&self, d: &Delivery) -> Result<(), Error> {
        let mut b = self.tree.batch();
        b.put_sealed(&delivery_key(&d.id), &seal_key(d)?, d)?;
        self.tree.apply(b)
    }

    /// Makes every delivery due at the clock's now, one at a time (this
    /// blocks: run it off the async runtime). Returns what was delivered,
    /// what failed, and when the next is due.
    pub fn deliver_due(&self) -> Result<(usize, usize, Option<Timestamp>), Error> {
        let (mut ok, mut failed) = (0, 0);
        for mut d in self.pending()? {
            let now = self.clock.now();
            if d.next > now {
                continue;
            }
            let Some(mut hook) = self.directory.webhook_get(&d.webhook)? else {
                // Removed since: nowhere to deliver.
                self.remove(&delivery_key(&d.id))?;
                continue;
            };
            if hook.disabled.is_some() {
                self.remove(&delivery_key(&d.id))?;
                continue;
            }
            match self.post(&hook, &d, now) {
                Ok(()) => {
                    ok += 1;
                    self.remove(&delivery_key(&d.id))?;
                    tracing::info!(delivery = %d.id, webhook = %hook.id, event = d.event.as_str(), "webhook delivered");
                    if hook.failures > 0 {
                        hook.failures = 0;
                        self.directory.webhook_save(&hook)?;
                    }
                }
                Err(why) => {
                    failed += 1;
                    d.attempts += 1;
                    hook.failures += 1;
                    tracing::warn!(delivery = %d.id, webhook = %hook.id, attempts = d.attempts, "webhook delivery failed: {why}");
                    if hook.failures >= self.config.max_failures {
                        let reason = format!("{} deliveries failed in a row; the last: {why}", hook.failures);
                        hook.disabled = Some((now, reason.clone()));
                        let dropped = self.pending()?.iter().filter(|p| p.webhook == hook.id).count();
                        // The notice is queued (flushed) before the disabled
                        // state is saved: a stop between the two leaves the
                        // webhook enabled with its deliveries, so the next
                        // failure disables it again and queues a second
                        // notice: a duplicate, never a lost one. A notice
                        // that cannot be queued fails the round, and the
                        // webhook stays enabled until one can.
                        self.notify_disabled(&hook, dropped)?;
                        self.directory.webhook_save(&hook)?;
                        tracing::warn!(webhook = %hook.id, tenant = %hook.tenant, "webhook disabled: {reason}");
                        self.drop_pending(&hook.id)?;
                        continue;
                    }
                    self.directory.webhook_save(&hook)?;
                    match self.config.retry_delays.get(d.attempts as usize - 1) {
                        Some(&secs) => {
                            d.next = now + SignedDuration::from_secs(secs as i64);
                            d.last_error = Some(why);
                            self.save(&d)?;
                        }
                        None => {
                            tracing::warn!(delivery = %d.id, webhook = %hook.id, "webhook delivery dropped after its last retry");
                            self.remove(&delivery_key(&d.id))?;
                        }
                    }
                }
            }
        }
        let next = self.pending()?.first().map(|d| d.next);
        Ok((ok, failed, next))
    }

    /// Queues the notice that `hook` (its `disabled` set) was disabled,
    /// `dropped` deliveries dropped with it, to its `notify` address or the
    /// tenant's From address, in the tenant's branding.
    fn notify_disabled(&self, hook: &Webhook, dropped: usize) -> Result<(), Error> {
        let Some((at, reason)) = &hook.disabled else { return Ok(()) };
        let tenant = self.directory.tenant_get(&Scope::Operator, &hook.tenant)?;
        let (host, url) = shown_url(&hook.url);
        let events: Vec<&str> = hook.events.iter().map(|e| e.as_str()).collect();
        let text = report::webhook_disabled(
            &tenant,
            &report::HookDisabled {
                id: &hook.id,
                host: &host,
                url: &url,
                events: &events,
                account: hook.account.map(|a| a.to_text()),
                at: *at,
                reason,
                dropped,
            },
        );
        let to = hook.notify.clone().unwrap_or_else(|| tenant.branding.from_address.clone());
        let mail = self.outbox.enqueue(&tenant, &[to.to_string()], &text.subject, &text.body, Vec::new())?;
        tracing::info!(webhook = %hook.id, mail = %mail, "notice of the disabled webhook queued");
        Ok(())
    }

    fn drop_pending(&self, webhook: &str) -> Result<(), Error> {
        for d in self.pending()?.into_iter().filter(|d| d.webhook == webhook) {
            self.remove(&delivery_key(&d.id))?;
        }
        Ok(())
    }

    /// One POST of `d` to `hook`: Ok on 2xx, else why not.
    fn post(&self, hook: &Webhook, d: &Delivery, now: Timestamp) -> Result<(), String> {
        let sig = signature(&hook.secret, now.as_second(), &d.body);
        let r = self
            .agent
            .post(&hook.url)
            .header("Content-Type", "application/json")
            .header("Faxgate-Event", d.event.as_str())
            .header("Faxgate-Delivery", &d.id)
            .header("Faxgate-Signature", &sig)
            .send(d.body.as_bytes());
        match r {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => Err(format!("the receiver answered {}", resp.status())),
            Err(e) => Err(format!("no answer: {e}")),
        }
    }

    /// Delivers until `shutdown`: when woken by an event, and when the
    /// next retry is due (looked at again at least every minute).
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let me = self.clone();
            let next = match tokio::task::spawn_blocking(move || me.deliver_due()).await {
                Ok(Ok((_, _, next))) => next,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "webhook deliveries failed; trying again in a minute");
                    None
                }
                Err(e) => {
                    tracing::error!(error = %e, "webhook deliveries failed");
                    None
                }
            };
            // Due already (time passed while delivering): at once.
            let now = self.clock.now();
            let wait = next
                .map(|n| if n <= now { Duration::ZERO } else { n.duration_since(now).unsigned_abs() })
                .unwrap_or(Duration::from_secs(60))
                .min(Duration::from_secs(60));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

fn seal_key(d: &Delivery) -> Result<faxgate_retention::KeyId, Error> {
    match &d.account {
        Some(a) => account_key(a),
        None => tenant_key(&d.tenant),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;
    use crate::clock::FakeClock;
    use crate::directory::Tenant;

    /// A receiver on loopback that reads each POST whole and answers 500.
    fn failing_receiver() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks/fax?token=t0ps3cret#frag", l.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                let (mut req, mut buf) = (Vec::new(), [0u8; 4096]);
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req);
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= len {
                            break;
                        }
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        url
    }

    #[test]
    fn a_disabled_webhook_is_reported_by_mail_to_notify_or_the_tenants_from_address() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let store = Store::open(&data, &data.join("keys")).unwrap();
        let clock = FakeClock::new("2026-12-04T09:00:00Z".parse().unwrap());
        let dir = Directory::open(&store, Arc::new(clock.clone())).unwrap();
        let tenant: Tenant = serde_json::from_value(json!({
            "id": "acme", "name": "Acme", "paper": "a4", "default_country": "DK", "fax_domains": [],
            "branding": {"display_name": "Acme Fax", "from_address": "fax@acme.dk", "language": "en"},
        }))
        .unwrap();
        dir.tenant_add(&Scope::Operator, tenant).unwrap();
        let acme: TenantId = "acme".parse().unwrap();
        let url = failing_receiver();
        let events = vec![Event::NumberChanged];
        let ops = dir.webhook_create(&acme, None, &url, events.clone(), false, Some("ops@acme.dk".parse().unwrap()));
        let (ops, plain) = (ops.unwrap(), dir.webhook_create(&acme, None, &url, events, false, None).unwrap());
        let outbox = Outbox::open(&store, Arc::new(clock.clone())).unwrap();
        let config = WebhookConfig { retry_delays: vec![60], max_failures: 2 };
        let hooks = Webhooks::open(&store, dir.clone(), Arc::new(clock.clone()), config, outbox.clone()).unwrap();

        // The first failure of each: no notice yet.
        hooks.emit(&acme, None, Event::NumberChanged, "n1", json!({}), json!({})).unwrap();
        assert_eq!(hooks.deliver_due().unwrap().1, 2);
        assert!(outbox.list().unwrap().is_empty());
        // The second: both disabled, each with one notice; nothing pending.
        clock.advance(SignedDuration::from_secs(30));
        hooks.emit(&acme, None, Event::NumberChanged, "n2", json!({}), json!({})).unwrap();
        assert_eq!(hooks.deliver_due().unwrap(), (0, 2, None));
        for h in [&ops, &plain] {
            assert!(dir.webhook_get(&h.id).unwrap().unwrap().disabled.is_some());
        }
        let mails = outbox.list().unwrap();
        assert_eq!(mails.len(), 2, "{mails:#?}");
        for (h, to) in [(&ops, "ops@acme.dk"), (&plain, "fax@acme.dk")] {
            let m = mails.iter().find(|m| m.to == [to]).unwrap_or_else(|| panic!("no notice to {to}: {mails:#?}"));
            assert_eq!(m.from, "fax@acme.dk");
            let parsed = mail_parser::MessageParser::default().parse(&m.raw).unwrap();
            assert_eq!(parsed.subject(), Some("Webhook disabled: 127.0.0.1"));
            let body = parsed.body_text(0).unwrap().replace("\r\n", "\n");
            for want in [
                format!("Webhook:         {}\n", h.id),
                format!("URL:             {}\n", url.split('?').next().unwrap()),
                "Events:          number.changed\n".to_owned(),
                "Disabled:        2026-12-04 09:00:30 UTC\n".to_owned(),
                "Reason:          2 deliveries failed in a row; the last: the receiver answered 500".to_owned(),
                "Dropped:         2 pending deliveries".to_owned(),
                format!("faxgate webhook enable {}  /  POST /v1/webhooks/{}/enable\n", h.id, h.id),
            ] {
                assert!(body.contains(&want), "{want:?} in\n{body}");
            }
            let raw = String::from_utf8_lossy(&m.raw);
            for secret in [&ops.secret, &plain.secret, "t0ps3cret", "frag"] {
                assert!(!raw.contains(secret), "{secret} in\n{raw}");
            }
        }
        // Disabled, it fails no more and is reported no more.
        clock.advance(SignedDuration::from_secs(3600));
        hooks.emit(&acme, None, Event::NumberChanged, "n3", json!({}), json!({})).unwrap();
        assert_eq!(hooks.deliver_due().unwrap(), (0, 0, None));
        assert_eq!(outbox.list().unwrap().len(), 2);
    }
}
