//! `faxgate retention audit` and `retention status`, over every class.
//!
//! The audit checks, independently of the sweeper and its trail, that
//! nothing is kept past its period (each class says what it keeps), that
//! every key the trail says was destroyed is gone, and that every sweep a
//! crash cut short was finished by a later one.

use std::collections::HashSet;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::policy::Policy;
use super::{CLASSES, Retention};

/// The kind of the trail entry an operator's clock confirmation writes.
pub(crate) const CLOCK_CONFIRMED: &str = "clock-confirmed";
use crate::Error;

/// What the classes found, as the audit gathers it.
#[derive(Debug)]
pub(crate) struct Findings {
    now: Timestamp,
    window: SignedDuration,
    /// What is wrong, without personal data.
    pub(crate) problems: Vec<String>,
    /// What was looked at.
    pub(crate) checked: AuditCounts,
}

impl Findings {
    /// Whether something due at `due` is overdue: the sweeper gathers
    /// deadlines into windows, so an item is overdue once its window has passed.
    pub(crate) fn overdue(&self, due: Timestamp) -> bool {
        due + self.window <= self.now
    }
}

impl Retention {
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
        let mut f =
            Findings { now, window: self.policy.window(), problems: Vec::new(), checked: AuditCounts::default() };
        for class in CLASSES {
            class.audit(self, now, &holds, &mut f)?;
        }
        if let Some(s) = self.watch.suspended() {
            f.problems.push(format!(
                "erasure of CDRs and accounts is suspended since {}: {}; once the time is right, confirm it \
                 (faxgate retention confirm-clock)",
                s.since, s.reason
            ));
        }
        let trail = self.audit_log().entries()?;
        f.checked.sweeps = trail.iter().filter(|e| e.is_sweep()).count();
        // Sweeps dated after now ran on a clock that was ahead, unless an
        // operator has since confirmed the time (which acknowledges them).
        let acknowledged = trail
            .iter()
            .filter_map(|e| e.request.as_ref().filter(|r| r.kind == CLOCK_CONFIRMED).and(e.request.as_ref()?.until))
            .max();
        let ahead: Vec<Timestamp> = trail
            .iter()
            .filter(|e| (e.is_sweep() || e.begun) && e.at > now && acknowledged.is_none_or(|a| e.at > a))
            .map(|e| e.at)
            .collect();
        if let Some(latest) = ahead.iter().max() {
            f.problems.push(format!(
                "the trail has {} sweep(s) dated after now (the latest {latest}): the clock was ahead when they \
                 ran; confirm the time (faxgate retention confirm-clock) to acknowledge them",
                ahead.len()
            ));
        }
        let interrupted: Vec<InterruptedSweep> = faxgate_retention::audit::interrupted(&trail, sweep_running)
            .into_iter()
            .map(|(begun, finished_by)| InterruptedSweep { begun, finished_by })
            .collect();
        for i in interrupted.iter().filter(|i| i.finished_by.is_none()) {
            f.problems.push(format!("the sweep begun at {} was cut short and no sweep has finished since", i.begun));
        }
        let present: HashSet<String> = self.store.vault().list()?.into_iter().map(|k| k.id.to_string()).collect();
        for e in &trail {
            for c in &e.categories {
                for k in &c.keys_destroyed {
                    // A month key may be made again for a late CDR of that month; accounts never come back.
                    let month =
                        faxgate_retention::KeyId::new(k.as_str()).ok().and_then(|k| super::cdr::month_of_key(&k));
                    if present.contains(k) && month.is_none() {
                        f.problems.push(format!("key {k}, destroyed at {}, exists again", e.at));
                    }
                }
            }
        }
        Ok(AuditReport {
            at: now,
            ok: f.problems.is_empty(),
            problems: f.problems,
            checked: f.checked,
            last_sweep: trail.iter().rev().find(|e| e.is_sweep()).map(|e| e.at),
            interrupted_sweeps: interrupted,
        })
    }

    /// What is due when.
    pub fn status(&self, now: Timestamp) -> Result<RetentionStatus, Error> {
        let mut categories = Vec::new();
        for class in CLASSES {
            categories.extend(class.status(self, now)?);
        }
        let trail = self.audit_log().entries()?;
        Ok(RetentionStatus {
            at: now,
            policy: self.policy.clone(),
            categories,
            holds: self.holds.active(now)?.len(),
            last_sweep: trail.iter().rev().find(|e| e.is_sweep()).map(|e| e.at),
            clock_suspended: self.watch.suspended(),
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
    /// Learned entries looked at.
    #[serde(default)]
    pub learned: usize,
    /// Admin audit entries looked at.
    #[serde(default)]
    pub admin_audit: usize,
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

/// One class's state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CategoryStatus {
    /// The class.
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
    /// Per class.
    pub categories: Vec<CategoryStatus>,
    /// Legal holds in force.
    pub holds: usize,
    /// The last sweep.
    pub last_sweep: Option<Timestamp>,
    /// Erasure of CDRs and accounts suspended: the clock jumped.
    pub clock_suspended: Option<super::Suspension>,
}
