//! The gateway: joins the mail leg, the documents and the fax leg.
//!
//! It owns the fax jobs made from accepted mail and the calls it answers.
//! In: mail the spool accepted, call reports of the trunks' user agents.
//! Out: calls through the outbound trunk, CDRs, mail into the outbox.
//!
//! # Layout
//! - this file: the wiring ([`Gateway::start`]) and the job table;
//! - `outbound`: mail to fax: intake, the queue, attempts, the finish;
//! - `inbound`: fax to mail: routing a call, receiving, recovery after a stop;
//! - [`report`]: the mails it sends (reports, received faxes);
//! - [`control`]: the queue as the admin API lists and steers it;
//! - [`stop`]: the drain on SIGTERM;
//! - `trunks`: a trunk's user agent started, and the trunks changed by a reload;
//! - [`job`]: a fax job and its retry schedule; [`policy`]: where an account may fax;
//!   [`render`]: a mail's parts to fax pages.
//!
//! README's "How a fax goes through" tells each flow's story.

pub mod control;
mod inbound;
pub mod job;
mod outbound;
pub mod policy;
pub mod render;
pub mod report;
pub mod stop;
mod trunks;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use faxgate_t38::media::MediaClock;
use faxgate_t38::sip::{CallReport, UserAgent};
use jiff::Timestamp;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use control::Queue;
pub use job::{Attempt, FaxJob, JobState, Outcome, Steer};

use crate::Error;
use crate::cdr::CdrStore;
use crate::clock::Clock;
use crate::config::FaxConfig;
use crate::directory::Directory;
use crate::mail::Spool;
use crate::mail::outbox::Outbox;
use crate::store::{Store, Tree, TreeName};
use crate::types::{E164, JobId, TenantId};
use inbound::Inbound;
use outbound::Outbound;

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
    /// The clock the fax leg's calls run on (real time but in tests).
    pub media_clock: MediaClock,
    /// `[fax]`.
    pub config: FaxConfig,
    /// `[[trunk]]`.
    pub trunks: Vec<faxgate_t38::trunk::TrunkConfig>,
    /// Where call files live.
    pub work_dir: PathBuf,
    /// Wakes the retention sweeper (a job got its final result).
    pub sweep: Arc<Notify>,
    /// Sockets from the service manager, for trunks bound to their addresses.
    pub inherited: Arc<crate::sockets::Inherited>,
    /// The webhooks' queue: fax events go in it.
    pub webhooks: crate::webhook::Webhooks,
}

struct Inner {
    tree: Tree,
    directory: Directory,
    spool: Spool,
    outbox: Outbox,
    cdrs: CdrStore,
    /// What calls to a destination needed ([`crate::learned`]).
    learning: crate::learned::Learning,
    clock: Arc<dyn Clock>,
    /// `[fax]`, replaced by a reload ([`Gateway::reload`]).
    config: tokio::sync::watch::Sender<Arc<FaxConfig>>,
    work_dir: PathBuf,
    sweep: Arc<Notify>,
    outbound: Mutex<Option<Arc<Outbound>>>,
    /// Every trunk's configuration and user agent.
    trunks: Mutex<Vec<(faxgate_t38::trunk::TrunkConfig, UserAgent)>>,
    /// Trunks removed or changed by a reload, until their calls have ended.
    retiring: Mutex<Vec<UserAgent>>,
    /// What starting a trunk needs (set once the gateway runs).
    live: Mutex<Option<trunks::Live>>,
    /// Jobs not yet final and reported.
    jobs: Mutex<BTreeMap<JobId, FaxJob>>,
    /// Calls being received, by Call-ID.
    inbound: Mutex<HashMap<String, Inbound>>,
    wake: Notify,
    /// A stop has begun: no new calls ([`stop`]).
    draining: std::sync::atomic::AtomicBool,
    /// The drain's deadline passed: calls still under way were ended by us.
    stopping: std::sync::atomic::AtomicBool,
    /// Fax events for the webhooks.
    webhooks: crate::webhook::Webhooks,
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

impl Gateway {
    /// Sets the gateway up: loads unfinished jobs (recovering any cut off by
    /// a stop), empties the work directory, starts a user agent per trunk.
    /// Returns the gateway and the SIP addresses it listens on.
    pub async fn start(parts: Parts, shutdown: CancellationToken) -> anyhow::Result<(Gateway, Vec<String>)> {
        use anyhow::Context as _;
        let Parts {
            store,
            directory,
            spool,
            outbox,
            clock,
            media_clock,
            config,
            trunks,
            work_dir,
            sweep,
            inherited,
            webhooks,
        } = parts;
        std::fs::create_dir_all(&work_dir)
            .with_context(|| format!("cannot create the work directory {}", work_dir.display()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&work_dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let tree = store.tree(TreeName::Mail)?;
        let gw = Gateway {
            inner: Arc::new(Inner {
                cdrs: CdrStore::open(&store)?,
                learning: crate::learned::Learning::open(&store)?,
                tree,
                directory,
                spool,
                outbox,
                clock,
                config: tokio::sync::watch::Sender::new(Arc::new(config)),
                work_dir,
                sweep,
                outbound: Mutex::new(None),
                trunks: Mutex::new(Vec::new()),
                retiring: Mutex::new(Vec::new()),
                live: Mutex::new(None),
                jobs: Mutex::new(BTreeMap::new()),
                inbound: Mutex::new(HashMap::new()),
                wake: Notify::new(),
                draining: Default::default(),
                stopping: Default::default(),
                webhooks,
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

        let (report_tx, mut report_rx) = tokio::sync::mpsc::unbounded_channel::<(String, CallReport)>();
        *gw.inner.live.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(trunks::Live { report_tx, media_clock, shutdown: shutdown.clone() });
        let mut addresses = Vec::new();
        for t in trunks {
            let socket = t.bind.and_then(|b| inherited.take_udp(b)).map(Arc::new);
            addresses.push(gw.start_trunk(t, socket).await?);
        }
        {
            let gw = gw.clone();
            tokio::spawn(async move {
                while let Some((trunk, r)) = report_rx.recv().await {
                    let g = gw.clone();
                    if let Err(e) = tokio::task::spawn_blocking(move || g.received(&trunk, r))
                        .await
                        .unwrap_or_else(|e| Err(Error::Invalid(format!("received fax task failed: {e}"))))
                    {
                        tracing::error!(error = %faxgate_retention::logid::Scrubbed(&e), "cannot deliver a received fax");
                    }
                }
            });
        }
        tokio::spawn(gw.clone().intake(shutdown.clone()));
        tokio::spawn(gw.clone().queue(shutdown));
        Ok((gw, addresses))
    }

    /// Applies the `[fax]` section of a reloaded configuration: the hold,
    /// retry schedules, documents, reports and the drain take effect at
    /// once. Returns the settings that changed but take effect only at a
    /// restart (the station id and ECM the trunks were started with, and
    /// where media and call files go); those keep their old values.
    pub fn reload(&self, new: FaxConfig) -> Vec<&'static str> {
        let old = self.config();
        let mut restart = Vec::new();
        for (changed, name) in [
            (old.ident != new.ident, "fax.ident"),
            (old.ecm != new.ecm, "fax.ecm"),
            (old.work_dir != new.work_dir, "fax.work_dir"),
            (old.media_ip != new.media_ip, "fax.media_ip"),
            (old.advertise != new.advertise, "fax.advertise"),
        ] {
            if changed {
                restart.push(name);
            }
        }
        if old.hold != new.hold {
            tracing::info!(hold = new.hold, "fax.hold is now {}", if new.hold { "on" } else { "off" });
        }
        let applied = FaxConfig {
            ident: old.ident.clone(),
            ecm: old.ecm,
            work_dir: old.work_dir.clone(),
            media_ip: old.media_ip,
            advertise: old.advertise,
            ..new
        };
        self.inner.config.send_replace(Arc::new(applied));
        self.inner.wake.notify_one();
        restart
    }

    /// `[fax]` as it applies now.
    pub fn fax_config(&self) -> Arc<FaxConfig> {
        self.config()
    }

    /// `[fax]` as it applies now.
    fn config(&self) -> Arc<FaxConfig> {
        self.inner.config.borrow().clone()
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, BTreeMap<JobId, FaxJob>> {
        self.inner.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, job: &FaxJob) -> Result<(), Error> {
        control::save_in(&self.inner.tree, job)
    }

    /// Every fax job still on record (finished ones until they are swept).
    pub fn list(&self) -> Result<Vec<FaxJob>, Error> {
        control::stored_jobs(&self.inner.tree)
    }

    /// The jobs not yet final, by state, and the oldest one's creation.
    pub fn queue_stats(&self) -> QueueStats {
        let jobs = self.jobs();
        let mut by_state = vec![("waiting", 0), ("retrying", 0), ("held", 0), ("calling", 0)];
        for j in jobs.values().filter(|j| !j.is_final()) {
            if let Some(n) = by_state.iter_mut().find(|(s, _)| *s == j.state_name()) {
                n.1 += 1;
            }
        }
        let oldest = jobs.values().filter(|j| !j.is_final()).map(|j| j.created).min();
        QueueStats { by_state, oldest }
    }

    /// Every trunk's name, channels and counters.
    pub fn trunk_stats(&self) -> Vec<TrunkStats> {
        let trunks = self.inner.trunks.lock().unwrap_or_else(|p| p.into_inner());
        trunks
            .iter()
            .map(|(t, ua)| TrunkStats { name: t.name.clone(), channels: t.channels, stats: ua.stats() })
            .collect()
    }

    /// The retry schedules of `[fax]`.
    fn retry(&self) -> job::RetrySchedule {
        let c = self.config();
        job::RetrySchedule::from_config(&c.retry_delays, &c.retry_by_cause)
    }
}

/// [`Gateway::queue_stats`].
#[derive(Clone, Debug)]
pub struct QueueStats {
    /// Jobs by [`FaxJob::state_name`] (those not final).
    pub by_state: Vec<(&'static str, usize)>,
    /// When the oldest job not final was accepted.
    pub oldest: Option<Timestamp>,
}

/// [`Gateway::trunk_stats`].
#[derive(Clone, Debug)]
pub struct TrunkStats {
    /// The trunk's name.
    pub name: String,
    /// Calls it takes at once.
    pub channels: u32,
    /// Its user agent's counters.
    pub stats: faxgate_t38::sip::UaStats,
}
