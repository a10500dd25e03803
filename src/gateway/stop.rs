//! A stop that lets calls finish: the drain.
//!
//! On SIGTERM the daemon stops taking work and gives the calls under way
//! `fax.drain_timeout` to end on their own: new INVITEs are answered 503
//! with Retry-After ([`UserAgent::drain`]), queued jobs stay queued (the
//! queue starts no call), and mail is refused with 421 by the SMTP side.
//! Calls still going at the deadline are ended with BYE; their attempts are
//! recorded as [`Outcome::Interrupted`], which does not use up one of the
//! customer's attempts (see [`super::job::FaxJob::finish_attempt`]) and is
//! retried at once when the daemon is back.
//!
//! [`Outcome::Interrupted`]: super::Outcome::Interrupted

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::Gateway;
use super::job::JobState;

/// How long calls ended with BYE at the drain's deadline are given to
/// finish their signalling and have their results recorded.
const HANG_UP_GRACE: Duration = Duration::from_secs(10);

/// How often the drain looks at the calls left.
const POLL: Duration = Duration::from_millis(200);

/// What a drain did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Calls under way when it began.
    pub calls_at_start: usize,
    /// Calls still under way at the deadline, ended with BYE.
    pub hung_up: usize,
}

impl Gateway {
    /// Calls under way: outgoing attempts and incoming calls not yet
    /// delivered.
    pub fn calls_in_progress(&self) -> usize {
        let calling = self.jobs().values().filter(|j| matches!(j.state, JobState::Calling { .. })).count();
        let receiving = self.inner.inbound.lock().unwrap_or_else(|p| p.into_inner()).len();
        calling + receiving
    }

    /// True once a drain has begun.
    pub fn draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Stops taking calls and waits up to `timeout` for those under way
    /// (`status` hears the number left each time it changes), then ends
    /// the rest with BYE and waits for their results to be recorded.
    /// `cut_short` ends the wait early (a second SIGTERM).
    pub async fn drain(
        &self,
        timeout: Duration,
        mut status: impl FnMut(usize),
        cut_short: impl Future<Output = ()>,
    ) -> Drained {
        self.inner.draining.store(true, Ordering::SeqCst);
        for ua in self.user_agents() {
            ua.drain();
        }
        self.inner.wake.notify_one();
        let calls_at_start = self.calls_in_progress();
        let deadline = Instant::now() + timeout;
        let mut told = usize::MAX;
        tokio::pin!(cut_short);
        let mut cut = false;
        let left = loop {
            let n = self.calls_in_progress();
            if n != told {
                status(n);
                told = n;
            }
            if n == 0 || cut || Instant::now() >= deadline {
                break n;
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))) => {}
                _ = &mut cut_short => cut = true,
            }
        };
        if left == 0 {
            return Drained { calls_at_start, hung_up: 0 };
        }
        tracing::warn!(
            calls = left,
            "calls still under way at the end of the drain are ended (BYE); they are recorded as interrupted \
             and faxes from mail are called again at the next start, without using up an attempt"
        );
        self.inner.stopping.store(true, Ordering::SeqCst);
        for ua in self.user_agents() {
            ua.hang_up_all();
        }
        let grace = Instant::now() + HANG_UP_GRACE;
        loop {
            let n = self.calls_in_progress();
            if n != told {
                status(n);
                told = n;
            }
            if n == 0 || Instant::now() >= grace {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        Drained { calls_at_start, hung_up: left }
    }
}
