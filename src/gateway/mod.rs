//! The gateway: joins the mail leg, the documents and the fax leg.
//!
//! **Mail to fax.** The SMTP listener stores each accepted mail in the
//! spool (flushed before `250`). [`Gateway`] takes each pending mail up:
//! renders it once ([`render`]), checks each recipient against the
//! account's destination policy ([`policy`]), and writes one [`FaxJob`] per
//! recipient together with the pages, in one flushed batch that also takes
//! the mail off the pending list. The queue calls each job through the
//! outbound trunk, never more at once than the trunk's channels; after each
//! attempt it writes the attempt's CDR and then the job, and retries busy
//! lines, unanswered calls and failed transfers on the configured schedule
//! (after a failed transfer with safer settings: no V.17, no ECM). A final
//! result queues a report to the sender (once per job, whatever restarts
//! happen); once every recipient of a mail is final, the retention sweeper
//! (category `documents`) erases its message, pages and job records by
//! destroying their keys, after `retention.document_grace` (default none).
//!
//! **Fax to mail.** An INVITE for a number that is not active in the
//! directory is refused (404) before it is answered, with a CDR. Otherwise
//! the fax is received into the work directory, turned into a PDF (and/or
//! kept as TIFF, per route) and queued in the durable outbox for each route,
//! once per call; a fax cut short still goes out, marked incomplete. Then
//! the received file is removed and its CDR written.
//!
//! **Restarts.** A job found in the middle of a call at start was cut off by
//! the stop: if its CDR was written, the attempt's result is taken from it;
//! otherwise the attempt is recorded as interrupted (same CDR id, so never
//! twice) and retried. Every CDR is written under an id chosen before the
//! call, so a repeated write replaces it.
//!
//! A call being received is recorded (sealed with its CDR month's key,
//! flushed) as it is answered, off the SIP path and well before its first
//! page, and the record removed once its CDR is written. A record found at start is a call cut off by the stop: the
//! pages that had arrived whole (spandsp writes each page out as it ends)
//! are mailed, marked incomplete, to the number's routes as they are now,
//! and the call gets its CDR, "interrupted", under the id chosen at answer.
//!
//! The pages of a call in progress exist as a file in the work directory
//! (the fax engine, spandsp, reads and writes TIFF files); it is removed when
//! the call ends, and what is left at start once cut-off calls are dealt
//! with is removed. Under systemd the work directory is the unit's
//! `RuntimeDirectory`, a tmpfs, so these files never reach a disk; it is
//! kept over a restart of the unit (`RuntimeDirectoryPreserve=restart`) for
//! the pages of a call cut off by a crash.

pub mod job;
pub mod policy;
pub mod render;
pub mod report;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use faxgate_retention::KeyId;
use faxgate_smtp::outgoing::OutAttachment;
use faxgate_t38::sip::{CallReport, IncomingCall, Router, UaConfig, UserAgent};
use faxgate_t38::{Event, FaxSettings};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

pub use job::{Attempt, FaxJob, JobState, Outcome};

use crate::Error;
use crate::cdr::{self, Cdr, CdrStore, PageEvent, Transport};
use crate::clock::Clock;
use crate::config::FaxConfig;
use crate::directory::{AttachmentFormat, Directory, Scope};
use crate::mail::Spool;
use crate::mail::outbox::Outbox;
use crate::mail::spool::pending_key;
use crate::store::{Store, Tree};
use crate::types::{E164, JobId, TenantId};

fn fax_key(id: &JobId) -> Vec<u8> {
    [b"f\0".as_slice(), id.to_text().as_bytes()].concat()
}

fn pages_key(mail: &JobId) -> Vec<u8> {
    [b"p\0".as_slice(), mail.to_text().as_bytes()].concat()
}

fn rx_key(cdr_id: &str) -> Vec<u8> {
    [b"r\0".as_slice(), cdr_id.as_bytes()].concat()
}

/// A call being received, stored (sealed with its CDR's month key) when it
/// is answered and removed once its CDR is written: after a stop in the
/// middle of the call, the next start writes the call's CDR and mails the
/// pages that had arrived.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct RxRecord {
    call_id: String,
    caller: String,
    called: E164,
    tenant: TenantId,
    account: crate::types::AccountId,
    signalling: Option<SocketAddr>,
    start: Timestamp,
    cdr_id: String,
    /// The pages' file name in the work directory.
    file: String,
}

/// The tenant refused calls to unknown numbers are booked under.
pub fn unassigned_tenant() -> TenantId {
    "unassigned".parse().expect("a valid tenant id")
}

/// The parts the gateway works with.
#[derive(Debug)]
pub struct Parts {
    /// The store.
    pub store: Store,
    /// Tenants, accounts, numbers.
    pub directory: Directory,
    /// Accepted mail.
    pub spool: Spool,
    /// Outgoing mail.
    pub outbox: Outbox,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// `[fax]`.
    pub config: FaxConfig,
    /// `[[trunk]]`.
    pub trunks: Vec<faxgate_t38::trunk::TrunkConfig>,
    /// Where call files live.
    pub work_dir: PathBuf,
    /// Wakes the retention sweeper (a job got its final result).
    pub sweep: Arc<Notify>,
}

/// What the gateway knows about a call it is receiving.
#[derive(Debug)]
struct Inbound {
    number: crate::directory::FaxNumber,
    file: PathBuf,
    start: Timestamp,
    cdr_id: String,
    /// Says when the call's [`RxRecord`] is written (or could not be).
    recorded: std::sync::mpsc::Receiver<()>,
}

impl Inbound {
    /// Waits until the call's record is written, so that it is not removed
    /// before it was there (it is written as the call is answered, and a
    /// call lasts longer than that, but a loaded disk can take seconds).
    fn wait_recorded(&self) {
        let _ = self.recorded.recv_timeout(std::time::Duration::from_secs(60));
    }
}

struct Outbound {
    ua: UserAgent,
    trunk: String,
    channels: Arc<Semaphore>,
}

struct Inner {
    tree: Tree,
    directory: Directory,
    spool: Spool,
    outbox: Outbox,
    cdrs: CdrStore,
    clock: Arc<dyn Clock>,
    config: FaxConfig,
    work_dir: PathBuf,
    sweep: Arc<Notify>,
    outbound: Mutex<Option<Arc<Outbound>>>,
    /// Jobs not yet final and reported.
    jobs: Mutex<BTreeMap<JobId, FaxJob>>,
    /// Calls being received, by Call-ID.
    inbound: Mutex<HashMap<String, Inbound>>,
    wake: Notify,
}

/// The running gateway.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("work_dir", &self.inner.work_dir).finish()
    }
}

/// The caller as shown in the mail: the number, else what the network sent.
fn caller_text(caller: &str) -> String {
    e164_of(caller).map(|e| e.to_string()).unwrap_or_else(|| {
        if caller.is_empty() {
            "unknown".into()
        } else {
            caller.chars().filter(|c| c.is_ascii_graphic()).take(32).collect()
        }
    })
}

fn e164_of(user: &str) -> Option<E164> {
    let u = user.trim();
    let candidate = if u.starts_with('+') { u.to_owned() } else { format!("+{u}") };
    E164::parse(&candidate, None).ok()
}

impl Gateway {
    /// Sets the gateway up: loads unfinished jobs (recovering any cut off by
    /// a stop), empties the work directory, starts a user agent per trunk.
    /// Returns the gateway and the SIP addresses it listens on.
    pub async fn start(parts: Parts, shutdown: CancellationToken) -> anyhow::Result<(Gateway, Vec<String>)> {
        use anyhow::Context as _;
        let Parts { store, directory, spool, outbox, clock, config, trunks, work_dir, sweep } = parts;
        std::fs::create_dir_all(&work_dir)
            .with_context(|| format!("cannot create the work directory {}", work_dir.display()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&work_dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let tree = store.tree("mail")?;
        let gw = Gateway {
            inner: Arc::new(Inner {
                cdrs: CdrStore::open(&store)?,
                tree,
                directory,
                spool,
                outbox,
                clock,
                config,
                work_dir,
                sweep,
                outbound: Mutex::new(None),
                jobs: Mutex::new(BTreeMap::new()),
                inbound: Mutex::new(HashMap::new()),
                wake: Notify::new(),
            }),
        };
        E164::load_numbering_plan();
        gw.recover()?;
        gw.recover_inbound()?;
        // What is left is pages of calls that have been dealt with.
        for e in std::fs::read_dir(&gw.inner.work_dir)?.flatten() {
            if e.file_name().to_string_lossy().ends_with(".tiff") {
                let _ = std::fs::remove_file(e.path());
            }
        }

        let mut addresses = Vec::new();
        let (report_tx, mut report_rx) = tokio::sync::mpsc::unbounded_channel::<CallReport>();
        for t in trunks {
            let bind = t.bind.context("trunk without bind")?;
            let fax = FaxSettings {
                ident: gw.inner.config.ident.clone(),
                page_header: gw.inner.config.header.clone(),
                ecm: gw.inner.config.ecm,
                ..FaxSettings::default()
            };
            let ua_cfg = UaConfig {
                bind,
                advertise: gw.inner.config.advertise,
                media_ip: gw.inner.config.media_ip,
                fax,
                time_scale: gw.inner.config.time_scale,
                user_agent: format!("faxgate/{}", env!("CARGO_PKG_VERSION")),
                trunk: t.clone(),
            };
            let router: Router = {
                let gw = gw.clone();
                let trunk = t.name.clone();
                Arc::new(move |call: &IncomingCall| gw.route_incoming(&trunk, call))
            };
            let (ua, mut reports) = UserAgent::start(ua_cfg, router)
                .await
                .with_context(|| format!("cannot start SIP on {bind} for trunk {}", t.name))?;
            addresses.push(format!("sip {} {}", t.name, ua.local_addr()));
            if t.outbound && gw.inner.outbound.lock().unwrap_or_else(|p| p.into_inner()).is_none() {
                *gw.inner.outbound.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(Outbound {
                    ua: ua.clone(),
                    trunk: t.name.clone(),
                    channels: Arc::new(Semaphore::new(t.channels as usize)),
                }));
            }
            let tx = report_tx.clone();
            let stop = shutdown.clone();
            let ua2 = ua.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        r = reports.recv() => match r {
                            Some(r) => { let _ = tx.send(r); }
                            None => break,
                        },
                        _ = stop.cancelled() => { ua2.shutdown(); break; }
                    }
                }
            });
        }
        drop(report_tx);
        {
            let gw = gw.clone();
            tokio::spawn(async move {
                while let Some(r) = report_rx.recv().await {
                    let g = gw.clone();
                    if let Err(e) = tokio::task::spawn_blocking(move || g.received(r))
                        .await
                        .unwrap_or_else(|e| Err(Error::Invalid(format!("received fax task failed: {e}"))))
                    {
                        tracing::error!(error = %e, "cannot deliver a received fax");
                    }
                }
            });
        }
        tokio::spawn(gw.clone().intake(shutdown.clone()));
        tokio::spawn(gw.clone().queue(shutdown));
        Ok((gw, addresses))
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, BTreeMap<JobId, FaxJob>> {
        self.inner.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, job: &FaxJob) -> Result<(), Error> {
        let mut b = self.inner.tree.batch();
        b.put_sealed(&fax_key(&job.id), &KeyId::job(&job.id.to_text())?, job)?;
        self.inner.tree.apply(b)
    }

    /// Every fax job still on record (finished ones until they are swept).
    pub fn list(&self) -> Result<Vec<FaxJob>, Error> {
        let mut out = Vec::new();
        for k in self.inner.tree.keys_with_prefix(b"f\0")? {
            match self.inner.tree.get_sealed::<FaxJob>(&k) {
                Ok(Some(j)) => out.push(j),
                Ok(None) => {}
                Err(Error::Crypto(_)) => {} // erased
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|j| j.created);
        Ok(out)
    }

    /// The retry schedules of `[fax]`.
    fn retry(&self) -> job::RetrySchedule {
        let c = &self.inner.config;
        job::RetrySchedule::from_config(&c.retry_delays, &c.retry_by_cause)
    }

    fn recover(&self) -> Result<(), Error> {
        for mut j in self.list()? {
            if let JobState::Calling { cdr_id, call_id, start } = j.state.clone() {
                let now = self.now();
                let written = self.inner.cdrs.get(&cdr::place_for(start, &cdr_id))?;
                let outcome = match &written {
                    Some(c) if c.t30_code == Some(0) => Outcome::Sent { pages: c.pages },
                    _ => Outcome::Interrupted,
                };
                tracing::warn!(job = %j.id.to_text(), %call_id, outcome = outcome.code(), "call cut off by a stop");
                if written.is_none() {
                    let cdr = self.job_cdr(&j, &cdr_id, &call_id, start, now, &outcome, None, None);
                    self.inner.cdrs.write(&cdr)?;
                }
                let remote = written.and_then(|c| c.remote_station);
                j.finish_attempt(Attempt { start, end: now, cdr_id, outcome, remote_station: remote }, &self.retry());
                self.save(&j)?;
            }
            if !(j.is_final() && j.reported) {
                self.jobs().insert(j.id, j);
            }
        }
        Ok(())
    }

    // ---- mail to fax: intake ----

    async fn intake(self, shutdown: CancellationToken) {
        if self.inner.config.hold {
            tracing::warn!("fax.hold is on: accepted mail is kept and nothing is faxed until it is off");
            shutdown.cancelled().await;
            return;
        }
        loop {
            let pending = self.inner.spool.pending().unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read the spool");
                Vec::new()
            });
            for id in pending {
                let g = self.clone();
                match tokio::task::spawn_blocking(move || g.take_up(&id)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "cannot take up a mail job"),
                    Err(e) => tracing::error!(error = %e, "mail job task failed"),
                }
                self.inner.wake.notify_one();
            }
            tokio::select! {
                _ = self.inner.spool.accepted() => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Turns one accepted mail into fax jobs.
    fn take_up(&self, id: &JobId) -> Result<(), Error> {
        let t = &self.inner.tree;
        let (Some(mail), Some(raw)) = (self.inner.spool.job(id)?, self.inner.spool.message(id)?) else {
            let mut b = t.batch();
            b.remove(&pending_key(id));
            return t.apply(b);
        };
        let now = self.now();
        let tenant = self.inner.directory.tenant_get(&Scope::Operator, &mail.tenant)?;
        let account = self.inner.directory.account_get(&Scope::Operator, &mail.account)?;
        let settings = self.inner.config.document_settings(&tenant, &account);
        let rendered = render::wants_cover(&raw, self.inner.config.cover_page, account.cover_page).and_then(|on| {
            let cover = on.then(|| crate::document::CoverPage {
                branding: tenant.branding.display_name.clone(),
                from: mail.mail_from.clone(),
                to: mail.recipients.iter().map(E164::to_string).collect::<Vec<_>>().join(", "),
                date: now.strftime("%Y-%m-%d %H:%M UTC").to_string(),
                pages: 0,
                subject: String::new(),
                comment: String::new(),
            });
            render::render(&raw, settings, cover)
        });
        let subject = match &rendered {
            Ok(r) => r.subject.clone(),
            Err(_) => render::subject_of(&raw),
        };
        let correlation_id = mail.message_id.clone().unwrap_or_else(|| mail.id.to_text());
        let mut jobs = Vec::new();
        for to in &mail.recipients {
            let mut j = FaxJob {
                id: JobId::generate(),
                mail_job: mail.id,
                correlation_id: correlation_id.clone(),
                tenant: mail.tenant.clone(),
                account: mail.account,
                mail_from: mail.mail_from.clone(),
                subject: subject.clone(),
                to: to.clone(),
                caller: mail.caller_number.clone(),
                smtp_client: Some(mail.client_ip),
                pages_total: rendered.as_ref().map_or(0, |r| r.pages),
                created: mail.received,
                state: JobState::Queued,
                next_at: now,
                attempts: Vec::new(),
                safer: false,
                reported: false,
            };
            match &rendered {
                Err(e) => j.fail_now(now, Outcome::BadDocument { text: e.to_string() }),
                Ok(_) => {
                    if let Err(why) = policy::check(&account, tenant.default_country, to) {
                        j.fail_now(now, Outcome::Blocked { text: why });
                    }
                }
            }
            jobs.push(j);
        }
        let mut b = t.batch();
        for j in &jobs {
            b.put_sealed(&fax_key(&j.id), &KeyId::job(&j.id.to_text())?, j)?;
        }
        if let Ok(r) = &rendered {
            b.put_sealed_bytes(&pages_key(&mail.id), &KeyId::job(&mail.id.to_text())?, &r.tiff)?;
        }
        b.remove(&pending_key(&mail.id));
        t.apply(b)?;
        tracing::info!(
            mail = %mail.id.to_text(),
            jobs = jobs.len(),
            pages = rendered.as_ref().map_or(0, |r| r.pages),
            "mail taken up"
        );
        if let Err(e) = &rendered {
            tracing::info!(mail = %mail.id.to_text(), error = %e, "mail cannot be faxed");
        }
        let mut m = self.jobs();
        for j in jobs {
            m.insert(j.id, j);
        }
        Ok(())
    }

    // ---- mail to fax: the queue ----

    async fn queue(self, shutdown: CancellationToken) {
        loop {
            let now = self.now();
            // Final jobs not yet reported: report them.
            let unreported: Vec<JobId> =
                self.jobs().values().filter(|j| j.is_final() && !j.reported).map(|j| j.id).collect();
            for id in unreported {
                let g = self.clone();
                match tokio::task::spawn_blocking(move || g.finish(&id)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "cannot report a finished fax job"),
                    Err(e) => tracing::error!(error = %e, "report task failed"),
                }
            }
            // Held: nothing is called (reports of jobs already final still go).
            let outbound = match self.inner.config.hold {
                true => None,
                false => self.inner.outbound.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            };
            let mut due: Vec<(Timestamp, JobId)> = self
                .jobs()
                .values()
                .filter(|j| j.state == JobState::Queued && j.next_at <= now)
                .map(|j| (j.next_at, j.id))
                .collect();
            due.sort();
            if let Some(out) = &outbound {
                for (_, id) in due {
                    let Ok(permit) = out.channels.clone().try_acquire_owned() else { break };
                    let Some(job) = self.start_attempt(&id) else { continue };
                    let g = self.clone();
                    let out = out.clone();
                    tokio::spawn(async move {
                        g.attempt(job, out).await;
                        drop(permit);
                        g.inner.wake.notify_one();
                    });
                }
            } else if !due.is_empty() && !self.inner.config.hold {
                tracing::warn!(jobs = due.len(), "faxes are waiting but no trunk is marked outbound");
            }
            let next = self
                .jobs()
                .values()
                .filter(|j| j.state == JobState::Queued)
                .map(|j| j.next_at)
                .min()
                .filter(|_| outbound.is_some());
            let sleep = match next {
                Some(t) => {
                    let d = t.duration_since(self.now()).max(SignedDuration::from_millis(10));
                    std::time::Duration::try_from(d).unwrap_or(std::time::Duration::from_secs(3600))
                }
                None => std::time::Duration::from_secs(3600),
            };
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Marks a job as calling (flushed) and returns it.
    fn start_attempt(&self, id: &JobId) -> Option<FaxJob> {
        let mut job = self.jobs().get(id).cloned()?;
        job.state =
            JobState::Calling { cdr_id: CdrStore::new_id(), call_id: UserAgent::new_call_id(), start: self.now() };
        if let Err(e) = self.save(&job) {
            tracing::error!(error = %e, "cannot record the start of a call; not calling");
            return None;
        }
        self.jobs().insert(job.id, job.clone());
        Some(job)
    }

    async fn attempt(&self, mut job: FaxJob, out: Arc<Outbound>) {
        let JobState::Calling { cdr_id, call_id, start } = job.state.clone() else { return };
        let file = self.inner.work_dir.join(format!("{}.tiff", job.id.to_text()));
        let pages = self.inner.tree.get_sealed_bytes(&pages_key(&job.mail_job));
        let result = match pages {
            Ok(Some(p)) => match write_private(&file, &p) {
                Ok(()) => {
                    let settings = job.safer.then(|| safer(out.ua.fax_settings()));
                    let from = job.caller.as_ref().map(|c| c.to_string()).unwrap_or_else(|| "anonymous".into());
                    tracing::info!(job = %job.id.to_text(), %call_id, trunk = %out.trunk, attempt = job.attempts.len() + 1, safer = job.safer, "calling");
                    let r = out
                        .ua
                        .send_fax_with(job.to.as_str(), &from, file.clone(), settings, Some(call_id.clone()))
                        .await;
                    let _ = std::fs::remove_file(&file);
                    r
                }
                Err(e) => Err(faxgate_t38::sip::CallError::Engine(format!("cannot write the pages: {e}"))),
            },
            Ok(None) => Err(faxgate_t38::sip::CallError::Engine("the pages are gone".into())),
            Err(e) => Err(faxgate_t38::sip::CallError::Engine(e.to_string())),
        };
        let end = self.now();
        let outcome = Outcome::of_call(&result);
        let report = result.as_ref().ok();
        tracing::info!(job = %job.id.to_text(), %call_id, outcome = outcome.code(), pages = outcome.pages(), "call ended");
        let cdr = self.job_cdr(&job, &cdr_id, &call_id, start, end, &outcome, report, Some(out.ua.trunk_addr()));
        let remote = cdr.remote_station.clone();
        let g = self.clone();
        let delays = self.retry();
        let saved = tokio::task::spawn_blocking(move || -> Result<FaxJob, Error> {
            g.inner.cdrs.write(&cdr)?;
            job.finish_attempt(Attempt { start, end, cdr_id, outcome, remote_station: remote }, &delays);
            g.save(&job)?;
            Ok(job)
        })
        .await;
        match saved {
            Ok(Ok(job)) => {
                self.jobs().insert(job.id, job);
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot record a call's result; it is recovered at the next start")
            }
            Err(e) => tracing::error!(error = %e, "result task failed"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn job_cdr(
        &self,
        job: &FaxJob,
        cdr_id: &str,
        call_id: &str,
        start: Timestamp,
        end: Timestamp,
        outcome: &Outcome,
        report: Option<&CallReport>,
        trunk: Option<SocketAddr>,
    ) -> Cdr {
        let mut c = blank_cdr(
            cdr_id,
            format!("{} {} {} {}", job.correlation_id, job.id.to_text(), call_id, cdr_id),
            cdr::Direction::MailToFax,
            job.tenant.clone(),
            start,
        );
        c.account = Some(job.account);
        c.calling = job.caller.clone();
        c.called = Some(job.to.clone());
        c.emails = job.mail_from.parse().ok().into_iter().collect();
        c.smtp_client = job.smtp_client;
        c.sip_signalling = trunk;
        c.end = end;
        c.sip_status = outcome.sip_status();
        c.pages = outcome.pages();
        c.pages_total = Some(job.pages_total);
        c.attempt = job.attempts.len() as u32 + 1;
        if let Outcome::Interrupted = outcome {
            c.t30_text = Some("interrupted: the gateway stopped during the call".into());
        }
        if let Some(r) = report {
            fill_from_report(&mut c, r, end);
        }
        if c.t30_text.is_none() {
            c.t30_text = Some(outcome.code().to_owned());
        }
        c
    }

    /// Queues the report of a final job, then erases the mail's documents
    /// once every recipient is final.
    fn finish(&self, id: &JobId) -> Result<(), Error> {
        let Some(mut job) = self.jobs().get(id).cloned() else { return Ok(()) };
        let tenant = self.inner.directory.tenant_get(&Scope::Operator, &job.tenant)?;
        if job.mail_from.is_empty() {
            tracing::info!(job = %job.id.to_text(), "no report: the mail came from the null sender");
        } else {
            let text = report::job_report(&tenant, &job);
            let mut attachments = Vec::new();
            if job.state == JobState::Failed
                && self.inner.config.attach_original_on_failure
                && let Some(raw) = self.inner.spool.message(&job.mail_job)?
            {
                attachments.push(OutAttachment {
                    filename: "original.eml".into(),
                    content_type: "message/rfc822".into(),
                    data: raw,
                });
            }
            self.inner.outbox.enqueue_once(
                &format!("report {}", job.id.to_text()),
                &tenant,
                std::slice::from_ref(&job.mail_from),
                &text.subject,
                &text.body,
                attachments,
            )?;
        }
        job.reported = true;
        self.save(&job)?;
        self.jobs().remove(&job.id);
        // The sweeper erases the mail, its pages and the finished jobs once
        // every recipient is final (after `retention.document_grace`).
        self.inner.sweep.notify_one();
        Ok(())
    }

    // ---- fax to mail ----

    /// `number`, if faxes to it are taken here: its account is active and
    /// it has somewhere to mail them.
    fn routed_number(&self, number: &E164, now: Timestamp) -> Option<crate::directory::FaxNumber> {
        let num = self.inner.directory.number_get(&Scope::Operator, number.as_str()).ok()?;
        let acc = self.inner.directory.account_get(&Scope::Operator, &num.account).ok()?;
        (acc.status(now) == crate::directory::AccountStatus::Active && !num.routes.is_empty()).then_some(num)
    }

    fn route_incoming(&self, trunk: &str, call: &IncomingCall) -> Option<PathBuf> {
        let now = self.now();
        let number = e164_of(&call.called);
        let found = number.as_ref().and_then(|n| self.routed_number(n, now));
        let cdr_id = CdrStore::new_id();
        match found {
            Some(num) => {
                let name = format!("rx-{}.tiff", uuid::Uuid::new_v4().simple());
                let file = self.inner.work_dir.join(&name);
                let record = RxRecord {
                    call_id: call.call_id.clone(),
                    caller: call.caller.clone(),
                    called: num.number.clone(),
                    tenant: num.tenant.clone(),
                    account: num.account,
                    signalling: call.signalling,
                    start: now,
                    cdr_id: cdr_id.clone(),
                    file: name,
                };
                // Written off the SIP path: the answer does not wait for the
                // disk (a flush, and for a month's first record the creation
                // of its key, each wait for an fsync, which a loaded disk can
                // make long, and here it would hold an async worker that the
                // calls' media share); the record matters once pages arrive,
                // seconds later.
                let (done, recorded) = std::sync::mpsc::channel();
                let g = self.clone();
                let write = move || {
                    match g.put_rx(&record) {
                        Ok(()) => tracing::debug!(call_id = %record.call_id, "incoming call recorded"),
                        Err(e) => {
                            tracing::error!(call_id = %record.call_id, error = %e, "cannot record an incoming call: a stop during it would leave no CDR")
                        }
                    }
                    let _ = done.send(());
                };
                match tokio::runtime::Handle::try_current() {
                    Ok(h) => drop(h.spawn_blocking(write)),
                    Err(_) => write(),
                }
                tracing::info!(call_id = %call.call_id, %trunk, to = %num.number, "answering a fax call");
                self.inner.inbound.lock().unwrap_or_else(|p| p.into_inner()).insert(
                    call.call_id.clone(),
                    Inbound { number: num, file: file.clone(), start: now, cdr_id, recorded },
                );
                Some(file)
            }
            None => {
                tracing::info!(call_id = %call.call_id, %trunk, called = %call.called, "call to a number that is not active here: 404");
                self.refused_cdr(call, 404);
                None
            }
        }
    }

    /// The CDR of an incoming call refused before it was answered, under the
    /// tenant of the number called when it is one of ours.
    fn refused_cdr(&self, call: &IncomingCall, status: u16) {
        let now = self.now();
        let cdr_id = CdrStore::new_id();
        let number = e164_of(&call.called);
        let (tenant, account) = number
            .as_ref()
            .and_then(|n| self.inner.directory.number_get(&Scope::Operator, n.as_str()).ok())
            .map(|n| (n.tenant, Some(n.account)))
            .unwrap_or_else(|| (unassigned_tenant(), None));
        let mut c = blank_cdr(&cdr_id, format!("{} {}", call.call_id, cdr_id), cdr::Direction::FaxToMail, tenant, now);
        c.account = account;
        c.calling = e164_of(&call.caller);
        c.called = number;
        c.sip_signalling = call.signalling;
        c.sip_status = Some(status);
        c.t30_text = Some(
            match status {
                404 => "refused: the number is not in service here",
                486 | 503 | 600 => "refused: every channel of the trunk is in use",
                400 => "refused: the call request could not be read",
                487 => "not answered: the caller gave up while it rang",
                _ => "refused: no fax media in common with the caller",
            }
            .into(),
        );
        if let Err(e) = self.inner.cdrs.write(&c) {
            tracing::error!(error = %e, "cannot write the CDR of a refused call");
        }
    }

    /// A call we answered has ended: mail what arrived, then the CDR.
    fn received(&self, r: CallReport) -> Result<(), Error> {
        if !r.incoming {
            return Ok(());
        }
        if let Some(status) = r.refused {
            tracing::info!(call_id = %r.call_id, status, "incoming call refused before answering");
            // A call routed, then given up by its caller while it rang.
            let routed = self.inner.inbound.lock().unwrap_or_else(|p| p.into_inner()).remove(&r.call_id);
            if let Some(inb) = routed {
                inb.wait_recorded();
                self.drop_rx(&inb.cdr_id)?;
            }
            let call = IncomingCall {
                call_id: r.call_id.clone(),
                caller: r.caller.clone(),
                called: r.called.clone(),
                signalling: r.signalling,
            };
            self.refused_cdr(&call, status);
            return Ok(());
        }
        let Some(inb) = self.inner.inbound.lock().unwrap_or_else(|p| p.into_inner()).remove(&r.call_id) else {
            return Ok(());
        };
        let end = self.now();
        let num = &inb.number;
        let tenant = self.inner.directory.tenant_get(&Scope::Operator, &num.tenant)?;
        let pages = r.result.as_ref().map_or(0, |x| x.pages);
        let complete = r.result.as_ref().is_some_and(|x| x.is_ok());
        let station = r.result.as_ref().and_then(|x| x.remote_ident.clone()).unwrap_or_default();
        let from = caller_text(&r.caller);
        let mut c =
            received_cdr(&inb.cdr_id, &r.call_id, num.tenant.clone(), num.account, &r.caller, &num.number, inb.start);
        c.emails = num.routes.iter().map(|x| x.email.clone()).collect();
        c.end = end;
        c.pages = pages;
        fill_from_report(&mut c, &r, end);
        let data = std::fs::read(&inb.file).ok().filter(|_| pages > 0);
        if let Some(tiff) = data {
            let received = report::Received {
                from: &from,
                to: num.number.as_str(),
                pages,
                incomplete: !complete,
                station: &station,
                start: inb.start,
                duration_s: end.duration_since(inb.start).as_secs(),
                result: c.t30_text.as_deref().unwrap_or(""),
                reference: &c.id,
            };
            self.mail_received(num, &tenant, &r.call_id, &tiff, &received)?;
            tracing::info!(call_id = %r.call_id, pages, complete, "received fax queued for mail");
        } else {
            tracing::info!(call_id = %r.call_id, "call ended without a page");
        }
        // The pages are in the outbox now (or there were none): they go
        // before the CDR is written, so that a CDR means the call is done with.
        let _ = std::fs::remove_file(&inb.file);
        self.inner.cdrs.write(&c)?;
        inb.wait_recorded();
        self.drop_rx(&inb.cdr_id)
    }

    /// Queues the mails of a received fax, one per attachment format its
    /// routes ask for; each once per call, so that mailing again after a
    /// stop sends nothing twice.
    fn mail_received(
        &self,
        num: &crate::directory::FaxNumber,
        tenant: &crate::directory::Tenant,
        call_id: &str,
        tiff: &[u8],
        received: &report::Received<'_>,
    ) -> Result<(), Error> {
        let info = crate::document::topdf::FaxInfo {
            title: format!("Fax from {}", received.from),
            from: format!("{} {}", received.from, received.station).trim().to_owned(),
            to: num.number.to_string(),
            received: Some(received.start),
        };
        let pdf = crate::document::topdf::tiff_to_pdf(tiff, &info, 1000).map(|(p, _)| p);
        let text = report::received(tenant, received);
        let stamp = received.start.strftime("%Y%m%d-%H%M%S").to_string();
        let digits: String = received.from.chars().filter(char::is_ascii_digit).collect();
        let base = format!("fax-{digits}-{stamp}");
        for format in [AttachmentFormat::Pdf, AttachmentFormat::Tiff, AttachmentFormat::Both] {
            let to: Vec<String> =
                num.routes.iter().filter(|x| x.format == format).map(|x| x.email.to_string()).collect();
            if to.is_empty() {
                continue;
            }
            let mut attachments = Vec::new();
            if matches!(format, AttachmentFormat::Pdf | AttachmentFormat::Both) {
                match &pdf {
                    Ok(p) => attachments.push(OutAttachment {
                        filename: format!("{base}.pdf"),
                        content_type: "application/pdf".into(),
                        data: p.clone(),
                    }),
                    Err(e) => tracing::error!(error = %e, "cannot make a PDF of a received fax; sending the TIFF"),
                }
            }
            if matches!(format, AttachmentFormat::Tiff | AttachmentFormat::Both) || pdf.is_err() {
                attachments.push(OutAttachment {
                    filename: format!("{base}.tiff"),
                    content_type: "image/tiff".into(),
                    data: tiff.to_vec(),
                });
            }
            self.inner.outbox.enqueue_once(
                &format!("received {call_id} {format:?}"),
                tenant,
                &to,
                &text.subject,
                &text.body,
                attachments,
            )?;
        }
        Ok(())
    }

    /// Stores `r` (see [`RxRecord`]), flushed.
    fn put_rx(&self, r: &RxRecord) -> Result<(), Error> {
        let (y, m) = cdr::month_of(r.start);
        let mut b = self.inner.tree.batch();
        b.put_sealed(&rx_key(&r.cdr_id), &KeyId::cdr_month(y, m)?, r)?;
        self.inner.tree.apply(b)
    }

    fn drop_rx(&self, cdr_id: &str) -> Result<(), Error> {
        let mut b = self.inner.tree.batch();
        b.remove(&rx_key(cdr_id));
        self.inner.tree.apply(b)
    }

    /// Finishes the calls that were being received when the daemon
    /// stopped: each gets its CDR ("interrupted"), and the pages that had
    /// arrived whole are mailed, marked incomplete, to the number's routes
    /// as they are now (none if the number is no longer active here).
    fn recover_inbound(&self) -> Result<(), Error> {
        for key in self.inner.tree.keys_with_prefix(b"r\0")? {
            let record: Option<RxRecord> = self.inner.tree.get_sealed(&key).unwrap_or_else(|e| {
                // Its month's key is gone: the CDR it would have become is
                // past its own deadline.
                tracing::warn!(error = %e, "an unreadable record of a call being received; dropped");
                None
            });
            if let Some(r) = record {
                let written = self.inner.cdrs.get(&cdr::place_for(r.start, &r.cdr_id))?.is_some();
                let file = self.inner.work_dir.join(&r.file);
                if !written {
                    self.finish_cut_off_rx(&r, &file)?;
                }
                let _ = std::fs::remove_file(&file);
            }
            let mut b = self.inner.tree.batch();
            b.remove(&key);
            self.inner.tree.apply(b)?;
        }
        Ok(())
    }

    fn finish_cut_off_rx(&self, r: &RxRecord, file: &Path) -> Result<(), Error> {
        let now = self.now();
        let from = caller_text(&r.caller);
        // The pages spandsp had finished are whole in the file (a page is
        // written out when it ends); a page under way when the daemon
        // stopped is not in it.
        let tiff = std::fs::read(file).ok();
        let pages =
            tiff.as_deref().and_then(|t| crate::document::tiff::parse(t, 1000).ok()).map_or(0, |p| p.len() as u32);
        let num = self.routed_number(&r.called, now);
        let mut c = received_cdr(&r.cdr_id, &r.call_id, r.tenant.clone(), r.account, &r.caller, &r.called, r.start);
        c.sip_signalling = r.signalling;
        c.end = now.max(r.start);
        c.pages = pages;
        c.t30_text = Some("interrupted: the gateway stopped during the call".into());
        tracing::warn!(call_id = %r.call_id, pages, "incoming call cut off by a stop");
        if let (Some(num), Some(tiff)) = (&num, tiff.filter(|_| pages > 0)) {
            c.emails = num.routes.iter().map(|x| x.email.clone()).collect();
            let tenant = self.inner.directory.tenant_get(&Scope::Operator, &num.tenant)?;
            let received = report::Received {
                from: &from,
                to: num.number.as_str(),
                pages,
                incomplete: true,
                station: "",
                start: r.start,
                duration_s: c.end.duration_since(r.start).as_secs(),
                result: c.t30_text.as_deref().unwrap_or(""),
                reference: &c.id,
            };
            self.mail_received(num, &tenant, &r.call_id, &tiff, &received)?;
            tracing::info!(call_id = %r.call_id, pages, "pages of a cut-off call queued for mail");
        }
        self.inner.cdrs.write(&c)
    }
}

/// A CDR with what every attempt has; the rest is filled in by the caller.
fn blank_cdr(id: &str, correlation_id: String, direction: cdr::Direction, tenant: TenantId, start: Timestamp) -> Cdr {
    Cdr {
        id: id.to_owned(),
        correlation_id,
        direction,
        tenant,
        account: None,
        calling: None,
        called: None,
        emails: Vec::new(),
        smtp_client: None,
        sip_signalling: None,
        sip_media: None,
        start,
        answer: None,
        end: start,
        t30_code: None,
        t30_text: None,
        sip_status: None,
        pages: 0,
        pages_total: None,
        transport: None,
        bit_rate: None,
        ecm: None,
        resolution: None,
        remote_station: None,
        attempt: 1,
        timeline: Vec::new(),
    }
}

/// The CDR of a call answered here, with what is known from its start.
fn received_cdr(
    cdr_id: &str,
    call_id: &str,
    tenant: TenantId,
    account: crate::types::AccountId,
    caller: &str,
    called: &E164,
    start: Timestamp,
) -> Cdr {
    let mut c = blank_cdr(cdr_id, format!("{call_id} {cdr_id}"), cdr::Direction::FaxToMail, tenant, start);
    c.account = Some(account);
    c.calling = e164_of(caller);
    c.called = Some(called.clone());
    c
}

fn fill_from_report(c: &mut Cdr, r: &CallReport, end: Timestamp) {
    let answer = end - SignedDuration::try_from(r.answered_for).unwrap_or(SignedDuration::ZERO);
    c.sip_status = Some(r.sip_status());
    c.sip_signalling = r.signalling.or(c.sip_signalling);
    c.answer = Some(answer.max(c.start));
    c.transport = Some(if r.t38 { Transport::T38 } else { Transport::G711 });
    c.sip_media = r.remote_media;
    if let Some(res) = &r.result {
        c.t30_code = Some(res.code.0);
        c.t30_text = Some(res.text.clone());
        c.bit_rate = Some(res.bit_rate);
        c.ecm = Some(res.ecm);
        c.remote_station = res.remote_ident.clone().filter(|s| !s.trim().is_empty());
        c.pages = res.pages;
        if let Some(n) = res.pages_in_file {
            c.pages_total = Some(n);
        }
    }
    let mut page = 0;
    for (i, e) in r.events.iter().enumerate() {
        if let Event::Page(p) = e {
            let offset = r.event_offsets.get(i).copied().unwrap_or_default();
            page += 1;
            c.resolution.get_or_insert_with(|| format!("{}x{}", p.x_resolution, p.y_resolution));
            c.timeline.push(PageEvent {
                page,
                at: answer + SignedDuration::try_from(offset).unwrap_or(SignedDuration::ZERO),
                bad_rows: p.bad_rows,
                ecm_retries: p.ecm_retries,
            });
        }
    }
}

/// Settings for a retry after a failed transfer: V.29 at most, no ECM.
fn safer(mut s: FaxSettings) -> FaxSettings {
    s.modems.v17 = false;
    s.ecm = false;
    s
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(data)
}
