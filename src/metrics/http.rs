//! The HTTP listener of `[metrics] listen`: `GET /metrics` (the Prometheus
//! text format) and `GET /health` (200 `ready`, or 503 with what is not).
//! HTTP/1.1 with hyper; one request at a time per connection, nothing else.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{CategoryLabels, METRICS, StateLabels, TrunkLabels, catch_up, encode, load};
use crate::clock::Clock;
use crate::gateway::Gateway;
use crate::mail::outbox::{OutState, Outbox};
use crate::retention::Retention;
use crate::store::Store;

/// Whether the daemon is ready: set once its listeners and trunks are up,
/// cleared when it begins to stop.
#[derive(Clone, Debug, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    /// Says whether the listeners and trunks are up.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
        METRICS.up.set(i64::from(ready));
    }
}

/// Where the states shown on `/metrics` and `/health` are read.
#[derive(Clone, Debug)]
pub struct Sources {
    /// The store.
    pub store: Store,
    /// The gateway: its queue and trunks.
    pub gateway: Gateway,
    /// The outbox.
    pub outbox: Outbox,
    /// Retention: the last sweep, overdue classes.
    pub retention: Retention,
    /// The SMTP listeners' counts.
    pub smtp: Arc<faxgate_smtp::server::Stats>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Readiness.
    pub health: Health,
    /// The retention state, read at most once a minute (it walks every class).
    retention_seen: Arc<Mutex<Option<Instant>>>,
}

impl Sources {
    /// The sources; `health` is the daemon's.
    pub fn new(
        store: Store,
        gateway: Gateway,
        outbox: Outbox,
        retention: Retention,
        smtp: Arc<faxgate_smtp::server::Stats>,
        clock: Arc<dyn Clock>,
        health: Health,
    ) -> Self {
        Sources { store, gateway, outbox, retention, smtp, clock, health, retention_seen: Arc::default() }
    }

    /// Reads every state into its gauge (blocking: the store is read).
    fn refresh(&self) {
        let m = &*METRICS;
        let now = self.clock.now();
        let q = self.gateway.queue_stats();
        for (state, n) in q.by_state {
            m.queue_jobs.get_or_create(&StateLabels { state }).set(n as i64);
        }
        m.queue_oldest.set(q.oldest.map_or(0, |t| now.duration_since(t).as_secs().max(0)));
        match self.outbox.list() {
            Ok(list) => {
                let waiting = list.iter().filter(|r| r.state == OutState::Scheduled).count();
                m.outbox.get_or_create(&StateLabels { state: "waiting" }).set(waiting as i64);
                m.outbox.get_or_create(&StateLabels { state: "failed" }).set((list.len() - waiting) as i64);
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read the outbox"),
        }
        for t in self.gateway.trunk_stats() {
            let l = TrunkLabels { trunk: t.name };
            m.channels_in_use.get_or_create(&l).set(t.stats.active_calls as i64);
            m.channels_limit.get_or_create(&l).set(i64::from(t.channels));
            if let Some(r) = t.stats.registered {
                m.registered.get_or_create(&l).set(i64::from(r));
            }
        }
        catch_up(&m.smtp_sessions, load(&self.smtp.sessions));
        for (reason, n) in
            [("connections_per_address", &self.smtp.refused_address), ("connections", &self.smtp.refused_busy)]
        {
            catch_up(&m.smtp_refusals.get_or_create(&super::ReasonLabels { reason }), load(n));
        }
        match self.store.size_on_disk() {
            Ok(n) => {
                m.store_bytes.set(n as i64);
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read the store's size"),
        }
        let due = {
            let mut seen = self.retention_seen.lock().unwrap_or_else(|p| p.into_inner());
            let due = seen.is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
            if due {
                *seen = Some(Instant::now());
            }
            due
        };
        if due {
            match self.retention.status(now) {
                Ok(s) => {
                    m.sweep_last.set(s.last_sweep.map_or(0, |t| t.as_second()));
                    let window = self.retention.policy().window();
                    for c in s.categories {
                        let overdue = c.next_due.is_some_and(|d| d + window <= now);
                        m.overdue.get_or_create(&CategoryLabels { category: c.category }).set(i64::from(overdue));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "metrics: cannot read the retention status"),
            }
        }
    }

    /// Why the daemon is not ready, if it is not.
    fn unready(&self) -> Vec<String> {
        let mut why = Vec::new();
        if !self.health.ready.load(Ordering::Relaxed) {
            why.push("the listeners and trunks are not all up (starting or stopping)".to_owned());
        }
        if let Err(e) = self.store.size_on_disk() {
            why.push(format!("the store cannot be read: {e}"));
        }
        for t in self.gateway.trunk_stats() {
            if t.stats.registered == Some(false) {
                why.push(format!("trunk {} is not registered", t.name));
            }
        }
        why
    }
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

async fn handle(
    sources: Arc<Sources>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET\n".into()));
    }
    Ok(match req.uri().path() {
        "/metrics" => {
            let s = sources.clone();
            let openmetrics = req
                .headers()
                .get_all(hyper::header::ACCEPT)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| v.contains("application/openmetrics-text")));
            let content_type = match openmetrics {
                true => "application/openmetrics-text; version=1.0.0; charset=utf-8",
                false => "text/plain; version=0.0.4; charset=utf-8",
            };
            match tokio::task::spawn_blocking(move || {
                s.refresh();
                encode(openmetrics)
            })
            .await
            {
                Ok(body) => text(StatusCode::OK, content_type, body),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", format!("{e}\n")),
            }
        }
        "/health" => {
            let s = sources.clone();
            let why = tokio::task::spawn_blocking(move || s.unready()).await.unwrap_or_else(|e| vec![e.to_string()]);
            if why.is_empty() {
                text(StatusCode::OK, "text/plain", "ready\n".into())
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", format!("not ready: {}\n", why.join("; ")))
            }
        }
        _ => text(StatusCode::NOT_FOUND, "text/plain", "/metrics or /health\n".into()),
    })
}

/// Binds the listener.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context;
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen for metrics on {addr}"))
}

/// Serves `/metrics` and `/health` until `shutdown`.
pub async fn run(listener: TcpListener, sources: Sources, shutdown: CancellationToken) {
    let sources = Arc::new(sources);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener: accept failed");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                        _ = shutdown.cancelled() => break,
                    }
                }
            },
        };
        let s = sources.clone();
        let stop = shutdown.clone();
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(s.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                r = conn => if let Err(e) = r { tracing::debug!(error = %e, "metrics connection") },
                _ = stop.cancelled() => {}
            }
        });
    }
    conns.abort_all();
}
