//! Mail to fax: an accepted mail is taken up (rendered once, checked against
//! the account's destination policy, one job per recipient written with the
//! pages in one flushed batch), queued, called through the outbound trunk
//! (never more calls than its channels; each call's pages headed with the
//! tenant's page header, its TSI the sender's station id; started with what
//! earlier calls to the destination needed, [`crate::learned`], and teaching
//! it what this one needed), retried on its cause's schedule, and finished
//! with a report; a call cut off by a stop is recovered at start.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use faxgate_retention::logid::Scrubbed;
use faxgate_smtp::outgoing::OutAttachment;
use faxgate_t38::FaxSettings;
use faxgate_t38::sip::{CallOptions, CallReport, Needed, UserAgent};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::job::{Attempt, FaxJob, JobState, Outcome};
use super::{Gateway, policy, render, report};
use crate::Error;
use crate::cdr::{self, Cdr, CdrStore};
use crate::directory::Scope;
use crate::learned::{self, Learned};
use crate::retention::documents::job_key;
use crate::store::layout::mail as layout;
use crate::types::{E164, JobId};

/// The trunk faxes from mail leave by.
pub(super) struct Outbound {
    pub(super) ua: UserAgent,
    pub(super) trunk: String,
    pub(super) channels: Arc<Semaphore>,
}

impl Gateway {
    pub(super) fn recover(&self) -> Result<(), Error> {
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

    pub(super) async fn intake(self, shutdown: CancellationToken) {
        let mut config = self.inner.config.subscribe();
        let mut held = false;
        loop {
            if config.borrow_and_update().hold {
                if !held {
                    tracing::warn!("fax.hold is on: accepted mail is kept and nothing is faxed until it is off");
                    held = true;
                }
                tokio::select! {
                    _ = config.changed() => continue,
                    _ = shutdown.cancelled() => return,
                }
            }
            if held {
                tracing::info!("fax.hold is off: the mail kept is faxed");
                held = false;
                self.inner.wake.notify_one();
            }
            let pending = self.inner.spool.pending().unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read the spool");
                Vec::new()
            });
            for id in pending {
                let g = self.clone();
                match tokio::task::spawn_blocking(move || g.take_up(&id)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(error = %Scrubbed(&e), "cannot take up a mail job"),
                    Err(e) => tracing::error!(error = %e, "mail job task failed"),
                }
                self.inner.wake.notify_one();
            }
            tokio::select! {
                _ = self.inner.spool.accepted() => {}
                _ = config.changed() => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Turns one accepted mail into fax jobs.
    fn take_up(&self, id: &JobId) -> Result<(), Error> {
        let t = &self.inner.tree;
        let (Some(mail), Some(raw)) = (self.inner.spool.job(id)?, self.inner.spool.message(id)?) else {
            let mut b = t.batch();
            b.remove(&layout::pending(id));
            return t.apply(b);
        };
        let now = self.now();
        let tenant = self.inner.directory.tenant_get(&Scope::Operator, &mail.tenant)?;
        let account = self.inner.directory.account_get(&Scope::Operator, &mail.account)?;
        let settings = self.config().document_settings(&tenant, &account);
        let rendered = render::wants_cover(&raw, self.config().cover_page, account.cover_page).and_then(|on| {
            let cover = on.then(|| crate::document::CoverPage {
                branding: tenant.branding.display_name.clone(),
                from: mail.mail_from.clone(),
                to: mail.recipients.iter().map(E164::to_string).collect::<Vec<_>>().join(", "),
                date: now.to_zoned(tenant.tz()).strftime("%Y-%m-%d %H:%M %Z").to_string(),
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
            b.put_sealed(&layout::fax_job(&j.id), &job_key(&j.id)?, j)?;
        }
        if let Ok(r) = &rendered {
            b.put_sealed_bytes(&layout::pages(&mail.id), &job_key(&mail.id)?, &r.tiff)?;
        }
        b.remove(&layout::pending(&mail.id));
        t.apply(b)?;
        tracing::info!(
            mail = %mail.id.to_text(),
            jobs = jobs.len(),
            pages = rendered.as_ref().map_or(0, |r| r.pages),
            "mail taken up"
        );
        if let Err(e) = &rendered {
            tracing::info!(mail = %mail.id.to_text(), error = %Scrubbed(&e), "mail cannot be faxed");
        }
        let mut m = self.jobs();
        for j in jobs {
            m.insert(j.id, j);
        }
        Ok(())
    }

    pub(super) async fn queue(self, shutdown: CancellationToken) {
        // Said once when due faxes first find no free channel.
        let mut trunk_full = false;
        loop {
            let now = self.now();
            // Final jobs not yet reported: report them.
            let unreported: Vec<JobId> =
                self.jobs().values().filter(|j| j.is_final() && !j.reported).map(|j| j.id).collect();
            for id in unreported {
                let g = self.clone();
                match tokio::task::spawn_blocking(move || g.finish(&id)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(error = %Scrubbed(&e), "cannot report a finished fax job"),
                    Err(e) => tracing::error!(error = %e, "report task failed"),
                }
            }
            // Held or stopping: nothing is called (reports of jobs already
            // final still go).
            let outbound = match self.config().hold || self.draining() {
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
                let waiting = due.len();
                for (i, (_, id)) in due.into_iter().enumerate() {
                    let Ok(permit) = out.channels.clone().try_acquire_owned() else {
                        if !trunk_full {
                            tracing::warn!(
                                trunk = %out.trunk, waiting = waiting - i,
                                "every channel of the trunk is in use; faxes wait for a free one"
                            );
                        }
                        trunk_full = true;
                        break;
                    };
                    trunk_full = false;
                    let Some(job) = self.start_attempt(&id) else { continue };
                    let g = self.clone();
                    let out = out.clone();
                    tokio::spawn(async move {
                        g.attempt(job, out).await;
                        drop(permit);
                        g.inner.wake.notify_one();
                    });
                }
            } else if !due.is_empty() && !self.config().hold && !self.draining() {
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
    /// Under the table's lock, so that a job steered meanwhile (held,
    /// cancelled) is not called.
    fn start_attempt(&self, id: &JobId) -> Option<FaxJob> {
        let mut jobs = self.jobs();
        let mut job = jobs.get(id).filter(|j| j.state == JobState::Queued).cloned()?;
        job.state =
            JobState::Calling { cdr_id: CdrStore::new_id(), call_id: UserAgent::new_call_id(), start: self.now() };
        if let Err(e) = self.save(&job) {
            tracing::error!(error = %e, "cannot record the start of a call; not calling");
            return None;
        }
        jobs.insert(job.id, job.clone());
        Some(job)
    }

    async fn attempt(&self, mut job: FaxJob, out: Arc<Outbound>) {
        let JobState::Calling { cdr_id, call_id, start } = job.state.clone() else { return };
        let file = self.inner.work_dir.join(format!("{}.tiff", job.id.to_text()));
        let learn_days = self.config().learn_days;
        // What earlier calls to this destination needed, if anything.
        let mut used: Option<Learned> = None;
        let result = match self.inner.tree.get_sealed_bytes(&layout::pages(&job.mail_job)) {
            Ok(Some(p)) => {
                let (g, j) = (self.clone(), job.clone());
                let prepared = tokio::task::spawn_blocking(move || {
                    // What earlier calls to this destination needed (an
                    // expired entry is erased here: a flushed write).
                    let learned = g.inner.learning.get(&j.tenant, &j.to, start, learn_days).unwrap_or_else(|e| {
                        tracing::error!(error = %e, "cannot read what calls to the destination needed");
                        None
                    });
                    (g.call_pages(&j, start, p), learned)
                })
                .await
                .map_err(|e| faxgate_t38::sip::CallError::Engine(format!("cannot prepare the pages: {e}")))
                .and_then(|((p, station), learned)| {
                    used = learned;
                    write_private(&file, &p)
                        .map(|()| station)
                        .map_err(|e| faxgate_t38::sip::CallError::Engine(format!("cannot write the pages: {e}")))
                });
                match prepared {
                    Ok(station) => {
                        let mut settings = out.ua.fax_settings();
                        settings.ident = station;
                        if job.safer {
                            settings = safer(settings);
                        }
                        let audio = used.as_ref().is_some_and(|l| l.apply(&mut settings));
                        let from = job.caller.as_ref().map(|c| c.to_string()).unwrap_or_else(|| "anonymous".into());
                        tracing::info!(
                            job = %job.id.to_text(), %call_id, trunk = %out.trunk, attempt = job.attempts.len() + 1,
                            safer = job.safer, learned = used.as_ref().map(Learned::note), "calling"
                        );
                        let options = CallOptions { settings: Some(settings), call_id: Some(call_id.clone()), audio };
                        let r = out.ua.send_fax_with(job.to.as_str(), &from, file.clone(), options).await;
                        let _ = std::fs::remove_file(&file);
                        r
                    }
                    Err(e) => Err(e),
                }
            }
            Ok(None) => Err(faxgate_t38::sip::CallError::Engine("the pages are gone".into())),
            Err(e) => Err(faxgate_t38::sip::CallError::Engine(e.to_string())),
        };
        let end = self.now();
        let outcome = match Outcome::of_call(&result) {
            // Ended by our own stop ([`super::stop`]).
            o if self.inner.stopping.load(std::sync::atomic::Ordering::SeqCst)
                && !matches!(o, Outcome::Sent { .. }) =>
            {
                Outcome::Interrupted
            }
            o => o,
        };
        let report = result.as_ref().ok();
        let mut cdr = self.job_cdr(&job, &cdr_id, &call_id, start, end, &outcome, report, out.ua.trunk_addr());
        cdr.learned = used.as_ref().map(Learned::note);
        // What the call needed, when its fax got through.
        let needed = match (&outcome, report) {
            (Outcome::Sent { .. }, Some(r)) => Some(learned::needed_after(r, used.as_ref())),
            _ => None,
        };
        let remote = cdr.remote_station.clone();
        let (code, pages) = (outcome.code(), outcome.pages());
        crate::metrics::fax(crate::metrics::Fax {
            direction: crate::metrics::Direction::MailToFax,
            result: code,
            tenant: job.tenant.as_str(),
            trunk: &out.trunk,
            pages,
            t38: report.and_then(|r| r.result.as_ref().map(|_| r.t38)),
            fallback: report.is_some_and(|r| r.t38_initial_refused || r.t38_refused > 0),
            seconds: end.duration_since(start).as_secs_f64(),
        });
        job.finish_attempt(Attempt { start, end, cdr_id, outcome, remote_station: remote }, &self.retry());
        match job.state {
            JobState::Queued => tracing::info!(
                job = %job.id.to_text(), %call_id, outcome = code, pages, next_attempt = %job.next_at,
                "call ended; next attempt at {}", job.next_at
            ),
            _ => tracing::info!(
                job = %job.id.to_text(), %call_id, outcome = code, pages, result = job.state_name(),
                "call ended"
            ),
        }
        let g = self.clone();
        let saved = tokio::task::spawn_blocking(move || -> Result<FaxJob, Error> {
            if let Some(needed) = needed {
                g.learn(&job, needed, used.as_ref(), end, learn_days);
            }
            g.inner.cdrs.write(&cdr)?;
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

    /// Learns what the call of `job` that got through `needed`
    /// ([`crate::learned`]), having started with `used`.
    fn learn(&self, job: &FaxJob, needed: Needed, used: Option<&Learned>, now: Timestamp, days: u32) {
        match self.inner.learning.record(&job.tenant, &job.to, needed, used, now, days) {
            Ok(l) if l.as_ref() != used => match l {
                Some(l) => tracing::info!(
                    job = %job.id.to_text(), learned = %l.note(), until = %l.expires,
                    "learned what calls to this destination need"
                ),
                None => tracing::info!(job = %job.id.to_text(), "the destination took full capability; forgotten"),
            },
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot record what calls to the destination need"),
        }
    }

    /// The pages of `job` as its call at `start` sends them: with its
    /// tenant's page header drawn on ([`crate::document::header`]), and the
    /// station id the call identifies itself with (the account's, else the
    /// tenant's, else `[fax] ident`). Pages whose header cannot be drawn go
    /// without it.
    fn call_pages(&self, job: &FaxJob, start: Timestamp, pages: Vec<u8>) -> (Vec<u8>, String) {
        use crate::document::header;
        let dir = &self.inner.directory;
        let tenant = dir.tenant_get(&Scope::Operator, &job.tenant).ok();
        let account = dir.account_get(&Scope::Operator, &job.account).ok();
        let station = account
            .as_ref()
            .and_then(|a| a.station_id.clone())
            .or_else(|| tenant.as_ref().and_then(|t| t.station_id.clone()))
            .unwrap_or_else(|| self.config().ident.clone());
        let config = self.config();
        let template = tenant.as_ref().and_then(|t| t.header_template.as_deref()).unwrap_or(&config.header);
        let template = match template.parse::<header::Template>() {
            Ok(t) if t.is_empty() => return (pages, station),
            Ok(t) => t,
            Err(e) => {
                tracing::error!(job = %job.id.to_text(), error = %e, "page header template; the pages go without a header");
                return (pages, station);
            }
        };
        let values = header::Values {
            when: start.to_zoned(tenant.as_ref().map_or(jiff::tz::TimeZone::UTC, |t| t.tz())),
            station: station.clone(),
            from: job.caller.as_ref().map(E164::to_string).unwrap_or_default(),
            to: job.to.to_string(),
            sender: account.map(|a| a.name).unwrap_or_default(),
            tenant: tenant.map(|t| t.branding.display_name).unwrap_or_default(),
        };
        match header::stamp(&pages, &template, &values, crate::document::Limits::default().max_pixels) {
            Ok(stamped) => (stamped, station),
            Err(e) => {
                tracing::error!(job = %job.id.to_text(), error = %e, "cannot draw the page header; the pages go without it");
                (pages, station)
            }
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
        let mut c = Cdr::blank(
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
        if let Some(r) = report {
            c.fill_from_report(r, end);
        }
        if let Outcome::Interrupted = outcome {
            c.t30_text = Some("interrupted: the gateway stopped during the call".into());
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
                && self.config().attach_original_on_failure
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
        self.fax_event(&job);
        job.reported = true;
        self.save(&job)?;
        self.jobs().remove(&job.id);
        // The sweeper erases the mail, its pages and the finished jobs once
        // every recipient is final (after `retention.document_grace`).
        self.inner.sweep.notify_one();
        Ok(())
    }
}

impl Gateway {
    /// Tells the webhooks a job's end (once per job: the same delivery id
    /// if a stop makes it be told again). A failure is logged, not raised:
    /// the report and the job's end go on.
    fn fax_event(&self, job: &FaxJob) {
        use crate::directory::webhooks::Event;
        let sent = job.state == JobState::Done;
        let last = job.attempts.last();
        let fields = serde_json::json!({
            "job": job.id.to_text(),
            "result": if sent { "sent" } else { "failed" },
            "reason": last.map(|a| a.outcome.code()),
            "pages": last.map(|a| match a.outcome { Outcome::Sent { pages } => pages, _ => 0 }),
            "pages_total": job.pages_total,
            "attempts": job.attempts.len(),
            "cdr": last.map(|a| a.cdr_id.clone()),
        });
        let personal = serde_json::json!({ "to": job.to, "caller": job.caller, "mail_from": job.mail_from });
        let event = if sent { Event::FaxSent } else { Event::FaxFailed };
        if let Err(e) =
            self.inner.webhooks.emit(&job.tenant, Some(&job.account), event, &job.id.to_text(), fields, personal)
        {
            tracing::error!(job = %job.id.to_text(), error = %e, "the job's end not queued for its webhooks");
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
