//! The trunks' user agents: one started per `[[trunk]]`, and the trunks a
//! reload adds, removes or changes.
//!
//! A reload compares each trunk's whole configuration. An unchanged trunk
//! keeps its user agent and its calls. A removed one drains: it refuses new
//! calls (503 with Retry-After), its calls under way go on, and it stops
//! once they have ended. A changed one drains the same way, and the new
//! configuration starts as soon as the old one has let go of its address.
//! Faxes from mail leave by the first trunk marked `outbound`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use faxgate_t38::FaxSettings;
use faxgate_t38::media::MediaClock;
use faxgate_t38::sip::{CallReport, IncomingCall, Router, UaConfig, UserAgent};
use faxgate_t38::trunk::TrunkConfig;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::Gateway;
use super::outbound::Outbound;

/// What starting a trunk needs besides its configuration.
pub(super) struct Live {
    /// Where call reports go, with the trunk's name.
    pub(super) report_tx: UnboundedSender<(String, CallReport)>,
    /// The clock calls run on.
    pub(super) media_clock: MediaClock,
    /// The daemon's stop.
    pub(super) shutdown: CancellationToken,
}

/// How often a retiring trunk is looked at for calls left.
const POLL: Duration = Duration::from_millis(200);

/// How long a changed trunk waits for its address to be free again.
const REBIND_FOR: Duration = Duration::from_secs(5);

impl Gateway {
    /// Every user agent, of the trunks in use and of those retiring.
    pub(super) fn user_agents(&self) -> Vec<UserAgent> {
        let mut v: Vec<UserAgent> =
            self.inner.trunks.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(_, ua)| ua.clone()).collect();
        v.extend(self.inner.retiring.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned());
        v
    }

    /// Starts the user agent of trunk `t` (on `socket` when the service
    /// manager passed one for its address); returns `sip <name> <address>`.
    pub(super) async fn start_trunk(
        &self,
        t: TrunkConfig,
        socket: Option<Arc<std::net::UdpSocket>>,
    ) -> anyhow::Result<String> {
        let (report_tx, media_clock, shutdown) = {
            let live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner());
            let l = live.as_ref().context("the gateway is not running")?;
            (l.report_tx.clone(), l.media_clock, l.shutdown.clone())
        };
        let bind = t.bind.context("trunk without bind")?;
        let config = self.config();
        let fax = FaxSettings {
            ident: config.ident.clone(),
            // The page header is drawn into the pages of each job
            // (`crate::document::header`), not by the fax engine.
            page_header: None,
            ecm: config.ecm,
            ..FaxSettings::default()
        };
        let ua_cfg = UaConfig {
            bind,
            socket,
            advertise: config.advertise,
            media_ip: config.media_ip,
            fax,
            clock: media_clock,
            user_agent: format!("faxgate/{}", env!("CARGO_PKG_VERSION")),
            trunk: t.clone(),
        };
        let router: Router = {
            let gw = self.clone();
            let trunk = t.name.clone();
            Arc::new(move |call: &IncomingCall| gw.route_incoming(&trunk, call))
        };
        let (ua, mut reports) = UserAgent::start(ua_cfg, router)
            .await
            .with_context(|| format!("cannot start SIP on {bind} for trunk {}", t.name))?;
        let address = format!("sip {} {}", t.name, ua.local_addr());
        if t.outbound {
            let mut out = self.inner.outbound.lock().unwrap_or_else(|p| p.into_inner());
            if out.is_none() {
                *out = Some(Arc::new(Outbound {
                    ua: ua.clone(),
                    trunk: t.name.clone(),
                    channels: Arc::new(Semaphore::new(t.channels as usize)),
                }));
            }
        }
        let (ua2, trunk) = (ua.clone(), t.name.clone());
        self.inner.trunks.lock().unwrap_or_else(|p| p.into_inner()).push((t, ua));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = reports.recv() => match r {
                        Some(r) => { let _ = report_tx.send((trunk.clone(), r)); }
                        None => break,
                    },
                    _ = shutdown.cancelled() => { ua2.shutdown(); break; }
                }
            }
        });
        self.inner.wake.notify_one();
        Ok(address)
    }

    /// Applies the trunks of a new configuration (see the module's doc).
    /// Returns what it did, one line per trunk that changed; trunks that
    /// cannot start are logged and said.
    pub async fn reload_trunks(&self, new: Vec<TrunkConfig>) -> Vec<String> {
        let mut said = Vec::new();
        let (retired, added) = {
            let mut trunks = self.inner.trunks.lock().unwrap_or_else(|p| p.into_inner());
            let (keep, retired): (Vec<_>, Vec<_>) = trunks.drain(..).partition(|(c, _)| new.contains(c));
            let added: Vec<TrunkConfig> = new.iter().filter(|c| !keep.iter().any(|(k, _)| k == *c)).cloned().collect();
            *trunks = keep;
            (retired, added)
        };
        if retired.is_empty() && added.is_empty() {
            return said;
        }
        // Faxes from mail leave by the first outbound trunk of the new list.
        {
            let mut out = self.inner.outbound.lock().unwrap_or_else(|p| p.into_inner());
            let trunks = self.inner.trunks.lock().unwrap_or_else(|p| p.into_inner());
            let first = new.iter().find(|c| c.outbound).map(|c| c.name.clone());
            let keeps = out.as_ref().is_some_and(|o| {
                Some(&o.trunk) == first.as_ref() && trunks.iter().any(|(c, ua)| c.name == o.trunk && ua.same(&o.ua))
            });
            if !keeps {
                *out = first.and_then(|name| {
                    trunks.iter().find(|(c, _)| c.name == name).map(|(c, ua)| {
                        Arc::new(Outbound {
                            ua: ua.clone(),
                            trunk: c.name.clone(),
                            channels: Arc::new(Semaphore::new(c.channels as usize)),
                        })
                    })
                });
            }
        }
        let mut waits = Vec::new();
        for (c, ua) in retired {
            ua.drain();
            let calls = ua.stats().active_calls;
            let changed = added.iter().any(|a| a.name == c.name);
            let line = match changed {
                true => format!("trunk {}: changed; the old settings finish their {calls} calls first", c.name),
                false => format!("trunk {}: removed; it takes no new calls and stops after its {calls} calls", c.name),
            };
            tracing::info!(trunk = %c.name, calls, "{line}");
            said.push(line);
            self.inner.retiring.lock().unwrap_or_else(|p| p.into_inner()).push(ua.clone());
            let g = self.clone();
            waits.push((
                c.bind,
                tokio::spawn(async move {
                    while ua.stats().active_calls > 0 {
                        tokio::time::sleep(POLL).await;
                    }
                    ua.shutdown();
                    g.inner.retiring.lock().unwrap_or_else(|p| p.into_inner()).retain(|r| !r.same(&ua));
                    tracing::info!(trunk = %c.name, "trunk stopped: its calls have ended");
                }),
            ));
        }
        for t in added {
            let name = t.name.clone();
            // A trunk on the address of one retiring starts once that has stopped.
            let before = waits.iter().position(|(b, _)| b.is_some() && *b == t.bind);
            let g = self.clone();
            let wait = before.map(|i| waits.remove(i).1);
            let line = match wait.is_some() {
                true => format!("trunk {name}: the new settings start once the old ones have stopped"),
                false => format!("trunk {name}: added"),
            };
            said.push(line);
            tokio::spawn(async move {
                if let Some(w) = wait {
                    let _ = w.await;
                }
                // The old socket may take a moment to be released.
                let until = tokio::time::Instant::now() + REBIND_FOR;
                loop {
                    match g.start_trunk(t.clone(), None).await {
                        Ok(address) => {
                            tracing::info!(trunk = %name, "trunk started: {address}");
                            break;
                        }
                        Err(e) if tokio::time::Instant::now() < until => {
                            tracing::debug!(trunk = %name, error = %format!("{e:#}"), "trunk not started yet");
                            tokio::time::sleep(POLL).await;
                        }
                        Err(e) => {
                            tracing::error!(trunk = %name, error = %format!("{e:#}"), "a trunk of the reloaded configuration cannot start");
                            break;
                        }
                    }
                }
            });
        }
        said
    }
}
