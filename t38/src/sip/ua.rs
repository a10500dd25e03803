//! The user agent: one UDP signalling socket towards one trunk, and the
//! driver of each call's control ([`super::call`]) over rsipstack.
//!
//! rsipstack runs transactions and dialogs; [`super::call::Call`] decides;
//! this layer carries out its actions and feeds it what happens, with one
//! sleep reset to its next deadline. Requests from sources the trunk does
//! not allow are dropped before rsipstack sees them (no response, counted,
//! summed up in the log at most once a minute). A new INVITE is refused
//! before a call starts: at the channel limit (486 or 503, per trunk), with
//! 400 for an unreadable request, SDP or `Content-Length`, 404 when the
//! number is not ours, 488 when no media fits or it is somewhere the trunk
//! does not allow, 422 for a too short session interval; each refusal
//! carries a `Warning` saying why. Each call's media runs on the media
//! runtime ([`crate::media`]); call control's time comes from the trunk's
//! [`MediaClock`]. Every SIP message is logged at debug level inside a span
//! naming the trunk.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faxgate_retention::logid::Scrubbed;
use rsipstack::EndpointBuilder;
use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{DialogState, DialogStateSender, TerminatedReason, TransactionHandle};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, SipMessage, StatusCode};
use rsipstack::transaction::endpoint::{EndpointOption, MessageInspector, TransportEventInspector};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::connection::TransportEvent;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, TransportLayer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::media::{CallMedia, FaxJob, MediaClock, MediaCmd, MediaStats, bind_media, spawn_media};
use crate::sdp::{self, Capabilities, LocalMedia, Negotiated, SessionDescription};
use crate::session::{Direction, Event, FaxResult, FaxSettings};
use crate::sip::call::{
    Action, Call, CallConfig, CallState, Input, Outcome, Refusal, RequestId, Summary, TimerRequest,
};
use crate::sip::cause::CallError;
use crate::sip::session_timer::{MIN_SE, SessionExpires, SessionTimer, parse_min_se};
use crate::trunk::TrunkConfig;

/// Our own Call-ID suffix (rsipstack's default names its author).
const CALLID_SUFFIX: &str = "faxgate";

/// User agent settings.
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// Signalling address to bind (UDP).
    pub bind: SocketAddr,
    /// A socket already bound to `bind` (handed over by the service
    /// manager): used instead of binding one.
    pub socket: Option<Arc<std::net::UdpSocket>>,
    /// Address announced in Contact, Via and SDP when behind NAT.
    pub advertise: Option<IpAddr>,
    /// Address media sockets bind to.
    pub media_ip: IpAddr,
    /// The trunk.
    pub trunk: TrunkConfig,
    /// T.30 settings (ident, ECM...); the trunk's `ecm` overrides ECM.
    pub fax: FaxSettings,
    /// The clock of call control and media: real time in the daemon.
    pub clock: MediaClock,
    /// User-Agent header.
    pub user_agent: String,
}

/// An incoming call, for the number lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingCall {
    /// Call-ID.
    pub call_id: String,
    /// The caller's user part.
    pub caller: String,
    /// The called number (request URI user part).
    pub called: String,
    /// Where the INVITE came from (see [`CallReport::signalling`]).
    pub signalling: Option<SocketAddr>,
}

/// Decides where an incoming fax goes: a TIFF path, or None to refuse (404).
pub type Router = Arc<dyn Fn(&IncomingCall) -> Option<PathBuf> + Send + Sync>;

/// What happened on one call.
#[derive(Debug, Clone, Default)]
pub struct CallReport {
    /// Call-ID.
    pub call_id: String,
    /// True for calls we answered.
    pub incoming: bool,
    /// Caller user part.
    pub caller: String,
    /// Called user part.
    pub called: String,
    /// The fax's result (None if the fax never started).
    pub result: Option<FaxResult>,
    /// True if the fax ran on T.38 (a later re-INVITE back to audio does not change it).
    pub t38: bool,
    /// Media counters.
    pub media: MediaStats,
    /// The peer sent BYE (or the dialog timed out) before the fax ended.
    pub peer_hung_up: bool,
    /// Fax events (pages, negotiation) in order.
    pub events: Vec<Event>,
    /// When each event arrived, as real time since the call was answered.
    pub event_offsets: Vec<Duration>,
    /// Real time from the answer to the end of the call.
    pub answered_for: Duration,
    /// Re-INVITEs to T.38 the peer refused (488/606).
    pub t38_refused: u32,
    /// The T.38 offer of our INVITE was refused (488, 415, 606) and the call
    /// was placed again with audio in the same attempt.
    pub t38_initial_refused: bool,
    /// The session interval agreed (RFC 4028 `Session-Expires`), when a
    /// session timer ran.
    pub session_interval: Option<Duration>,
    /// Session refreshes we sent and had accepted.
    pub refreshes_sent: u32,
    /// Session refreshes (re-INVITEs, UPDATEs) of the peer we accepted.
    pub refreshes_received: u32,
    /// The peer did not refresh the session in time; we ended the call.
    pub session_expired: bool,
    /// The states the call went through.
    pub states: Vec<CallState>,
    /// The peer's media address at the end.
    pub remote_media: Option<SocketAddr>,
    /// The peer's signalling address: the trunk for calls we placed, the
    /// INVITE's source (from its Via, with `received`/`rport`) for calls we
    /// were offered.
    pub signalling: Option<SocketAddr>,
    /// For an INVITE refused before answering (trunk at its channel limit,
    /// unreadable request or SDP, no acceptable media, the caller gave up
    /// while it rang): the status it was refused with. None for answered
    /// calls; numbers that are not ours are refused by the router, which
    /// sees them first.
    pub refused: Option<u16>,
}

impl CallReport {
    /// The report of an INVITE refused with `status` before answering.
    fn refused(req: &rsipstack::sip::Request, status: u16) -> Self {
        Self {
            call_id: req.call_id_header().map(|c| c.value().to_string()).unwrap_or_default(),
            incoming: true,
            caller: req.from_header().ok().and_then(|f| f.uri().ok()).map(|u| user_of(&u)).unwrap_or_default(),
            called: user_of(&req.uri),
            signalling: signalling_source(req),
            refused: Some(status),
            ..Self::default()
        }
    }

    /// The report of an answered call from what its control saw; call time
    /// is turned into real time.
    fn answered(who: &Who, s: Summary, media: MediaStats, clock: &MediaClock) -> Self {
        Self {
            call_id: who.call_id.clone(),
            incoming: who.incoming,
            caller: who.caller.clone(),
            called: who.called.clone(),
            result: s.result,
            t38: s.t38,
            media,
            peer_hung_up: s.peer_hung_up,
            events: s.events,
            event_offsets: s.event_offsets.into_iter().map(|d| clock.real_duration(d)).collect(),
            answered_for: clock.real_duration(s.answered_for),
            t38_refused: s.t38_refused,
            t38_initial_refused: s.t38_initial_refused,
            session_interval: s.session_interval,
            refreshes_sent: s.refreshes_sent,
            refreshes_received: s.refreshes_received,
            session_expired: s.session_expired,
            states: s.states,
            remote_media: s.remote_media,
            signalling: who.signalling,
            refused: None,
        }
    }

    /// The SIP final status of the INVITE: the refusal, else 200.
    pub fn sip_status(&self) -> u16 {
        self.refused.unwrap_or(200)
    }

    /// What this call took to get through, for learning it per
    /// destination: audio because T.38 was refused, no ECM, a rate below
    /// V.17's 14,400 bit/s.
    pub fn needed(&self) -> Needed {
        let r = self.result.as_ref();
        Needed {
            audio: !self.t38 && (self.t38_initial_refused || self.t38_refused > 0),
            ecm_off: r.is_some_and(|r| !r.ecm),
            lower_rate: r.map(|r| r.bit_rate).filter(|b| *b > 0 && *b < 14_400),
        }
    }
}

/// What one placed call does differently from its trunk
/// ([`UserAgent::send_fax_with`]).
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// This call's T.30 settings (a retry after a failed transfer goes
    /// slower and without ECM); the trunk's `ecm = false` still wins.
    pub settings: Option<FaxSettings>,
    /// This Call-ID, so that the caller can record it before the call.
    pub call_id: Option<String>,
    /// Start in G.711 audio and do not ask for T.38, neither in the INVITE
    /// nor by re-INVITE (a destination known to refuse it); a re-INVITE to
    /// T.38 from the peer is still accepted.
    pub audio: bool,
}

/// What a call took to get through ([`CallReport::needed`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Needed {
    /// The fax went over G.711 audio because the peer refused T.38.
    pub audio: bool,
    /// The fax went without error correction mode.
    pub ecm_off: bool,
    /// The fax went at this rate, below 14,400 bit/s.
    pub lower_rate: Option<u32>,
}

/// Where an incoming request came from, as its topmost Via says once the
/// transport has added `received` and `rport` (RFC 3581).
fn signalling_source(req: &rsipstack::sip::Request) -> Option<SocketAddr> {
    let via = req.via_header().ok()?;
    let (_, host) = rsipstack::transport::SipConnection::parse_target_from_via(via).ok()?;
    SocketAddr::try_from(host).ok()
}

/// Counters of the user agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct UaStats {
    /// Requests dropped because their source is not the trunk.
    pub dropped_foreign: u64,
    /// Calls in progress.
    pub active_calls: usize,
    /// INVITEs refused at the channel limit.
    pub refused_busy: u64,
    /// INVITEs refused because the number is not ours.
    pub refused_unknown: u64,
    /// Requests answered with 400.
    pub bad_requests: u64,
    /// OPTIONS answered.
    pub options_answered: u64,
    /// Whether the trunk's registration is in force; `None` for a trunk
    /// that does not register.
    pub registered: Option<bool>,
}

#[derive(Debug, Default)]
struct Counters {
    dropped_foreign: AtomicU64,
    refused_busy: AtomicU64,
    refused_unknown: AtomicU64,
    bad_requests: AtomicU64,
    options_answered: AtomicU64,
    registered: std::sync::atomic::AtomicBool,
}

/// Dialog events routed to a call.
enum SipEvent {
    Update(rsipstack::sip::Request, TransactionHandle),
    Other(TransactionHandle),
    /// The dialog (named by our tag in it) ended.
    Terminated(String, TerminatedReason),
    /// We clear the call (BYE) before the fax ends.
    HangUp,
}

struct Inner {
    cfg: UaConfig,
    layer: Arc<DialogLayer>,
    endpoint: rsipstack::transaction::endpoint::EndpointInnerRef,
    state_tx: DialogStateSender,
    calls: Mutex<HashMap<String, mpsc::UnboundedSender<SipEvent>>>,
    active: AtomicUsize,
    counters: Arc<Counters>,
    router: Router,
    reports: mpsc::UnboundedSender<CallReport>,
    local: SocketAddr,
    /// The trunk's address and what follows from it, once resolved.
    peer: tokio::sync::watch::Sender<Option<Arc<Peer>>>,
    /// The address announced in Contact and SDP while the trunk's host
    /// does not resolve.
    unresolved_reach_ip: IpAddr,
    clock: MediaClock,
    cancel: CancellationToken,
    seq: AtomicU64,
    /// Set by [`UserAgent::drain`]: new INVITEs get 503 with Retry-After.
    draining: std::sync::atomic::AtomicBool,
}

/// The trunk's signalling address as resolved, and what follows from it.
#[derive(Debug)]
struct Peer {
    addr: SocketAddr,
    /// The address announced in Contact and SDP when nothing is configured.
    reach_ip: IpAddr,
    /// Where the trunk's media may be.
    media_sources: Vec<IpAddr>,
}

impl Peer {
    fn new(trunk: &TrunkConfig, local: SocketAddr, addr: SocketAddr) -> Self {
        // Bound to a wildcard address without `advertise`: announce the
        // address the kernel sends from towards the trunk, never 0.0.0.0
        // (which an SDP peer reads as "on hold").
        let reach_ip =
            if local.ip().is_unspecified() { source_ip_towards(addr).unwrap_or(local.ip()) } else { local.ip() };
        Peer { addr, reach_ip, media_sources: trunk.media_sources(Some(addr)) }
    }
}

/// The first lookup of a trunk's host waits this long at start; after that
/// it goes on in the background.
const FIRST_LOOKUP: Duration = Duration::from_secs(5);
/// The longest wait between lookups of a host that does not resolve.
const LOOKUP_RETRY_MAX: Duration = Duration::from_secs(300);

impl Inner {
    fn peer(&self) -> Option<Arc<Peer>> {
        self.peer.borrow().clone()
    }

    /// The trunk's address; a network failure while its host does not resolve.
    fn trunk_addr(&self) -> Result<SocketAddr, CallError> {
        self.peer().map(|p| p.addr).ok_or_else(|| {
            CallError::Signalling(format!(
                "the trunk's host {} does not resolve (yet); it is looked up again in the background",
                self.cfg.trunk.address
            ))
        })
    }

    fn reach_ip(&self) -> IpAddr {
        self.peer().map(|p| p.reach_ip).unwrap_or(self.unresolved_reach_ip)
    }

    fn media_sources(&self) -> Vec<IpAddr> {
        match self.peer() {
            Some(p) => p.media_sources.clone(),
            None => self.cfg.trunk.media_sources(None),
        }
    }

    /// Waits until the trunk's host resolves; `None` when the user agent stops first.
    async fn resolved(&self) -> Option<SocketAddr> {
        let mut rx = self.peer.subscribe();
        tokio::select! {
            p = rx.wait_for(Option::is_some) => p.ok().and_then(|p| p.as_ref().map(|p| p.addr)),
            _ = self.cancel.cancelled() => None,
        }
    }
}

/// Looks the trunk's host up again until it resolves, waiting twice as
/// long after each failure (at most [`LOOKUP_RETRY_MAX`]), with a warning
/// each time.
async fn resolve_loop(inner: Arc<Inner>) {
    let trunk = &inner.cfg.trunk;
    let mut wait = Duration::from_secs(2);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = inner.cancel.cancelled() => return,
        }
        match tokio::time::timeout(FIRST_LOOKUP, trunk.resolve()).await {
            Ok(Ok(addr)) => {
                tracing::info!(trunk = %trunk.name, host = %trunk.address, %addr, "the trunk's host resolves now");
                inner.peer.send_replace(Some(Arc::new(Peer::new(trunk, inner.local, addr))));
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(trunk = %trunk.name, host = %trunk.address, error = %e, retry_in = ?wait * 2, "the trunk's host does not resolve; calls through it fail until it does")
            }
            Err(_) => {
                tracing::warn!(trunk = %trunk.name, host = %trunk.address, retry_in = ?wait * 2, "no DNS answer for the trunk's host; calls through it fail until it resolves")
            }
        }
        wait = (wait * 2).min(LOOKUP_RETRY_MAX);
    }
}

/// The user agent.
#[derive(Clone)]
pub struct UserAgent {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for UserAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAgent").field("local", &self.inner.local).finish()
    }
}

struct SourceFilter {
    trunk: TrunkConfig,
    resolved: tokio::sync::watch::Receiver<Option<Arc<Peer>>>,
    counters: Arc<Counters>,
    drops: Arc<Mutex<DropLog>>,
}

#[async_trait::async_trait]
impl TransportEventInspector for SourceFilter {
    async fn handle(&self, event: TransportEvent) -> Option<TransportEvent> {
        if let TransportEvent::Incoming(SipMessage::Request(_), _, from) = &event {
            let ip = from.get_socketaddr().ok().map(|a| a.ip());
            let resolved = self.resolved.borrow().as_ref().map(|p| p.addr);
            if !ip.is_some_and(|ip| self.trunk.allows(ip, resolved)) {
                self.counters.dropped_foreign.fetch_add(1, Ordering::Relaxed);
                let ip = ip.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
                let line = self.drops.lock().unwrap_or_else(|p| p.into_inner()).record(Instant::now(), ip);
                if let Some(line) = line {
                    tracing::warn!(trunk = %self.trunk.name, "{line}");
                }
                return None;
            }
        }
        Some(event)
    }
}

/// How often at most the drops from foreign sources are summed up in the log.
const DROP_LOG_EVERY: Duration = Duration::from_secs(60);
/// Sources counted one by one in a summary; more are only counted.
const DROP_LOG_SOURCES: usize = 1024;

/// Counts requests dropped because their source is not the trunk, and
/// gives at most one summary line per [`DROP_LOG_EVERY`]: `dropped N
/// packets from M sources, top: ...`. Time is passed in.
#[derive(Debug, Default)]
struct DropLog {
    pending: u64,
    sources: HashMap<IpAddr, u64>,
    others: u64,
    last: Option<Instant>,
}

impl DropLog {
    /// Counts one drop; the summary line, when one is due.
    fn record(&mut self, now: Instant, ip: IpAddr) -> Option<String> {
        self.pending += 1;
        if let Some(n) = self.sources.get_mut(&ip) {
            *n += 1;
        } else if self.sources.len() < DROP_LOG_SOURCES {
            self.sources.insert(ip, 1);
        } else {
            self.others += 1;
        }
        self.flush(now)
    }

    /// The summary of the drops not yet logged, unless one was given less
    /// than [`DROP_LOG_EVERY`] ago.
    fn flush(&mut self, now: Instant) -> Option<String> {
        if self.pending == 0 || self.last.is_some_and(|l| now.saturating_duration_since(l) < DROP_LOG_EVERY) {
            return None;
        }
        self.last = Some(now);
        let mut top: Vec<(IpAddr, u64)> = self.sources.drain().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let sources = top.len() + usize::from(self.others > 0);
        let shown: Vec<String> = top.iter().take(3).map(|(ip, n)| format!("{ip} ({n})")).collect();
        let line = format!(
            "dropped {} packets from {} sources that are not the trunk, top: {}",
            self.pending,
            sources,
            shown.join(", ")
        );
        self.pending = 0;
        self.others = 0;
        Some(line)
    }
}

/// Logs every SIP message of a trunk at debug level (target
/// `faxgate_t38::sip::wire`), inside a span `trunk{name=...}`, so that one
/// trunk's messages can be shown alone (`[trunk{name=carrier}]=debug`).
/// A message carries numbers and names: without `log.personal_data` only
/// its first line's method or status and its size are logged.
struct WireLog {
    trunk: String,
}

impl WireLog {
    fn log(&self, what: &str, peer: Option<&SipAddr>, msg: &SipMessage) {
        let _span = tracing::info_span!("trunk", name = self.trunk.as_str()).entered();
        if tracing::enabled!(target: "faxgate_t38::sip::wire", tracing::Level::DEBUG) {
            let peer = peer.map(ToString::to_string).unwrap_or_default();
            if faxgate_retention::logid::personal_data() {
                tracing::debug!(target: "faxgate_t38::sip::wire", %peer, "{what}\n{msg}");
            } else {
                let first = match msg {
                    SipMessage::Request(r) => r.method.to_string(),
                    SipMessage::Response(r) => r.status_code.code().to_string(),
                };
                let bytes = msg.to_string().len();
                tracing::debug!(target: "faxgate_t38::sip::wire", %peer, "{what}: {first}, {bytes} bytes");
            }
        }
    }
}

impl MessageInspector for WireLog {
    fn before_send(&self, msg: SipMessage, dest: Option<&SipAddr>) -> SipMessage {
        self.log("sent", dest, &msg);
        msg
    }

    fn after_received(&self, msg: SipMessage, from: Option<&SipAddr>) -> SipMessage {
        self.log("received", from, &msg);
        msg
    }
}

/// The log filter `level` with the SIP library held at warn (its dumps of
/// every datagram at info, and its debug lines, carry numbers and names in
/// clear), unless `level` names the library itself. faxgate logs the
/// messages of a trunk at debug level instead (target
/// `faxgate_t38::sip::wire`, in a span `trunk{name=...}`).
pub fn log_filter(level: &str) -> String {
    if level.contains("rsipstack") {
        level.to_string()
    } else if level.trim().is_empty() {
        "rsipstack=warn".to_string()
    } else {
        format!("{level},rsipstack=warn")
    }
}

fn user_of(uri: &rsipstack::sip::Uri) -> String {
    uri.auth.as_ref().map(|a| a.user.clone()).unwrap_or_default()
}

fn sdp_header() -> Vec<Header> {
    vec![Header::ContentType("application/sdp".into())]
}

/// The driver's one source of randomness: Call-IDs and each call's seed.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}

impl UserAgent {
    /// Binds the signalling socket and starts serving. Fax reports of
    /// incoming calls arrive on the returned receiver.
    pub async fn start(cfg: UaConfig, router: Router) -> Result<(Self, mpsc::UnboundedReceiver<CallReport>), Error> {
        cfg.trunk.validate()?;
        let cancel = CancellationToken::new();
        let transport = TransportLayer::new(cancel.clone());
        let external = cfg.advertise.map(|ip| SocketAddr::new(ip, cfg.bind.port()));
        let conn = match &cfg.socket {
            Some(s) => {
                let s = s.try_clone()?;
                s.set_nonblocking(true)?;
                let s: Arc<dyn rsipstack::platform::net::UdpSocket> = Arc::new(tokio::net::UdpSocket::from_std(s)?);
                UdpConnection::from_socket(s, external, Some(cancel.child_token())).await
            }
            None => UdpConnection::create_connection(cfg.bind, external, Some(cancel.child_token())).await,
        }
        .map_err(|e| Error::Sip(format!("bind {}: {e}", cfg.bind)))?;
        let local = conn.get_addr().get_socketaddr().map_err(|e| Error::Sip(e.to_string()))?;
        // A host that does not resolve (DNS down, a name not yet
        // published) does not stop the start: it is looked up again in the
        // background, and calls through the trunk fail until it resolves.
        let first = match tokio::time::timeout(FIRST_LOOKUP, cfg.trunk.resolve()).await {
            Ok(Ok(addr)) => Ok(addr),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no DNS answer in {} s", FIRST_LOOKUP.as_secs())),
        };
        let (peer, peer_rx) = tokio::sync::watch::channel(match &first {
            Ok(addr) => Some(Arc::new(Peer::new(&cfg.trunk, local, *addr))),
            Err(e) => {
                tracing::warn!(trunk = %cfg.trunk.name, host = %cfg.trunk.address, error = %e, "the trunk's host does not resolve; starting anyway, looking it up again in the background; calls through it fail until it resolves");
                None
            }
        });
        let towards = cfg.trunk.allowed_sources.first().map(|ip| SocketAddr::new(*ip, cfg.trunk.port));
        let unresolved_reach_ip = match towards {
            Some(a) if local.ip().is_unspecified() => source_ip_towards(a).unwrap_or(local.ip()),
            _ => local.ip(),
        };
        transport.add_transport(conn.into());
        let counters = Arc::new(Counters::default());
        let drops = Arc::new(Mutex::new(DropLog::default()));
        let option = EndpointOption { callid_suffix: Some(CALLID_SUFFIX.into()), ..EndpointOption::default() };
        let endpoint = EndpointBuilder::new()
            .with_cancel_token(cancel.clone())
            .with_transport_layer(transport)
            .with_user_agent(&cfg.user_agent)
            .with_option(option)
            .with_transport_inspector(Box::new(SourceFilter {
                trunk: cfg.trunk.clone(),
                resolved: peer_rx,
                counters: counters.clone(),
                drops: drops.clone(),
            }))
            .with_inspector(Box::new(WireLog { trunk: cfg.trunk.name.clone() }))
            .build();
        let incoming = endpoint.incoming_transactions().map_err(|e| Error::Sip(e.to_string()))?;
        let layer = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let (state_tx, state_rx) = layer.new_dialog_state_channel();
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            clock: cfg.clock,
            cfg,
            layer,
            endpoint: endpoint.inner.clone(),
            state_tx,
            calls: Mutex::new(HashMap::new()),
            active: AtomicUsize::new(0),
            counters,
            router,
            reports: reports_tx,
            local,
            peer,
            unresolved_reach_ip,
            cancel: cancel.clone(),
            seq: AtomicU64::new(1),
            draining: std::sync::atomic::AtomicBool::new(false),
        });
        let ep = endpoint;
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = ep.serve() => {}
                _ = c.cancelled() => {}
            }
        });
        tokio::spawn(route_states(inner.clone(), state_rx));
        tokio::spawn(drop_summaries(inner.clone(), drops));
        tokio::spawn(serve_requests(inner.clone(), incoming));
        if first.is_err() {
            tokio::spawn(resolve_loop(inner.clone()));
        }
        if inner.cfg.trunk.registration.is_some() {
            tokio::spawn(register_loop(inner.clone()));
        }
        if inner.cfg.trunk.keepalive_secs > 0 {
            tokio::spawn(keepalive_loop(inner.clone()));
        }
        Ok((Self { inner }, reports_rx))
    }

    /// The trunk's signalling address as resolved; `None` while its host
    /// does not resolve.
    pub fn trunk_addr(&self) -> Option<SocketAddr> {
        self.inner.peer().map(|p| p.addr)
    }

    /// The signalling address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// Counters.
    pub fn stats(&self) -> UaStats {
        let c = &self.inner.counters;
        UaStats {
            dropped_foreign: c.dropped_foreign.load(Ordering::Relaxed),
            active_calls: self.inner.active.load(Ordering::Relaxed),
            refused_busy: c.refused_busy.load(Ordering::Relaxed),
            refused_unknown: c.refused_unknown.load(Ordering::Relaxed),
            bad_requests: c.bad_requests.load(Ordering::Relaxed),
            options_answered: c.options_answered.load(Ordering::Relaxed),
            registered: self.inner.cfg.trunk.registration.as_ref().map(|_| c.registered.load(Ordering::Relaxed)),
        }
    }

    /// Clears every call in progress (BYE); their reports say what was
    /// transferred.
    pub fn hang_up_all(&self) {
        for tx in self.inner.calls.lock().unwrap_or_else(|p| p.into_inner()).values() {
            let _ = tx.send(SipEvent::HangUp);
        }
    }

    /// Stops taking calls: from now on an INVITE is answered `503 Service
    /// Unavailable` with `Retry-After` ([`DRAIN_RETRY_AFTER`] seconds), so
    /// that the trunk tries another gateway or calls again later. Calls in
    /// progress go on.
    pub fn drain(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    /// True when `other` is this same user agent (a clone of it).
    pub fn same(&self, other: &UserAgent) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Stops serving; calls in progress are dropped.
    pub fn shutdown(&self) {
        self.inner.cancel.cancel();
    }

    /// Sends OPTIONS to the trunk; returns its status.
    pub async fn ping(&self) -> Result<u16, CallError> {
        options_request(&self.inner).await
    }

    /// The T.30 settings calls use unless told otherwise.
    pub fn fax_settings(&self) -> FaxSettings {
        fax_settings(&self.inner)
    }

    /// A fresh Call-ID for [`Self::send_fax_with`].
    pub fn new_call_id() -> String {
        format!("{:016x}@{CALLID_SUFFIX}", random_u64())
    }

    /// Places a call to `to` (user part at the trunk) from `from` and sends
    /// the pages of `tiff`. Returns when the call is over.
    pub async fn send_fax(&self, to: &str, from: &str, tiff: PathBuf) -> Result<CallReport, CallError> {
        self.send_fax_with(to, from, tiff, CallOptions::default()).await
    }

    /// [`Self::send_fax`] with what this call does differently from its
    /// trunk ([`CallOptions`]).
    pub async fn send_fax_with(
        &self,
        to: &str,
        from: &str,
        tiff: PathBuf,
        options: CallOptions,
    ) -> Result<CallReport, CallError> {
        let CallOptions { settings, call_id, audio: start_audio } = options;
        let inner = &self.inner;
        let trunk = &inner.cfg.trunk;
        if !tiff.is_file() {
            return Err(CallError::Engine(format!("no such file: {}", tiff.display())));
        }
        let trunk_addr = inner.trunk_addr()?;
        let Some(_slot) = ChannelSlot::take(inner) else {
            return Err(CallError::NoChannel);
        };
        let (audio, image) = bind_media(inner.cfg.media_ip).await.map_err(|e| CallError::Engine(e.to_string()))?;
        let local_media = local_media(inner, &audio, &image).map_err(|e| CallError::Engine(e.to_string()))?;
        let domain = trunk.domain.clone().unwrap_or_else(|| trunk.address.clone());
        // The port goes in the request URI: rsipstack routes the CANCEL by
        // the URI, not by `InviteOption::destination`.
        let callee: rsipstack::sip::Uri = format!("sip:{to}@{domain}:{}", trunk.port)
            .as_str()
            .try_into()
            .map_err(|e| CallError::Signalling(format!("bad number {to}: {e}")))?;
        let caller: rsipstack::sip::Uri = format!("sip:{from}@{domain}")
            .as_str()
            .try_into()
            .map_err(|e| CallError::Signalling(format!("bad caller {from}: {e}")))?;
        let contact = contact_uri(inner, from).map_err(|e| CallError::Signalling(e.to_string()))?;
        let call_id = call_id.unwrap_or_else(Self::new_call_id);
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        inner.calls.lock().unwrap_or_else(|p| p.into_inner()).insert(call_id.clone(), ev_tx);
        let _registered = Registered(inner.clone(), call_id.clone());
        let invite = InviteOption {
            caller,
            callee,
            contact,
            destination: Some(SipAddr::from(trunk_addr)),
            content_type: Some("application/sdp".into()),
            credential: trunk.credentials.as_ref().map(|c| Credential {
                username: c.username.clone(),
                password: c.password.clone(),
                realm: c.realm.clone(),
                auth_username: None,
            }),
            call_id: Some(call_id.clone()),
            ..Default::default()
        };
        let job = FaxJob {
            direction: Direction::Send { tiff, max_pages: None },
            calling: true,
            settings: settings
                .map(|mut s| {
                    s.ecm = s.ecm && inner.cfg.trunk.ecm;
                    s
                })
                .unwrap_or_else(|| fax_settings(inner)),
            peers: inner.media_sources(),
        };
        let seed = random_u64();
        let mut cfg = CallConfig::for_trunk(trunk, local_media, inner.media_sources(), false);
        cfg.ask_t38 = !start_audio;
        cfg.session_expires = Duration::from_secs(u64::from(trunk.session_expires_secs));
        let call = Call::placing(cfg, inner.clock.now(), seed);
        let who = Who {
            call_id,
            incoming: false,
            caller: from.to_string(),
            called: to.to_string(),
            signalling: Some(trunk_addr),
        };
        let io = CallIo::new(inner.clone(), job, audio, image, ev_rx, None, Some(invite), seed);
        let (outcome, media) = drive(call, io).instrument_call(&who.call_id).await;
        match outcome {
            Outcome::Ended(s) => Ok(CallReport::answered(&who, *s, media, &inner.clock)),
            Outcome::Failed(e) => Err(e),
            Outcome::Unanswered(status) => Err(CallError::from_status(status)),
        }
    }
}

/// Removes a call's event route when dropped.
struct Registered(Arc<Inner>, String);

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.calls.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.1);
    }
}

/// One channel of the trunk, given back when dropped.
struct ChannelSlot(Arc<Inner>);

impl ChannelSlot {
    fn take(inner: &Arc<Inner>) -> Option<Self> {
        let limit = inner.cfg.trunk.channels as usize;
        inner
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1))
            .ok()
            .map(|_| Self(inner.clone()))
    }
}

impl Drop for ChannelSlot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

fn fax_settings(inner: &Inner) -> FaxSettings {
    let mut s = inner.cfg.fax.clone();
    s.ecm = s.ecm && inner.cfg.trunk.ecm;
    s
}

fn advertised_ip(inner: &Inner) -> IpAddr {
    inner
        .cfg
        .advertise
        .unwrap_or_else(|| if inner.cfg.media_ip.is_unspecified() { inner.reach_ip() } else { inner.cfg.media_ip })
}

/// The local address the kernel would send from to reach `peer` (a UDP
/// `connect` sends nothing).
fn source_ip_towards(peer: SocketAddr) -> Option<IpAddr> {
    let any: SocketAddr = if peer.is_ipv4() { "0.0.0.0:0".parse().ok()? } else { "[::]:0".parse().ok()? };
    let s = std::net::UdpSocket::bind(any).ok()?;
    s.connect(peer).ok()?;
    s.local_addr().ok().map(|a| a.ip()).filter(|ip| !ip.is_unspecified())
}

fn local_media(
    inner: &Inner,
    audio: &tokio::net::UdpSocket,
    image: &tokio::net::UdpSocket,
) -> Result<LocalMedia, Error> {
    Ok(LocalMedia {
        addr: advertised_ip(inner),
        audio_port: audio.local_addr()?.port(),
        image_port: image.local_addr()?.port(),
    })
}

fn contact_uri(inner: &Inner, user: &str) -> Result<rsipstack::sip::Uri, Error> {
    let port = inner.local.port();
    let ip = inner.cfg.advertise.unwrap_or_else(|| inner.reach_ip());
    let s = if user.is_empty() {
        format!("sip:{}", SocketAddr::new(ip, port))
    } else {
        format!("sip:{user}@{}", SocketAddr::new(ip, port))
    };
    s.as_str().try_into().map_err(|e: rsipstack::sip::Error| Error::Sip(e.to_string()))
}

async fn route_states(inner: Arc<Inner>, mut rx: rsipstack::dialog::dialog::DialogStateReceiver) {
    while let Some(state) = rx.recv().await {
        let (id, ev) = match state {
            DialogState::Updated(id, req, handle) => (id, SipEvent::Update(req, handle)),
            DialogState::Options(id, _, handle)
            | DialogState::Info(id, _, handle)
            | DialogState::Notify(id, _, handle)
            | DialogState::Refer(id, _, handle)
            | DialogState::Message(id, _, handle)
            | DialogState::Publish(id, _, handle) => (id, SipEvent::Other(handle)),
            DialogState::Terminated(id, reason) => {
                inner.layer.remove_dialog(&id);
                let tag = id.local_tag.clone();
                (id, SipEvent::Terminated(tag, reason))
            }
            _ => continue,
        };
        let tx = inner.calls.lock().unwrap_or_else(|p| p.into_inner()).get(&id.call_id).cloned();
        match (tx, ev) {
            (Some(tx), ev) => {
                if let Err(mpsc::error::SendError(ev)) = tx.send(ev) {
                    answer_orphan(ev).await;
                }
            }
            (None, ev) => answer_orphan(ev).await,
        }
    }
}

/// Every transaction handle needs a final answer, even for calls gone.
async fn answer_orphan(ev: SipEvent) {
    match ev {
        SipEvent::Update(_, h) => {
            let _ = h.reply(StatusCode::CallTransactionDoesNotExist).await;
        }
        SipEvent::Other(h) => {
            let _ = h.reply(StatusCode::OK).await;
        }
        SipEvent::Terminated(..) | SipEvent::HangUp => {}
    }
}

/// Logs what [`DropLog`] holds back at least once per [`DROP_LOG_EVERY`],
/// so that the end of a flood is summed up too.
async fn drop_summaries(inner: Arc<Inner>, drops: Arc<Mutex<DropLog>>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(DROP_LOG_EVERY) => {}
            () = inner.cancel.cancelled() => return,
        }
        let line = drops.lock().unwrap_or_else(|p| p.into_inner()).flush(Instant::now());
        if let Some(line) = line {
            tracing::warn!(trunk = %inner.cfg.trunk.name, "{line}");
        }
    }
}

/// The `Session-Expires` of a message, when it has a readable one.
fn session_expires_of(headers: &rsipstack::sip::Headers) -> Option<SessionExpires> {
    headers.iter().find_map(|h| match h {
        Header::SessionExpires(v) => SessionExpires::parse(v.value()),
        _ => None,
    })
}

/// The `Min-SE` of a message.
fn min_se_of(headers: &rsipstack::sip::Headers) -> Option<Duration> {
    headers.iter().find_map(|h| match h {
        Header::MinSE(v) => parse_min_se(v.value()),
        _ => None,
    })
}

/// Whether a request lists the `timer` option in `Supported` or `Require`.
fn supports_timer(headers: &rsipstack::sip::Headers) -> bool {
    headers.iter().any(|h| match h {
        Header::Supported(v) => v.value().split(',').any(|o| o.trim().eq_ignore_ascii_case("timer")),
        Header::Require(v) => v.value().split(',').any(|o| o.trim().eq_ignore_ascii_case("timer")),
        _ => false,
    })
}

/// A request's `Content-Length` must be the length of its body (RFC 3261
/// 20.14; over UDP bytes beyond it are dropped by the parser, so only a
/// length the body does not reach, or no number, shows).
fn check_content_length(req: &rsipstack::sip::Request) -> Result<(), String> {
    let Some(value) = req.headers.iter().find_map(|h| match h {
        Header::ContentLength(v) => Some(v.value().trim().to_string()),
        _ => None,
    }) else {
        return Ok(());
    };
    match value.parse::<usize>() {
        Ok(n) if n == req.body.len() => Ok(()),
        Ok(n) => Err(format!("Content-Length {n} disagrees with the body of {} bytes", req.body.len())),
        Err(_) => Err(format!("Content-Length {value:.20} is not a number")),
    }
}

/// `Warning: 399 faxgate "<reason>"` (RFC 3261 20.43), quotes taken out.
/// Seconds a trunk is asked to wait (`Retry-After`) before it offers a call
/// again to a gateway that is stopping: about what a restart takes.
pub const DRAIN_RETRY_AFTER: u32 = 30;

fn warning(reason: &str) -> Header {
    let text: String = reason.chars().filter(|c| *c != '"' && *c != '\\' && !c.is_control()).take(200).collect();
    Header::Warning(format!("399 faxgate \"{text}\"").into())
}

/// The session-timer headers of a request we send (RFC 4028 7.1).
fn timer_request_headers(timer: Option<SessionTimer>) -> Vec<Header> {
    let mut h = vec![Header::Supported("timer".into())];
    if let Some(t) = timer {
        h.push(Header::SessionExpires(t.in_request().value().into()));
    }
    h
}

/// The session-timer headers of a 2xx we send (RFC 4028 9): with the peer
/// as the refresher, it must understand the timer (`Require: timer`).
fn timer_response_headers(timer: Option<SessionTimer>) -> Vec<Header> {
    let mut h = vec![Header::Supported("timer".into())];
    if let Some(t) = timer {
        h.push(Header::SessionExpires(t.in_response().value().into()));
        if !t.we_refresh {
            h.push(Header::Require("timer".into()));
        }
    }
    h
}

async fn serve_requests(inner: Arc<Inner>, mut incoming: rsipstack::transaction::TransactionReceiver) {
    loop {
        let tx = tokio::select! {
            t = incoming.recv() => match t { Some(t) => t, None => break },
            _ = inner.cancel.cancelled() => break,
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            if let Err(e) = handle_request(inner, tx).await {
                tracing::debug!("request handling: {e}");
            }
        });
    }
}

async fn handle_request(inner: Arc<Inner>, mut tx: Transaction) -> Result<(), Error> {
    let sip = |e: rsipstack::Error| Error::Sip(e.to_string());
    // In-dialog requests go to their dialog.
    if let Some(mut dialog) = inner.layer.match_dialog(&tx) {
        return dialog.handle(&mut tx).await.map_err(sip);
    }
    let has_to_tag = tx.original.to_header().ok().and_then(|t| t.tag().ok().flatten()).is_some();
    match tx.original.method {
        Method::Invite if !has_to_tag => incoming_invite(inner, tx).await,
        Method::Options => {
            inner.counters.options_answered.fetch_add(1, Ordering::Relaxed);
            let allow = Header::Allow("INVITE, ACK, CANCEL, BYE, OPTIONS".into());
            let accept = Header::Accept("application/sdp".into());
            tx.reply_with(StatusCode::OK, vec![allow, accept], None).await.map_err(sip)
        }
        Method::Ack => Ok(()),
        Method::Bye | Method::Cancel | Method::Invite => {
            tx.reply(StatusCode::CallTransactionDoesNotExist).await.map_err(sip)
        }
        _ => tx.reply(StatusCode::MethodNotAllowed).await.map_err(sip),
    }
}

async fn incoming_invite(inner: Arc<Inner>, mut tx: Transaction) -> Result<(), Error> {
    let sip = |e: rsipstack::Error| Error::Sip(e.to_string());
    let trunk = &inner.cfg.trunk;
    // Every refusal before answering is reported, for its CDR.
    let refuse = |req: &rsipstack::sip::Request, status: u16| {
        let _ = inner.reports.send(CallReport::refused(req, status));
        StatusCode::from(status)
    };
    if inner.draining.load(Ordering::SeqCst) {
        tracing::info!(trunk = %trunk.name, "an incoming call is refused with 503: the gateway is stopping");
        let status = refuse(&tx.original, 503);
        let headers =
            vec![Header::RetryAfter(DRAIN_RETRY_AFTER.to_string().into()), warning("the gateway is stopping")];
        return tx.reply_with(status, headers, None).await.map_err(sip);
    }
    let Some(slot) = ChannelSlot::take(&inner) else {
        inner.counters.refused_busy.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            trunk = %trunk.name, channels = trunk.channels, status = trunk.busy_status,
            "every channel of the trunk is in use; an incoming call is refused"
        );
        let status = refuse(&tx.original, trunk.busy_status);
        return tx.reply(status).await.map_err(sip);
    };
    let (_, _, who) = match screen_invite(&tx.original, &trunk.capabilities(), &local_probe(&inner)) {
        Ok(x) => x,
        Err(refusal) => {
            if matches!(refusal, Refusal::BadRequest(_)) {
                inner.counters.bad_requests.fetch_add(1, Ordering::Relaxed);
            }
            tracing::info!(status = refusal.status(), reason = %Scrubbed(refusal.reason()), "INVITE refused");
            let status = refuse(&tx.original, refusal.status());
            return tx.reply_with(status, refusal_headers(&refusal), None).await.map_err(sip);
        }
    };
    let Some(path) = (inner.router)(&who) else {
        inner.counters.refused_unknown.fetch_add(1, Ordering::Relaxed);
        return tx.reply(StatusCode::NotFound).await.map_err(sip);
    };
    let (audio, image) = bind_media(inner.cfg.media_ip).await?;
    let local = local_media(&inner, &audio, &image)?;
    // The same answer as screened, now with the real media ports.
    let seed = random_u64();
    let timer = TimerRequest {
        session_expires: session_expires_of(&tx.original.headers),
        supported: supports_timer(&tx.original.headers),
    };
    let call = match SessionDescription::parse(&tx.original.body)
        .map_err(|e| Refusal::BadRequest(e.to_string()))
        .and_then(|offer| {
            let cfg = CallConfig::for_trunk(trunk, local, inner.media_sources(), true);
            Call::answering(cfg, &offer, timer, inner.clock.now(), seed)
        }) {
        Ok(c) => c,
        Err(refusal) => {
            tracing::info!(status = refusal.status(), reason = %Scrubbed(refusal.reason()), "INVITE refused");
            let status = refuse(&tx.original, refusal.status());
            return tx.reply_with(status, refusal_headers(&refusal), None).await.map_err(sip);
        }
    };
    let IncomingCall { call_id, caller, called, signalling } = who;
    let contact = contact_uri(&inner, &called)?;
    let dialog =
        inner.layer.get_or_create_server_invite(&tx, inner.state_tx.clone(), None, Some(contact)).map_err(sip)?;
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    inner.calls.lock().unwrap_or_else(|p| p.into_inner()).insert(call_id.clone(), ev_tx);
    let _registered = Registered(inner.clone(), call_id.clone());
    tx.send_trying().await.map_err(sip)?;
    let invite = tx.original.clone();
    let mut d2 = dialog.clone();
    tokio::spawn(async move {
        if let Err(e) = d2.handle(&mut tx).await {
            tracing::debug!("INVITE transaction: {e}");
        }
    });
    let job = FaxJob {
        direction: Direction::Receive { tiff: path },
        calling: false,
        settings: fax_settings(&inner),
        peers: inner.media_sources(),
    };
    let io = CallIo::new(inner.clone(), job, audio, image, ev_rx, Some(dialog), None, seed);
    let _slot = slot;
    let who = Who { call_id, incoming: true, caller, called, signalling };
    let (outcome, media) = drive(call, io).instrument_call(&who.call_id).await;
    match outcome {
        Outcome::Ended(s) => {
            let _ = inner.reports.send(CallReport::answered(&who, *s, media, &inner.clock));
        }
        Outcome::Unanswered(status) => {
            if status == 487 {
                tracing::info!(call_id = %who.call_id, "the caller gave up while it rang");
            }
            refuse(&invite, status);
        }
        Outcome::Failed(e) => tracing::warn!(call_id = %who.call_id, "incoming call: {}", Scrubbed(&e)),
    }
    Ok(())
}

/// Checks a new INVITE before any resource is taken: its SDP offer and
/// the identities it carries. Pure, so that it is fuzzed directly.
pub fn screen_invite(
    req: &rsipstack::sip::Request,
    caps: &Capabilities,
    local: &LocalMedia,
) -> Result<(SessionDescription, Negotiated, IncomingCall), Refusal> {
    let call_id = req.call_id_header().map_err(|_| Refusal::BadRequest("no Call-ID".into()))?.value().to_string();
    let called = user_of(&req.uri);
    let caller = req.from_header().ok().and_then(|f| f.uri().ok()).map(|u| user_of(&u)).unwrap_or_default();
    check_content_length(req).map_err(Refusal::BadRequest)?;
    if req.body.is_empty() {
        return Err(Refusal::NotAcceptable("no SDP offer (an INVITE without one is not supported)".into()));
    }
    let offer = SessionDescription::parse(&req.body).map_err(|e| Refusal::BadRequest(e.to_string()))?;
    let (answer, negotiated) =
        sdp::answer(caps, &offer, local, 1, 1).map_err(|e| Refusal::NotAcceptable(e.to_string()))?;
    Ok((answer, negotiated, IncomingCall { call_id, caller, called, signalling: signalling_source(req) }))
}

/// The headers of a refusal: why (`Warning`), and our `Min-SE` with a 422.
fn refusal_headers(refusal: &Refusal) -> Vec<Header> {
    let mut h = vec![warning(refusal.reason())];
    if refusal.status() == 422 {
        h.push(Header::MinSE(MIN_SE.as_secs().to_string().into()));
    }
    h
}

/// Local media as announced before the sockets are bound (screening only).
fn local_probe(inner: &Inner) -> LocalMedia {
    LocalMedia { addr: advertised_ip(inner), audio_port: 9, image_port: 9 }
}

/// Who a call is with, for its report.
struct Who {
    call_id: String,
    incoming: bool,
    caller: String,
    called: String,
    signalling: Option<SocketAddr>,
}

/// Runs a call's future inside a span that names its Call-ID.
trait InstrumentCall: Future + Sized {
    fn instrument_call(self, call_id: &str) -> tracing::instrument::Instrumented<Self> {
        tracing::Instrument::instrument(self, tracing::info_span!("call", call_id = %call_id))
    }
}

impl<F: Future> InstrumentCall for F {}

type InviteFut =
    tokio::task::JoinHandle<rsipstack::Result<(rsipstack::dialog::DialogId, Option<rsipstack::sip::Response>)>>;
type ReinviteFut = Pin<Box<dyn Future<Output = rsipstack::Result<Option<rsipstack::sip::Response>>> + Send>>;
type MediaTask = tokio::task::JoinHandle<(Option<FaxResult>, MediaStats)>;

/// What a call's actions act on.
struct CallIo {
    inner: Arc<Inner>,
    job: FaxJob,
    audio: Arc<tokio::net::UdpSocket>,
    image: Arc<tokio::net::UdpSocket>,
    events: mpsc::UnboundedReceiver<SipEvent>,
    dialog: Option<InviteDialog>,
    /// Calling: the INVITE to send (the offer is the call's).
    invite: Option<InviteOption>,
    seed: u64,
    /// The peer's requests waiting for the call's answer.
    pending: HashMap<RequestId, TransactionHandle>,
    next_request: u64,
    media_cmd: Option<mpsc::UnboundedSender<MediaCmd>>,
    fax_events: mpsc::UnboundedSender<Event>,
    fax_events_rx: Option<mpsc::UnboundedReceiver<Event>>,
}

impl CallIo {
    #[allow(clippy::too_many_arguments)]
    fn new(
        inner: Arc<Inner>,
        job: FaxJob,
        audio: Arc<tokio::net::UdpSocket>,
        image: Arc<tokio::net::UdpSocket>,
        events: mpsc::UnboundedReceiver<SipEvent>,
        dialog: Option<InviteDialog>,
        invite: Option<InviteOption>,
        seed: u64,
    ) -> Self {
        let (fax_events, rx) = mpsc::unbounded_channel();
        Self {
            inner,
            job,
            audio,
            image,
            events,
            dialog,
            invite,
            seed,
            pending: HashMap::new(),
            next_request: 0,
            media_cmd: None,
            fax_events,
            fax_events_rx: Some(rx),
        }
    }

    fn request(&mut self, handle: TransactionHandle) -> RequestId {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        self.pending.insert(id, handle);
        id
    }
}

/// Drives `call` until it is over: carries out its actions, feeds it what
/// rsipstack and the media report, and wakes it at its deadline. Returns its
/// outcome and the media's counters.
async fn drive(mut call: Call, mut io: CallIo) -> (Outcome, MediaStats) {
    let clock = io.inner.clock;
    let mut invite: Option<InviteFut> = None;
    let mut reinvite: Option<ReinviteFut> = None;
    let mut media: Option<MediaTask> = None;
    let mut stats = MediaStats::default();
    let mut fax_events = io.fax_events_rx.take().expect("a call is driven once");
    let sleep = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(sleep);
    let outcome = loop {
        while let Some(action) = call.poll_action() {
            perform(&mut call, &mut io, action, &mut invite, &mut reinvite, &mut media).await;
        }
        if let Some(outcome) = call.outcome() {
            break outcome.clone();
        }
        let deadline = call.poll_timeout();
        if let Some(t) = deadline {
            sleep.as_mut().reset(clock.real(t).into());
        }
        tokio::select! {
            () = &mut sleep, if deadline.is_some() => call.handle_timeout(clock.now()),
            r = async { invite.as_mut().expect("guarded").await }, if invite.is_some() => {
                invite = None;
                let input = match r {
                    Ok(Ok((_, Some(resp)))) => Input::InviteResponse {
                        status: resp.status_code.code(),
                        session_expires: session_expires_of(&resp.headers),
                        min_se: min_se_of(&resp.headers),
                        body: resp.body,
                    },
                    Ok(Ok((_, None))) => Input::InviteFailed("no final response".into()),
                    Ok(Err(e)) => Input::InviteFailed(e.to_string()),
                    Err(e) => Input::InviteFailed(e.to_string()),
                };
                call.handle(clock.now(), input);
            }
            r = async { reinvite.as_mut().expect("guarded").await }, if reinvite.is_some() => {
                reinvite = None;
                let input = match r {
                    Ok(Some(resp)) => Input::ReinviteResponse {
                        status: resp.status_code.code(),
                        session_expires: session_expires_of(&resp.headers),
                        body: resp.body,
                    },
                    Ok(None) => Input::ReinviteFailed,
                    Err(e) => {
                        tracing::info!("re-INVITE: {}", Scrubbed(&e));
                        Input::ReinviteFailed
                    }
                };
                call.handle(clock.now(), input);
            }
            Some(ev) = io.events.recv() => {
                let input = match ev {
                    SipEvent::Update(req, handle) => {
                        if let Err(e) = check_content_length(&req) {
                            // Refused before call control sees it.
                            let _ = handle.respond(StatusCode::BadRequest, Some(vec![warning(&e)]), None).await;
                            continue;
                        }
                        Input::PeerReinvite {
                            request: io.request(handle),
                            update: req.method == Method::Update,
                            session_expires: session_expires_of(&req.headers),
                            body: req.body,
                        }
                    }
                    SipEvent::Other(handle) => Input::PeerRequest { request: io.request(handle) },
                    SipEvent::Terminated(tag, reason) => {
                        // A dialog of an earlier INVITE of this call (refused, then
                        // tried again) is not this one.
                        if io.dialog.as_ref().is_some_and(|d| d.id().local_tag != tag) {
                            continue;
                        }
                        tracing::info!(?reason, "dialog terminated");
                        Input::PeerHungUp
                    }
                    SipEvent::HangUp => Input::HangUp,
                };
                call.handle(clock.now(), input);
            }
            Some(ev) = fax_events.recv() => {
                if let Event::Page(p) = &ev {
                    let what = if io.job.calling { "page sent" } else { "page received" };
                    tracing::info!(page = p.page, bad_rows = p.bad_rows, "{what}");
                }
                call.handle(clock.now(), Input::Fax(ev));
            }
            r = async { media.as_mut().expect("guarded").await }, if media.is_some() => {
                media = None;
                let (result, st) = r.unwrap_or_default();
                stats = st;
                while let Ok(ev) = fax_events.try_recv() {
                    call.handle(clock.now(), Input::Fax(ev));
                }
                call.handle(clock.now(), Input::MediaEnded(result));
            }
        }
    };
    // Carry out the last actions (BYE), then leave nothing unanswered.
    while let Some(action) = call.poll_action() {
        perform(&mut call, &mut io, action, &mut invite, &mut reinvite, &mut media).await;
    }
    if let Some(task) = media.take() {
        task.abort();
    }
    for (_, h) in io.pending.drain() {
        let _ = h.reply(StatusCode::CallTransactionDoesNotExist).await;
    }
    io.events.close();
    while let Ok(ev) = io.events.try_recv() {
        answer_orphan(ev).await;
    }
    if let Some(d) = &io.dialog {
        io.inner.layer.remove_dialog(&d.id());
    }
    (outcome, stats)
}

/// Carries out one action of a call.
async fn perform(
    call: &mut Call,
    io: &mut CallIo,
    action: Action,
    invite: &mut Option<InviteFut>,
    reinvite: &mut Option<ReinviteFut>,
    media: &mut Option<MediaTask>,
) {
    let clock = io.inner.clock;
    match action {
        Action::Invite { sdp, session_expires } => {
            let Some(mut opt) = io.invite.clone() else { return };
            opt.offer = Some(sdp.write().into_bytes());
            // RFC 4028 7.1: we support session timers and ask for this interval.
            opt.headers = Some(vec![
                Header::Supported("timer".into()),
                Header::SessionExpires(session_expires.as_secs().to_string().into()),
                Header::MinSE(MIN_SE.as_secs().to_string().into()),
            ]);
            match io.inner.layer.do_invite_async(opt, io.inner.state_tx.clone()) {
                Ok((dialog, handle)) => {
                    io.dialog = Some(dialog);
                    *invite = Some(handle);
                }
                Err(e) => call.handle(clock.now(), Input::InviteFailed(e.to_string())),
            }
        }
        Action::Cancel => {
            tracing::info!("no answer: CANCEL");
            if let Some(d) = &io.dialog
                && let Err(e) = d.cancel().await
            {
                tracing::debug!("CANCEL: {e}");
            }
        }
        Action::Ringing => {
            if let Some(d) = &io.dialog
                && let Err(e) = d.ringing(None, None)
            {
                tracing::debug!("180: {e}");
            }
        }
        Action::Accept { sdp, timer } => {
            let mut headers = sdp_header();
            headers.extend(timer_response_headers(timer));
            if let Some(d) = &io.dialog
                && let Err(e) = d.accept(Some(headers), Some(sdp.write().into_bytes()))
            {
                tracing::warn!("200 to the INVITE: {}", Scrubbed(&e));
            }
        }
        Action::Reject(status) => {
            if let Some(d) = &io.dialog
                && let Err(e) = d.reject(Some(StatusCode::from(status)), None)
            {
                tracing::debug!("{status} to the INVITE: {e}");
            }
        }
        Action::Reinvite { sdp, timer } => {
            if let Some(d) = io.dialog.clone() {
                let body = sdp.write().into_bytes();
                let mut headers = sdp_header();
                headers.extend(timer_request_headers(timer));
                *reinvite = Some(Box::pin(async move { d.reinvite(Some(headers), Some(body)).await }));
            }
        }
        Action::Answer { request, status, sdp, timer, reason } => {
            if let Some(h) = io.pending.remove(&request) {
                let mut headers = Vec::new();
                if (200..300).contains(&status) {
                    headers.extend(timer_response_headers(timer));
                }
                if let Some(r) = &reason {
                    tracing::info!(status, reason = %Scrubbed(&r), "request refused");
                    headers.push(warning(r));
                }
                if status == 422 {
                    headers.push(Header::MinSE(MIN_SE.as_secs().to_string().into()));
                }
                let r = match sdp {
                    Some(sdp) => {
                        headers.extend(sdp_header());
                        h.respond(StatusCode::from(status), Some(headers), Some(sdp.write().into_bytes())).await
                    }
                    None => h.respond(StatusCode::from(status), Some(headers), None).await,
                };
                if let Err(e) = r {
                    tracing::debug!("answer {status}: {e}");
                }
            }
        }
        Action::StartMedia(n) => match CallMedia::new(io.job.clone(), &n, clock.now(), io.seed) {
            Ok(m) => {
                let (tx, rx) = mpsc::unbounded_channel();
                *media = Some(spawn_media(m, io.audio.clone(), io.image.clone(), clock, rx, io.fax_events.clone()));
                io.media_cmd = Some(tx);
            }
            Err(e) => call.handle(clock.now(), Input::MediaFailed(e.to_string())),
        },
        Action::UpdateMedia(n) => {
            if let Some(tx) = &io.media_cmd {
                let _ = tx.send(MediaCmd::Update(n));
            }
        }
        Action::StopMedia => {
            if let Some(tx) = &io.media_cmd {
                let _ = tx.send(MediaCmd::HangUp);
            }
        }
        Action::Bye => {
            // rsipstack returns Ok even when the BYE went unanswered.
            if let Some(d) = &io.dialog
                && let Err(e) = d.hangup().await
            {
                tracing::debug!("BYE: {e}");
            }
        }
    }
}

async fn options_request(inner: &Arc<Inner>) -> Result<u16, CallError> {
    let sig = |e: rsipstack::Error| CallError::Signalling(e.to_string());
    let trunk = &inner.cfg.trunk;
    let domain = trunk.domain.clone().unwrap_or_else(|| trunk.address.clone());
    let uri: rsipstack::sip::Uri = format!("sip:{domain}")
        .as_str()
        .try_into()
        .map_err(|e: rsipstack::sip::Error| CallError::Signalling(e.to_string()))?;
    let me = contact_uri(inner, "").map_err(|e| CallError::Signalling(e.to_string()))?;
    let via = inner.endpoint.get_via(None, None).map_err(sig)?;
    let from = rsipstack::sip::typed::From { display_name: None, uri: me, params: vec![] }
        .with_tag(rsipstack::transaction::make_tag());
    let to = rsipstack::sip::typed::To { display_name: None, uri: uri.clone(), params: vec![] };
    let seq = inner.seq.fetch_add(1, Ordering::Relaxed) as u32;
    let req = inner.endpoint.make_request(Method::Options, uri, via, from, to, seq, None);
    let key = TransactionKey::from_request(&req, TransactionRole::Client).map_err(sig)?;
    let mut tx = Transaction::new_client(key, req, inner.endpoint.clone(), None);
    tx.destination = Some(SipAddr::from(inner.trunk_addr()?));
    tx.send().await.map_err(sig)?;
    while let Some(msg) = tx.receive().await {
        if let SipMessage::Response(r) = msg {
            let code = r.status_code.code();
            if code >= 200 {
                return Ok(code);
            }
        }
    }
    Err(CallError::Signalling("no response to OPTIONS".into()))
}

async fn keepalive_loop(inner: Arc<Inner>) {
    let every = Duration::from_secs(u64::from(inner.cfg.trunk.keepalive_secs.max(1)));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = inner.cancel.cancelled() => return,
        }
        if inner.peer().is_none() {
            continue; // the lookup warns
        }
        match options_request(&inner).await {
            Ok(code) => tracing::debug!(code, "trunk keep-alive"),
            Err(e) => tracing::warn!("trunk keep-alive: {}", Scrubbed(&e)),
        }
    }
}

async fn register_loop(inner: Arc<Inner>) {
    let Some(reg) = inner.cfg.trunk.registration.clone() else { return };
    let trunk = &inner.cfg.trunk;
    let credential = trunk.credentials.as_ref().map(|c| Credential {
        username: reg.user.clone(),
        password: c.password.clone(),
        realm: c.realm.clone(),
        auth_username: (c.username != reg.user).then(|| c.username.clone()),
    });
    let mut r = rsipstack::dialog::registration::Registration::new(inner.endpoint.clone(), credential);
    let Some(trunk_addr) = inner.resolved().await else { return };
    let server: rsipstack::sip::Uri = match format!("sip:{trunk_addr}").as_str().try_into() {
        Ok(u) => u,
        Err(e) => {
            tracing::error!("registrar URI: {}", Scrubbed(&e));
            return;
        }
    };
    let mut failures = 0u32;
    loop {
        let wait = match r.register(server.clone(), Some(reg.expires_secs)).await {
            Ok(resp) if resp.status_code.code() / 100 == 2 => {
                failures = 0;
                inner.counters.registered.store(true, Ordering::Relaxed);
                tracing::info!(expires = r.expires(), "registered");
                rsipstack::dialog::registration::refresh_interval(r.expires().max(30))
            }
            Ok(resp) => {
                failures += 1;
                inner.counters.registered.store(false, Ordering::Relaxed);
                tracing::warn!(status = resp.status_code.code(), "registration refused");
                rsipstack::dialog::registration::backoff_interval(failures)
            }
            Err(e) => {
                failures += 1;
                inner.counters.registered.store(false, Ordering::Relaxed);
                tracing::warn!("registration: {}", Scrubbed(&e));
                rsipstack::dialog::registration::backoff_interval(failures)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = inner.cancel.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flood from foreign sources gives one summary line at its start
    /// and one a minute later, with the busiest sources, however many
    /// packets come.
    #[test]
    fn drops_are_summed_up_at_most_once_a_minute() {
        let t0 = Instant::now();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.66".parse().unwrap(), "192.0.2.67".parse().unwrap());
        let mut d = DropLog::default();
        let first = d.record(t0, a).unwrap();
        assert_eq!(first, "dropped 1 packets from 1 sources that are not the trunk, top: 192.0.2.66 (1)");
        for i in 0..4999u64 {
            let ip = if i % 5 == 0 { b } else { a };
            assert_eq!(d.record(t0 + Duration::from_millis(i), ip), None);
        }
        assert_eq!(d.flush(t0 + Duration::from_secs(59)), None);
        let line = d.flush(t0 + Duration::from_secs(60)).unwrap();
        assert_eq!(
            line,
            "dropped 4999 packets from 2 sources that are not the trunk, top: 192.0.2.66 (3999), 192.0.2.67 (1000)"
        );
        assert_eq!(d.flush(t0 + Duration::from_secs(300)), None, "nothing new");
    }

    /// A trunk host that does not resolve (RFC 6761: `.invalid` never does)
    /// does not stop the user agent: it serves, and a call through the
    /// trunk fails at once as a network failure, saying why.
    #[tokio::test]
    async fn a_trunk_host_that_does_not_resolve_fails_calls_not_the_start() {
        let trunk: TrunkConfig =
            toml::from_str("name = \"carrier\"\naddress = \"carrier.invalid\"\nbind = \"127.0.0.1:0\"\n").unwrap();
        let cfg = UaConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            socket: None,
            advertise: None,
            media_ip: "127.0.0.1".parse().unwrap(),
            trunk,
            fax: FaxSettings::default(),
            clock: MediaClock::real_time(),
            user_agent: "test".into(),
        };
        let (ua, _reports) = UserAgent::start(cfg, Arc::new(|_: &IncomingCall| None)).await.unwrap();
        assert_eq!(ua.trunk_addr(), None);
        assert_eq!(ua.stats().active_calls, 0);
        let tiff = std::env::temp_dir().join(format!("faxgate-ua-test-{}.tiff", std::process::id()));
        std::fs::write(&tiff, b"II*\0").unwrap();
        let e = ua.send_fax("+4533221100", "+4570203040", tiff.clone()).await.unwrap_err();
        let _ = std::fs::remove_file(&tiff);
        assert!(matches!(&e, CallError::Signalling(m) if m.contains("carrier.invalid does not resolve")), "{e}");
        assert!(e.is_transient());
        assert_eq!(ua.stats().active_calls, 0, "no channel was taken");
        ua.shutdown();
    }

    /// The SIP library's per-datagram dumps are off unless asked for by name.
    #[test]
    fn library_dumps_are_off_by_default() {
        assert_eq!(log_filter("info"), "info,rsipstack=warn");
        assert_eq!(log_filter(""), "rsipstack=warn");
        assert_eq!(log_filter("debug,rsipstack=info"), "debug,rsipstack=info");
    }

    /// `Content-Length` must match the body; a `Warning` carries the reason.
    #[test]
    fn content_length_is_checked() {
        let req = |cl: &str, body: &str| {
            let text = format!(
                "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
                 From: <sip:1@127.0.0.1>;tag=a\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\
                 Content-Length: {cl}\r\n\r\n{body}"
            );
            match SipMessage::try_from(text.as_str()).unwrap() {
                SipMessage::Request(r) => r,
                SipMessage::Response(_) => unreachable!(),
            }
        };
        assert_eq!(check_content_length(&req("5", "hello")), Ok(()));
        assert_eq!(
            check_content_length(&req("500", "hello")),
            Err("Content-Length 500 disagrees with the body of 5 bytes".into())
        );
        assert!(check_content_length(&req("x", "hello")).unwrap_err().contains("not a number"));
        assert_eq!(warning("no \"quotes\" here").to_string(), "Warning: 399 faxgate \"no quotes here\"");
    }

    #[test]
    fn a_wildcard_bind_announces_the_address_towards_the_trunk() {
        assert_eq!(source_ip_towards("127.0.0.1:5060".parse().unwrap()), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(source_ip_towards("127.0.0.2:5060".parse().unwrap()), Some("127.0.0.1".parse().unwrap()));
    }
}
