//! The outbox: mail faxgate sends (received faxes, reports), kept durably
//! until the relay accepts it.
//!
//! [`Outbox::enqueue`] builds the message in the tenant's branding and
//! stores it, sealed with its own key, before returning. [`Outbox::run_due`]
//! hands every due message to the [`Outgoing`] way out: accepted, it is
//! removed (and its key destroyed); a transient failure (no connection, a
//! 4xx reply) schedules another attempt after a growing delay; a permanent
//! one (5xx), or a message still not accepted after [`EXPIRY`], is kept as
//! failed with the reason, and not tried again. [`Outbox::run`] is the
//! loop the daemon runs: it sleeps until the next attempt is due, or until
//! a new message is queued.

use std::sync::Arc;

use faxgate_retention::logid::Scrubbed;
use faxgate_smtp::outgoing::{OutAttachment, OutMessage, Outgoing};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::clock::Clock;
use crate::directory::Tenant;
use crate::retention::outbox::message_key;
use crate::store::layout::outbox as layout;
use crate::store::{Store, Tree, TreeName};
use crate::types::{JobId, TenantId};

/// How long a message is tried before it is given up.
pub const EXPIRY: SignedDuration = SignedDuration::from_hours(5 * 24);

/// The delay before attempt `n + 1` after `n` failed attempts.
pub fn backoff(attempts: u32) -> SignedDuration {
    backoff_in(&DEFAULT_RETRY_DELAYS, attempts)
}

/// The default delays between delivery attempts, in seconds; after the
/// last, every 2 hours.
pub const DEFAULT_RETRY_DELAYS: [u64; 6] = [60, 120, 300, 600, 1800, 3600];

fn backoff_in(steps: &[u64], attempts: u32) -> SignedDuration {
    SignedDuration::from_secs(*steps.get(attempts.saturating_sub(1) as usize).unwrap_or(&7200) as i64)
}

/// Where a queued message stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutState {
    /// Waiting for its next attempt.
    Scheduled,
    /// Given up: the relay refused it, or it expired.
    Failed,
}

/// A message in the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutRecord {
    /// Its id (the job it belongs to, or its own).
    pub id: JobId,
    /// The tenant it is sent for.
    pub tenant: TenantId,
    /// The reverse path.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// The message.
    pub raw: Vec<u8>,
    /// When it was queued.
    pub created: Timestamp,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due.
    pub next_attempt: Timestamp,
    /// Where it stands.
    pub state: OutState,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The received fax it carries, for a received fax's mail: its
    /// account may download the fax while the message is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fax: Option<ReceivedFax>,
}

/// What a received fax's mail carries it for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedFax {
    /// The account whose number received it.
    pub account: crate::types::AccountId,
    /// The number called.
    pub number: crate::types::E164,
    /// The CDR of the call.
    pub cdr: String,
    /// Pages received.
    pub pages: u32,
}

/// The outbox.
#[derive(Debug, Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    tree: Tree,
    delays: Vec<u64>,
    clock: Arc<dyn Clock>,
    wake: Notify,
    /// The message being handed over now: [`Outbox::remove`] waits for no
    /// one and refuses it; a message removed before its turn is skipped.
    sending: std::sync::Mutex<Option<JobId>>,
}

impl Outbox {
    /// The outbox in `store`.
    pub fn open(store: &Store, clock: Arc<dyn Clock>) -> Result<Outbox, Error> {
        Self::open_with(store, clock, DEFAULT_RETRY_DELAYS.to_vec())
    }

    /// The outbox, retrying after `delays` (seconds after the 1st, 2nd...
    /// failed attempt; every 2 hours after the last).
    pub fn open_with(store: &Store, clock: Arc<dyn Clock>, delays: Vec<u64>) -> Result<Outbox, Error> {
        let tree = store.tree(TreeName::Outbox)?;
        Ok(Outbox {
            inner: Arc::new(Inner {
                store: store.clone(),
                tree,
                delays,
                clock,
                wake: Notify::new(),
                sending: std::sync::Mutex::new(None),
            }),
        })
    }

    /// Builds a message from `tenant`'s branding to `to` and queues it durably.
    pub fn enqueue(
        &self,
        tenant: &Tenant,
        to: &[String],
        subject: &str,
        text: &str,
        attachments: Vec<OutAttachment>,
    ) -> Result<JobId, Error> {
        let id = JobId::generate();
        self.enqueue_as(id, None, tenant, to, subject, text, attachments, None)?;
        Ok(id)
    }

    /// Like [`Self::enqueue`], once per `once` (a report's or a received
    /// fax's own name): a second call with the same `once` queues nothing
    /// and returns false, even after the first message has been delivered,
    /// until [`Self::forget`]. The marker and the message are written in
    /// one flushed batch, so a restart between them cannot send twice.
    pub fn enqueue_once(
        &self,
        once: &str,
        tenant: &Tenant,
        to: &[String],
        subject: &str,
        text: &str,
        attachments: Vec<OutAttachment>,
    ) -> Result<bool, Error> {
        self.enqueue_once_for(once, tenant, to, subject, text, attachments, None)
    }

    /// [`Self::enqueue_once`] of a received fax's mail, marked as carrying
    /// `fax` (see [`OutRecord::fax`]).
    #[allow(clippy::too_many_arguments)]
    pub fn enqueue_once_for(
        &self,
        once: &str,
        tenant: &Tenant,
        to: &[String],
        subject: &str,
        text: &str,
        attachments: Vec<OutAttachment>,
        fax: Option<ReceivedFax>,
    ) -> Result<bool, Error> {
        let marker = self.marker(once);
        if self.inner.tree.contains(&marker)? {
            return Ok(false);
        }
        self.enqueue_as(JobId::generate(), Some(marker), tenant, to, subject, text, attachments, fax)?;
        Ok(true)
    }

    /// Drops the marker of [`Self::enqueue_once`] (when the job it belongs
    /// to is erased).
    pub fn forget(&self, once: &str) -> Result<(), Error> {
        let mut b = self.inner.tree.batch();
        b.remove(&self.marker(once));
        self.inner.tree.apply(b)
    }

    fn marker(&self, once: &str) -> Vec<u8> {
        layout::once(&self.inner.store, once)
    }

    #[allow(clippy::too_many_arguments)]
    fn enqueue_as(
        &self,
        id: JobId,
        marker: Option<Vec<u8>>,
        tenant: &Tenant,
        to: &[String],
        subject: &str,
        text: &str,
        attachments: Vec<OutAttachment>,
        fax: Option<ReceivedFax>,
    ) -> Result<(), Error> {
        let from = tenant.branding.from_address.to_string();
        let m = OutMessage {
            from_name: tenant.branding.display_name.clone(),
            from: from.clone(),
            to: to.to_vec(),
            subject: subject.to_owned(),
            text: text.to_owned(),
            attachments,
            message_id_domain: tenant.branding.from_address.domain().to_owned(),
        };
        let raw = faxgate_smtp::outgoing::build(&m).map_err(|e| Error::Invalid(e.to_string()))?;
        let now = self.inner.clock.now();
        let r = OutRecord {
            id,
            tenant: tenant.id.clone(),
            from,
            to: to.to_vec(),
            raw,
            created: now,
            attempts: 0,
            next_attempt: now,
            state: OutState::Scheduled,
            last_error: None,
            fax,
        };
        let mut b = self.inner.tree.batch();
        b.put_sealed(&layout::message(&r.id), &message_key(&r.id)?, &r)?;
        if let Some(m) = marker {
            b.put_plain(&m, now.as_millisecond().to_string().as_bytes());
        }
        self.inner.tree.apply(b)?;
        self.inner.wake.notify_one();
        Ok(())
    }

    fn save(&self, r: &OutRecord) -> Result<(), Error> {
        let mut b = self.inner.tree.batch();
        b.put_sealed(&layout::message(&r.id), &message_key(&r.id)?, r)?;
        self.inner.tree.apply(b)
    }

    /// Every message in the outbox, oldest first.
    pub fn list(&self) -> Result<Vec<OutRecord>, Error> {
        let mut out = Vec::new();
        for k in self.inner.tree.keys_with_prefix(layout::MESSAGES)? {
            if let Some(r) = self.inner.tree.get_sealed::<OutRecord>(&k)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// One message.
    pub fn get(&self, id: &JobId) -> Result<Option<OutRecord>, Error> {
        self.inner.tree.get_sealed::<OutRecord>(&layout::message(id))
    }

    /// Makes every waiting message (of `tenant`, or all) due now and wakes
    /// the delivery loop (`faxgate outbox flush`); returns how many. Given-up
    /// messages stay as they are.
    pub fn flush(&self, tenant: Option<&TenantId>) -> Result<usize, Error> {
        let now = self.inner.clock.now();
        let mut n = 0;
        for mut r in self.list()? {
            if r.state != OutState::Scheduled || tenant.is_some_and(|t| *t != r.tenant) {
                continue;
            }
            if r.next_attempt > now {
                r.next_attempt = now;
                self.save(&r)?;
            }
            n += 1;
        }
        self.inner.wake.notify_one();
        Ok(n)
    }

    /// Removes a message, waiting or given up, and destroys its key
    /// (`faxgate outbox drop`); refused while it is being handed over.
    pub fn remove(&self, id: &JobId) -> Result<OutRecord, Error> {
        let sending = self.inner.sending.lock().unwrap_or_else(|p| p.into_inner());
        if *sending == Some(*id) {
            return Err(Error::Conflict(format!("{id} is being handed to the relay now; try again in a moment")));
        }
        let r = self.get(id)?.ok_or_else(|| Error::NotFound(format!("no message {id} in the outbox")))?;
        self.erase(id)?;
        drop(sending);
        Ok(r)
    }

    /// Destroys a message's key, then removes it.
    fn erase(&self, id: &JobId) -> Result<(), Error> {
        // Key first: a stop after it leaves a record the sweeper removes
        // (the key's tombstone says why).
        let key = message_key(id)?;
        let vault = self.inner.store.vault();
        vault.destroy(&key)?;
        let mut b = self.inner.tree.batch();
        b.remove(&layout::message(id));
        self.inner.tree.apply(b)?;
        Ok(vault.clear_tombstone(&key)?)
    }

    /// When the next attempt is due, if any message waits.
    pub fn next_due(&self) -> Result<Option<Timestamp>, Error> {
        Ok(self.list()?.into_iter().filter(|r| r.state == OutState::Scheduled).map(|r| r.next_attempt).min())
    }

    /// Tries every message due now; returns how many were handed over.
    pub async fn run_due(&self, out: &Outgoing) -> Result<usize, Error> {
        let now = self.inner.clock.now();
        let mut delivered = 0;
        for mut r in self.list()? {
            if r.state != OutState::Scheduled || r.next_attempt > now {
                continue;
            }
            {
                // Removed (`outbox drop`) since the list was read: skipped.
                let mut sending = self.inner.sending.lock().unwrap_or_else(|p| p.into_inner());
                if !self.inner.tree.contains(&layout::message(&r.id))? {
                    continue;
                }
                *sending = Some(r.id);
            }
            let _sent = Sending(self);
            r.attempts += 1;
            match out.send(&r.id.to_text(), &r.from, &r.to, &r.raw).await {
                Ok(()) => {
                    let id = r.id;
                    let this = self.clone();
                    tokio::task::spawn_blocking(move || this.erase(&id))
                        .await
                        .map_err(|e| Error::Invalid(e.to_string()))??;
                    tracing::info!(mail = %r.id, attempts = r.attempts, "mail handed to the relay");
                    delivered += 1;
                }
                Err(e) => {
                    let expired = now.duration_since(r.created) >= EXPIRY;
                    r.last_error = Some(e.to_string());
                    if e.is_permanent() || expired {
                        r.state = OutState::Failed;
                        tracing::warn!(mail = %r.id, error = %Scrubbed(&e), expired, "mail given up");
                    } else {
                        r.next_attempt = now + backoff_in(&self.inner.delays, r.attempts);
                        tracing::warn!(
                            mail = %r.id, error = %Scrubbed(&e), next_attempt = %r.next_attempt,
                            "mail delivery deferred; next attempt at {}", r.next_attempt
                        );
                    }
                    let this = self.clone();
                    tokio::task::spawn_blocking(move || this.save(&r))
                        .await
                        .map_err(|e| Error::Invalid(e.to_string()))??;
                }
            }
        }
        Ok(delivered)
    }

    /// Delivers until `shutdown`: sleeps until the next message is due or
    /// a new one is queued.
    pub async fn run(self, out: Outgoing, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.run_due(&out).await {
                tracing::error!(error = %e, "outbox");
            }
            let wait = match self.next_due() {
                Ok(Some(t)) => {
                    let d = t.duration_since(self.inner.clock.now());
                    std::time::Duration::try_from(d).unwrap_or_default().max(std::time::Duration::from_millis(10))
                }
                Ok(None) => std::time::Duration::from_secs(3600),
                Err(e) => {
                    tracing::error!(error = %e, "outbox");
                    std::time::Duration::from_secs(60)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.inner.wake.notified() => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// Clears [`Inner::sending`] when a message's turn ends, however it ends.
struct Sending<'a>(&'a Outbox);

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        *self.0.inner.sending.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}
