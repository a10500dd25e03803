//! The spool: accepted messages and their job records.
//!
//! [`Spool::deliver`] answers `250` only after the message and its job
//! record are on disk: the message as a sealed file under `spool/` (written,
//! fsynced, renamed, directory fsynced), then the job record in one flushed
//! sled batch. Both are sealed with the job's own key (`retention::documents::job_key`), so
//! erasing the job's documents once the fax is delivered is destroying one
//! key. A pending-job index (`q`) names the jobs the fax pipeline has to
//! take up. A crash between the file and the record leaves a file that no
//! record names: [`Spool::open`] removes such files (nothing was
//! acknowledged for them).
//!
//! The same message sent again (same sender, same Message-ID, same body
//! hash) within [`DEDUPE_WINDOW`] is acknowledged with the first job's id
//! and not faxed twice: mail clients resend when a connection drops after
//! the `.` and before the `250`. The index holds only a blinded key.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use faxgate_smtp::{Enhanced, Message, Reply, Sink};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::dmarc::Dmarc;
use super::policy::MailPolicy;
use crate::Error;
use crate::clock::Clock;
use crate::retention::documents::job_key;
use crate::store::layout::mail as layout;
use crate::store::{Store, Tree, TreeName};
use crate::types::{AccountId, E164, JobId, TenantId};

/// How long a message is remembered for duplicate detection.
pub const DEDUPE_WINDOW: SignedDuration = SignedDuration::from_hours(24);

/// A fax job from mail, as recorded at acceptance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailJob {
    /// The job.
    pub id: JobId,
    /// The sender's tenant.
    pub tenant: TenantId,
    /// The sender's account.
    pub account: AccountId,
    /// The reverse path.
    pub mail_from: String,
    /// The SMTP AUTH user, if the client logged in.
    pub auth_user: Option<String>,
    /// The caller number the faxes are sent as.
    pub caller_number: Option<E164>,
    /// The fax numbers.
    pub recipients: Vec<E164>,
    /// The SMTP client.
    pub client_ip: IpAddr,
    /// Its EHLO name.
    pub helo: String,
    /// Whether the session ran over TLS.
    pub tls: bool,
    /// When the message was accepted.
    pub received: Timestamp,
    /// Its Message-ID header.
    pub message_id: Option<String>,
    /// Its size in octets, as received.
    pub size: u64,
    /// SHA-256 of the message as received, hex.
    pub sha256: String,
}

/// The spool of accepted messages.
#[derive(Debug, Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    tree: Tree,
    policy: Arc<MailPolicy>,
    dmarc: Dmarc,
    clock: Arc<dyn Clock>,
    hostname: String,
    /// Duplicate keys of the messages being stored right now: the same
    /// message is not stored twice at once, while different messages are
    /// written and flushed in parallel (sled groups their flushes).
    in_flight: Mutex<HashSet<Vec<u8>>>,
    /// Woken when a new job is stored.
    accepted: tokio::sync::Notify,
}

/// Removes its key from the in-flight set when dropped.
struct InFlight<'a>(&'a Mutex<HashSet<Vec<u8>>>, Vec<u8>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.1);
    }
}

/// The Message-ID header of a message, if it has one.
pub fn message_id(data: &[u8]) -> Option<String> {
    let mut found: Option<String> = None;
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if let Some(v) = &mut found {
            if matches!(line.first(), Some(b' ' | b'\t')) {
                v.push_str(String::from_utf8_lossy(line).trim());
                continue;
            }
            break;
        }
        if line.len() >= 11 && line[..11].eq_ignore_ascii_case(b"message-id:") {
            found = Some(String::from_utf8_lossy(&line[11..]).trim().to_owned());
        }
    }
    found.filter(|v| !v.is_empty())
}

impl Spool {
    /// The spool in `store`, checking senders with `policy` and `dmarc`.
    pub fn open(
        store: &Store,
        policy: Arc<MailPolicy>,
        dmarc: Dmarc,
        clock: Arc<dyn Clock>,
        hostname: &str,
    ) -> Result<Spool, Error> {
        let tree = store.tree(TreeName::Mail)?;
        for name in store.files()? {
            if name.starts_with('.') {
                store.remove_temporary(&name)?;
            } else if let Ok(id) = name.parse::<JobId>()
                && !tree.contains(&layout::job(&id))?
            {
                tracing::info!(file = %name, "message file without a job record (a crash before the 250) removed");
                store.remove_file(&name)?;
            }
        }
        Ok(Spool {
            inner: Arc::new(Inner {
                store: store.clone(),
                tree,
                policy,
                dmarc,
                clock,
                hostname: hostname.to_owned(),
                in_flight: Mutex::new(HashSet::new()),
                accepted: tokio::sync::Notify::new(),
            }),
        })
    }

    /// Waits until a new job has been stored (returns at once if one was
    /// stored since the last wait).
    pub async fn accepted(&self) {
        self.inner.accepted.notified().await
    }

    /// A job record.
    pub fn job(&self, id: &JobId) -> Result<Option<MailJob>, Error> {
        self.inner.tree.get_sealed(&layout::job(id))
    }

    /// A job's message as stored (with faxgate's Received header on top).
    pub fn message(&self, id: &JobId) -> Result<Option<Vec<u8>>, Error> {
        match self.inner.store.get_file(&id.to_text())? {
            Some(m) => Ok(Some(m)),
            // Stores written before messages moved beside sled.
            None => self.inner.tree.get_sealed_bytes(&layout::message(id)),
        }
    }

    /// The jobs waiting for the fax pipeline, oldest first.
    pub fn pending(&self) -> Result<Vec<JobId>, Error> {
        self.inner
            .tree
            .keys_with_prefix(layout::PENDING)?
            .into_iter()
            .map(|k| layout::pending_id(&k).map_err(Error::Invalid))
            .collect()
    }

    /// The host name the spool writes in trace fields.
    pub fn hostname(&self) -> &str {
        &self.inner.hostname
    }

    /// Stores a message made here (a fax sent by upload) as one accepted
    /// over SMTP is stored: durably before this returns. Returns its job id
    /// and whether the same message was there already (then not stored
    /// again).
    pub fn submit(&self, job: MailJob, data: &[u8]) -> Result<(JobId, bool), Error> {
        self.store(job, data)?
            .ok_or_else(|| Error::Conflict("the same fax is being stored right now; ask again in a moment".into()))
    }

    fn dedupe_key(&self, mail_from: &str, message_id: Option<&str>, sha256: &str) -> Vec<u8> {
        layout::dedupe(&self.inner.store, mail_from, message_id, sha256)
    }

    /// Stores `job` and `message` durably unless the same message is there
    /// already; returns the job id the client is told, and whether it was
    /// there already. `None` when the same message is being stored by
    /// another session right now.
    fn store(&self, job: MailJob, data: &[u8]) -> Result<Option<(JobId, bool)>, Error> {
        let t = &self.inner.tree;
        let dedupe = self.dedupe_key(&job.mail_from, job.message_id.as_deref(), &job.sha256);
        if !self.inner.in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(dedupe.clone()) {
            return Ok(None);
        }
        let _in_flight = InFlight(&self.inner.in_flight, dedupe.clone());
        if let Some(v) = t.get_plain(&dedupe)? {
            let text = String::from_utf8_lossy(&v);
            if let Some((id, ms)) = text.split_once(' ')
                && let (Ok(id), Ok(ms)) = (id.parse::<JobId>(), ms.parse::<i64>())
                && let Ok(then) = Timestamp::from_millisecond(ms)
                && job.received.duration_since(then) < DEDUPE_WINDOW
            {
                return Ok(Some((id, true)));
            }
        }
        let kid = job_key(&job.id)?;
        let received =
            jiff::fmt::rfc2822::DateTimePrinter::new().timestamp_to_string(&job.received).unwrap_or_default();
        let trace = format!(
            "Received: from {} ([{}])\r\n\tby {} with ESMTP{}{} id {};\r\n\t{received}\r\n",
            sanitize(&job.helo),
            job.client_ip,
            self.inner.hostname,
            if job.tls { "S" } else { "" },
            if job.auth_user.is_some() { "A" } else { "" },
            job.id,
        );
        let mut raw = Vec::with_capacity(trace.len() + data.len());
        raw.extend_from_slice(trace.as_bytes());
        raw.extend_from_slice(data);
        self.inner.store.put_file(&job.id.to_text(), &kid, &raw)?;
        let mut b = t.batch();
        b.put_sealed(&layout::job(&job.id), &kid, &job)?;
        b.put_plain(&layout::pending(&job.id), b"");
        b.put_plain(&dedupe, format!("{} {}", job.id, job.received.as_millisecond()).as_bytes());
        t.apply(b)?;
        self.inner.accepted.notify_one();
        Ok(Some((job.id, false)))
    }
}

fn sanitize(helo: &str) -> String {
    helo.chars().map(|c| if c.is_ascii_graphic() { c } else { '?' }).take(255).collect()
}

impl Sink for Spool {
    async fn deliver(&self, message: Message) -> Reply {
        let r = self.take(message).await;
        if r.code >= 400 {
            crate::metrics::smtp_refused("message");
        }
        r
    }
}

impl Spool {
    async fn take(&self, message: Message) -> Reply {
        let policy = &self.inner.policy;
        let Message { context, transaction, data } = message;
        let a = match policy.authorise(&context, &transaction.from) {
            Ok(a) => a,
            Err(r) => return r,
        };
        if a.needs_dmarc
            && let Err(r) = self.inner.dmarc.check(&context, &transaction.from, &data).await
        {
            return r;
        }
        let mut recipients = Vec::new();
        for to in &transaction.rcpts {
            match policy.recipient(&a.sender, to) {
                Ok(n) if !recipients.contains(&n) => recipients.push(n),
                Ok(_) => {}
                Err(r) => return r,
            }
        }
        let job = MailJob {
            id: JobId::generate(),
            tenant: a.sender.tenant.clone(),
            account: a.sender.account,
            mail_from: transaction.from.clone(),
            auth_user: context.auth_user.clone(),
            caller_number: a.sender.caller_number.clone(),
            recipients,
            client_ip: context.peer,
            helo: context.helo.clone(),
            tls: context.tls,
            received: self.inner.clock.now(),
            message_id: message_id(&data),
            size: data.len() as u64,
            sha256: format!("{:x}", Sha256::digest(&data)),
        };
        let this = self.clone();
        match tokio::task::spawn_blocking(move || this.store(job, &data)).await {
            Ok(Ok(None)) => {
                Reply::new(451, Enhanced(4, 3, 0), "the same message is being stored right now; try again later")
            }
            Ok(Ok(Some((id, false)))) => {
                tracing::info!(job = %id, "mail accepted");
                Reply::new(250, Enhanced(2, 0, 0), format!("queued as {id}"))
            }
            Ok(Ok(Some((id, true)))) => {
                tracing::info!(job = %id, "duplicate mail acknowledged, not queued again");
                Reply::new(250, Enhanced(2, 0, 0), format!("already queued as {id}; not faxed twice"))
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot store mail");
                Reply::new(451, Enhanced(4, 3, 0), "cannot store the message now, try again later")
            }
            Err(e) => {
                tracing::error!(error = %e, "mail store task failed");
                Reply::new(451, Enhanced(4, 3, 0), "cannot store the message now, try again later")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_file_without_its_record_is_removed_at_open() {
        use crate::clock::FakeClock;
        use crate::directory::Directory;
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let store = Store::open(&data, &data.join("keys")).unwrap();
        let clock: Arc<dyn Clock> = Arc::new(FakeClock::new("2026-03-01T10:00:00Z".parse().unwrap()));
        let open = |store: &Store| {
            let directory = Directory::open(store, clock.clone()).unwrap();
            let policy = Arc::new(MailPolicy::new(directory));
            Spool::open(store, policy, Dmarc::new(&[], "fax.test").unwrap(), clock.clone(), "fax.test").unwrap()
        };
        let spool = open(&store);
        let job = MailJob {
            id: JobId::generate(),
            tenant: "alpha".parse().unwrap(),
            account: AccountId::generate(),
            mail_from: "karen@rungstedlund.dk".into(),
            auth_user: None,
            caller_number: None,
            recipients: vec!["+4533990101".parse().unwrap()],
            client_ip: "127.0.0.1".parse().unwrap(),
            helo: "client.test".into(),
            tls: false,
            received: clock.now(),
            message_id: Some("<m1@test>".into()),
            size: 9,
            sha256: "00".into(),
        };
        let (id, again) = spool.store(job.clone(), b"Subject: x\r\n\r\nbody\r\n").unwrap().unwrap();
        assert!(!again);
        let message = spool.message(&id).unwrap().unwrap();
        assert!(message.ends_with(b"\r\n\r\nbody\r\n"));
        assert!(!std::fs::read(store.file_dir().join(id.to_text())).unwrap().windows(4).any(|w| w == b"body"));
        // A crash after the message file and before its record; and one in
        // the middle of writing a file.
        let orphan = JobId::generate();
        store.put_file(&orphan.to_text(), &job_key(&orphan).unwrap(), b"never acknowledged").unwrap();
        std::fs::write(store.file_dir().join(".job-x.tmp"), b"partial").unwrap();
        drop(spool);
        let spool = open(&store);
        assert_eq!(store.files().unwrap(), vec![id.to_text()]);
        assert_eq!(spool.message(&id).unwrap().unwrap(), message);
        assert_eq!(spool.pending().unwrap(), vec![id]);
    }

    #[test]
    fn message_id_is_found_and_unfolded() {
        assert_eq!(message_id(b"Subject: x\r\nMessage-Id:\r\n <a@b>\r\nTo: y\r\n\r\nbody"), Some("<a@b>".into()));
        assert_eq!(message_id(b"MESSAGE-ID: <c@d>\r\n\r\n"), Some("<c@d>".into()));
        assert_eq!(message_id(b"Subject: x\r\n\r\nMessage-ID: <in@body>\r\n"), None);
    }
}
