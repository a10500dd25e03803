//! The document class: a mail's message, its rendered pages, its job record
//! and the records of its fax jobs are sealed with job keys that carry no
//! deadline while the mail is being faxed. Once the last of its fax jobs has
//! its final result and report, their deadline becomes that time plus
//! `retention.document_grace` (default none), or the end of a legal hold on
//! the account or a called number; then the keys are destroyed and the
//! records removed. Duplicate-detection entries of the spool (keyed hashes)
//! go after their 24 hours.

use std::collections::BTreeMap;

use faxgate_retention::KeyId;
use faxgate_retention::audit::CategoryResult;
use jiff::Timestamp;

use super::audit::{CategoryStatus, Findings};
use super::holds::{held_mail, hold_end};
use super::policy::after;
use super::{Class, Hold, Retention, earliest, or_fault};
use crate::Error;
use crate::gateway::FaxJob;
use crate::store::TreeName;
use crate::store::layout::mail as layout;
use crate::types::JobId;

/// The key of one job's fax documents: an accepted mail's message, job
/// record and pages (under the mail's id), or a fax job's record.
pub fn job_key(id: &JobId) -> Result<KeyId, Error> {
    Ok(KeyId::new(format!("job-{}", id.to_text()))?)
}

/// What a job's key is for: its documents, with no end until every
/// recipient of the mail has its final result and report.
pub(super) fn describe(id: &KeyId) -> Option<faxgate_retention::vault::KeyMeta> {
    let owner = id.as_str().strip_prefix("job-")?;
    Some(faxgate_retention::vault::KeyMeta { class: "documents".into(), owner: owner.into(), deadline: None })
}

/// A mail whose fax jobs have all finished.
#[derive(Debug)]
struct MailDeadline {
    mail: JobId,
    jobs: Vec<FaxJob>,
    finished: Timestamp,
    due: Timestamp,
}

/// The mails whose fax jobs have all finished (final result, report sent),
/// with when they finished and when they are due, and the keys of fax job
/// records that cannot be read any more (an erasure cut short). Mails still
/// being faxed or reported have no deadline.
fn mail_deadlines(r: &Retention) -> Result<(Vec<MailDeadline>, Vec<Vec<u8>>), Error> {
    let tree = r.store.tree(TreeName::Mail)?;
    let mut mails: BTreeMap<JobId, Vec<FaxJob>> = BTreeMap::new();
    let mut unreadable = Vec::new();
    for k in tree.keys_with_prefix(layout::FAX_JOBS)? {
        match tree.get_sealed::<FaxJob>(&k) {
            Ok(Some(j)) => mails.entry(j.mail_job).or_default().push(j),
            Ok(None) => {}
            Err(Error::Crypto(_)) => unreadable.push(k),
            Err(e) => return Err(e),
        }
    }
    let mut out = Vec::new();
    for (mail, jobs) in mails {
        if !jobs.iter().all(|j| j.is_final() && j.reported) {
            continue;
        }
        let finished = jobs
            .iter()
            .filter_map(|j| j.attempts.last().map(|a| a.end))
            .chain(jobs.iter().map(|j| j.created))
            .max()
            .unwrap_or(Timestamp::MIN);
        let due = after(finished, r.policy.document_grace);
        out.push(MailDeadline { mail, jobs, finished, due });
    }
    Ok((out, unreadable))
}

/// The deadline of a finished mail's keys: when it finished plus the
/// grace, or the end of the holds keeping it.
fn mail_deadline(m: &MailDeadline, holds: &[Hold]) -> Timestamp {
    match held_mail(&m.jobs, holds) {
        true => hold_end(holds).map_or(m.due, |e| m.due.max(e)),
        false => m.due,
    }
}

/// Removes the records a job key seals (a mail's message, pages and job
/// record, or a fax job's record) and the message file.
fn remove_records(r: &Retention, id: &JobId) -> Result<(), Error> {
    let tree = r.store.tree(TreeName::Mail)?;
    let mut b = tree.batch();
    b.remove(&layout::pages(id));
    b.remove(&layout::message(id));
    b.remove(&layout::job(id));
    b.remove(&layout::fax_job(id));
    tree.apply(b)?;
    // The message file (its key is gone already; this frees the space).
    r.store.remove_file(&id.to_text())?;
    Ok(())
}

/// The job a documents key names.
fn job_of_key(k: &KeyId) -> Option<JobId> {
    k.as_str().strip_prefix("job-").filter(|o| !o.starts_with("out-"))?.parse().ok()
}

/// The class.
#[derive(Debug)]
pub(crate) struct DocumentClass;

impl Class for DocumentClass {
    fn name(&self) -> &'static str {
        "documents"
    }

    fn move_deadlines(&self, r: &Retention, _now: Timestamp, holds: &[Hold]) -> Result<Vec<String>, Error> {
        let mut faults = Vec::new();
        let (mails, _) = mail_deadlines(r)?;
        for m in &mails {
            let want = mail_deadline(m, holds);
            for id in std::iter::once(m.mail).chain(m.jobs.iter().map(|j| j.id)) {
                or_fault(&mut faults, || {
                    r.store.vault().set_deadline(&job_key(&id)?, Some(want)).map_err(Error::from)
                })?;
            }
        }
        Ok(faults)
    }

    fn sweep(&self, r: &Retention, now: Timestamp, holds: &[Hold], erase: bool) -> Result<CategoryResult, Error> {
        let tree = r.store.tree(TreeName::Mail)?;
        let mut out = CategoryResult { faults: self.move_deadlines(r, now, holds)?, ..Default::default() };
        let (mails, _) = mail_deadlines(r)?;
        for m in &mails {
            if m.due > now {
                earliest(&mut out.oldest_remaining, m.finished);
            } else if held_mail(&m.jobs, holds) {
                out.held += 1;
            }
        }
        let vault = r.store.vault();
        let mut erased_mails = 0;
        for k in vault.list()? {
            let Some(id) = job_of_key(&k.id) else { continue };
            let Some(meta) = &k.meta else {
                out.faults.push(format!("key {} is damaged: {}", k.id, k.damage.as_deref().unwrap_or("")));
                continue;
            };
            match meta.deadline {
                // Its own deadline has passed: key first, then what it sealed.
                Some(d) if d <= now && erase => {
                    vault.destroy(&k.id)?;
                    out.keys_destroyed.push(k.id.to_string());
                    remove_records(r, &id)?;
                    vault.clear_tombstone(&k.id)?;
                    out.erased += 1;
                    erased_mails += 1;
                }
                Some(d) => earliest(&mut out.next_due, d.max(now)),
                None => {}
            }
        }
        // Erasures cut short after the key was destroyed: finish them.
        for id in vault.tombstones()? {
            if let Some(job) = job_of_key(&id) {
                remove_records(r, &job)?;
                vault.clear_tombstone(&id)?;
                out.keys_found_destroyed.push(id.to_string());
            }
        }
        if erased_mails > 0 {
            tracing::info!(keys = erased_mails, "mail, pages and finished jobs erased");
        }
        // Duplicate-detection entries older than their window.
        let mut b = tree.batch();
        let mut stale = 0;
        for k in tree.keys_with_prefix(layout::DEDUPES)? {
            let expired = tree.get_plain(&k)?.is_some_and(|v| {
                String::from_utf8_lossy(&v)
                    .split_once(' ')
                    .and_then(|(_, ms)| ms.parse::<i64>().ok())
                    .and_then(|ms| Timestamp::from_millisecond(ms).ok())
                    .is_some_and(|t| now.duration_since(t) >= crate::mail::spool::DEDUPE_WINDOW)
            });
            if expired {
                b.remove(&k);
                stale += 1;
            }
        }
        if stale > 0 {
            tree.apply(b)?;
        }
        Ok(out)
    }

    fn audit(&self, r: &Retention, _now: Timestamp, holds: &[Hold], f: &mut Findings) -> Result<(), Error> {
        let (mails, unreadable) = mail_deadlines(r)?;
        for m in &mails {
            f.checked.documents += 1;
            if f.overdue(m.due) && !held_mail(&m.jobs, holds) {
                f.problems.push(format!(
                    "the documents and jobs of mail {} (finished {}) were due for erasure at {}",
                    m.mail.to_text(),
                    m.finished,
                    m.due
                ));
            }
        }
        if !unreadable.is_empty() {
            f.problems.push(format!("{} fax job records whose key is gone remain", unreadable.len()));
        }
        Ok(())
    }

    fn status(&self, r: &Retention, _now: Timestamp) -> Result<Option<CategoryStatus>, Error> {
        let (mails, _) = mail_deadlines(r)?;
        Ok(Some(CategoryStatus {
            category: self.name().into(),
            items: mails.len(),
            oldest: mails.iter().map(|m| m.finished).min(),
            next_due: mails.iter().map(|m| m.due).min(),
        }))
    }
}
