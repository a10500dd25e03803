//! The tokio layer: it owns the sockets and one timer per connection, and
//! feeds the [`Session`] what arrives.
//!
//! [`run`] takes listeners already bound, so the daemon reports the real
//! port and tests bind port 0. [`serve`] drives one session over any
//! `AsyncRead + AsyncWrite`, so tests run it over an in-memory pipe.
//!
//! Budgets kept here rather than in the session, since they are about
//! sockets: connections at once per client address, per listener and in
//! all ([`ConnectionLimit`], `421 4.7.0` beyond them); a write that the
//! client does not read within the idle timeout ends the connection; a
//! failed `accept` pauses the loop ([`AcceptErrors`]); AUTH failures are
//! delayed and locked out ([`AuthThrottle`]), each logged at WARN as
//! `smtp auth failed from <address>` with the user name as a field (the
//! fail2ban filter in contrib/fail2ban needs only the address).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faxgate_retention::LogId;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::listen::{AcceptErrors, Tally};
use crate::reply::{Enhanced, Reply};
use crate::session::{Event, Question, Session, SessionConfig};
use crate::throttle::AuthThrottle;
use crate::{Error, Policy, Sink};

/// How a listener uses TLS.
#[derive(Clone)]
pub enum Tls {
    /// No TLS: no STARTTLS, so no AUTH either.
    None,
    /// STARTTLS offered (ports 25 and 587).
    StartTls(TlsAcceptor),
    /// TLS from the first byte (port 465, RFC 8314).
    Implicit(TlsAcceptor),
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tls::None => "None",
            Tls::StartTls(_) => "StartTls",
            Tls::Implicit(_) => "Implicit",
        })
    }
}

/// A bound listener and how its sessions behave.
#[derive(Debug)]
pub struct Listener {
    /// The socket.
    pub socket: TcpListener,
    /// The sessions' configuration (`starttls` is set from `tls`).
    pub config: SessionConfig,
    /// TLS.
    pub tls: Tls,
    /// Connections at once on this listener.
    pub max_connections: usize,
}

/// What all listeners share: connection counts and AUTH failures.
#[derive(Debug, Clone)]
pub struct Guards {
    /// Connections per address and in all.
    pub connections: ConnectionLimit,
    /// AUTH failures.
    pub auth: AuthThrottle,
    /// Sessions and refused connections, counted for monitoring.
    pub stats: Arc<Stats>,
    /// The session limits new sessions get (in place of their listener's).
    pub limits: SessionLimits,
}

/// The limits of an SMTP session, shared by all listeners; a reload may
/// replace them for the sessions that follow.
#[derive(Debug, Clone)]
pub struct SessionLimits(Arc<std::sync::RwLock<crate::Limits>>);

impl SessionLimits {
    /// These limits.
    pub fn new(limits: crate::Limits) -> Self {
        SessionLimits(Arc::new(std::sync::RwLock::new(limits)))
    }

    /// The limits now.
    pub fn get(&self) -> crate::Limits {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// New limits for the sessions that follow.
    pub fn set(&self, limits: crate::Limits) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = limits;
    }
}

/// Counts since the listeners started (for metrics).
#[derive(Debug, Default)]
pub struct Stats {
    /// Sessions served.
    pub sessions: std::sync::atomic::AtomicU64,
    /// Connections refused: too many from their address.
    pub refused_address: std::sync::atomic::AtomicU64,
    /// Connections refused: too many on their listener or in all.
    pub refused_busy: std::sync::atomic::AtomicU64,
}

/// Counts connections per client address, per listener and in all.
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    counts: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    /// The limits.
    max_per_address: usize,
    max_total: usize,
    total: usize,
    by_address: HashMap<IpAddr, usize>,
    by_listener: HashMap<usize, usize>,
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Its address has too many.
    Address,
    /// Its listener has too many.
    Listener,
    /// All listeners together have too many.
    Total,
}

impl Refused {
    fn reply(self) -> Reply {
        let text = match self {
            Refused::Address => "too many connections from your address, try again later",
            Refused::Listener | Refused::Total => "too many connections, try again later",
        };
        Reply::new(421, Enhanced(4, 7, 0), text)
    }
}

/// A connection counted by [`ConnectionLimit`]; dropping it uncounts it.
#[derive(Debug)]
pub struct ConnectionSlot {
    limit: ConnectionLimit,
    peer: IpAddr,
    listener: usize,
}

impl ConnectionLimit {
    /// At most `per_address` connections at once from one address, and
    /// `total` in all.
    pub fn new(per_address: usize, total: usize) -> Self {
        let counts = Counts { max_per_address: per_address, max_total: total, ..Counts::default() };
        ConnectionLimit { counts: Arc::new(Mutex::new(counts)) }
    }

    /// New limits for the connections that follow (a reload); connections
    /// open beyond them are not closed.
    pub fn set(&self, per_address: usize, total: usize) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.max_per_address = per_address;
        c.max_total = total;
    }

    /// A slot for a new connection from `peer` on listener number
    /// `listener`, which takes at most `listener_max`.
    pub fn acquire(&self, peer: IpAddr, listener: usize, listener_max: usize) -> Result<ConnectionSlot, Refused> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= c.max_total {
            return Err(Refused::Total);
        }
        if c.by_listener.get(&listener).copied().unwrap_or(0) >= listener_max {
            return Err(Refused::Listener);
        }
        if c.by_address.get(&peer).copied().unwrap_or(0) >= c.max_per_address {
            return Err(Refused::Address);
        }
        c.total += 1;
        *c.by_listener.entry(listener).or_insert(0) += 1;
        *c.by_address.entry(peer).or_insert(0) += 1;
        Ok(ConnectionSlot { limit: self.clone(), peer, listener })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut c = self.limit.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total -= 1;
        let last = c.by_address.get_mut(&self.peer).is_some_and(|n| {
            *n -= 1;
            *n == 0
        });
        if last {
            c.by_address.remove(&self.peer);
        }
        if let Some(n) = c.by_listener.get_mut(&self.listener) {
            *n -= 1;
        }
    }
}

/// Serves the listeners until `shutdown`, then waits for open sessions.
///
/// Once `drain` is cancelled (a stop has begun) no more mail is taken:
/// open sessions are told `421 4.3.2` at their next command (a message
/// whose data is being received is still taken and answered first), and
/// new connections get the same answer and are closed, so that clients
/// queue their mail and try again later. `shutdown` cancels `drain` too,
/// and closes the listeners.
pub async fn run<P: Policy, S: Sink>(
    listeners: Vec<Listener>,
    policy: Arc<P>,
    sink: Arc<S>,
    guards: Guards,
    drain: CancellationToken,
    shutdown: CancellationToken,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let (drain, shutdown) = (drain.clone(), shutdown.clone());
        tasks.spawn(accept_loop(i, l, policy.clone(), sink.clone(), guards.clone(), drain, shutdown));
    }
    tasks.spawn(async move {
        shutdown.cancelled().await;
        drain.cancel();
    });
    while tasks.join_next().await.is_some() {}
}

/// The answer to a connection made while the server is stopping.
fn stopping_reply() -> Reply {
    Reply::new(421, Enhanced(4, 3, 2), "service shutting down, try again later")
}

/// How long refusing a connection may take (writing its `421`).
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

async fn accept_loop<P: Policy, S: Sink>(
    index: usize,
    listener: Listener,
    policy: Arc<P>,
    sink: Arc<S>,
    guards: Guards,
    drain: CancellationToken,
    shutdown: CancellationToken,
) {
    let mut config = listener.config;
    config.starttls = matches!(listener.tls, Tls::StartTls(_));
    let config = Arc::new(config);
    let name = format!("smtp {}", listener.socket.local_addr().map(|a| a.to_string()).unwrap_or_default());
    let mut errors = AcceptErrors::new(name.clone());
    let mut refusals = Tally::default();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.socket.accept() => match r {
                Ok(a) => {
                    errors.succeeded();
                    a
                }
                Err(e) => {
                    let pause = errors.failed(&e, Instant::now().into_std());
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let _ = stream.set_nodelay(true);
        let peer = peer.ip();
        if drain.is_cancelled() {
            connections.spawn(async move {
                let mut stream = stream;
                let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
                    let _ = stream.write_all(&stopping_reply().to_wire()).await;
                    let _ = stream.shutdown().await;
                })
                .await;
            });
            continue;
        }
        let slot = match guards.connections.acquire(peer, index, listener.max_connections) {
            Ok(slot) => slot,
            Err(why) => {
                let counter = match why {
                    Refused::Address => &guards.stats.refused_address,
                    Refused::Listener | Refused::Total => &guards.stats.refused_busy,
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(n) = refusals.note(Instant::now().into_std()) {
                    tracing::info!(listener = %name, %peer, refused = n, "smtp connection refused ({why:?} limit); {n} since the last report");
                }
                connections.spawn(async move {
                    let mut stream = stream;
                    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
                        let _ = stream.write_all(&why.reply().to_wire()).await;
                        let _ = stream.shutdown().await;
                    })
                    .await;
                });
                continue;
            }
        };
        guards.stats.sessions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let config = Arc::new(SessionConfig { limits: guards.limits.get(), ..(*config).clone() });
        let (policy, sink, tls, auth, shutdown) =
            (policy.clone(), sink.clone(), listener.tls.clone(), guards.auth.clone(), drain.clone());
        connections.spawn(async move {
            let _slot = slot;
            if let Err(e) = serve(stream, peer, &tls, config, &*policy, &*sink, &auth, &shutdown).await {
                tracing::debug!(%peer, error = %e, "smtp session ended with an error");
            }
        });
    }
    while connections.join_next().await.is_some() {}
}

enum Ended<IO> {
    Done,
    StartTls(IO),
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Serves one session on `io` with `tls` (the handshake first for
/// implicit TLS; an upgrade when the client asks for STARTTLS).
#[allow(clippy::too_many_arguments)]
pub async fn serve<IO, P, S>(
    io: IO,
    peer: IpAddr,
    tls: &Tls,
    config: Arc<SessionConfig>,
    policy: &P,
    sink: &S,
    auth: &AuthThrottle,
    shutdown: &CancellationToken,
) -> Result<(), Error>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    P: Policy,
    S: Sink,
{
    let starttls = matches!(tls, Tls::StartTls(_));
    let config =
        if config.starttls == starttls { config } else { Arc::new(SessionConfig { starttls, ..(*config).clone() }) };
    let d = Driver { policy, sink, auth, shutdown, write_timeout: config.limits.idle_timeout };
    match tls {
        Tls::Implicit(acceptor) => {
            let mut session = Session::new_implicit_tls(config, peer, now());
            if let Some(io) = d.handshake(acceptor, io, &mut session).await? {
                d.drive(io, &mut session).await?;
            }
            Ok(())
        }
        Tls::StartTls(acceptor) => {
            let mut session = Session::new(config, peer, false, now());
            if let Ended::StartTls(io) = d.drive(io, &mut session).await?
                && let Some(io) = d.handshake(acceptor, io, &mut session).await?
            {
                d.drive(io, &mut session).await?;
            }
            Ok(())
        }
        Tls::None => {
            let mut session = Session::new(config, peer, false, now());
            d.drive(io, &mut session).await.map(drop)
        }
    }
}

struct Driver<'a, P, S> {
    policy: &'a P,
    sink: &'a S,
    auth: &'a AuthThrottle,
    shutdown: &'a CancellationToken,
    write_timeout: Duration,
}

impl<P: Policy, S: Sink> Driver<'_, P, S> {
    /// The TLS handshake, by the session's deadline; `None` when it did not
    /// finish in time or the server shuts down.
    async fn handshake<IO>(
        &self,
        acceptor: &TlsAcceptor,
        io: IO,
        session: &mut Session,
    ) -> Result<Option<tokio_rustls::server::TlsStream<IO>>, Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let deadline = session.poll_timeout().map(Instant::from_std);
        tokio::select! {
            r = acceptor.accept(io) => {
                let tls = r?;
                session.tls_started(now());
                Ok(Some(tls))
            }
            _ = sleep_until(deadline) => {
                session.handle_timeout(now());
                Ok(None)
            }
            _ = self.shutdown.cancelled() => Ok(None),
        }
    }

    async fn write<IO: AsyncWrite + Unpin>(&self, io: &mut IO, out: &[u8]) -> Result<(), Error> {
        match tokio::time::timeout(self.write_timeout, async {
            io.write_all(out).await?;
            io.flush().await
        })
        .await
        {
            Ok(r) => Ok(r?),
            Err(_) => Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client reads nothing of what is sent to it",
            ))),
        }
    }

    /// Sleeps unless the server shuts down first.
    async fn pause(&self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.shutdown.cancelled() => {}
        }
    }

    /// AUTH, with failures counted, delayed and locked out.
    async fn auth(&self, context: &crate::Context, user: &str, password: &str) -> Reply {
        let peer = context.peer;
        let limits = self.auth.limits();
        if let Some(until) = self.auth.locked(peer, user, now()) {
            let secs = until.saturating_duration_since(now()).as_secs() + 1;
            tracing::warn!(user = %LogId::address(user), "smtp auth refused from {peer}: locked out after too many failures");
            // At most one such answer per connection in this time.
            self.pause(limits.max_delay).await;
            return Reply::new(454, Enhanced(4, 7, 0), format!("too many failed logins; try again in {secs} s"));
        }
        let reply = self.policy.auth(context, user, password).await;
        match reply.code {
            235 => self.auth.succeeded(user),
            535 => {
                let at = now();
                let f = self.auth.failed(peer, user, at);
                match f.locked_until {
                    // This failure began a lockout.
                    Some(until) if until == at + limits.lockout => tracing::warn!(
                        user = %LogId::address(user),
                        failures = f.failures,
                        "smtp auth failed from {peer}; locked out for {} s",
                        limits.lockout.as_secs()
                    ),
                    _ => {
                        tracing::warn!(user = %LogId::address(user), failures = f.failures, "smtp auth failed from {peer}")
                    }
                }
                self.pause(f.delay).await;
            }
            _ => {}
        }
        reply
    }

    async fn drive<IO>(&self, mut io: IO, session: &mut Session) -> Result<Ended<IO>, Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut buf = vec![0u8; 64 * 1024];
        let mut told = false;
        loop {
            while let Some(event) = session.poll_event() {
                match event {
                    Event::Ask(q) => {
                        let reply = match q {
                            Question::Auth { context, user, password } => self.auth(&context, &user, &password).await,
                            Question::Mail { context, from, params } => {
                                self.policy.mail_from(&context, &from, &params).await
                            }
                            Question::Rcpt { context, transaction, to } => {
                                self.policy.rcpt_to(&context, &transaction, &to).await
                            }
                            Question::Data(message) => self.sink.deliver(message).await,
                        };
                        session.answer(now(), reply);
                    }
                    Event::StartTls => {
                        if let Some(out) = session.poll_transmit() {
                            self.write(&mut io, &out).await?;
                        }
                        return Ok(Ended::StartTls(io));
                    }
                }
            }
            if let Some(out) = session.poll_transmit() {
                self.write(&mut io, &out).await?;
            }
            if session.is_closed() {
                let _ = tokio::time::timeout(self.write_timeout, io.shutdown()).await;
                return Ok(Ended::Done);
            }
            let deadline = session.poll_timeout().map(Instant::from_std);
            tokio::select! {
                n = io.read(&mut buf) => {
                    let n = n?;
                    if n == 0 {
                        return Ok(Ended::Done);
                    }
                    session.receive(now(), &buf[..n]);
                }
                _ = sleep_until(deadline) => session.handle_timeout(now()),
                // Told once: a message being received goes on to its end.
                _ = self.shutdown.cancelled(), if !told => {
                    told = true;
                    session.shutdown();
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    use super::*;
    use crate::session::{Context, Limits, Message, Transaction};
    use crate::{MailParams, Policy, Sink};

    struct Accept;

    impl Policy for Accept {
        async fn auth(&self, _: &Context, user: &str, password: &str) -> Reply {
            if (user, password) == ("u@x.test", "pw") {
                Reply::new(235, Enhanced(2, 7, 0), "ok")
            } else {
                Reply::new(535, Enhanced(5, 7, 8), "no")
            }
        }
        async fn mail_from(&self, _: &Context, _: &str, _: &MailParams) -> Reply {
            Reply::ok("sender ok")
        }
        async fn rcpt_to(&self, _: &Context, _: &Transaction, _: &str) -> Reply {
            Reply::ok("rcpt ok")
        }
    }

    impl Sink for Accept {
        async fn deliver(&self, m: Message) -> Reply {
            Reply::ok(format!("stored {} octets", m.data.len()))
        }
    }

    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn connection_limit_per_address() {
        let limit = ConnectionLimit::new(2, 100);
        let a = limit.acquire(PEER, 0, 100).unwrap();
        let _b = limit.acquire(PEER, 0, 100).unwrap();
        assert_eq!(limit.acquire(PEER, 0, 100).unwrap_err(), Refused::Address);
        assert!(limit.acquire(OTHER, 0, 100).is_ok(), "another address has its own count");
        drop(a);
        assert!(limit.acquire(PEER, 0, 100).is_ok());
    }

    #[test]
    fn connection_limit_per_listener_and_in_all() {
        let limit = ConnectionLimit::new(10, 3);
        let a = limit.acquire(PEER, 0, 2).unwrap();
        let _b = limit.acquire(OTHER, 0, 2).unwrap();
        assert_eq!(limit.acquire(PEER, 0, 2).unwrap_err(), Refused::Listener);
        let _c = limit.acquire(PEER, 1, 2).unwrap();
        assert_eq!(limit.acquire(OTHER, 1, 2).unwrap_err(), Refused::Total);
        drop(a);
        assert!(limit.acquire(OTHER, 1, 2).is_ok(), "a slot given back counts again everywhere");
    }

    fn auth() -> AuthThrottle {
        AuthThrottle::new(crate::AuthLimits::default())
    }

    async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> String {
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        line
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_closes_the_connection_in_paused_time() {
        let (client, server) = tokio::io::duplex(4096);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(async move {
            let config = Arc::new(SessionConfig::default());
            serve(server, PEER, &Tls::None, config, &Accept, &Accept, &auth(), &shutdown).await
        });
        let (r, mut w) = tokio::io::split(client);
        let mut r = BufReader::new(r);
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("220 "));
        w.write_all(b"NOOP\r\n").await.unwrap();
        line.clear();
        r.read_line(&mut line).await.unwrap();
        assert_eq!(line, "250 2.0.0 OK\r\n");
        let started = Instant::now();
        line.clear();
        r.read_line(&mut line).await.unwrap();
        assert_eq!(line, "421 4.4.2 idle too long, closing connection\r\n");
        assert!(started.elapsed() >= Duration::from_secs(60));
        task.await.unwrap().unwrap();
    }

    /// A certificate for localhost: the server's acceptor and a client's connector.
    fn tls_pair() -> (TlsAcceptor, tokio_rustls::TlsConnector) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let acceptor = crate::tls::acceptor_from_der(
            vec![ck.cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into()),
        )
        .unwrap();
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        roots.add(ck.cert.der().clone()).unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let cfg = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (acceptor, tokio_rustls::TlsConnector::from(Arc::new(cfg)))
    }

    #[tokio::test]
    async fn starttls_and_auth_over_a_pipe() {
        let (acceptor, connector) = tls_pair();
        let (client, server) = tokio::io::duplex(64 * 1024);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(async move {
            let config = Arc::new(SessionConfig::default());
            serve(server, PEER, &Tls::StartTls(acceptor), config, &Accept, &Accept, &auth(), &shutdown).await
        });
        let mut c = BufReader::new(client);
        let mut line = String::new();
        c.read_line(&mut line).await.unwrap();
        c.get_mut().write_all(b"EHLO c\r\nSTARTTLS\r\n").await.unwrap();
        loop {
            line.clear();
            c.read_line(&mut line).await.unwrap();
            if line.starts_with("220 ") {
                break;
            }
        }
        assert_eq!(line, "220 2.0.0 ready to start TLS\r\n");
        let tls = connector.connect("localhost".try_into().unwrap(), c.into_inner()).await.unwrap();
        let mut t = BufReader::new(tls);
        // AUTH PLAIN "\0u@x.test\0pw", then a whole transaction, pipelined.
        t.get_mut()
            .write_all(
                b"EHLO c\r\nAUTH PLAIN AHVAeC50ZXN0AHB3\r\nMAIL FROM:<u@x.test>\r\nRCPT TO:<1@f.test>\r\nDATA\r\n",
            )
            .await
            .unwrap();
        let mut got = String::new();
        while !got.ends_with("354 end data with <CR><LF>.<CR><LF>\r\n") {
            line.clear();
            t.read_line(&mut line).await.unwrap();
            got.push_str(&line);
        }
        assert!(got.contains("250 AUTH PLAIN LOGIN\r\n"), "{got}");
        assert!(got.contains("235 2.7.0 ok\r\n250 2.0.0 sender ok\r\n250 2.0.0 rcpt ok\r\n"), "{got}");
        t.get_mut().write_all(b"hello\r\n.\r\nQUIT\r\n").await.unwrap();
        let mut rest = String::new();
        while !rest.ends_with("221 2.0.0 bye\r\n") {
            line.clear();
            if t.read_line(&mut line).await.unwrap() == 0 {
                break;
            }
            rest.push_str(&line);
        }
        assert_eq!(rest, "250 2.0.0 stored 7 octets\r\n221 2.0.0 bye\r\n");
        task.await.unwrap().unwrap();
    }

    /// Reads until the server closes; what it said.
    async fn rest<R: AsyncRead + Unpin>(r: &mut R) -> String {
        let mut out = Vec::new();
        let _ = r.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test(start_paused = true)]
    async fn a_tls_handshake_that_never_ends_is_cut_off_at_its_deadline() {
        let (acceptor, _) = tls_pair();
        let limits = Limits { tls_handshake_timeout: Duration::from_secs(10), ..Limits::default() };
        let config = Arc::new(SessionConfig { limits, ..SessionConfig::default() });
        // Implicit TLS: the client connects and sends nothing.
        let (mut client, server) = tokio::io::duplex(4096);
        let shutdown = CancellationToken::new();
        let (c, s) = (config.clone(), shutdown.clone());
        let a = acceptor.clone();
        let task =
            tokio::spawn(async move { serve(server, PEER, &Tls::Implicit(a), c, &Accept, &Accept, &auth(), &s).await });
        let started = Instant::now();
        assert_eq!(rest(&mut client).await, "", "no greeting before the handshake");
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        task.await.unwrap().unwrap();
        // After STARTTLS: the client is told to begin and never does.
        let (client, server) = tokio::io::duplex(4096);
        let (c, s) = (config.clone(), shutdown.clone());
        let task = tokio::spawn(async move {
            serve(server, PEER, &Tls::StartTls(acceptor), c, &Accept, &Accept, &auth(), &s).await
        });
        let mut c = BufReader::new(client);
        read_line(&mut c).await;
        c.get_mut().write_all(b"STARTTLS\r\n").await.unwrap();
        assert_eq!(read_line(&mut c).await, "220 2.0.0 ready to start TLS\r\n");
        let started = Instant::now();
        assert_eq!(rest(&mut c).await, "");
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        task.await.unwrap().unwrap();
        // A handshake in time gets the greeting over TLS.
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (acceptor, connector) = tls_pair();
        let task = tokio::spawn(async move {
            serve(server, PEER, &Tls::Implicit(acceptor), config, &Accept, &Accept, &auth(), &shutdown).await
        });
        let tls = connector.connect("localhost".try_into().unwrap(), client).await.unwrap();
        let mut t = BufReader::new(tls);
        assert_eq!(read_line(&mut t).await, "220 localhost ESMTP faxgate\r\n");
        t.get_mut().write_all(b"QUIT\r\n").await.unwrap();
        assert_eq!(read_line(&mut t).await, "221 2.0.0 bye\r\n");
        task.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_sending_a_byte_every_5_s_is_closed_after_the_rate_window() {
        let limits = Limits { min_rate: 10, rate_window: Duration::from_secs(30), ..Limits::default() };
        let config = Arc::new(SessionConfig { limits, ..SessionConfig::default() });
        for before in ["", "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<1@f.test>\r\nDATA\r\n"] {
            let (client, server) = tokio::io::duplex(4096);
            let shutdown = CancellationToken::new();
            let c = config.clone();
            let task =
                tokio::spawn(
                    async move { serve(server, PEER, &Tls::None, c, &Accept, &Accept, &auth(), &shutdown).await },
                );
            let (r, mut w) = tokio::io::split(client);
            let mut r = BufReader::new(r);
            read_line(&mut r).await;
            w.write_all(before.as_bytes()).await.unwrap();
            let started = Instant::now();
            let writer = tokio::spawn(async move {
                for b in b"NOOP NOOP NOOP NOOP\r\n".iter().cycle() {
                    if w.write_all(&[*b]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            });
            let said = rest(&mut r).await;
            assert!(
                said.ends_with("421 4.4.2 too slow (less than 10 bytes a second), closing connection\r\n"),
                "{said:?}"
            );
            assert_eq!(started.elapsed(), Duration::from_secs(30), "one window: no line ended in it");
            task.await.unwrap().unwrap();
            writer.abort();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failed_logins_are_delayed_more_and_more_then_locked_out() {
        let limits = crate::AuthLimits {
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(4),
            max_failures_per_address: 4,
            max_failures_per_user: 100,
            lockout: Duration::from_secs(60),
        };
        let auth = AuthThrottle::new(limits);
        let (acceptor, connector) = tls_pair();
        let shutdown = CancellationToken::new();
        let config = Arc::new(SessionConfig {
            // The idle timeout must not end at the same paused instant as the lockout below.
            limits: Limits { max_errors: 100, idle_timeout: Duration::from_secs(600), ..Limits::default() },
            ..SessionConfig::default()
        });
        let (client, server) = tokio::io::duplex(64 * 1024);
        let a = auth.clone();
        let task = tokio::spawn(async move {
            serve(server, PEER, &Tls::Implicit(acceptor), config, &Accept, &Accept, &a, &shutdown).await
        });
        let tls = connector.connect("localhost".try_into().unwrap(), client).await.unwrap();
        let mut t = BufReader::new(tls);
        read_line(&mut t).await;
        t.get_mut().write_all(b"EHLO c\r\n").await.unwrap();
        while !read_line(&mut t).await.starts_with("250 ") {}
        // "\0u@x.test\0wrong" and "\0u@x.test\0pw"
        let (wrong, right) = (b"AUTH PLAIN AHVAeC50ZXN0AHdyb25n\r\n", b"AUTH PLAIN AHVAeC50ZXN0AHB3\r\n");
        let mut took = Vec::new();
        for _ in 0..6 {
            let started = Instant::now();
            t.get_mut().write_all(wrong).await.unwrap();
            let line = read_line(&mut t).await;
            took.push((line[..3].to_owned(), started.elapsed().as_secs()));
        }
        assert_eq!(
            took,
            [("535", 1), ("535", 2), ("535", 4), ("535", 4), ("454", 4), ("454", 4)].map(|(c, s)| (c.to_owned(), s))
        );
        // The right password is refused too while the address is locked out ...
        t.get_mut().write_all(right).await.unwrap();
        assert!(read_line(&mut t).await.starts_with("454 4.7.0 too many failed logins; try again in "));
        // ... and accepted once the lockout is over.
        tokio::time::sleep(Duration::from_secs(60)).await;
        t.get_mut().write_all(right).await.unwrap();
        assert_eq!(read_line(&mut t).await, "235 2.7.0 ok\r\n");
        t.get_mut().write_all(b"QUIT\r\n").await.unwrap();
        read_line(&mut t).await;
        task.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_reads_nothing_is_dropped_when_a_write_cannot_finish() {
        let (client, server) = tokio::io::duplex(64);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(async move {
            let config = Arc::new(SessionConfig::default());
            serve(server, PEER, &Tls::None, config, &Accept, &Accept, &auth(), &shutdown).await
        });
        let (_r, mut w) = tokio::io::split(client);
        // Replies pile up in a 64-byte pipe nobody reads.
        let started = Instant::now();
        let _ = w.write_all(&b"NOOP\r\n".repeat(100)).await;
        let e = task.await.unwrap().unwrap_err();
        assert!(e.to_string().contains("reads nothing"), "{e}");
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }
}
