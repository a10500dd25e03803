//! Retention in the core: the categories of data the sweeper erases, legal
//! holds, and the independent audit behind `faxgate retention audit`.
//!
//! # Categories
//! - `cdr`: a CDR is erased one period (default one year) after its
//!   communication started. A month's key is destroyed once the last CDR
//!   that month could hold has expired (the first instant of the next month
//!   plus the period), then the month's records are removed; from then on
//!   nothing of that month can be decrypted, wherever its bytes remain.
//! - `account`: all data of an account (the account, its numbers, routes and
//!   senders) is erased one period (default 30 days) after its termination,
//!   by destroying the account's key. Keys of accounts that no longer exist
//!   (an erasure interrupted by a crash) are destroyed too.
//! - `legal_hold`: holds that have ended are removed (they name numbers).
//!
//! Held data is skipped and counted; it becomes due again when the hold ends.

mod holds;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use faxgate_retention::audit::{AuditLog, CategoryResult};
use faxgate_retention::policy::after;
use faxgate_retention::{Category, KeyId, Policy};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use holds::{Hold, HoldTarget, Holds};

use crate::Error;
use crate::cdr::{Cdr, CdrStore, parse_place};
use crate::directory::{Directory, Scope};
use crate::store::Store;
use crate::types::AccountId;

fn sweep_err(category: &'static str) -> impl Fn(Error) -> faxgate_retention::Error {
    move |e| faxgate_retention::Error::Sweep { category, message: e.to_string() }
}

/// The first instant of the month after `(y, m)`, UTC.
fn month_end(y: i16, m: i8) -> Timestamp {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    jiff::civil::date(ny, nm, 1).to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).unwrap_or(Timestamp::MAX)
}

fn held_cdr(c: &Cdr, holds: &[Hold]) -> bool {
    holds.iter().any(|h| match &h.target {
        HoldTarget::Number(n) => c.calling.as_ref() == Some(n) || c.called.as_ref() == Some(n),
        HoldTarget::Account(a) => c.account.as_ref() == Some(a),
    })
}

fn held_mail(jobs: &[crate::gateway::FaxJob], holds: &[Hold]) -> bool {
    holds.iter().any(|h| match &h.target {
        HoldTarget::Account(a) => jobs.iter().any(|j| &j.account == a),
        HoldTarget::Number(n) => jobs.iter().any(|j| &j.to == n || j.caller.as_ref() == Some(n)),
    })
}

/// The earliest end of the holds that keep something.
fn hold_end(holds: &[Hold]) -> Option<Timestamp> {
    holds.iter().map(|h| h.until).min()
}

/// Everything the retention code works on.
#[derive(Clone, Debug)]
pub struct Retention {
    store: Store,
    directory: Directory,
    cdrs: CdrStore,
    holds: Holds,
    policy: Policy,
    lock: Arc<Mutex<()>>,
}

/// A mail whose fax jobs have all finished.
#[derive(Debug)]
struct MailDeadline {
    mail: String,
    jobs: Vec<crate::gateway::FaxJob>,
    finished: Timestamp,
    due: Timestamp,
}

/// One CDR month as the store holds it.
#[derive(Debug, Default)]
struct Month {
    places: Vec<(Vec<u8>, Timestamp)>,
}

impl Retention {
    /// Retention over `store` with `policy`.
    pub fn new(store: &Store, directory: &Directory, policy: Policy) -> Result<Self, Error> {
        Ok(Retention {
            store: store.clone(),
            directory: directory.clone(),
            cdrs: CdrStore::open(store)?,
            holds: Holds::open(store)?,
            policy,
            lock: Arc::new(Mutex::new(())),
        })
    }

    /// The legal holds.
    pub fn holds(&self) -> &Holds {
        &self.holds
    }

    /// The audit trail.
    pub fn audit_log(&self) -> AuditLog {
        AuditLog::new(self.store.data_dir().join("retention-audit.jsonl"))
    }

    /// The sweeper's categories.
    pub fn categories(&self) -> Vec<Arc<dyn Category>> {
        vec![
            Arc::new(CdrCategory(self.clone())),
            Arc::new(AccountCategory(self.clone())),
            Arc::new(DocumentCategory(self.clone())),
            Arc::new(HoldCategory(self.clone())),
        ]
    }

    /// The mails whose fax jobs have all finished (final result, report
    /// sent), with when they finished and when they are due, and the keys
    /// of fax job records that cannot be read any more (an erasure cut
    /// short). Mails still being faxed or reported have no deadline.
    fn mail_deadlines(&self) -> Result<(Vec<MailDeadline>, Vec<Vec<u8>>), Error> {
        use crate::gateway::FaxJob;
        let tree = self.store.tree("mail")?;
        let mut mails: BTreeMap<String, Vec<FaxJob>> = BTreeMap::new();
        let mut unreadable = Vec::new();
        for k in tree.keys_with_prefix(b"f\0")? {
            match tree.get_sealed::<FaxJob>(&k) {
                Ok(Some(j)) => mails.entry(j.mail_job.to_text()).or_default().push(j),
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
            let due = after(finished, self.policy.document_grace);
            out.push(MailDeadline { mail, jobs, finished, due });
        }
        Ok((out, unreadable))
    }

    /// Fax documents and finished jobs: a mail's message and pages, its job
    /// record and the records of its fax jobs are erased (their keys
    /// destroyed, then the records removed) `document_grace` after the last
    /// of its fax jobs got its final result and report. A legal hold on the
    /// account or on a called number keeps them. Duplicate-detection entries
    /// of the spool go after their 24 hours; the outbox's records after
    /// theirs ([`crate::mail::outbox::Outbox::deadlines`]).
    fn sweep_documents(&self, now: Timestamp) -> Result<CategoryResult, Error> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let holds = self.holds.active(now)?;
        let tree = self.store.tree("mail")?;
        let mut r = CategoryResult::default();
        let (mails, unreadable) = self.mail_deadlines()?;
        if !unreadable.is_empty() {
            // Their keys are gone (an erasure cut short): drop the records.
            let mut b = tree.batch();
            for k in &unreadable {
                b.remove(k);
            }
            tree.apply(b)?;
            r.erased += unreadable.len();
        }
        for MailDeadline { mail, jobs, finished, due } in mails {
            if due > now {
                r.next_due = Some(r.next_due.map_or(due, |n| n.min(due)));
                r.oldest_remaining = Some(r.oldest_remaining.map_or(finished, |o| o.min(finished)));
                continue;
            }
            if held_mail(&jobs, &holds) {
                r.held += 1;
                if let Some(t) = hold_end(&holds) {
                    r.next_due = Some(r.next_due.map_or(t, |n| n.min(t)));
                }
                continue;
            }
            let vault = self.store.vault();
            let mail_key = KeyId::job(&mail)?;
            if vault.destroy(&mail_key)? {
                r.keys_destroyed.push(mail_key.to_string());
            }
            let mut b = tree.batch();
            for key in [b"p\0".as_slice(), b"m\0", b"j\0"] {
                b.remove(&[key, mail.as_bytes()].concat());
            }
            for j in &jobs {
                let k = KeyId::job(&j.id.to_text())?;
                if vault.destroy(&k)? {
                    r.keys_destroyed.push(k.to_string());
                }
                b.remove(&[b"f\0".as_slice(), j.id.to_text().as_bytes()].concat());
            }
            tree.apply(b)?;
            // The message file (its key is gone already; this frees the space).
            self.store.remove_file(&mail)?;
            r.erased += 1 + jobs.len();
            tracing::info!(%mail, jobs = jobs.len(), "mail, pages and finished jobs erased");
        }
        // Duplicate-detection entries older than their window.
        let mut b = tree.batch();
        let mut stale = 0;
        for k in tree.keys_with_prefix(b"d\0")? {
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
        // Outgoing mail given up on, and old once-markers.
        let (erased, keys, next) = crate::mail::outbox::Outbox::sweep(&self.store, &self.policy, now)?;
        r.erased += erased;
        r.keys_destroyed.extend(keys);
        if let Some(n) = next {
            r.next_due = Some(r.next_due.map_or(n, |x| x.min(n)));
        }
        Ok(r)
    }

    fn months(&self) -> Result<BTreeMap<(i16, i8), Month>, Error> {
        let mut months: BTreeMap<(i16, i8), Month> = BTreeMap::new();
        for p in self.cdrs.places()? {
            if let Some((month, start)) = parse_place(&p) {
                months.entry(month).or_default().places.push((p, start));
            }
        }
        for k in self.store.vault().list()? {
            if let Some(rest) = k.id.as_str().strip_prefix("cdr-")
                && let (Some(y), Some(m)) =
                    (rest.get(..4).and_then(|y| y.parse().ok()), rest.get(5..7).and_then(|m| m.parse().ok()))
            {
                months.entry((y, m)).or_default();
            }
        }
        Ok(months)
    }

    fn load_cdr(&self, place: &[u8]) -> Result<Option<Cdr>, Error> {
        match self.cdrs.get(place) {
            Err(Error::Crypto(faxgate_retention::Error::KeyDestroyed(_))) => Ok(None),
            other => other,
        }
    }

    fn sweep_cdrs(&self, now: Timestamp) -> Result<CategoryResult, Error> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let holds = self.holds.active(now)?;
        let mut r = CategoryResult::default();
        let mut next: Option<Timestamp> = None;
        let bump = |t: Timestamp, next: &mut Option<Timestamp>| *next = Some(next.map_or(t, |n| n.min(t)));
        for ((y, m), month) in self.months()? {
            let mut remove = Vec::new();
            let mut held = 0usize;
            let mut oldest: Option<Timestamp> = None;
            for (place, start) in &month.places {
                let due = after(*start, self.policy.cdr);
                if due > now {
                    bump(due, &mut next);
                    oldest = Some(oldest.map_or(*start, |o| o.min(*start)));
                    continue;
                }
                let is_held = !holds.is_empty() && self.load_cdr(place)?.is_some_and(|c| held_cdr(&c, &holds));
                if is_held {
                    held += 1;
                    oldest = Some(oldest.map_or(*start, |o| o.min(*start)));
                    if let Some(t) = hold_end(&holds) {
                        bump(t, &mut next);
                    }
                } else {
                    remove.push(place.clone());
                }
            }
            let key = KeyId::cdr_month(y, m)?;
            let key_due = after(month_end(y, m), self.policy.cdr);
            if key_due <= now && held == 0 {
                // Key first: from here on nothing of this month can be read.
                if self.store.vault().destroy(&key)? {
                    r.keys_destroyed.push(key.to_string());
                } else if !month.places.is_empty() {
                    // Records without their key: a sweep destroyed it and was cut short.
                    r.keys_found_destroyed.push(key.to_string());
                }
                remove = month.places.iter().map(|(p, _)| p.clone()).collect();
                self.cdrs.remove_month_index((y, m))?;
            } else if key_due > now && self.store.vault().get(&key)?.is_some() {
                bump(key_due, &mut next);
            }
            r.erased += remove.len();
            self.cdrs.remove(&remove)?;
            r.held += held;
            if let Some(o) = oldest {
                r.oldest_remaining = Some(r.oldest_remaining.map_or(o, |x: Timestamp| x.min(o)));
            }
        }
        r.next_due = next;
        Ok(r)
    }

    fn account_held(&self, id: &AccountId, holds: &[Hold]) -> Result<bool, Error> {
        for h in holds {
            match &h.target {
                HoldTarget::Account(a) if a == id => return Ok(true),
                HoldTarget::Number(n) => {
                    if self.directory.lookup_number(n)?.is_some_and(|rec| rec.account == *id) {
                        return Ok(true);
                    }
                }
                HoldTarget::Account(_) => {}
            }
        }
        Ok(false)
    }

    fn sweep_accounts(&self, now: Timestamp) -> Result<CategoryResult, Error> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let holds = self.holds.active(now)?;
        let mut r = CategoryResult::default();
        let mut living = HashSet::new();
        for a in self.directory.account_list(&Scope::Operator, None)? {
            let Some(terminated) = a.terminated_at else {
                living.insert(a.id.to_text());
                continue;
            };
            let due = after(terminated, self.policy.account_after_termination);
            let keep = if due > now {
                r.next_due = Some(r.next_due.map_or(due, |n| n.min(due)));
                true
            } else if self.account_held(&a.id, &holds)? {
                r.held += 1;
                if let Some(t) = hold_end(&holds) {
                    r.next_due = Some(r.next_due.map_or(t, |n| n.min(t)));
                }
                true
            } else {
                false
            };
            if keep {
                living.insert(a.id.to_text());
                if terminated <= now {
                    r.oldest_remaining = Some(r.oldest_remaining.map_or(terminated, |o| o.min(terminated)));
                }
                continue;
            }
            let removed = self.directory.account_remove(&Scope::Operator, &a.id)?;
            r.erased += 1 + removed.numbers + removed.senders;
            r.keys_destroyed.push(KeyId::account(&a.id.to_text())?.to_string());
        }
        // Keys of accounts that no longer exist: an erasure cut short.
        for k in self.store.vault().list()? {
            if let Some(id) = k.id.as_str().strip_prefix("account-")
                && !living.contains(id)
                && self.store.vault().destroy(&k.id)?
            {
                r.keys_destroyed.push(k.id.to_string());
            }
        }
        Ok(r)
    }

    fn sweep_holds(&self, now: Timestamp) -> Result<CategoryResult, Error> {
        let mut r = CategoryResult::default();
        for h in self.holds.list()? {
            if h.until <= now {
                self.holds.remove(&h.id)?;
                r.erased += 1;
            } else {
                r.next_due = Some(r.next_due.map_or(h.until, |n| n.min(h.until)));
            }
        }
        Ok(r)
    }

    /// Checks, independently of the sweeper and its trail, that nothing is
    /// kept past its period and that every key the trail says was destroyed
    /// is gone.
    pub fn audit(&self, now: Timestamp) -> Result<AuditReport, Error> {
        self.audit_with(now, false)
    }

    /// [`Self::audit`], told whether a sweep is running now (its start in the
    /// trail is then not a sweep cut short).
    pub fn audit_with(&self, now: Timestamp, sweep_running: bool) -> Result<AuditReport, Error> {
        let holds = self.holds.active(now)?;
        // The sweeper gathers deadlines into windows: an item is overdue once
        // its window has passed.
        let window = self.policy.window();
        let overdue = |due: Timestamp| due + window <= now;
        let mut problems = Vec::new();
        let mut checked = AuditCounts::default();
        let months = self.months()?;
        for ((y, m), month) in &months {
            let mut month_held = false;
            // Overdue CDRs of the month: how many, and the oldest.
            let mut late: Option<(usize, Timestamp)> = None;
            for (place, start) in &month.places {
                checked.cdrs += 1;
                let due = after(*start, self.policy.cdr);
                if overdue(due) {
                    if !holds.is_empty() && self.load_cdr(place)?.is_some_and(|c| held_cdr(&c, &holds)) {
                        month_held = true;
                        continue;
                    }
                    late = Some(late.map_or((1, *start), |(n, s)| (n + 1, s.min(*start))));
                }
            }
            if let Some((count, start)) = late {
                let due = after(start, self.policy.cdr);
                problems.push(match count {
                    1 => format!("a CDR of {y:04}-{m:02} (started {start}) was due for erasure at {due}"),
                    _ => format!(
                        "{count} CDRs of {y:04}-{m:02} were due for erasure, the oldest (started {start}) at {due}"
                    ),
                });
            }
            let key = KeyId::cdr_month(*y, *m)?;
            let key_due = after(month_end(*y, *m), self.policy.cdr);
            if self.store.vault().get(&key)?.is_some() {
                checked.keys += 1;
                if overdue(key_due) && !month_held {
                    problems.push(format!("key {key} was due for destruction at {key_due}"));
                }
            }
        }
        let mut living = HashSet::new();
        for a in self.directory.account_list(&Scope::Operator, None)? {
            checked.accounts += 1;
            living.insert(a.id.to_text());
            if let Some(t) = a.terminated_at {
                let due = after(t, self.policy.account_after_termination);
                if overdue(due) && !self.account_held(&a.id, &holds)? {
                    problems.push(format!("account {} (terminated {t}) was due for erasure at {due}", a.id));
                }
            }
        }
        let (mails, unreadable) = self.mail_deadlines()?;
        for m in &mails {
            checked.documents += 1;
            if overdue(m.due) && !held_mail(&m.jobs, &holds) {
                problems.push(format!(
                    "the documents and jobs of mail {} (finished {}) were due for erasure at {}",
                    m.mail, m.finished, m.due
                ));
            }
        }
        if !unreadable.is_empty() {
            problems.push(format!("{} fax job records whose key is gone remain", unreadable.len()));
        }
        for d in crate::mail::outbox::Outbox::deadlines(&self.store, &self.policy)? {
            checked.outbox += 1;
            if overdue(d.due) {
                match d.since {
                    Some(t) => problems.push(format!("an outbox {} of {t} was due for erasure at {}", d.what, d.due)),
                    None => problems.push(format!("an unreadable outbox {} remains", d.what)),
                }
            }
        }
        for k in self.store.vault().list()? {
            if let Some(id) = k.id.as_str().strip_prefix("account-") {
                checked.keys += 1;
                if !living.contains(id) {
                    problems.push(format!("key {} belongs to no account", k.id));
                }
            }
        }
        let trail = self.audit_log().entries()?;
        checked.sweeps = trail.iter().filter(|e| e.is_sweep()).count();
        let interrupted: Vec<InterruptedSweep> = faxgate_retention::audit::interrupted(&trail, sweep_running)
            .into_iter()
            .map(|(begun, finished_by)| InterruptedSweep { begun, finished_by })
            .collect();
        for i in interrupted.iter().filter(|i| i.finished_by.is_none()) {
            problems.push(format!("the sweep begun at {} was cut short and no sweep has finished since", i.begun));
        }
        let present: HashSet<String> = self.store.vault().list()?.into_iter().map(|k| k.id.to_string()).collect();
        for e in &trail {
            for c in &e.categories {
                for k in &c.keys_destroyed {
                    // A month key may be made again for a late CDR of that month; accounts never come back.
                    if present.contains(k) && !k.starts_with("cdr-") {
                        problems.push(format!("key {k}, destroyed at {}, exists again", e.at));
                    }
                }
            }
        }
        Ok(AuditReport {
            at: now,
            ok: problems.is_empty(),
            problems,
            checked,
            last_sweep: trail.iter().rev().find(|e| e.is_sweep()).map(|e| e.at),
            interrupted_sweeps: interrupted,
        })
    }

    /// What is due when.
    pub fn status(&self, now: Timestamp) -> Result<RetentionStatus, Error> {
        let months = self.months()?;
        let cdrs: usize = months.values().map(|m| m.places.len()).sum();
        let mut cdr_next = None::<Timestamp>;
        let mut cdr_oldest = None::<Timestamp>;
        for ((y, m), month) in &months {
            for (_, s) in &month.places {
                let due = after(*s, self.policy.cdr);
                cdr_next = Some(cdr_next.map_or(due, |n| n.min(due)));
                cdr_oldest = Some(cdr_oldest.map_or(*s, |o| o.min(*s)));
            }
            if self.store.vault().get(&KeyId::cdr_month(*y, *m)?)?.is_some() {
                let due = after(month_end(*y, *m), self.policy.cdr);
                cdr_next = Some(cdr_next.map_or(due, |n| n.min(due)));
            }
        }
        let mut terminated = 0;
        let mut acc_next = None::<Timestamp>;
        for a in self.directory.account_list(&Scope::Operator, None)? {
            if let Some(t) = a.terminated_at {
                terminated += 1;
                let due = after(t, self.policy.account_after_termination);
                acc_next = Some(acc_next.map_or(due, |n| n.min(due)));
            }
        }
        let (mails, _) = self.mail_deadlines()?;
        let outbox = crate::mail::outbox::Outbox::deadlines(&self.store, &self.policy)?;
        let trail = self.audit_log().entries()?;
        Ok(RetentionStatus {
            at: now,
            policy: self.policy.clone(),
            categories: vec![
                CategoryStatus { category: "cdr".into(), items: cdrs, oldest: cdr_oldest, next_due: cdr_next },
                CategoryStatus { category: "account".into(), items: terminated, oldest: None, next_due: acc_next },
                CategoryStatus {
                    category: "documents".into(),
                    items: mails.len(),
                    oldest: mails.iter().map(|m| m.finished).min(),
                    next_due: mails.iter().map(|m| m.due).min(),
                },
                CategoryStatus {
                    category: "outbox".into(),
                    items: outbox.len(),
                    oldest: outbox.iter().filter_map(|d| d.since).min(),
                    next_due: outbox.iter().map(|d| d.due).min(),
                },
            ],
            holds: self.holds.active(now)?.len(),
            last_sweep: trail.iter().rev().find(|e| e.is_sweep()).map(|e| e.at),
        })
    }
}

/// What the audit counted.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AuditCounts {
    /// CDRs looked at.
    pub cdrs: usize,
    /// Accounts looked at.
    pub accounts: usize,
    /// Finished mails (their documents and jobs) looked at.
    pub documents: usize,
    /// Outbox records with a deadline looked at.
    pub outbox: usize,
    /// Keys looked at.
    pub keys: usize,
    /// Sweeps in the trail.
    pub sweeps: usize,
}

/// The audit's verdict.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditReport {
    /// When it ran.
    pub at: Timestamp,
    /// Whether nothing is kept past its period.
    pub ok: bool,
    /// What is wrong, without personal data.
    pub problems: Vec<String>,
    /// What was looked at.
    pub checked: AuditCounts,
    /// The last sweep in the trail.
    pub last_sweep: Option<Timestamp>,
    /// Sweeps a crash cut short, and the sweep that finished their work.
    pub interrupted_sweeps: Vec<InterruptedSweep>,
}

/// A sweep that a crash cut short.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InterruptedSweep {
    /// When it began.
    pub begun: Timestamp,
    /// The next sweep that finished (and so finished its work).
    pub finished_by: Option<Timestamp>,
}

/// One category's state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CategoryStatus {
    /// The category.
    pub category: String,
    /// Items with a deadline (CDRs; terminated accounts; finished mails;
    /// outbox messages given up on and report markers).
    pub items: usize,
    /// The oldest item's time.
    pub oldest: Option<Timestamp>,
    /// The next deadline.
    pub next_due: Option<Timestamp>,
}

/// `faxgate retention status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RetentionStatus {
    /// When.
    pub at: Timestamp,
    /// The periods in force.
    pub policy: Policy,
    /// Per category.
    pub categories: Vec<CategoryStatus>,
    /// Legal holds in force.
    pub holds: usize,
    /// The last sweep.
    pub last_sweep: Option<Timestamp>,
}

#[derive(Debug)]
struct CdrCategory(Retention);
#[derive(Debug)]
struct AccountCategory(Retention);
#[derive(Debug)]
struct HoldCategory(Retention);
#[derive(Debug)]
struct DocumentCategory(Retention);

impl Category for DocumentCategory {
    fn name(&self) -> &'static str {
        "documents"
    }
    fn sweep(&self, now: Timestamp) -> Result<CategoryResult, faxgate_retention::Error> {
        self.0.sweep_documents(now).map_err(sweep_err("documents"))
    }
}

impl Category for CdrCategory {
    fn name(&self) -> &'static str {
        "cdr"
    }
    fn sweep(&self, now: Timestamp) -> Result<CategoryResult, faxgate_retention::Error> {
        self.0.sweep_cdrs(now).map_err(sweep_err("cdr"))
    }
}

impl Category for AccountCategory {
    fn name(&self) -> &'static str {
        "account"
    }
    fn sweep(&self, now: Timestamp) -> Result<CategoryResult, faxgate_retention::Error> {
        self.0.sweep_accounts(now).map_err(sweep_err("account"))
    }
}

impl Category for HoldCategory {
    fn name(&self) -> &'static str {
        "legal_hold"
    }
    fn sweep(&self, now: Timestamp) -> Result<CategoryResult, faxgate_retention::Error> {
        self.0.sweep_holds(now).map_err(sweep_err("legal_hold"))
    }
}

#[cfg(test)]
mod tests;
