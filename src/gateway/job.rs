//! Fax jobs: one per recipient of an accepted mail, and what happens to a
//! job after each call attempt. Pure functions of the job, the outcome and
//! `now`; the gateway's outbound flow (`super::outbound`) stores and runs them.

use faxgate_t38::sip::{CallError, CallReport};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::types::{AccountId, E164, JobId, TenantId};

/// Where a job stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum JobState {
    /// Waiting for its next attempt at `next_at`.
    Queued,
    /// A call is (or was, if the daemon stopped) under way.
    Calling {
        /// The CDR this attempt writes.
        cdr_id: String,
        /// The SIP Call-ID.
        call_id: String,
        /// When the attempt started.
        start: Timestamp,
    },
    /// Kept out of the queue by the operator until released
    /// (`faxgate queue hold`); `next_at` is kept.
    Held,
    /// Every page was sent.
    Done,
    /// Given up; the last attempt's outcome says why.
    Failed,
}

/// How one attempt ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// All pages confirmed by the receiver.
    Sent {
        /// Pages sent.
        pages: u32,
    },
    /// The line was busy.
    Busy {
        /// SIP status.
        status: u16,
    },
    /// Nobody answered.
    NoAnswer {
        /// SIP status (408 when we cancelled).
        status: u16,
    },
    /// The call was answered but the fax did not get through completely.
    TransferFailed {
        /// Pages confirmed before it failed.
        pages: u32,
        /// T.30 completion code (absent when the fax never started).
        t30_code: Option<i32>,
        /// Its text.
        text: String,
    },
    /// The number does not exist.
    BadNumber {
        /// SIP status.
        status: u16,
    },
    /// The network refused the call for good.
    Refused {
        /// SIP status.
        status: u16,
    },
    /// The trunk or the network failed; worth another try.
    NetworkFailure {
        /// SIP status, if there was one.
        status: Option<u16>,
        /// What happened.
        text: String,
    },
    /// The daemon stopped during the call.
    Interrupted,
    /// The document could not be turned into fax pages.
    BadDocument {
        /// Why, for the customer.
        text: String,
    },
    /// The destination is not allowed for the account.
    Blocked {
        /// Why, for the customer.
        text: String,
    },
    /// Cancelled by the operator or the tenant's admin (`faxgate queue cancel`).
    Cancelled,
}

impl Outcome {
    /// From what the user agent said about a call.
    pub fn of_call(r: &Result<CallReport, CallError>) -> Outcome {
        match r {
            Ok(report) => match &report.result {
                Some(res) if res.is_ok() => Outcome::Sent { pages: res.pages },
                Some(res) => {
                    Outcome::TransferFailed { pages: res.pages, t30_code: Some(res.code.0), text: res.text.clone() }
                }
                None => Outcome::TransferFailed {
                    pages: 0,
                    t30_code: None,
                    text: "the call was answered but no fax started".into(),
                },
            },
            Err(CallError::Busy(s)) => Outcome::Busy { status: *s },
            Err(CallError::NoAnswer(s)) => Outcome::NoAnswer { status: *s },
            Err(CallError::BadNumber(s)) => Outcome::BadNumber { status: *s },
            Err(CallError::Refused(s)) => Outcome::Refused { status: *s },
            Err(CallError::NotAcceptable(s)) => Outcome::Refused { status: *s },
            Err(CallError::TrunkFailure(s)) | Err(CallError::Other(s)) => {
                Outcome::NetworkFailure { status: Some(*s), text: format!("the network answered {s}") }
            }
            Err(e) => Outcome::NetworkFailure { status: e.status(), text: e.to_string() },
        }
    }

    /// Worth another attempt.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Outcome::Busy { .. }
                | Outcome::NoAnswer { .. }
                | Outcome::TransferFailed { .. }
                | Outcome::NetworkFailure { .. }
                | Outcome::Interrupted
        )
    }

    /// The key of the retry schedule this outcome takes.
    pub fn cause(&self) -> &'static str {
        match self {
            Outcome::Busy { .. } => "busy",
            Outcome::NoAnswer { .. } => "no_answer",
            Outcome::TransferFailed { .. } => "transfer_failed",
            Outcome::NetworkFailure { .. } => "network",
            _ => "other",
        }
    }

    /// A short stable code for reports and CDRs.
    pub fn code(&self) -> &'static str {
        match self {
            Outcome::Sent { .. } => "sent",
            Outcome::Busy { .. } => "busy",
            Outcome::NoAnswer { .. } => "no-answer",
            Outcome::TransferFailed { .. } => "transfer-failed",
            Outcome::BadNumber { .. } => "bad-number",
            Outcome::Refused { .. } => "refused",
            Outcome::NetworkFailure { .. } => "network-failure",
            Outcome::Interrupted => "interrupted",
            Outcome::BadDocument { .. } => "bad-document",
            Outcome::Blocked { .. } => "blocked",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// The SIP status, when the outcome has one.
    pub fn sip_status(&self) -> Option<u16> {
        match self {
            Outcome::Busy { status }
            | Outcome::NoAnswer { status }
            | Outcome::BadNumber { status }
            | Outcome::Refused { status } => Some(*status),
            Outcome::NetworkFailure { status, .. } => *status,
            _ => None,
        }
    }

    /// Whether the attempt placed a call: a document that cannot be faxed
    /// and a destination not allowed end the job before any call.
    pub fn called(&self) -> bool {
        !matches!(self, Outcome::BadDocument { .. } | Outcome::Blocked { .. } | Outcome::Cancelled)
    }

    /// Pages that got through.
    pub fn pages(&self) -> u32 {
        match self {
            Outcome::Sent { pages } | Outcome::TransferFailed { pages, .. } => *pages,
            _ => 0,
        }
    }
}

/// One attempt, as remembered on the job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When it started.
    pub start: Timestamp,
    /// When it ended.
    pub end: Timestamp,
    /// Its CDR.
    pub cdr_id: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Remote station id, when the fax started.
    pub remote_station: Option<String>,
}

/// What `faxgate queue retry|cancel|hold|release` does to a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Steer {
    /// Call now: a waiting, retrying or held job is due at once (and released).
    Retry,
    /// Give up now: the job fails as cancelled and its report goes out.
    Cancel,
    /// Keep the job out of the queue until it is released.
    Hold,
    /// Put a held job back in the queue, due when it was due before.
    Release,
}

impl Steer {
    /// The verb, for messages.
    pub fn verb(self) -> &'static str {
        match self {
            Steer::Retry => "retry",
            Steer::Cancel => "cancel",
            Steer::Hold => "hold",
            Steer::Release => "release",
        }
    }
}

/// When to try again: the default schedule and those of single causes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetrySchedule {
    /// Seconds before each retry, indexed by the attempts made so far.
    pub delays: Vec<u64>,
    /// Schedules of their own, by [`Outcome::cause`].
    pub by_cause: crate::config::RetryByCause,
}

impl RetrySchedule {
    /// From the `[fax]` configuration.
    pub fn from_config(delays: &[u64], by_cause: &crate::config::RetryByCause) -> Self {
        Self { delays: delays.to_vec(), by_cause: by_cause.clone() }
    }

    /// One schedule for every cause.
    pub fn uniform(delays: &[u64]) -> Self {
        Self { delays: delays.to_vec(), by_cause: crate::config::RetryByCause::default() }
    }
}

/// Attempts of one job cut off by a stop that are not counted
/// ([`FaxJob::finish_attempt`]); more are counted as any other failure.
pub const MAX_UNCOUNTED_INTERRUPTIONS: usize = 5;

/// A fax to one number, from one accepted mail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaxJob {
    /// The job.
    pub id: JobId,
    /// The mail it came from.
    pub mail_job: JobId,
    /// The correlation id: the mail's Message-ID, else the mail job.
    pub correlation_id: String,
    /// The tenant.
    pub tenant: TenantId,
    /// The account.
    pub account: AccountId,
    /// The reverse path, where the report goes (empty: the null sender).
    pub mail_from: String,
    /// The mail's subject.
    pub subject: String,
    /// The number called.
    pub to: E164,
    /// The caller number sent.
    pub caller: Option<E164>,
    /// The SMTP client that handed in the mail.
    #[serde(default)]
    pub smtp_client: Option<std::net::IpAddr>,
    /// Pages in the document.
    pub pages_total: u32,
    /// When the mail was accepted.
    pub created: Timestamp,
    /// Where the job stands.
    pub state: JobState,
    /// When the next attempt is due (for `Queued`).
    pub next_at: Timestamp,
    /// The attempts so far.
    pub attempts: Vec<Attempt>,
    /// The next attempt uses safer settings (after a failed transfer).
    pub safer: bool,
    /// The report has been queued.
    pub reported: bool,
}

impl FaxJob {
    /// True once the job will not be tried again.
    pub fn is_final(&self) -> bool {
        matches!(self.state, JobState::Done | JobState::Failed)
    }

    /// Attempts cut off by a stop that do not count against the schedule.
    fn uncounted(&self) -> usize {
        self.attempts.iter().filter(|a| a.outcome == Outcome::Interrupted).count().min(MAX_UNCOUNTED_INTERRUPTIONS)
    }

    /// The last attempt's outcome.
    pub fn last_outcome(&self) -> Option<&Outcome> {
        self.attempts.last().map(|a| &a.outcome)
    }

    /// Records an attempt and decides what follows: done, another attempt
    /// after the cause's schedule (see [`crate::config::RetryByCause`]), or failed for good.
    ///
    /// An attempt cut off by the gateway's own stop or restart
    /// ([`Outcome::Interrupted`]) is not the customer's: it is called again
    /// at once and does not count against the schedule, up to
    /// [`MAX_UNCOUNTED_INTERRUPTIONS`] times per job (so that a fax that
    /// keeps the daemon from running cannot loop for ever).
    pub fn finish_attempt(&mut self, attempt: Attempt, retry: &RetrySchedule) {
        let end = attempt.end;
        if attempt.outcome == Outcome::Interrupted && self.uncounted() < MAX_UNCOUNTED_INTERRUPTIONS {
            self.attempts.push(attempt);
            self.next_at = end;
            self.state = JobState::Queued;
            return;
        }
        let transient = attempt.outcome.is_transient();
        self.safer = matches!(attempt.outcome, Outcome::TransferFailed { .. });
        let sent = matches!(attempt.outcome, Outcome::Sent { .. });
        let cause = attempt.outcome.cause();
        self.attempts.push(attempt);
        let delay = match retry.by_cause.get(cause) {
            // This cause's own schedule, counting its own attempts.
            Some(own) => own.get(self.attempts.iter().filter(|a| a.outcome.cause() == cause).count() - 1),
            None => retry.delays.get(self.attempts.len() - self.uncounted() - 1),
        };
        self.state = match delay {
            _ if sent => JobState::Done,
            Some(d) if transient => {
                self.next_at = end + SignedDuration::from_secs(*d as i64);
                JobState::Queued
            }
            _ => JobState::Failed,
        };
    }

    /// Applies `what` at `now`; on refusal, why (a job being called is
    /// steered only after its call ends; a final job not at all).
    pub fn steer(&mut self, what: Steer, now: Timestamp) -> Result<(), String> {
        let id = self.id.to_text();
        match (&self.state, what) {
            (JobState::Calling { .. }, _) => {
                Err(format!("{id} is being called now; {} it once the call has ended", what.verb()))
            }
            (JobState::Done | JobState::Failed, _) => {
                Err(format!("{id} is finished ({}); there is nothing to {}", self.state_name(), what.verb()))
            }
            (JobState::Queued | JobState::Held, Steer::Retry) => {
                self.state = JobState::Queued;
                self.next_at = now;
                Ok(())
            }
            (JobState::Queued | JobState::Held, Steer::Cancel) => {
                self.fail_now(now, Outcome::Cancelled);
                Ok(())
            }
            (JobState::Queued, Steer::Hold) => {
                self.state = JobState::Held;
                Ok(())
            }
            (JobState::Held, Steer::Release) => {
                self.state = JobState::Queued;
                Ok(())
            }
            (JobState::Held, Steer::Hold) => Err(format!("{id} is already held")),
            (JobState::Queued, Steer::Release) => Err(format!("{id} is not held")),
        }
    }

    /// Where the job stands, in one word: `waiting` (not tried yet),
    /// `retrying` (tried, due again at `next_at`), `held`, `calling`, `done`
    /// or `failed`.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            JobState::Queued if self.attempts.is_empty() => "waiting",
            JobState::Queued => "retrying",
            JobState::Held => "held",
            JobState::Calling { .. } => "calling",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }

    /// Ends a job before any call (bad document, blocked number).
    pub fn fail_now(&mut self, now: Timestamp, outcome: Outcome) {
        self.attempts.push(Attempt { start: now, end: now, cdr_id: String::new(), outcome, remote_station: None });
        self.state = JobState::Failed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(now: Timestamp) -> FaxJob {
        FaxJob {
            id: JobId::generate(),
            mail_job: JobId::generate(),
            correlation_id: "<m@x>".into(),
            tenant: "t".parse().unwrap(),
            account: AccountId::generate(),
            mail_from: "a@example.com".into(),
            subject: "s".into(),
            to: E164::parse("+4533221100", None).unwrap(),
            caller: None,
            smtp_client: None,
            pages_total: 2,
            created: now,
            state: JobState::Queued,
            next_at: now,
            attempts: Vec::new(),
            safer: false,
            reported: false,
        }
    }

    fn attempt(at: Timestamp, outcome: Outcome) -> Attempt {
        Attempt {
            start: at,
            end: at + SignedDuration::from_secs(30),
            cdr_id: "c".into(),
            outcome,
            remote_station: None,
        }
    }

    #[test]
    fn busy_then_sent() {
        let t0: Timestamp = "2026-01-01T10:00:00Z".parse().unwrap();
        let mut j = job(t0);
        j.finish_attempt(attempt(t0, Outcome::Busy { status: 486 }), &RetrySchedule::uniform(&[60, 300]));
        assert_eq!(j.state, JobState::Queued);
        assert_eq!(j.next_at, t0 + SignedDuration::from_secs(90));
        assert!(!j.safer);
        j.finish_attempt(attempt(j.next_at, Outcome::Sent { pages: 2 }), &RetrySchedule::uniform(&[60, 300]));
        assert_eq!(j.state, JobState::Done);
        assert!(j.is_final());
    }

    #[test]
    fn no_answer_until_the_schedule_runs_out() {
        let t0: Timestamp = "2026-01-01T10:00:00Z".parse().unwrap();
        let mut j = job(t0);
        let delays = RetrySchedule::uniform(&[60, 300, 900]);
        for i in 0..3 {
            j.finish_attempt(attempt(j.next_at, Outcome::NoAnswer { status: 408 }), &delays);
            assert_eq!(j.state, JobState::Queued, "after attempt {}", i + 1);
        }
        assert_eq!(j.next_at, t0 + SignedDuration::from_secs(30 + 60 + 30 + 300 + 30 + 900));
        j.finish_attempt(attempt(j.next_at, Outcome::NoAnswer { status: 408 }), &delays);
        assert_eq!(j.state, JobState::Failed);
        assert_eq!(j.attempts.len(), 4);
    }

    #[test]
    fn an_attempt_cut_off_by_a_stop_is_not_counted() {
        let t0: Timestamp = "2026-01-01T10:00:00Z".parse().unwrap();
        let mut j = job(t0);
        let delays = RetrySchedule::uniform(&[60]);
        // Busy, then the gateway is stopped in the last attempt, twice: the
        // last attempt is still due, at once.
        j.finish_attempt(attempt(t0, Outcome::Busy { status: 486 }), &delays);
        for _ in 0..2 {
            let at = j.next_at;
            j.finish_attempt(attempt(at, Outcome::Interrupted), &delays);
            assert_eq!(j.state, JobState::Queued);
            assert_eq!(j.next_at, at + SignedDuration::from_secs(30), "called again at once");
        }
        j.finish_attempt(attempt(j.next_at, Outcome::Sent { pages: 2 }), &delays);
        assert_eq!(j.state, JobState::Done);
        assert_eq!(j.attempts.len(), 4);
        // Not for ever: beyond the uncounted ones, a stop counts.
        let mut j = job(t0);
        for _ in 0..MAX_UNCOUNTED_INTERRUPTIONS {
            j.finish_attempt(attempt(j.next_at, Outcome::Interrupted), &delays);
            assert_eq!(j.state, JobState::Queued);
        }
        j.finish_attempt(attempt(j.next_at, Outcome::Interrupted), &delays);
        assert_eq!(j.state, JobState::Queued, "the first counted one has a retry left");
        j.finish_attempt(attempt(j.next_at, Outcome::Interrupted), &delays);
        assert_eq!(j.state, JobState::Failed);
    }

    #[test]
    fn a_failed_transfer_makes_the_next_attempt_safer() {
        let t0: Timestamp = "2026-01-01T10:00:00Z".parse().unwrap();
        let mut j = job(t0);
        let o = Outcome::TransferFailed { pages: 1, t30_code: Some(49), text: "DCN while waiting for MCF".into() };
        j.finish_attempt(attempt(t0, o), &RetrySchedule::uniform(&[60]));
        assert!(j.safer);
        assert_eq!(j.state, JobState::Queued);
        j.finish_attempt(attempt(j.next_at, Outcome::Busy { status: 486 }), &RetrySchedule::uniform(&[60]));
        assert!(!j.safer);
        assert_eq!(j.state, JobState::Failed);
    }

    #[test]
    fn a_cause_with_its_own_schedule_counts_its_own_attempts() {
        let t0: Timestamp = "2026-01-01T10:00:00Z".parse().unwrap();
        let by_cause = crate::config::RetryByCause { busy: Some(vec![120, 120, 600]), ..Default::default() };
        let retry = RetrySchedule::from_config(&[60], &by_cause);
        let mut j = job(t0);
        // Busy three times: its own schedule, 120, 120, then 600 seconds.
        for (i, d) in [120, 120, 600].into_iter().enumerate() {
            let at = j.next_at;
            j.finish_attempt(attempt(at, Outcome::Busy { status: 486 }), &retry);
            assert_eq!(j.state, JobState::Queued, "after busy {}", i + 1);
            assert_eq!(j.next_at, at + SignedDuration::from_secs(30 + d));
        }
        // No answer takes the default schedule, by attempts made (4 > 1): final.
        j.finish_attempt(attempt(j.next_at, Outcome::NoAnswer { status: 480 }), &retry);
        assert_eq!(j.state, JobState::Failed);
        // A fourth busy line is one more than busy allows.
        let mut j = job(t0);
        for _ in 0..3 {
            j.finish_attempt(attempt(j.next_at, Outcome::Busy { status: 486 }), &retry);
        }
        j.finish_attempt(attempt(j.next_at, Outcome::Busy { status: 486 }), &retry);
        assert_eq!(j.state, JobState::Failed);
    }

    #[test]
    fn permanent_causes_end_the_job_at_once() {
        let t0: Timestamp = "2026-01-01T10:00:00Z".parse().unwrap();
        for o in [Outcome::BadNumber { status: 404 }, Outcome::Refused { status: 403 }] {
            let mut j = job(t0);
            j.finish_attempt(attempt(t0, o), &RetrySchedule::uniform(&[60, 300]));
            assert_eq!(j.state, JobState::Failed);
        }
    }

    #[test]
    fn steering_a_job() {
        let t0: Timestamp = "2026-01-01T10:00:00Z".parse().unwrap();
        let later = t0 + SignedDuration::from_secs(600);
        let mut j = job(t0);
        assert_eq!(j.state_name(), "waiting");
        j.finish_attempt(attempt(t0, Outcome::Busy { status: 486 }), &RetrySchedule::uniform(&[600]));
        assert_eq!(j.state_name(), "retrying");
        let due = j.next_at;
        assert!(j.steer(Steer::Release, t0).unwrap_err().contains("is not held"));
        j.steer(Steer::Hold, t0).unwrap();
        assert_eq!((j.state_name(), j.next_at), ("held", due));
        assert!(j.steer(Steer::Hold, t0).unwrap_err().contains("already held"));
        j.steer(Steer::Release, t0).unwrap();
        assert_eq!((j.state_name(), j.next_at), ("retrying", due), "due when it was due before");
        j.steer(Steer::Hold, t0).unwrap();
        j.steer(Steer::Retry, later).unwrap();
        assert_eq!((&j.state, j.next_at), (&JobState::Queued, later), "a retry releases and is due now");
        j.steer(Steer::Cancel, later).unwrap();
        assert_eq!((&j.state, j.last_outcome()), (&JobState::Failed, Some(&Outcome::Cancelled)));
        assert!(!Outcome::Cancelled.called());
        for s in [Steer::Retry, Steer::Cancel, Steer::Hold, Steer::Release] {
            assert!(j.steer(s, later).unwrap_err().contains("is finished (failed)"), "{s:?}");
        }
        let mut c = job(t0);
        c.state = JobState::Calling { cdr_id: "c".into(), call_id: "x".into(), start: t0 };
        assert!(c.steer(Steer::Cancel, t0).unwrap_err().contains("being called now; cancel it once"));
    }

    #[test]
    fn call_errors_map_to_outcomes() {
        assert_eq!(Outcome::of_call(&Err(CallError::Busy(486))), Outcome::Busy { status: 486 });
        assert_eq!(Outcome::of_call(&Err(CallError::NoAnswer(408))), Outcome::NoAnswer { status: 408 });
        assert_eq!(Outcome::of_call(&Err(CallError::BadNumber(404))), Outcome::BadNumber { status: 404 });
        assert!(Outcome::of_call(&Err(CallError::TrunkFailure(503))).is_transient());
        assert!(!Outcome::of_call(&Err(CallError::Refused(403))).is_transient());
    }
}
