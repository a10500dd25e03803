//! The user agent: one UDP signalling socket towards one trunk.
//!
//! rsipstack runs transactions and dialogs; this layer decides. Requests
//! from sources the trunk does not allow are dropped before rsipstack sees
//! them (no response, counted). A new INVITE is refused before answering:
//! at the channel limit (486 or 503, per trunk), with 400 for an unreadable
//! SDP, 404 when the number is not ours, 488 when no media fits. Otherwise
//! it gets 100, then 200 with our SDP, and the call runs in its own task:
//!
//! `Inviting` -> `Audio` -> `SwitchingToT38` -> `T38` -> `Ending`
//!
//! The answering side asks for T.38 at once; the calling side only after
//! the trunk's delay (both sides asking at once is glare). A 488/606 keeps
//! the audio call and the fax continues on G.711. A 491 is retried after
//! 2.1-4 s (we own the Call-ID) or 0-2 s (RFC 3261 14.1); a re-INVITE from
//! the peer while ours is pending gets 491 itself (RFC 3261 14.2). A
//! re-INVITE from the peer is answered with the intersection; a session
//! refresh gets the current media, and one without an offer gets our
//! current SDP as the offer. After phase E faxgate sends BYE itself.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rsipstack::EndpointBuilder;
use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{DialogState, DialogStateSender, TerminatedReason, TransactionHandle};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, SipMessage, StatusCode};
use rsipstack::transaction::endpoint::{EndpointOption, TransportEventInspector};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::connection::TransportEvent;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, TransportLayer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::call::{CallMedia, FaxJob, MediaClock, MediaCmd, MediaStats, bind_media, spawn_media};
use crate::sdp::{self, Capabilities, LocalMedia, Negotiated, SessionDescription};
use crate::session::{Direction, Event, FaxResult, FaxSettings};
use crate::sip::cause::CallError;
use crate::trunk::{MediaPreference, TrunkConfig};

/// Our own Call-ID suffix (rsipstack's default names its author).
const CALLID_SUFFIX: &str = "faxgate";
/// How long the answering side waits after the ACK before asking for T.38.
const RECEIVER_REINVITE_DELAY: Duration = Duration::from_millis(300);
/// Longest a call may last, in call time.
const MAX_CALL: Duration = Duration::from_secs(3600);

/// User agent settings.
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// Signalling address to bind (UDP).
    pub bind: SocketAddr,
    /// Address announced in Contact, Via and SDP when behind NAT.
    pub advertise: Option<IpAddr>,
    /// Address media sockets bind to.
    pub media_ip: IpAddr,
    /// The trunk.
    pub trunk: TrunkConfig,
    /// T.30 settings (ident, ECM...); the trunk's `ecm` overrides ECM.
    pub fax: FaxSettings,
    /// Media clock (real time, or faster in tests).
    pub time_scale: f64,
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

/// The states of a call, named after what they wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CallState {
    /// INVITE sent or received, not yet answered.
    Inviting,
    /// Answered, on G.711 audio.
    Audio,
    /// Our re-INVITE to T.38 is pending.
    SwitchingToT38,
    /// On T.38.
    T38,
    /// The fax ended or the call was cleared; BYE under way.
    Ending,
}

/// What happened on one call.
#[derive(Debug, Clone)]
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
    /// The states the call went through.
    pub states: Vec<CallState>,
    /// The peer's media address at the end.
    pub remote_media: Option<SocketAddr>,
    /// The peer's signalling address: the trunk for calls we placed, the
    /// INVITE's source (from its Via, with `received`/`rport`) for calls we
    /// were offered.
    pub signalling: Option<SocketAddr>,
    /// For an INVITE refused before answering (trunk at its channel limit,
    /// unreadable request or SDP, no acceptable media): the status it was
    /// refused with. None for answered calls; numbers that are not ours are
    /// refused by the router, which sees them first.
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
            result: None,
            t38: false,
            media: MediaStats::default(),
            peer_hung_up: false,
            events: Vec::new(),
            event_offsets: Vec::new(),
            answered_for: Duration::ZERO,
            t38_refused: 0,
            states: Vec::new(),
            remote_media: None,
            signalling: signalling_source(req),
            refused: Some(status),
        }
    }

    /// The SIP final status of the INVITE: the refusal, else 200.
    pub fn sip_status(&self) -> u16 {
        self.refused.unwrap_or(200)
    }
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
}

#[derive(Debug, Default)]
struct Counters {
    dropped_foreign: AtomicU64,
    refused_busy: AtomicU64,
    refused_unknown: AtomicU64,
    bad_requests: AtomicU64,
    options_answered: AtomicU64,
}

/// Dialog events routed to a call.
enum SipEvent {
    Update(rsipstack::sip::Request, TransactionHandle),
    Other(TransactionHandle),
    Terminated(TerminatedReason),
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
    /// The address announced in Contact and SDP when nothing is configured.
    reach_ip: IpAddr,
    trunk_addr: SocketAddr,
    clock: MediaClock,
    cancel: CancellationToken,
    seq: AtomicU64,
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
    resolved: SocketAddr,
    counters: Arc<Counters>,
}

#[async_trait::async_trait]
impl TransportEventInspector for SourceFilter {
    async fn handle(&self, event: TransportEvent) -> Option<TransportEvent> {
        if let TransportEvent::Incoming(SipMessage::Request(_), _, from) = &event {
            let ip = from.get_socketaddr().ok().map(|a| a.ip());
            if !ip.is_some_and(|ip| self.trunk.allows(ip, Some(self.resolved))) {
                self.counters.dropped_foreign.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%from, "request from a source that is not the trunk: dropped");
                return None;
            }
        }
        Some(event)
    }
}

fn user_of(uri: &rsipstack::sip::Uri) -> String {
    uri.auth.as_ref().map(|a| a.user.clone()).unwrap_or_default()
}

fn sdp_header() -> Vec<Header> {
    vec![Header::ContentType("application/sdp".into())]
}

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
        let trunk_addr = tokio::net::lookup_host((cfg.trunk.address.as_str(), cfg.trunk.port))
            .await?
            .next()
            .ok_or(Error::InvalidSetting("trunk address does not resolve"))?;
        let cancel = CancellationToken::new();
        let transport = TransportLayer::new(cancel.clone());
        let external = cfg.advertise.map(|ip| SocketAddr::new(ip, cfg.bind.port()));
        let conn = UdpConnection::create_connection(cfg.bind, external, Some(cancel.child_token()))
            .await
            .map_err(|e| Error::Sip(format!("bind {}: {e}", cfg.bind)))?;
        let local = conn.get_addr().get_socketaddr().map_err(|e| Error::Sip(e.to_string()))?;
        // Bound to a wildcard address without `advertise`: announce the
        // address the kernel sends from towards the trunk, never 0.0.0.0
        // (which an SDP peer reads as "on hold").
        let reach_ip =
            if local.ip().is_unspecified() { source_ip_towards(trunk_addr).unwrap_or(local.ip()) } else { local.ip() };
        transport.add_transport(conn.into());
        let counters = Arc::new(Counters::default());
        let option = EndpointOption { callid_suffix: Some(CALLID_SUFFIX.into()), ..EndpointOption::default() };
        let endpoint = EndpointBuilder::new()
            .with_cancel_token(cancel.clone())
            .with_transport_layer(transport)
            .with_user_agent(&cfg.user_agent)
            .with_option(option)
            .with_transport_inspector(Box::new(SourceFilter {
                trunk: cfg.trunk.clone(),
                resolved: trunk_addr,
                counters: counters.clone(),
            }))
            .build();
        let incoming = endpoint.incoming_transactions().map_err(|e| Error::Sip(e.to_string()))?;
        let layer = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let (state_tx, state_rx) = layer.new_dialog_state_channel();
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            clock: MediaClock { epoch: Instant::now(), scale: cfg.time_scale },
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
            reach_ip,
            trunk_addr,
            cancel: cancel.clone(),
            seq: AtomicU64::new(1),
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
        tokio::spawn(serve_requests(inner.clone(), incoming));
        if inner.cfg.trunk.registration.is_some() {
            tokio::spawn(register_loop(inner.clone()));
        }
        if inner.cfg.trunk.keepalive_secs > 0 {
            tokio::spawn(keepalive_loop(inner.clone()));
        }
        Ok((Self { inner }, reports_rx))
    }

    /// The trunk's signalling address, as resolved at start.
    pub fn trunk_addr(&self) -> SocketAddr {
        self.inner.trunk_addr
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
        }
    }

    /// Clears every call in progress (BYE); their reports say what was
    /// transferred.
    pub fn hang_up_all(&self) {
        for tx in self.inner.calls.lock().unwrap_or_else(|p| p.into_inner()).values() {
            let _ = tx.send(SipEvent::HangUp);
        }
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
        self.send_fax_with(to, from, tiff, None, None).await
    }

    /// [`Self::send_fax`] with this call's own T.30 settings (a retry after a
    /// failed transfer goes slower and without ECM) and, when `call_id` is
    /// given, that Call-ID (so that the caller can record it before the call).
    pub async fn send_fax_with(
        &self,
        to: &str,
        from: &str,
        tiff: PathBuf,
        settings: Option<FaxSettings>,
        call_id: Option<String>,
    ) -> Result<CallReport, CallError> {
        let inner = &self.inner;
        let trunk = &inner.cfg.trunk;
        if !tiff.is_file() {
            return Err(CallError::Engine(format!("no such file: {}", tiff.display())));
        }
        let Some(_slot) = ChannelSlot::take(inner) else {
            return Err(CallError::NoChannel);
        };
        let (audio, image) = bind_media(inner.cfg.media_ip).await.map_err(|e| CallError::Engine(e.to_string()))?;
        let local_media = local_media(inner, &audio, &image).map_err(|e| CallError::Engine(e.to_string()))?;
        let caps = trunk.capabilities();
        let session_id = random_u64() >> 1;
        let offer = match trunk.media {
            MediaPreference::T38Initial => sdp::offer_t38(&caps, &local_media, session_id, 1),
            _ => sdp::offer_audio(&caps, &local_media, session_id, 1),
        };
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
        let call_id = call_id.unwrap_or_else(|| format!("{:016x}@{CALLID_SUFFIX}", random_u64()));
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        inner.calls.lock().unwrap_or_else(|p| p.into_inner()).insert(call_id.clone(), ev_tx);
        let _registered = Registered(inner.clone(), call_id.clone());
        let opt = InviteOption {
            caller,
            callee,
            contact,
            destination: Some(SipAddr::from(inner.trunk_addr)),
            content_type: Some("application/sdp".into()),
            offer: Some(offer.write().into_bytes()),
            credential: trunk.credentials.as_ref().map(|c| Credential {
                username: c.username.clone(),
                password: c.password.clone(),
                realm: c.realm.clone(),
                auth_username: None,
            }),
            call_id: Some(call_id.clone()),
            ..Default::default()
        };
        let (dialog, handle) = inner
            .layer
            .do_invite_async(opt, inner.state_tx.clone())
            .map_err(|e| CallError::Signalling(e.to_string()))?;
        let mut handle = handle;
        let answer_timeout = Duration::from_secs(u64::from(trunk.answer_timeout_secs));
        let outcome = tokio::select! {
            r = &mut handle => r,
            _ = tokio::time::sleep(answer_timeout) => {
                tracing::info!(%call_id, "no answer: CANCEL");
                let _ = dialog.cancel().await;
                match tokio::time::timeout(Duration::from_secs(40), &mut handle).await {
                    Ok(r) => r,
                    Err(_) => return Err(CallError::NoAnswer(408)),
                }
            }
        };
        let resp = match outcome {
            Ok(Ok((_id, Some(resp)))) => resp,
            Ok(Ok((_id, None))) => return Err(CallError::Signalling("no final response".into())),
            Ok(Err(e)) => return Err(CallError::Signalling(e.to_string())),
            Err(e) => return Err(CallError::Signalling(e.to_string())),
        };
        let code = resp.status_code.code();
        if !(200..300).contains(&code) {
            return Err(CallError::from_status(code));
        }
        let negotiated = SessionDescription::parse(&resp.body)
            .map_err(|e| e.to_string())
            .and_then(|a| sdp::accept_answer(&caps, &a).map_err(|e| e.to_string()));
        let negotiated = match negotiated {
            Ok(n) => n,
            Err(e) => {
                let _ = dialog.bye().await;
                return Err(CallError::BadSdp(e));
            }
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
        };
        let ctx = CallCtx {
            inner: inner.clone(),
            dialog,
            call_id,
            incoming: false,
            caller: from.to_string(),
            called: to.to_string(),
            caps,
            local_media,
            local_sdp: offer,
            negotiated,
            job,
            audio,
            image,
            events: ev_rx,
            signalling: Some(inner.trunk_addr),
        };
        run_call(ctx).await.map_err(|e| CallError::Engine(e.to_string()))
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
        .unwrap_or_else(|| if inner.cfg.media_ip.is_unspecified() { inner.reach_ip } else { inner.cfg.media_ip })
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
    let ip = inner.cfg.advertise.unwrap_or(inner.reach_ip);
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
                (id, SipEvent::Terminated(reason))
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
        SipEvent::Terminated(_) | SipEvent::HangUp => {}
    }
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
    let Some(slot) = ChannelSlot::take(&inner) else {
        inner.counters.refused_busy.fetch_add(1, Ordering::Relaxed);
        let status = refuse(&tx.original, trunk.busy_status);
        return tx.reply(status).await.map_err(sip);
    };
    let (screened, _, call) = match screen_invite(&tx.original, &trunk.capabilities(), &local_probe(&inner)) {
        Ok(x) => x,
        Err(refusal) => {
            if refusal == Refusal::BadRequest {
                inner.counters.bad_requests.fetch_add(1, Ordering::Relaxed);
            }
            let status = refuse(&tx.original, refusal.status());
            return tx.reply(status).await.map_err(sip);
        }
    };
    let IncomingCall { call_id, caller, called, signalling } = call.clone();
    let Some(path) = (inner.router)(&call) else {
        inner.counters.refused_unknown.fetch_add(1, Ordering::Relaxed);
        return tx.reply(StatusCode::NotFound).await.map_err(sip);
    };
    let (audio, image) = bind_media(inner.cfg.media_ip).await?;
    let local = local_media(&inner, &audio, &image)?;
    let caps = trunk.capabilities();
    // The same answer, now with the real media ports.
    let (answer, negotiated) = match SessionDescription::parse(&tx.original.body)
        .and_then(|offer| sdp::answer(&caps, &offer, &local, screened.session_id, 1))
    {
        Ok(a) => a,
        Err(_) => {
            let status = refuse(&tx.original, 488);
            return tx.reply(status).await.map_err(sip);
        }
    };
    let contact = contact_uri(&inner, &called)?;
    let dialog =
        inner.layer.get_or_create_server_invite(&tx, inner.state_tx.clone(), None, Some(contact)).map_err(sip)?;
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    inner.calls.lock().unwrap_or_else(|p| p.into_inner()).insert(call_id.clone(), ev_tx);
    let _registered = Registered(inner.clone(), call_id.clone());
    tx.send_trying().await.map_err(sip)?;
    let delay = Duration::from_secs(u64::from(trunk.answer_delay_secs)).div_f64(inner.clock.scale);
    let ringing = (!delay.is_zero()).then(|| tx.original.clone());
    if ringing.is_some() {
        dialog.ringing(None, None).map_err(sip)?;
    }
    let mut d2 = dialog.clone();
    tokio::spawn(async move {
        if let Err(e) = d2.handle(&mut tx).await {
            tracing::debug!("INVITE transaction: {e}");
        }
    });
    if let Some(invite) = ringing {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            // Before the answer only the caller's CANCEL (answered 487 by
            // the dialog) or the transaction's end can come.
            _ = ev_rx.recv() => {
                tracing::info!(%call_id, "the caller gave up while it rang");
                refuse(&invite, 487);
                return Ok(());
            }
        }
    }
    dialog.accept(Some(sdp_header()), Some(answer.write().into_bytes())).map_err(sip)?;
    let job = FaxJob { direction: Direction::Receive { tiff: path }, calling: false, settings: fax_settings(&inner) };
    let ctx = CallCtx {
        inner: inner.clone(),
        dialog,
        call_id: call_id.clone(),
        incoming: true,
        caller,
        called,
        caps,
        local_media: local,
        local_sdp: answer,
        negotiated,
        job,
        audio,
        image,
        events: ev_rx,
        signalling,
    };
    let _slot = slot;
    match run_call(ctx).await {
        Ok(report) => {
            let _ = inner.reports.send(report);
        }
        Err(e) => tracing::warn!("incoming call: {e}"),
    }
    Ok(())
}

/// Why an INVITE is refused before answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unreadable request or SDP: 400.
    BadRequest,
    /// No offer, or nothing acceptable in it: 488.
    NotAcceptable,
}

impl Refusal {
    /// The SIP status to answer with.
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::NotAcceptable => 488,
        }
    }
}

/// Checks a new INVITE before any resource is taken: its SDP offer and
/// the identities it carries. Pure, so that it is fuzzed directly.
pub fn screen_invite(
    req: &rsipstack::sip::Request,
    caps: &Capabilities,
    local: &LocalMedia,
) -> Result<(SessionDescription, Negotiated, IncomingCall), Refusal> {
    let call_id = req.call_id_header().map_err(|_| Refusal::BadRequest)?.value().to_string();
    let called = user_of(&req.uri);
    let caller = req.from_header().ok().and_then(|f| f.uri().ok()).map(|u| user_of(&u)).unwrap_or_default();
    if req.body.is_empty() {
        // A late offer (INVITE without SDP) is not supported.
        return Err(Refusal::NotAcceptable);
    }
    let offer = SessionDescription::parse(&req.body).map_err(|_| Refusal::BadRequest)?;
    let (answer, negotiated) =
        sdp::answer(caps, &offer, local, random_u64() >> 1, 1).map_err(|_| Refusal::NotAcceptable)?;
    Ok((answer, negotiated, IncomingCall { call_id, caller, called, signalling: signalling_source(req) }))
}

/// Local media as announced before the sockets are bound (screening only).
fn local_probe(inner: &Inner) -> LocalMedia {
    LocalMedia { addr: advertised_ip(inner), audio_port: 9, image_port: 9 }
}

struct CallCtx {
    inner: Arc<Inner>,
    dialog: InviteDialog,
    call_id: String,
    incoming: bool,
    caller: String,
    called: String,
    caps: Capabilities,
    local_media: LocalMedia,
    local_sdp: SessionDescription,
    negotiated: Negotiated,
    job: FaxJob,
    audio: Arc<tokio::net::UdpSocket>,
    image: Arc<tokio::net::UdpSocket>,
    events: mpsc::UnboundedReceiver<SipEvent>,
    signalling: Option<SocketAddr>,
}

type ReinviteFut = Pin<Box<dyn Future<Output = rsipstack::Result<Option<rsipstack::sip::Response>>> + Send>>;

async fn run_call(mut c: CallCtx) -> Result<CallReport, Error> {
    let inner = c.inner.clone();
    let clock = inner.clock;
    let media = CallMedia::new(c.job.clone(), &c.negotiated, clock.now(), random_u64())?;
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (fev_tx, mut fev_rx) = mpsc::unbounded_channel();
    let mut media_task = spawn_media(media, c.audio.clone(), c.image.clone(), clock, cmd_rx, fev_tx);
    let mut state = if c.negotiated.is_t38() { CallState::T38 } else { CallState::Audio };
    let mut states = vec![CallState::Inviting, state];
    let mut fax_events = Vec::new();
    let mut event_offsets = Vec::new();
    let answered = Instant::now();
    let mut peer_hung_up = false;
    let mut t38_refused = 0u32;
    let mut version = c.local_sdp.session_version;
    // When to ask for T.38 ourselves (sim time converted to real).
    let wants_t38 = c.caps.t38 && inner.cfg.trunk.media != MediaPreference::AudioOnly;
    let first_delay = if c.incoming {
        RECEIVER_REINVITE_DELAY
    } else {
        Duration::from_secs(u64::from(inner.cfg.trunk.sender_reinvite_delay_secs))
    };
    let mut reinvite_at: Option<tokio::time::Instant> = (wants_t38 && state == CallState::Audio)
        .then(|| tokio::time::Instant::now() + first_delay.div_f64(clock.scale));
    let mut pending: Option<ReinviteFut> = None;
    let mut pending_sdp: Option<SessionDescription> = None;
    let max_call = tokio::time::sleep(MAX_CALL.div_f64(clock.scale));
    tokio::pin!(max_call);
    let (result, stats) = loop {
        tokio::select! {
            r = &mut media_task => {
                let (res, stats) = r.unwrap_or((None, Default::default()));
                break (res, stats);
            }
            Some(ev) = fev_rx.recv() => {
                if let Event::Page(p) = &ev {
                    let what = if c.incoming { "page received" } else { "page sent" };
                    tracing::info!(call_id = %c.call_id, page = p.page, bad_rows = p.bad_rows, "{what}");
                }
                fax_events.push(ev);
                event_offsets.push(answered.elapsed());
            }
            _ = async { tokio::time::sleep_until(reinvite_at.unwrap_or_else(tokio::time::Instant::now)).await }, if reinvite_at.is_some() && pending.is_none() => {
                reinvite_at = None;
                if state == CallState::Audio {
                    version += 1;
                    let offer = sdp::offer_t38(&c.caps, &c.local_media, c.local_sdp.session_id, version);
                    let d = c.dialog.clone();
                    let body = offer.write().into_bytes();
                    pending_sdp = Some(offer);
                    pending = Some(Box::pin(async move { d.reinvite(Some(sdp_header()), Some(body)).await }));
                    state = CallState::SwitchingToT38;
                    states.push(state);
                }
            }
            r = async { pending.as_mut().expect("guarded").await }, if pending.is_some() => {
                pending = None;
                let offer = pending_sdp.take();
                let code = match &r {
                    Ok(Some(resp)) => resp.status_code.code(),
                    Ok(None) => 0,
                    Err(e) => { tracing::info!(call_id = %c.call_id, "re-INVITE: {e}"); 0 }
                };
                if state != CallState::SwitchingToT38 {
                    // The call moved on meanwhile (ended, or the peer's own re-INVITE won).
                    continue;
                }
                match (code, r) {
                    (200..=299, Ok(Some(resp))) => {
                        match SessionDescription::parse(&resp.body).map_err(|e| e.to_string()).and_then(|a| sdp::accept_answer(&c.caps, &a).map_err(|e| e.to_string())) {
                            Ok(n) if n.is_t38() => {
                                if let Some(o) = offer { c.local_sdp = o; }
                                c.negotiated = n.clone();
                                let _ = cmd_tx.send(MediaCmd::Update(n));
                                state = CallState::T38;
                            }
                            Ok(_) | Err(_) => {
                                tracing::info!(call_id = %c.call_id, "re-INVITE answer not T.38: staying on audio");
                                state = CallState::Audio;
                            }
                        }
                    }
                    (491, _) => {
                        // RFC 3261 14.1: the Call-ID owner waits 2.1-4 s, the other 0-2 s.
                        let ms = if c.incoming { random_u64() % 2000 } else { 2100 + random_u64() % 1900 };
                        reinvite_at = Some(tokio::time::Instant::now() + Duration::from_millis(ms));
                        state = CallState::Audio;
                    }
                    (488 | 606, _) => {
                        t38_refused += 1;
                        state = CallState::Audio;
                    }
                    _ => state = CallState::Audio,
                }
                states.push(state);
            }
            ev = c.events.recv() => match ev {
                Some(SipEvent::Update(req, handle)) => {
                    if state == CallState::SwitchingToT38 {
                        let _ = handle.reply(StatusCode::RequestPending).await;
                        continue;
                    }
                    if req.body.is_empty() {
                        // A refresh without an offer: offer what we have.
                        version += 1;
                        c.local_sdp.session_version = version;
                        let _ = handle.respond(StatusCode::OK, Some(sdp_header()), Some(c.local_sdp.write().into_bytes())).await;
                        continue;
                    }
                    let offer = match SessionDescription::parse(&req.body) {
                        Ok(o) => o,
                        Err(_) => { let _ = handle.reply(StatusCode::BadRequest).await; continue; }
                    };
                    // On T.38, a refresh that still offers image gets image,
                    // never audio (session timers have cut faxes that way).
                    let mut caps = c.caps.clone();
                    if state == CallState::T38 && offer.media.iter().any(|m| m.is_t38() && m.port != 0) {
                        caps.audio = false;
                    }
                    if state == CallState::Audio && !wants_t38 {
                        caps.t38 = false;
                    }
                    version += 1;
                    match sdp::answer(&caps, &offer, &c.local_media, c.local_sdp.session_id, version) {
                        Ok((ans, n)) => {
                            let _ = handle.respond(StatusCode::OK, Some(sdp_header()), Some(ans.write().into_bytes())).await;
                            c.local_sdp = ans;
                            if n.is_t38() && state != CallState::T38 {
                                state = CallState::T38;
                                states.push(state);
                            }
                            c.negotiated = n.clone();
                            let _ = cmd_tx.send(MediaCmd::Update(n));
                            reinvite_at = None;
                        }
                        Err(_) => {
                            let _ = handle.reply(StatusCode::NotAcceptableHere).await;
                        }
                    }
                }
                Some(SipEvent::Other(handle)) => {
                    let _ = handle.reply(StatusCode::OK).await;
                }
                Some(SipEvent::Terminated(reason)) => {
                    tracing::info!(call_id = %c.call_id, ?reason, "dialog terminated");
                    peer_hung_up = true;
                    let _ = cmd_tx.send(MediaCmd::HangUp);
                }
                Some(SipEvent::HangUp) => {
                    let _ = cmd_tx.send(MediaCmd::HangUp);
                }
                None => {}
            },
            _ = &mut max_call => {
                let _ = cmd_tx.send(MediaCmd::HangUp);
            }
        }
    };
    while let Ok(ev) = fev_rx.try_recv() {
        fax_events.push(ev);
        event_offsets.push(answered.elapsed());
    }
    let answered_for = answered.elapsed();
    states.push(CallState::Ending);
    if !peer_hung_up {
        // Phase E reached: we hang up (a silent peer would keep the call up).
        if let Err(e) = c.dialog.hangup().await {
            tracing::debug!(call_id = %c.call_id, "BYE: {e}");
        }
    }
    inner.layer.remove_dialog(&c.dialog.id());
    Ok(CallReport {
        call_id: c.call_id,
        incoming: c.incoming,
        caller: c.caller,
        called: c.called,
        t38: states.contains(&CallState::T38),
        result,
        media: stats,
        peer_hung_up,
        events: fax_events,
        event_offsets,
        answered_for,
        t38_refused,
        states,
        remote_media: Some(c.negotiated.remote()),
        signalling: c.signalling,
        refused: None,
    })
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
    tx.destination = Some(SipAddr::from(inner.trunk_addr));
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
        match options_request(&inner).await {
            Ok(code) => tracing::debug!(code, "trunk keep-alive"),
            Err(e) => tracing::warn!("trunk keep-alive: {e}"),
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
    let server: rsipstack::sip::Uri = match format!("sip:{}", inner.trunk_addr).as_str().try_into() {
        Ok(u) => u,
        Err(e) => {
            tracing::error!("registrar URI: {e}");
            return;
        }
    };
    let mut failures = 0u32;
    loop {
        let wait = match r.register(server.clone(), Some(reg.expires_secs)).await {
            Ok(resp) if resp.status_code.code() / 100 == 2 => {
                failures = 0;
                tracing::info!(expires = r.expires(), "registered");
                rsipstack::dialog::registration::refresh_interval(r.expires().max(30))
            }
            Ok(resp) => {
                failures += 1;
                tracing::warn!(status = resp.status_code.code(), "registration refused");
                rsipstack::dialog::registration::backoff_interval(failures)
            }
            Err(e) => {
                failures += 1;
                tracing::warn!("registration: {e}");
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

    #[test]
    fn a_wildcard_bind_announces_the_address_towards_the_trunk() {
        assert_eq!(source_ip_towards("127.0.0.1:5060".parse().unwrap()), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(source_ip_towards("127.0.0.2:5060".parse().unwrap()), Some("127.0.0.1".parse().unwrap()));
    }
}
