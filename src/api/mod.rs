//! The HTTPS API of `[api]`: the CLI's operations for resellers and their
//! customers, over HTTP/1.1 and TLS, with bearer tokens.
//!
//! Each request names its caller by an API token ([`crate::directory`]'s
//! tokens): the token's role in its tenant (and account) is the principal
//! every operation is authorised for, by the same
//! [`crate::admin::handle`] the admin socket runs, so that the CLI and the
//! API share one implementation of each operation, its isolation and its
//! audit. What another tenant or account owns answers 404, as what does
//! not exist.
//!
//! The listener: TLS handshakes must finish within
//! [`ApiConfig::handshake_timeout`], request headers within
//! [`ApiConfig::header_timeout`]; at most [`ApiConfig::max_connections`]
//! connections at once (more wait in the backlog); each token may make
//! [`ApiConfig::requests_per_minute`] requests a minute with bursts of
//! [`ApiConfig::burst`], over which it gets 429 with `Retry-After`.

mod openapi;
mod problem;
mod routes;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use problem::Problem;

use crate::admin::Context;

/// `[api]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Where the HTTPS listener listens. Unset (the default): no API.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// The TLS certificate chain (PEM); unset: the SMTP listeners'
    /// (`smtp.certificate`).
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// Its private key (PEM); unset: `smtp.key`.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Requests a minute each token may make.
    #[serde(default = "default_rate")]
    pub requests_per_minute: u32,
    /// Requests a token may make at once above that rate.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Connections served at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a TLS handshake may take.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout: u64,
    /// Seconds a request's headers may take to arrive, and an idle
    /// connection is kept.
    #[serde(default = "default_header_timeout")]
    pub header_timeout: u64,
    /// Seconds a request's body may take to arrive (then 408).
    #[serde(default = "default_header_timeout")]
    pub body_timeout: u64,
    /// The largest document a fax sent by upload (`POST /v1/faxes`) may
    /// be, in MiB (other requests: 1 MiB).
    #[serde(default = "default_max_upload_mib")]
    pub max_upload_mib: u32,
    /// Whether the operator may make operator tokens, which act as the
    /// operator over the API (every tenant, data-subject requests,
    /// disclosures). Off: none can be made, and one made before does not
    /// work.
    #[serde(default)]
    pub operator_tokens: bool,
}

fn default_max_upload_mib() -> u32 {
    20
}

fn default_rate() -> u32 {
    600
}

fn default_burst() -> u32 {
    60
}

fn default_max_connections() -> usize {
    512
}

fn default_handshake_timeout() -> u64 {
    10
}

fn default_header_timeout() -> u64 {
    30
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: None,
            certificate: None,
            key: None,
            requests_per_minute: default_rate(),
            burst: default_burst(),
            max_connections: default_max_connections(),
            handshake_timeout: default_handshake_timeout(),
            header_timeout: default_header_timeout(),
            body_timeout: default_header_timeout(),
            max_upload_mib: default_max_upload_mib(),
            operator_tokens: false,
        }
    }
}

impl ApiConfig {
    /// What is wrong with the settings, as (key, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if self.requests_per_minute == 0 {
            p.push(("api.requests_per_minute", "must be at least 1".to_owned()));
        }
        if self.burst == 0 {
            p.push(("api.burst", "must be at least 1".to_owned()));
        }
        if self.max_connections == 0 {
            p.push(("api.max_connections", "must be at least 1".to_owned()));
        }
        if self.handshake_timeout == 0 {
            p.push(("api.handshake_timeout", "must be at least 1 second".to_owned()));
        }
        if self.header_timeout == 0 {
            p.push(("api.header_timeout", "must be at least 1 second".to_owned()));
        }
        if self.body_timeout == 0 {
            p.push(("api.body_timeout", "must be at least 1 second".to_owned()));
        }
        if !(1..=100).contains(&self.max_upload_mib) {
            p.push(("api.max_upload_mib", format!("must be 1 to 100 (MiB), not {}", self.max_upload_mib)));
        }
        if self.certificate.is_some() != self.key.is_some() {
            p.push(("api.key", "api.certificate and api.key are set together or not at all".to_owned()));
        }
        p
    }
}

/// The client's address.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer(pub(crate) SocketAddr);

/// What the handlers share.
#[derive(Debug)]
pub struct Api {
    ctx: Arc<Context>,
    limiter: DefaultKeyedRateLimiter<String>,
}

impl Api {
    /// The API on the daemon's admin context, with `config`'s rate limit.
    pub fn new(ctx: Arc<Context>, config: &ApiConfig) -> Api {
        let rate = NonZeroU32::new(config.requests_per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.burst).unwrap_or(NonZeroU32::MIN);
        Api { ctx, limiter: RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst)) }
    }

    /// Counts a request of token `id` against its rate.
    fn admit(&self, id: &str) -> Result<(), Problem> {
        self.limiter.check_key(&id.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Problem::too_many(wait.as_secs() + 1)
        })
    }
}

/// The OpenAPI document, as served at `/openapi.json`.
pub fn openapi_json() -> String {
    let (_, doc) = routes::router().split_for_parts();
    doc.to_pretty_json().unwrap_or_default()
}

/// The HTTP application: every operation, `/openapi.json`, and 404 as a
/// problem for anything else.
pub fn app(api: Arc<Api>, config: &ApiConfig) -> axum::Router {
    let limits = BodyLimits {
        timeout: Duration::from_secs(config.body_timeout),
        upload: (config.max_upload_mib as usize) << 20,
    };
    let (router, doc) = routes::router().split_for_parts();
    let doc = Arc::new(doc.to_json().unwrap_or_default());
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], doc.as_str().to_owned()) }
            }),
        )
        .fallback(|| async { Problem::not_found("no such resource") })
        .layer(axum::middleware::from_fn_with_state(limits, whole_body))
        .method_not_allowed_fallback(|| async {
            Problem::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "invalid",
                "this resource does not take that method",
            )
        })
        .with_state(api)
}

/// A connection that, when hyper is done with it, is closed the way a web
/// server closes: its sending side shut, and what the client still sends
/// read and dropped (for at most 2 s) before the socket is. Closed at once
/// with unread data (a request hyper refused before its body, a malformed
/// header), the kernel would reset the connection, and the client would
/// lose the answer that says what was wrong.
struct Linger<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static>(Option<S>);

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Drop for Linger<S> {
    fn drop(&mut self) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (Some(mut s), Ok(rt)) = (self.0.take(), tokio::runtime::Handle::try_current()) else { return };
        rt.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), async move {
                let _ = s.shutdown().await;
                let mut buf = [0u8; 8192];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        });
    }
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> tokio::io::AsyncRead for Linger<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.0.as_mut() {
            Some(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            None => std::task::Poll::Ready(Ok(())),
        }
    }
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> tokio::io::AsyncWrite for Linger<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.0.as_mut() {
            Some(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            None => std::task::Poll::Ready(Ok(0)),
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.0.as_mut() {
            Some(s) => std::pin::Pin::new(s).poll_flush(cx),
            None => std::task::Poll::Ready(Ok(())),
        }
    }

    /// Hyper's shutdown only flushes: the close itself is the lingering one
    /// when the connection is dropped.
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.as_mut().poll_flush(cx)
    }
}

/// The largest request body taken, but for a fax's upload.
pub const MAX_BODY: usize = 1 << 20;

/// How long a body may take, and how large an upload may be.
#[derive(Clone, Copy, Debug)]
struct BodyLimits {
    timeout: Duration,
    upload: usize,
}

/// Reads the whole request body, within `api.body_timeout`, before the
/// operation looks at it: a body that trickles in holds no connection for
/// longer (408), one over [`MAX_BODY`] (a fax's upload: over
/// `api.max_upload_mib`) is refused (413), and an answer is never given
/// while the client still sends.
async fn whole_body(
    axum::extract::State(limits): axum::extract::State<BodyLimits>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    let max = if parts.method == axum::http::Method::POST && parts.uri.path() == "/v1/faxes" {
        limits.upload + (64 << 10)
    } else {
        MAX_BODY
    };
    let limit = limits.timeout;
    match tokio::time::timeout(limit, axum::body::to_bytes(body, max)).await {
        Ok(Ok(bytes)) => next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await,
        Ok(Err(_)) => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid",
            format!("the body is larger than {} MiB, or was cut off", max >> 20),
        )
        .into_response(),
        Err(_) => Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid",
            format!("the body took longer than {} s to arrive", limit.as_secs()),
        )
        .into_response(),
    }
}

/// Binds the API's listener.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen for the API on {addr}: {e}"))
}

/// Serves the API until `shutdown`; requests under way finish first.
pub async fn run(
    listener: TcpListener,
    tls: faxgate_smtp::tls::TlsAcceptor,
    app: axum::Router,
    config: ApiConfig,
    shutdown: CancellationToken,
) {
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut errors = faxgate_smtp::listen::AcceptErrors::new(format!("API listener {addr}"));
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
    let mut conns = JoinSet::new();
    loop {
        // A connection over the limit waits in the backlog.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => {
                errors.succeeded();
                let (tls, app, shutdown) = (tls.clone(), app.clone(), shutdown.clone());
                let (handshake, header) =
                    (Duration::from_secs(config.handshake_timeout), Duration::from_secs(config.header_timeout));
                conns.spawn(async move {
                    let _permit = permit;
                    let stream = match tokio::time::timeout(handshake, tls.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "API: TLS handshake failed"),
                        Err(_) => return tracing::debug!(%peer, "API: TLS handshake timed out"),
                    };
                    // Each request knows the client's address, for the log.
                    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(Peer(peer));
                        tower::ServiceExt::oneshot(app.clone(), req)
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(header)
                        .serve_connection(TokioIo::new(Linger(Some(stream))), service);
                    let mut conn = std::pin::pin!(conn);
                    tokio::select! {
                        r = conn.as_mut() => if let Err(e) = r { tracing::debug!(%peer, error = %e, "API connection ended") },
                        _ = shutdown.cancelled() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
            Err(e) => {
                drop(permit);
                let pause = errors.failed(&e, std::time::Instant::now());
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        }
        while conns.try_join_next().is_some() {}
    }
    while conns.join_next().await.is_some() {}
}
