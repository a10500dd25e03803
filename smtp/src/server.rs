//! The tokio layer: it owns the sockets and one timer per connection, and
//! feeds the [`Session`] what arrives.
//!
//! [`run`] takes listeners already bound, so the daemon reports the real
//! port and tests bind port 0. [`serve`] drives one session over any
//! `AsyncRead + AsyncWrite`, so tests run it over an in-memory pipe.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::reply::{Enhanced, Reply};
use crate::session::{Event, Question, Session, SessionConfig};
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
}

/// Counts connections per client address, shared by all listeners.
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    per_address: usize,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// A connection counted by [`ConnectionLimit`]; dropping it uncounts it.
#[derive(Debug)]
pub struct ConnectionSlot {
    limit: ConnectionLimit,
    peer: IpAddr,
}

impl ConnectionLimit {
    /// At most `per_address` connections at once from one address.
    pub fn new(per_address: usize) -> Self {
        ConnectionLimit { per_address, counts: Arc::default() }
    }

    /// A slot for a new connection from `peer`, or `None` when it has too many.
    pub fn acquire(&self, peer: IpAddr) -> Option<ConnectionSlot> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(peer).or_insert(0);
        if *n >= self.per_address {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot { limit: self.clone(), peer })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.limit.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.peer);
            }
        }
    }
}

/// Serves the listeners until `shutdown`, then tells open sessions and waits for them.
pub async fn run<P: Policy, S: Sink>(
    listeners: Vec<Listener>,
    policy: Arc<P>,
    sink: Arc<S>,
    limit: ConnectionLimit,
    shutdown: CancellationToken,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for l in listeners {
        tasks.spawn(accept_loop(l, policy.clone(), sink.clone(), limit.clone(), shutdown.clone()));
    }
    while tasks.join_next().await.is_some() {}
}

async fn accept_loop<P: Policy, S: Sink>(
    listener: Listener,
    policy: Arc<P>,
    sink: Arc<S>,
    limit: ConnectionLimit,
    shutdown: CancellationToken,
) {
    let mut config = listener.config;
    config.starttls = matches!(listener.tls, Tls::StartTls(_));
    let config = Arc::new(config);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.socket.accept() => match r {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "smtp accept failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let _ = stream.set_nodelay(true);
        let peer = peer.ip();
        let Some(slot) = limit.acquire(peer) else {
            tracing::info!(%peer, "smtp connection refused: too many from this address");
            connections.spawn(async move {
                let mut stream = stream;
                let r = Reply::new(421, Enhanced(4, 7, 0), "too many connections from your address, try again later");
                let _ = stream.write_all(&r.to_wire()).await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        let (config, policy, sink, tls, shutdown) =
            (config.clone(), policy.clone(), sink.clone(), listener.tls.clone(), shutdown.clone());
        connections.spawn(async move {
            let _slot = slot;
            let r = match tls {
                Tls::Implicit(acceptor) => match acceptor.accept(stream).await {
                    Ok(tls) => serve(tls, peer, true, None, config, &*policy, &*sink, &shutdown).await,
                    Err(e) => Err(Error::Io(e)),
                },
                Tls::StartTls(acceptor) => {
                    serve(stream, peer, false, Some(&acceptor), config, &*policy, &*sink, &shutdown).await
                }
                Tls::None => serve(stream, peer, false, None, config, &*policy, &*sink, &shutdown).await,
            };
            if let Err(e) = r {
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

/// Serves one session on `io`; with `starttls`, upgrades to TLS when the client asks.
#[allow(clippy::too_many_arguments)]
pub async fn serve<IO, P, S>(
    io: IO,
    peer: IpAddr,
    tls: bool,
    starttls: Option<&TlsAcceptor>,
    config: Arc<SessionConfig>,
    policy: &P,
    sink: &S,
    shutdown: &CancellationToken,
) -> Result<(), Error>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    P: Policy,
    S: Sink,
{
    let mut session = Session::new(config, peer, tls, tokio::time::Instant::now().into_std());
    match drive(io, &mut session, policy, sink, shutdown).await? {
        Ended::Done => Ok(()),
        Ended::StartTls(io) => {
            let Some(acceptor) = starttls else { return Ok(()) };
            let tls = acceptor.accept(io).await?;
            session.tls_started(tokio::time::Instant::now().into_std());
            match drive(tls, &mut session, policy, sink, shutdown).await? {
                Ended::Done | Ended::StartTls(_) => Ok(()),
            }
        }
    }
}

async fn drive<IO, P, S>(
    mut io: IO,
    session: &mut Session,
    policy: &P,
    sink: &S,
    shutdown: &CancellationToken,
) -> Result<Ended<IO>, Error>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    P: Policy,
    S: Sink,
{
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while let Some(event) = session.poll_event() {
            match event {
                Event::Ask(q) => {
                    let reply = match q {
                        Question::Auth { context, user, password } => policy.auth(&context, &user, &password).await,
                        Question::Mail { context, from, params } => policy.mail_from(&context, &from, &params).await,
                        Question::Rcpt { context, transaction, to } => {
                            policy.rcpt_to(&context, &transaction, &to).await
                        }
                        Question::Data(message) => sink.deliver(message).await,
                    };
                    session.answer(tokio::time::Instant::now().into_std(), reply);
                }
                Event::StartTls => {
                    if let Some(out) = session.poll_transmit() {
                        io.write_all(&out).await?;
                        io.flush().await?;
                    }
                    return Ok(Ended::StartTls(io));
                }
            }
        }
        if let Some(out) = session.poll_transmit() {
            io.write_all(&out).await?;
            io.flush().await?;
        }
        if session.is_closed() {
            let _ = io.shutdown().await;
            return Ok(Ended::Done);
        }
        let deadline = session.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            n = io.read(&mut buf) => {
                let n = n?;
                if n == 0 {
                    return Ok(Ended::Done);
                }
                session.receive(tokio::time::Instant::now().into_std(), &buf[..n]);
            }
            _ = sleep_until(deadline) => session.handle_timeout(tokio::time::Instant::now().into_std()),
            _ = shutdown.cancelled() => session.shutdown(),
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    use super::*;
    use crate::session::{Context, Message, Transaction};
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

    #[test]
    fn connection_limit_per_address() {
        let limit = ConnectionLimit::new(2);
        let a = limit.acquire(PEER).unwrap();
        let _b = limit.acquire(PEER).unwrap();
        assert!(limit.acquire(PEER).is_none());
        assert!(limit.acquire(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))).is_some(), "another address has its own count");
        drop(a);
        assert!(limit.acquire(PEER).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_closes_the_connection_in_paused_time() {
        let (client, server) = tokio::io::duplex(4096);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(async move {
            let config = Arc::new(SessionConfig::default());
            serve(server, PEER, false, None, config, &Accept, &Accept, &shutdown).await
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
        let started = tokio::time::Instant::now();
        line.clear();
        r.read_line(&mut line).await.unwrap();
        assert_eq!(line, "421 4.4.2 idle too long, closing connection\r\n");
        assert!(started.elapsed() >= Duration::from_secs(60));
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn starttls_and_auth_over_a_pipe() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let acceptor = crate::tls::acceptor_from_der(
            vec![ck.cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into()),
        )
        .unwrap();
        let (client, server) = tokio::io::duplex(64 * 1024);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(async move {
            let config = Arc::new(SessionConfig { starttls: true, ..SessionConfig::default() });
            serve(server, PEER, false, Some(&acceptor), config, &Accept, &Accept, &shutdown).await
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
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        roots.add(ck.cert.der().clone()).unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let cfg = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
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
}
