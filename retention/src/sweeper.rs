//! The sweeper: erases what is due, at its deadline, and writes the audit trail.
//!
//! Categories of data implement [`Category`]; the sweeper runs them all at
//! start, appends an [`AuditEntry`], then sleeps until the earliest next
//! deadline (not a fixed poll) or until it is woken or shut down. Whatever
//! can make a deadline earlier than the known ones (a termination, a hold
//! lifted, a `retention sweep` request) wakes it. Deadlines are gathered
//! into windows ([`Sweeper::with_window`]): the sweeper wakes at the end of
//! the window that holds the next deadline, so that items falling due a few
//! seconds apart are erased by one sweep and one audit entry.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::audit::{AuditEntry, AuditLog, CategoryResult};
use crate::clock::Clock;

/// One category of data with a retention period.
pub trait Category: Send + Sync + std::fmt::Debug {
    /// Its name in the audit trail.
    fn name(&self) -> &'static str;
    /// Erases everything due at `now` that no legal hold keeps.
    fn sweep(&self, now: Timestamp) -> Result<CategoryResult, Error>;
}

/// The sweeper.
#[derive(Debug, Clone)]
pub struct Sweeper {
    categories: Vec<Arc<dyn Category>>,
    audit: AuditLog,
    clock: Arc<dyn Clock>,
    window: SignedDuration,
    running: Arc<std::sync::atomic::AtomicUsize>,
}

/// `t` rounded up to a whole number of `window`s since the epoch.
pub fn window_end(t: Timestamp, window: SignedDuration) -> Timestamp {
    let w = window.as_millis();
    if w <= 0 {
        return t;
    }
    let ms = t.as_millisecond() as i128;
    let end = (ms + w - 1).div_euclid(w) * w;
    i64::try_from(end).ok().and_then(|e| Timestamp::from_millisecond(e).ok()).unwrap_or(t)
}

impl Sweeper {
    /// A sweeper over `categories`, appending to `audit`, waking at each deadline.
    pub fn new(categories: Vec<Arc<dyn Category>>, audit: AuditLog, clock: Arc<dyn Clock>) -> Self {
        Sweeper { categories, audit, clock, window: SignedDuration::ZERO, running: Default::default() }
    }

    /// Whether a sweep of this sweeper (or a clone) is running now.
    pub fn is_running(&self) -> bool {
        self.running.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    /// Gathers deadlines into windows of `window` (see the module docs).
    pub fn with_window(mut self, window: SignedDuration) -> Self {
        self.window = window;
        self
    }

    /// Sweeps every category now and records the sweep: its start first,
    /// then what it did.
    pub fn sweep(&self) -> Result<AuditEntry, Error> {
        use std::sync::atomic::Ordering;
        // Sweeps under way (the running loop's, and one asked for by hand).
        struct Running<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.running.fetch_add(1, Ordering::SeqCst);
        let _running = Running(&self.running);
        let now = self.clock.now();
        self.audit.append(&AuditEntry { at: now, categories: Vec::new(), request: None, begun: true })?;
        let mut categories = Vec::new();
        for c in &self.categories {
            let mut r = c.sweep(now)?;
            r.category = c.name().to_owned();
            categories.push(r);
        }
        let entry = AuditEntry { at: now, categories, request: None, begun: false };
        self.audit.append(&entry)?;
        Ok(entry)
    }

    /// Runs until `shutdown`: sweeps, then sleeps until the next deadline or `wake`.
    pub async fn run(self, wake: Arc<Notify>, shutdown: CancellationToken) {
        loop {
            let sweeper = self.clone();
            let next = match tokio::task::spawn_blocking(move || sweeper.sweep()).await {
                Ok(Ok(entry)) => {
                    for c in &entry.categories {
                        if c.erased > 0 || !c.keys_destroyed.is_empty() || c.held > 0 {
                            tracing::info!(
                                category = c.category,
                                erased = c.erased,
                                keys_destroyed = c.keys_destroyed.len(),
                                held = c.held,
                                "retention sweep"
                            );
                        }
                    }
                    entry.categories.iter().filter_map(|c| c.next_due).min().map(|t| window_end(t, self.window))
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "retention sweep failed; retrying in a minute");
                    Some(self.clock.now() + SignedDuration::from_secs(60))
                }
                Err(e) => {
                    tracing::error!(error = %e, "retention sweep panicked; retrying in a minute");
                    Some(self.clock.now() + SignedDuration::from_secs(60))
                }
            };
            // Until the next deadline. With none known, until woken, or a
            // week at most: every period is longer than that, so anything
            // stored meanwhile is swept long before it is due.
            let sleep = match next {
                Some(t) => self.clock.now().duration_until(t).try_into().unwrap_or(std::time::Duration::ZERO),
                None => std::time::Duration::from_secs(7 * 86_400),
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_to_the_end_of_their_window() {
        let h = SignedDuration::from_hours(1);
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(window_end(t("2025-03-01T10:00:00Z"), h), t("2025-03-01T10:00:00Z"));
        assert_eq!(window_end(t("2025-03-01T10:00:00.001Z"), h), t("2025-03-01T11:00:00Z"));
        assert_eq!(window_end(t("2025-03-01T10:59:59Z"), h), t("2025-03-01T11:00:00Z"));
        assert_eq!(window_end(t("2025-03-01T10:17:03Z"), SignedDuration::ZERO), t("2025-03-01T10:17:03Z"));
        assert_eq!(window_end(t("1969-12-31T23:30:00Z"), h), t("1970-01-01T00:00:00Z"));
    }
}
