//! The sweeper: erases what is due, at its deadline, and writes the audit trail.
//!
//! Categories of data implement [`Category`]; the sweeper runs them all at
//! start, appends an [`AuditEntry`], then sleeps until the earliest next
//! deadline (not a fixed poll) or until it is woken or shut down. Whatever
//! can make a deadline earlier than the known ones (a termination, a hold
//! lifted, a `retention sweep` request) wakes it.

use std::sync::Arc;

use jiff::Timestamp;
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
}

impl Sweeper {
    /// A sweeper over `categories`, appending to `audit`.
    pub fn new(categories: Vec<Arc<dyn Category>>, audit: AuditLog, clock: Arc<dyn Clock>) -> Self {
        Sweeper { categories, audit, clock }
    }

    /// Sweeps every category now and records the sweep.
    pub fn sweep(&self) -> Result<AuditEntry, Error> {
        let now = self.clock.now();
        let mut categories = Vec::new();
        for c in &self.categories {
            let mut r = c.sweep(now)?;
            r.category = c.name().to_owned();
            categories.push(r);
        }
        let entry = AuditEntry { at: now, categories, request: None };
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
                    entry.categories.iter().filter_map(|c| c.next_due).min()
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "retention sweep failed; retrying in a minute");
                    Some(self.clock.now() + jiff::SignedDuration::from_secs(60))
                }
                Err(e) => {
                    tracing::error!(error = %e, "retention sweep panicked; retrying in a minute");
                    Some(self.clock.now() + jiff::SignedDuration::from_secs(60))
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
