//! The queue as the admin API sees it: the jobs, and `retry`, `cancel`,
//! `hold` and `release` on one of them. While the daemon runs this goes
//! through the running gateway (its job table and its queue loop); when no
//! daemon runs, through the store, and the next start picks the change up.

use std::sync::Arc;

use jiff::Timestamp;

use super::Gateway;
use super::job::{FaxJob, Steer};
use crate::Error;
use crate::clock::Clock;
use crate::retention::documents::job_key;
use crate::store::layout::mail as layout;
use crate::store::{Store, Tree, TreeName};
use crate::types::JobId;

/// Where queue requests are carried out.
#[derive(Clone, Debug)]
pub enum Queue {
    /// The daemon's gateway.
    Running(Gateway),
    /// The store, no daemon running.
    Stopped {
        /// The mail tree, where jobs are kept.
        tree: Tree,
        /// The clock.
        clock: Arc<dyn Clock>,
    },
}

/// Every fax job in `tree` (finished ones until they are swept), oldest first.
pub(super) fn stored_jobs(tree: &Tree) -> Result<Vec<FaxJob>, Error> {
    let mut out = Vec::new();
    for k in tree.keys_with_prefix(layout::FAX_JOBS)? {
        match tree.get_sealed::<FaxJob>(&k) {
            Ok(Some(j)) => out.push(j),
            Ok(None) => {}
            Err(Error::Crypto(_)) => {} // erased
            Err(e) => return Err(e),
        }
    }
    out.sort_by_key(|j| j.created);
    Ok(out)
}

fn stored_job(tree: &Tree, id: &JobId) -> Result<Option<FaxJob>, Error> {
    match tree.get_sealed::<FaxJob>(&layout::fax_job(id)) {
        Err(Error::Crypto(_)) => Ok(None),
        r => r,
    }
}

fn not_found(id: &JobId) -> Error {
    Error::NotFound(format!("no fax job {}", id.to_text()))
}

impl Queue {
    /// The queue in `store`, for when no daemon runs.
    pub fn stopped(store: &Store, clock: Arc<dyn Clock>) -> Result<Queue, Error> {
        Ok(Queue::Stopped { tree: store.tree(TreeName::Mail)?, clock })
    }

    /// Every job on record, oldest first.
    pub fn jobs(&self) -> Result<Vec<FaxJob>, Error> {
        match self {
            Queue::Running(g) => g.list(),
            Queue::Stopped { tree, .. } => stored_jobs(tree),
        }
    }

    /// One job.
    pub fn job(&self, id: &JobId) -> Result<Option<FaxJob>, Error> {
        match self {
            Queue::Running(g) => stored_job(&g.inner.tree, id),
            Queue::Stopped { tree, .. } => stored_job(tree, id),
        }
    }

    /// Steers job `id`, if `visible` to the caller (else: not found).
    pub fn steer(&self, id: &JobId, what: Steer, visible: &dyn Fn(&FaxJob) -> bool) -> Result<FaxJob, Error> {
        match self {
            Queue::Running(g) => g.steer(id, what, visible),
            Queue::Stopped { tree, clock } => {
                let mut job = stored_job(tree, id)?.filter(|j| visible(j)).ok_or_else(|| not_found(id))?;
                job.steer(what, clock.now()).map_err(Error::Invalid)?;
                save_in(tree, &job)?;
                Ok(job)
            }
        }
    }

    /// The time now.
    pub fn now(&self) -> Timestamp {
        match self {
            Queue::Running(g) => g.now(),
            Queue::Stopped { clock, .. } => clock.now(),
        }
    }
}

pub(super) fn save_in(tree: &Tree, job: &FaxJob) -> Result<(), Error> {
    let mut b = tree.batch();
    b.put_sealed(&layout::fax_job(&job.id), &job_key(&job.id)?, job)?;
    tree.apply(b)
}

impl Gateway {
    /// Steers a job of the running queue: the table and the store change
    /// together (under the table's lock, as a call's start does), and the
    /// queue loop looks again.
    fn steer(&self, id: &JobId, what: Steer, visible: &dyn Fn(&FaxJob) -> bool) -> Result<FaxJob, Error> {
        let now = self.now();
        let mut jobs = self.jobs();
        let mut job = match jobs.get(id) {
            Some(j) => j.clone(),
            // Finished and reported: only on record.
            None => stored_job(&self.inner.tree, id)?.ok_or_else(|| not_found(id))?,
        };
        if !visible(&job) {
            return Err(not_found(id));
        }
        job.steer(what, now).map_err(Error::Invalid)?;
        self.save(&job)?;
        jobs.insert(job.id, job.clone());
        drop(jobs);
        self.inner.wake.notify_one();
        Ok(job)
    }
}
