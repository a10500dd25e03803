//! Call control of one fax call, sans-IO: every decision of a call's life.
//!
//! In: [`Call::handle`] with `now` and an [`Input`] (a SIP event the driver
//! saw, a media report), [`Call::handle_timeout`]. Out: [`Call::poll_action`]
//! (what to send, what the media must do), [`Call::poll_timeout`] (the next
//! deadline of the named [`Timer`]s) and, once the call is over,
//! [`Call::outcome`]. Randomness (glare backoff, SDP session ids) comes from
//! the seed given at creation. The driver ([`super::ua`]) owns rsipstack, the
//! sockets and one sleep reset to [`Call::poll_timeout`].
//!
//! `Inviting` -> `Audio` -> `SwitchingToT38` -> `T38` -> `Ending`, with
//! session refreshes (RFC 4028, [`super::session_timer`]) on the way.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::sdp::{self, Capabilities, LocalMedia, Negotiated, SessionDescription};
use crate::session::{Event, FaxResult};
use crate::sip::cause::CallError;
use crate::sip::session_timer::{MIN_SE, SESSION_EXPIRES, SessionExpires, SessionTimer};
use crate::trunk::{MediaPreference, TrunkConfig};

/// How long the answering side waits after answering before it asks for
/// T.38 itself (receiver-initiated switching avoids glare).
pub const RECEIVER_SWITCH_DELAY: Duration = Duration::from_millis(300);
/// Longest a call may last; then the fax is stopped and the call cleared.
pub const MAX_CALL: Duration = Duration::from_secs(3600);
/// How long to wait for the INVITE's final response after our CANCEL (the
/// INVITE client transaction ends after 64*T1 = 32 s, RFC 3261 17.1.1.2).
pub const CANCEL_GRACE: Duration = Duration::from_secs(40);
/// How long the media may take to report its end once told to stop.
pub const MEDIA_STOP_GRACE: Duration = Duration::from_secs(10);
/// A session refresh that finds another re-INVITE of ours pending waits this long.
const REFRESH_RETRY: Duration = Duration::from_secs(2);

/// The states of a call, named after what they wait for (as the report lists them).
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

/// Why an INVITE is refused before answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Unreadable request or SDP: 400; what was wrong.
    BadRequest(String),
    /// No offer, or nothing acceptable in it: 488; why.
    NotAcceptable(String),
    /// `Session-Expires` below our `Min-SE`: 422 (RFC 4028 6).
    IntervalTooSmall,
}

impl Refusal {
    /// The SIP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::NotAcceptable(_) => 488,
            Self::IntervalTooSmall => 422,
        }
    }

    /// What was wrong, for a `Warning` header.
    pub fn reason(&self) -> &str {
        match self {
            Self::BadRequest(r) | Self::NotAcceptable(r) => r,
            Self::IntervalTooSmall => "Session-Expires below Min-SE",
        }
    }
}

/// A request from the peer that needs an answer, named by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// The named timers of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Calling: no final answer in time; CANCEL.
    NoAnswer,
    /// Calling: CANCEL sent, the final response still missing; give up.
    CancelGrace,
    /// Answering: the call has rung long enough; answer it.
    Ring,
    /// Ask for T.38 ourselves (receiver soon, sender after the trunk's delay).
    T38Switch,
    /// Ask for T.38 again after a 491 (RFC 3261 14.1).
    GlareBackoff,
    /// We refresh the session (RFC 4028 7.4).
    SessionRefresh,
    /// The peer has not refreshed the session; end it (RFC 4028 10).
    SessionExpiry,
    /// The longest call time is reached; stop the fax.
    MaxCall,
    /// The media was told to stop and has not reported; end without it.
    MediaStop,
}

impl Timer {
    const COUNT: usize = 9;
    const ALL: [Timer; Self::COUNT] = [
        Timer::NoAnswer,
        Timer::CancelGrace,
        Timer::Ring,
        Timer::T38Switch,
        Timer::GlareBackoff,
        Timer::SessionRefresh,
        Timer::SessionExpiry,
        Timer::MaxCall,
        Timer::MediaStop,
    ];
}

/// One deadline per named timer; the next deadline is their minimum.
#[derive(Debug, Clone, Default)]
struct TimerTable([Option<Instant>; Timer::COUNT]);

impl TimerTable {
    fn set(&mut self, t: Timer, at: Instant) {
        self.0[t as usize] = Some(at);
    }

    fn stop(&mut self, t: Timer) {
        self.0[t as usize] = None;
    }

    fn get(&self, t: Timer) -> Option<Instant> {
        self.0[t as usize]
    }

    fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }

    /// The earliest timer due at `now`.
    fn expired(&self, now: Instant) -> Option<Timer> {
        Timer::ALL.into_iter().filter(|t| self.get(*t).is_some_and(|at| at <= now)).min_by_key(|t| self.get(*t))
    }
}

/// What the driver saw.
#[derive(Debug, Clone)]
pub enum Input {
    /// The final response to our INVITE (the driver does not pass 1xx).
    InviteResponse {
        /// Its status.
        status: u16,
        /// Its body (the SDP answer of a 2xx).
        body: Vec<u8>,
        /// Its `Session-Expires`.
        session_expires: Option<SessionExpires>,
        /// Its `Min-SE` (a 422 names the interval it wants).
        min_se: Option<Duration>,
    },
    /// Our INVITE's transaction failed without a final response.
    InviteFailed(String),
    /// The final response to our re-INVITE.
    ReinviteResponse {
        /// Its status.
        status: u16,
        /// Its body.
        body: Vec<u8>,
        /// Its `Session-Expires`.
        session_expires: Option<SessionExpires>,
    },
    /// Our re-INVITE's transaction failed without a final response.
    ReinviteFailed,
    /// The peer's re-INVITE or UPDATE (an offer, a session refresh, or a
    /// refresh without an offer when `body` is empty). Answered by an
    /// [`Action::Answer`] naming `request`.
    PeerReinvite {
        /// The driver's name for it.
        request: RequestId,
        /// Its body.
        body: Vec<u8>,
        /// An UPDATE rather than a re-INVITE.
        update: bool,
        /// Its `Session-Expires`.
        session_expires: Option<SessionExpires>,
    },
    /// Another request inside the dialog (INFO, OPTIONS, NOTIFY...).
    PeerRequest {
        /// The driver's name for it.
        request: RequestId,
    },
    /// The dialog ended from the peer's side: BYE, a CANCEL while it
    /// rang, or a transaction timeout (no ACK).
    PeerHungUp,
    /// Clear the call (a local decision).
    HangUp,
    /// A fax event from the media.
    Fax(Event),
    /// The media ended; the fax's result when it reached phase E.
    MediaEnded(Option<FaxResult>),
    /// The media could not start or run.
    MediaFailed(String),
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send the INVITE with this offer, asking for this session interval
    /// (`Supported: timer`, `Session-Expires`, `Min-SE`).
    Invite {
        /// The offer.
        sdp: SessionDescription,
        /// The session interval asked for.
        session_expires: Duration,
    },
    /// CANCEL our INVITE.
    Cancel,
    /// Send 180 Ringing.
    Ringing,
    /// Answer the INVITE: 200 with this SDP (and the session timer's headers).
    Accept {
        /// The answer.
        sdp: SessionDescription,
        /// The session timer, when there is one.
        timer: Option<SessionTimer>,
    },
    /// Refuse the INVITE with this status (it has not been answered).
    Reject(u16),
    /// Send a re-INVITE with this offer (a switch to T.38 or a session refresh).
    Reinvite {
        /// The offer.
        sdp: SessionDescription,
        /// The session timer, when there is one.
        timer: Option<SessionTimer>,
    },
    /// Answer a request of the peer.
    Answer {
        /// Which one.
        request: RequestId,
        /// The status.
        status: u16,
        /// The SDP to send with it.
        sdp: Option<SessionDescription>,
        /// The session timer, when there is one (2xx to a re-INVITE or UPDATE).
        timer: Option<SessionTimer>,
        /// Why it is refused, for a `Warning` header.
        reason: Option<String>,
    },
    /// Start the fax on this media.
    StartMedia(Negotiated),
    /// The media changed: a new address, or a switch to T.38.
    UpdateMedia(Negotiated),
    /// End the fax now (T.30 goes to phase E with what it has).
    StopMedia,
    /// Send BYE.
    Bye,
}

/// What an answered call did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The fax's result (None if it never reached phase E).
    pub result: Option<FaxResult>,
    /// The fax ran on T.38 (a later re-INVITE back to audio does not change it).
    pub t38: bool,
    /// The peer hung up (or the dialog timed out) before the fax ended.
    pub peer_hung_up: bool,
    /// Fax events in order.
    pub events: Vec<Event>,
    /// When each event came, as call time since the answer.
    pub event_offsets: Vec<Duration>,
    /// Call time from the answer to the end.
    pub answered_for: Duration,
    /// Re-INVITEs to T.38 the peer refused (488/606).
    pub t38_refused: u32,
    /// Calling: the T.38 offer of the INVITE was refused (488, 415, 606) and
    /// the call was placed again with audio.
    pub t38_initial_refused: bool,
    /// The session interval, when a session timer ran (RFC 4028).
    pub session_interval: Option<Duration>,
    /// Session refreshes we sent and had accepted.
    pub refreshes_sent: u32,
    /// Session refreshes (re-INVITEs, UPDATEs) the peer sent and we accepted.
    pub refreshes_received: u32,
    /// The peer let the session expire; we ended the call.
    pub session_expired: bool,
    /// The states the call went through.
    pub states: Vec<CallState>,
    /// The peer's media address (from the SDP) at the end.
    pub remote_media: Option<SocketAddr>,
}

/// How a call ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The call was answered; this is what happened.
    Ended(Box<Summary>),
    /// Our call failed before it was answered (or its answer was unusable).
    Failed(CallError),
    /// A call offered to us ended before we answered it; the status its
    /// INVITE got (487 when the caller gave up).
    Unanswered(u16),
}

/// Settings of one call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallConfig {
    /// What we offer and accept.
    pub caps: Capabilities,
    /// Our media sockets as announced.
    pub local: LocalMedia,
    /// Where the peer's media may be (the SDP's addresses must be among
    /// them); empty: anywhere.
    pub media_sources: Vec<IpAddr>,
    /// Calling: offer T.38 in the INVITE itself.
    pub t38_initial: bool,
    /// Ask for T.38 (in the INVITE when `t38_initial`, else by re-INVITE
    /// after the answer). False: the call stays in audio unless the peer
    /// asks for T.38 (a destination known to refuse it).
    pub ask_t38: bool,
    /// After the answer, how long to wait before asking for T.38.
    pub t38_switch_delay: Duration,
    /// Calling: CANCEL after this long without a final answer.
    pub answer_timeout: Duration,
    /// Answering: ring this long before answering (zero: answer at once).
    pub ring: Duration,
    /// Longest call.
    pub max_call: Duration,
    /// Calling: the session interval to ask for (RFC 4028).
    pub session_expires: Duration,
}

impl CallConfig {
    /// The settings `trunk` gives a call we place (`incoming` false) or
    /// answer; `media_sources` as the trunk resolves them.
    pub fn for_trunk(trunk: &TrunkConfig, local: LocalMedia, media_sources: Vec<IpAddr>, incoming: bool) -> Self {
        Self {
            caps: trunk.capabilities(),
            local,
            media_sources,
            t38_initial: trunk.media == MediaPreference::T38Initial,
            ask_t38: true,
            t38_switch_delay: if incoming {
                RECEIVER_SWITCH_DELAY
            } else {
                Duration::from_secs(u64::from(trunk.sender_reinvite_delay_secs))
            },
            answer_timeout: Duration::from_secs(u64::from(trunk.answer_timeout_secs)),
            ring: Duration::from_secs(u64::from(trunk.answer_delay_secs)),
            max_call: MAX_CALL,
            session_expires: SESSION_EXPIRES,
        }
    }
}

/// What a new INVITE from the peer says about session timers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimerRequest {
    /// Its `Session-Expires`.
    pub session_expires: Option<SessionExpires>,
    /// It lists `timer` in `Supported` (or `Require`).
    pub supported: bool,
}

/// Where the call is; each variant is named after what it waits for.
#[derive(Debug, Clone)]
enum State {
    /// Calling: the final response to our INVITE (`offer`).
    Inviting { offer: SessionDescription, cancelled: bool },
    /// Answering: the ring timer, then we answer with `answer`.
    Ringing { answer: SessionDescription, negotiated: Negotiated },
    /// On audio: our T.38 switch timer, the peer's re-INVITE, or the fax's end.
    Audio,
    /// Our re-INVITE to T.38 (`offer`) awaits its final response.
    SwitchingToT38 { offer: SessionDescription },
    /// On T.38: the fax's end.
    T38,
    /// Our session refresh awaits its final response; `t38` is the media it keeps.
    Refreshing { t38: bool },
    /// Over; [`Call::outcome`] says how.
    Ended,
}

/// Call control of one call.
#[derive(Debug, Clone)]
pub struct Call {
    cfg: CallConfig,
    incoming: bool,
    state: State,
    timers: TimerTable,
    actions: VecDeque<Action>,
    rng: fastrand::Rng,
    /// Our current SDP (the last we offered and had accepted, or answered).
    local_sdp: Option<SessionDescription>,
    session_id: u64,
    version: u64,
    negotiated: Option<Negotiated>,
    answered_at: Option<Instant>,
    /// StopMedia was sent.
    stopping: bool,
    /// Calling: the interval our INVITE asks for (raised after a 422).
    asked_interval: Duration,
    /// Calling: INVITEs sent in this attempt (a fallback or a 422 adds one).
    invites: u32,
    /// The session timer in force.
    timer: Option<SessionTimer>,
    summary: Summary,
    outcome: Option<Outcome>,
}

impl Call {
    /// A call we place: the first action is the INVITE.
    pub fn placing(cfg: CallConfig, now: Instant, seed: u64) -> Self {
        let mut c = Self::new(cfg, false, seed);
        c.asked_interval = c.cfg.session_expires.max(MIN_SE);
        let offer = if c.cfg.t38_initial && c.cfg.caps.t38 && c.cfg.ask_t38 {
            sdp::offer_t38(&c.cfg.caps, &c.cfg.local, c.session_id, c.version)
        } else {
            sdp::offer_audio(&c.cfg.caps, &c.cfg.local, c.session_id, c.version)
        };
        c.invite(now, offer);
        c
    }

    /// A call offered to us with `offer` and the session timer its INVITE
    /// asks for, already screened (the number is ours, a channel is free):
    /// rings first when the trunk says so, then answers. Refused when
    /// nothing in the offer is acceptable, its media is somewhere the trunk
    /// does not allow, or its session interval is too small.
    pub fn answering(
        cfg: CallConfig,
        offer: &SessionDescription,
        timer: TimerRequest,
        now: Instant,
        seed: u64,
    ) -> Result<Self, Refusal> {
        let mut c = Self::new(cfg, true, seed);
        let (answer, negotiated) = sdp::answer(&c.cfg.caps, offer, &c.cfg.local, c.session_id, c.version)
            .map_err(|e| Refusal::NotAcceptable(e.to_string()))?;
        c.check_media(&negotiated).map_err(Refusal::NotAcceptable)?;
        if let Some(se) = timer.session_expires {
            if se.interval < MIN_SE {
                return Err(Refusal::IntervalTooSmall);
            }
            // RFC 4028 9: the caller's choice, else the caller refreshes if
            // it can (Supported: timer), else we do.
            let mut t = SessionTimer::from_peer(se, true);
            if se.refresher.is_none() && !timer.supported {
                t.we_refresh = true;
            }
            c.timer = Some(t);
        }
        c.summary.states.push(CallState::Inviting);
        if c.cfg.ring.is_zero() {
            c.answer(now, answer, negotiated);
        } else {
            c.actions.push_back(Action::Ringing);
            c.state = State::Ringing { answer, negotiated };
            c.timers.set(Timer::Ring, now + c.cfg.ring);
        }
        Ok(c)
    }

    fn new(cfg: CallConfig, incoming: bool, seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let session_id = rng.u64(..) >> 1;
        Self {
            cfg,
            incoming,
            state: State::Ended,
            timers: TimerTable::default(),
            actions: VecDeque::new(),
            rng,
            local_sdp: None,
            session_id,
            version: 1,
            negotiated: None,
            answered_at: None,
            stopping: false,
            asked_interval: SESSION_EXPIRES,
            invites: 0,
            timer: None,
            summary: Summary::default(),
            outcome: None,
        }
    }

    /// The state, as the report names it.
    pub fn state(&self) -> CallState {
        match &self.state {
            State::Inviting { .. } | State::Ringing { .. } => CallState::Inviting,
            State::Audio | State::Refreshing { t38: false } => CallState::Audio,
            State::SwitchingToT38 { .. } => CallState::SwitchingToT38,
            State::T38 | State::Refreshing { t38: true } => CallState::T38,
            State::Ended => CallState::Ending,
        }
    }

    /// True once the call is over (no more actions, no more timers).
    pub fn is_over(&self) -> bool {
        self.outcome.is_some()
    }

    /// How the call ended, once it is over.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// The media agreed so far.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The session timer in force (RFC 4028).
    pub fn session_timer(&self) -> Option<SessionTimer> {
        self.timer
    }

    /// When `timer` is due, if it runs.
    pub fn timer(&self, timer: Timer) -> Option<Instant> {
        self.timers.get(timer)
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Call::handle_timeout`] is next needed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_over() { None } else { self.timers.next() }
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while !self.is_over()
            && let Some(t) = self.timers.expired(now)
        {
            self.timers.stop(t);
            self.on_timer(now, t);
        }
    }

    /// Takes in what the driver saw.
    pub fn handle(&mut self, now: Instant, input: Input) {
        if self.is_over() {
            return;
        }
        match input {
            Input::InviteResponse { status, body, session_expires, min_se } => {
                self.on_invite_response(now, status, &body, session_expires, min_se)
            }
            Input::InviteFailed(e) => {
                if matches!(self.state, State::Inviting { .. }) {
                    self.fail(CallError::Signalling(e));
                }
            }
            Input::ReinviteResponse { status, body, session_expires } => {
                self.on_reinvite_response(now, status, &body, session_expires)
            }
            Input::ReinviteFailed => self.on_reinvite_response(now, 0, &[], None),
            Input::PeerReinvite { request, body, update, session_expires } => {
                self.on_peer_reinvite(now, request, &body, update, session_expires)
            }
            Input::PeerRequest { request } => self.reply(request, 200, None),
            Input::PeerHungUp => match self.state {
                // The final response to our INVITE decides; should it be a
                // 2xx, the call is cleared at once.
                State::Inviting { .. } => self.summary.peer_hung_up = true,
                State::Ringing { .. } => self.unanswered(487),
                _ => {
                    self.summary.peer_hung_up = true;
                    self.stop_media(now);
                }
            },
            Input::HangUp => match self.state {
                State::Inviting { cancelled: false, .. } => self.cancel(now),
                State::Inviting { cancelled: true, .. } => {}
                State::Ringing { .. } => {
                    self.actions.push_back(Action::Reject(480));
                    self.unanswered(480);
                }
                _ => self.stop_media(now),
            },
            Input::Fax(ev) => {
                if let Some(at) = self.answered_at {
                    self.summary.events.push(ev);
                    self.summary.event_offsets.push(now.saturating_duration_since(at));
                }
            }
            Input::MediaEnded(result) => {
                if self.answered_at.is_some() {
                    self.summary.result = result;
                    self.end(now, None);
                }
            }
            Input::MediaFailed(e) => {
                if self.answered_at.is_some() {
                    self.end(now, Some(CallError::Engine(e)));
                }
            }
        }
    }

    fn on_timer(&mut self, now: Instant, t: Timer) {
        match t {
            Timer::NoAnswer => {
                if let State::Inviting { cancelled: false, .. } = self.state {
                    self.cancel(now);
                }
            }
            Timer::CancelGrace => {
                if matches!(self.state, State::Inviting { .. }) {
                    self.fail(CallError::NoAnswer(408));
                }
            }
            Timer::Ring => {
                if let State::Ringing { answer, negotiated } = std::mem::replace(&mut self.state, State::Ended) {
                    self.answer(now, answer, negotiated);
                }
            }
            Timer::T38Switch | Timer::GlareBackoff => self.ask_for_t38(),
            Timer::SessionRefresh => self.refresh(now),
            Timer::SessionExpiry => {
                tracing::warn!("the peer did not refresh the session (RFC 4028): ending the call");
                self.summary.session_expired = true;
                self.stop_media(now);
            }
            Timer::MaxCall => self.stop_media(now),
            Timer::MediaStop => self.end(now, None),
        }
    }

    /// Where the peer's media is must be somewhere the trunk allows.
    fn check_media(&self, n: &Negotiated) -> Result<(), String> {
        let ip = n.remote().ip();
        if self.cfg.media_sources.is_empty() || self.cfg.media_sources.contains(&ip) {
            Ok(())
        } else {
            Err(format!("media address {ip} is not one the trunk allows"))
        }
    }

    fn reply(&mut self, request: RequestId, status: u16, reason: Option<String>) {
        self.actions.push_back(Action::Answer { request, status, sdp: None, timer: None, reason });
    }

    fn invite(&mut self, now: Instant, offer: SessionDescription) {
        self.invites += 1;
        self.actions.push_back(Action::Invite { sdp: offer.clone(), session_expires: self.asked_interval });
        self.state = State::Inviting { offer, cancelled: false };
        self.timers.set(Timer::NoAnswer, now + self.cfg.answer_timeout);
    }

    fn cancel(&mut self, now: Instant) {
        if let State::Inviting { cancelled, .. } = &mut self.state {
            *cancelled = true;
            self.actions.push_back(Action::Cancel);
            self.timers.stop(Timer::NoAnswer);
            self.timers.set(Timer::CancelGrace, now + CANCEL_GRACE);
        }
    }

    /// Answers the offered call now.
    fn answer(&mut self, now: Instant, answer: SessionDescription, negotiated: Negotiated) {
        self.actions.push_back(Action::Accept { sdp: answer.clone(), timer: self.timer });
        self.local_sdp = Some(answer);
        self.established(now, negotiated);
    }

    /// The call is answered (either way) on `negotiated`.
    fn established(&mut self, now: Instant, negotiated: Negotiated) {
        self.answered_at = Some(now);
        if self.summary.states.is_empty() {
            self.summary.states.push(CallState::Inviting);
        }
        self.actions.push_back(Action::StartMedia(negotiated.clone()));
        self.state = if negotiated.is_t38() { State::T38 } else { State::Audio };
        self.negotiated = Some(negotiated);
        self.push_state();
        // A peer that refused T.38 in the INVITE is not asked again.
        if matches!(self.state, State::Audio)
            && self.cfg.caps.t38
            && self.cfg.ask_t38
            && !self.summary.t38_initial_refused
        {
            self.timers.set(Timer::T38Switch, now + self.cfg.t38_switch_delay);
        }
        self.timers.set(Timer::MaxCall, now + self.cfg.max_call);
        self.summary.session_interval = self.timer.map(|t| t.interval);
        self.session_refreshed(now);
    }

    /// The session was refreshed (or began): the next refresh, or the
    /// expiry should the peer not refresh.
    fn session_refreshed(&mut self, now: Instant) {
        self.timers.stop(Timer::SessionRefresh);
        self.timers.stop(Timer::SessionExpiry);
        match self.timer {
            Some(t) if t.we_refresh => self.timers.set(Timer::SessionRefresh, now + t.refresh_after()),
            Some(t) => self.timers.set(Timer::SessionExpiry, now + t.expire_after()),
            None => {}
        }
    }

    fn push_state(&mut self) {
        let s = self.state();
        self.summary.states.push(s);
        if s == CallState::T38 {
            self.summary.t38 = true;
        }
    }

    fn on_invite_response(
        &mut self,
        now: Instant,
        status: u16,
        body: &[u8],
        session_expires: Option<SessionExpires>,
        min_se: Option<Duration>,
    ) {
        let State::Inviting { offer, .. } = &self.state else { return };
        let offer = offer.clone();
        let offered_t38 = offer.media.iter().any(|m| m.is_t38()) && !offer.media.iter().any(|m| !m.is_t38());
        match status {
            100..=199 => {}
            200..=299 => {
                self.timers.stop(Timer::NoAnswer);
                self.timers.stop(Timer::CancelGrace);
                let negotiated = SessionDescription::parse(body)
                    .map_err(|e| e.to_string())
                    .and_then(|a| sdp::accept_answer(&self.cfg.caps, &a).map_err(|e| e.to_string()))
                    .and_then(|n| self.check_media(&n).map(|()| n));
                match negotiated {
                    Ok(n) => {
                        // RFC 4028 7.2: no Session-Expires in the 2xx, no session timer.
                        self.timer = session_expires.map(|se| SessionTimer::from_peer(se, false));
                        self.local_sdp = Some(offer);
                        self.established(now, n);
                        if self.summary.peer_hung_up {
                            self.stop_media(now);
                        }
                    }
                    Err(e) => {
                        // Answered, but with nothing we can use: clear it.
                        self.actions.push_back(Action::Bye);
                        self.fail(CallError::BadSdp(e));
                    }
                }
            }
            _ => {
                // The dialog of the refused INVITE has ended; any BYE of it seen meanwhile is not this call's.
                self.summary.peer_hung_up = false;
                let cancelled = matches!(self.state, State::Inviting { cancelled: true, .. });
                if cancelled || self.invites >= 3 {
                    return self.fail(CallError::from_status(status));
                }
                if matches!(status, 488 | 415 | 606)
                    && offered_t38
                    && self.cfg.caps.audio
                    && !self.summary.t38_initial_refused
                {
                    // T.38 in the INVITE refused: the same attempt again with audio.
                    tracing::info!(status, "T.38 in the INVITE refused: calling again with audio");
                    self.summary.t38_initial_refused = true;
                    let audio = sdp::offer_audio(&self.cfg.caps, &self.cfg.local, self.session_id, self.version);
                    return self.invite(now, audio);
                }
                if status == 422
                    && let Some(min) = min_se.filter(|m| *m > self.asked_interval)
                {
                    // RFC 4028 7.2: ask again with the interval the peer wants.
                    self.asked_interval = min;
                    return self.invite(now, offer);
                }
                self.fail(CallError::from_status(status));
            }
        }
    }

    /// Sends our re-INVITE to T.38 when on audio and nothing else is pending.
    fn ask_for_t38(&mut self) {
        if !matches!(self.state, State::Audio) || self.stopping || !self.cfg.caps.t38 {
            return;
        }
        self.version += 1;
        let offer = sdp::offer_t38(&self.cfg.caps, &self.cfg.local, self.session_id, self.version);
        self.actions.push_back(Action::Reinvite { sdp: offer.clone(), timer: self.timer });
        self.state = State::SwitchingToT38 { offer };
        self.push_state();
    }

    /// Sends a session refresh: a re-INVITE with our SDP unchanged.
    fn refresh(&mut self, now: Instant) {
        let Some(t) = self.timer.filter(|t| t.we_refresh) else { return };
        if self.stopping {
            return;
        }
        let t38 = match self.state {
            State::Audio => false,
            State::T38 => true,
            // Our other re-INVITE is pending; it refreshes the session when it succeeds.
            _ => return self.timers.set(Timer::SessionRefresh, now + REFRESH_RETRY),
        };
        let Some(sdp) = self.local_sdp.clone() else { return };
        self.actions.push_back(Action::Reinvite { sdp, timer: Some(t) });
        self.state = State::Refreshing { t38 };
    }

    fn on_reinvite_response(
        &mut self,
        now: Instant,
        status: u16,
        body: &[u8],
        session_expires: Option<SessionExpires>,
    ) {
        match &self.state {
            State::SwitchingToT38 { .. } => self.on_switch_response(now, status, body, session_expires),
            State::Refreshing { t38 } => {
                let t38 = *t38;
                self.state = if t38 { State::T38 } else { State::Audio };
                match status {
                    200..=299 => {
                        self.summary.refreshes_sent += 1;
                        self.adopt_timer(session_expires, false);
                        self.session_refreshed(now);
                    }
                    491 => {
                        let wait = self.glare_wait();
                        self.timers.set(Timer::SessionRefresh, now + wait);
                    }
                    // RFC 4028 10: a refresh that times out or gets 408 or 481 ends the call.
                    0 | 408 | 481 => {
                        tracing::warn!(status, "session refresh failed: ending the call");
                        self.stop_media(now);
                    }
                    // Anything else: try again in a while, before the peer gives up.
                    _ => {
                        if let Some(t) = self.timer {
                            self.timers.set(Timer::SessionRefresh, now + t.refresh_after() / 2);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn on_switch_response(&mut self, now: Instant, status: u16, body: &[u8], session_expires: Option<SessionExpires>) {
        let State::SwitchingToT38 { offer } = &self.state else { return };
        let offer = offer.clone();
        self.state = State::Audio;
        match status {
            200..=299 => {
                self.adopt_timer(session_expires, false);
                self.session_refreshed(now);
                let n = SessionDescription::parse(body)
                    .map_err(|e| e.to_string())
                    .and_then(|a| sdp::accept_answer(&self.cfg.caps, &a).map_err(|e| e.to_string()))
                    .and_then(|n| self.check_media(&n).map(|()| n));
                match n {
                    Ok(n) if n.is_t38() => {
                        self.local_sdp = Some(offer);
                        self.actions.push_back(Action::UpdateMedia(n.clone()));
                        self.negotiated = Some(n);
                        self.state = State::T38;
                    }
                    Ok(_) => tracing::info!("re-INVITE answer not T.38: staying on audio"),
                    Err(e) => tracing::info!(
                        "re-INVITE answer unusable ({}): staying on audio",
                        faxgate_retention::logid::Scrubbed(&e)
                    ),
                }
            }
            491 => {
                let wait = self.glare_wait();
                self.timers.set(Timer::GlareBackoff, now + wait);
            }
            488 | 606 => self.summary.t38_refused += 1,
            _ => {}
        }
        self.push_state();
    }

    /// RFC 3261 14.1: after a 491 the owner of the Call-ID (the caller)
    /// waits 2.1-4 s, the other side 0-2 s, in units of 10 ms.
    fn glare_wait(&mut self) -> Duration {
        let ms = if self.incoming { self.rng.u64(..201) * 10 } else { 2100 + self.rng.u64(..191) * 10 };
        Duration::from_millis(ms)
    }

    /// A successful refresh in either direction renegotiates the timer
    /// (RFC 4028 7.4, 9): `received` from the peer, which was the client of
    /// the transaction when `peer_was_client`. Without a `Session-Expires`
    /// the session no longer expires (RFC 4028 7.2, 9), except that as the
    /// refresher we keep refreshing (a peer without session timers answers
    /// our refreshes without one, while a proxy between may count on them).
    fn adopt_timer(&mut self, received: Option<SessionExpires>, peer_was_client: bool) {
        match received {
            Some(se) if se.interval >= MIN_SE => self.timer = Some(SessionTimer::from_peer(se, peer_was_client)),
            Some(_) => {}
            None if !peer_was_client && self.timer.is_some_and(|t| t.we_refresh) => {}
            None => self.timer = None,
        }
        if self.timer.is_some() {
            self.summary.session_interval = self.timer.map(|t| t.interval);
        }
    }

    fn on_peer_reinvite(
        &mut self,
        now: Instant,
        request: RequestId,
        body: &[u8],
        update: bool,
        session_expires: Option<SessionExpires>,
    ) {
        match &self.state {
            State::Audio | State::T38 => {}
            // RFC 3261 14.2: ours is pending; theirs gets 491. (Before the
            // answer there is no dialog to re-INVITE in.)
            _ => return self.reply(request, 491, None),
        }
        if let Some(se) = session_expires
            && se.interval < MIN_SE
        {
            return self.reply(request, 422, Some(format!("Session-Expires below Min-SE {}", MIN_SE.as_secs())));
        }
        if body.is_empty() {
            self.adopt_timer(session_expires, true);
            self.refreshed_by_peer(now);
            // A re-INVITE without an offer gets our current SDP as the
            // offer; an UPDATE without one only refreshes.
            let sdp = if update {
                None
            } else {
                self.version += 1;
                self.local_sdp.as_mut().map(|s| {
                    s.session_version = self.version;
                    s.clone()
                })
            };
            let timer = self.timer;
            self.actions.push_back(Action::Answer { request, status: 200, sdp, timer, reason: None });
            return;
        }
        let offer = match SessionDescription::parse(body) {
            Ok(o) => o,
            Err(e) => return self.reply(request, 400, Some(e.to_string())),
        };
        // Every stream declined (port 0), as a peer winding the call down
        // sends: accepted, declined back, the media left as it is.
        if let Some(sdp) = sdp::decline_all(&offer, &self.cfg.local, self.session_id, self.version + 1) {
            self.version += 1;
            self.adopt_timer(session_expires, true);
            self.refreshed_by_peer(now);
            let timer = self.timer;
            self.actions.push_back(Action::Answer { request, status: 200, sdp: Some(sdp), timer, reason: None });
            return;
        }
        // On T.38, a refresh that still offers image gets image, never audio
        // (session timers have cut faxes that way).
        let mut caps = self.cfg.caps.clone();
        if matches!(self.state, State::T38) && offer.media.iter().any(|m| m.is_t38() && m.port != 0) {
            caps.audio = false;
        }
        let answered = sdp::answer(&caps, &offer, &self.cfg.local, self.session_id, self.version + 1)
            .map_err(|e| e.to_string())
            .and_then(|(sdp, n)| self.check_media(&n).map(|()| (sdp, n)));
        match answered {
            Ok((sdp, n)) => {
                self.version += 1;
                self.adopt_timer(session_expires, true);
                self.refreshed_by_peer(now);
                let timer = self.timer;
                self.actions.push_back(Action::Answer {
                    request,
                    status: 200,
                    sdp: Some(sdp.clone()),
                    timer,
                    reason: None,
                });
                self.local_sdp = Some(sdp);
                if n.is_t38() {
                    // The peer switched: our own request is not needed.
                    self.timers.stop(Timer::T38Switch);
                    self.timers.stop(Timer::GlareBackoff);
                    if !matches!(self.state, State::T38) {
                        self.state = State::T38;
                        self.push_state();
                    }
                }
                self.actions.push_back(Action::UpdateMedia(n.clone()));
                self.negotiated = Some(n);
            }
            Err(reason) => self.reply(request, 488, Some(reason)),
        }
    }

    fn refreshed_by_peer(&mut self, now: Instant) {
        self.summary.refreshes_received += 1;
        self.session_refreshed(now);
    }

    /// Tells the media to end the fax now (once).
    fn stop_media(&mut self, now: Instant) {
        if self.answered_at.is_none() || self.stopping {
            return;
        }
        self.stopping = true;
        self.timers.stop(Timer::T38Switch);
        self.timers.stop(Timer::GlareBackoff);
        self.timers.stop(Timer::SessionRefresh);
        self.timers.stop(Timer::SessionExpiry);
        self.timers.stop(Timer::MaxCall);
        self.actions.push_back(Action::StopMedia);
        self.timers.set(Timer::MediaStop, now + MEDIA_STOP_GRACE);
    }

    /// The fax is over (phase E, stopped, or the media failed): BYE unless
    /// the peer has gone already; a silent peer would keep the call up.
    fn end(&mut self, now: Instant, failure: Option<CallError>) {
        let Some(at) = self.answered_at else { return };
        if !self.summary.peer_hung_up {
            self.actions.push_back(Action::Bye);
        }
        self.summary.states.push(CallState::Ending);
        self.summary.answered_for = now.saturating_duration_since(at);
        self.summary.remote_media = self.negotiated.as_ref().map(Negotiated::remote);
        let outcome = match failure {
            Some(e) => Outcome::Failed(e),
            None => Outcome::Ended(Box::new(std::mem::take(&mut self.summary))),
        };
        self.finish(outcome);
    }

    fn fail(&mut self, e: CallError) {
        self.finish(Outcome::Failed(e));
    }

    fn unanswered(&mut self, status: u16) {
        self.finish(Outcome::Unanswered(status));
    }

    fn finish(&mut self, outcome: Outcome) {
        self.state = State::Ended;
        self.timers = TimerTable::default();
        self.outcome = Some(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::session_timer::MIN_SE;

    const PEER_AUDIO: &[u8] = b"v=0\r\no=peer 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
        m=audio 6000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";
    const PEER_IMAGE: &[u8] = b"v=0\r\no=peer 1 2 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
        m=image 6002 udptl t38\r\na=T38FaxVersion:0\r\na=T38MaxBitRate:14400\r\n\
        a=T38FaxRateManagement:transferredTCF\r\na=T38FaxMaxDatagram:400\r\na=T38FaxUdpEC:t38UDPRedundancy\r\n";
    const PEER_IMAGE_AND_AUDIO: &[u8] = b"v=0\r\no=peer 1 3 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
        m=image 6002 udptl t38\r\na=T38FaxVersion:0\r\na=T38FaxUdpEC:t38UDPRedundancy\r\n\
        m=audio 6000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";

    fn cfg() -> CallConfig {
        CallConfig {
            caps: Capabilities::default(),
            local: LocalMedia { addr: "192.0.2.1".parse().unwrap(), audio_port: 4000, image_port: 4002 },
            t38_initial: false,
            ask_t38: true,
            t38_switch_delay: Duration::from_secs(3),
            answer_timeout: Duration::from_secs(60),
            ring: Duration::ZERO,
            max_call: MAX_CALL,
            media_sources: Vec::new(),
            session_expires: SESSION_EXPIRES,
        }
    }

    fn response(status: u16, body: &[u8]) -> Input {
        Input::InviteResponse { status, body: body.to_vec(), session_expires: None, min_se: None }
    }

    fn reinvite_response(status: u16, body: &[u8]) -> Input {
        Input::ReinviteResponse { status, body: body.to_vec(), session_expires: None }
    }

    fn peer_reinvite(request: u64, body: &[u8]) -> Input {
        Input::PeerReinvite { request: RequestId(request), body: body.to_vec(), update: false, session_expires: None }
    }

    fn answering(cfg: CallConfig, offer: &SessionDescription, t0: Instant, seed: u64) -> Result<Call, Refusal> {
        Call::answering(cfg, offer, TimerRequest::default(), t0, seed)
    }

    /// The status of the one answer in `a`.
    fn answered(a: &[Action]) -> (u64, u16, Option<&SessionDescription>) {
        match a {
            [Action::Answer { request, status, sdp, .. }, ..] => (request.0, *status, sdp.as_ref()),
            other => panic!("expected an answer: {other:?}"),
        }
    }

    fn actions(c: &mut Call) -> Vec<Action> {
        std::iter::from_fn(|| c.poll_action()).collect()
    }

    fn result(ok: bool) -> FaxResult {
        FaxResult {
            code: crate::CompletionCode(if ok { 0 } else { 48 }),
            text: String::new(),
            pages: 1,
            pages_in_file: None,
            bit_rate: 14400,
            ecm: true,
            remote_ident: None,
        }
    }

    /// A placed call answered with audio at `t0 + 1 s`.
    fn placed_on_audio(t0: Instant) -> Call {
        let mut c = Call::placing(cfg(), t0, 7);
        assert!(matches!(actions(&mut c)[..], [Action::Invite { .. }]));
        c.handle(t0 + Duration::from_secs(1), response(200, PEER_AUDIO));
        let a = actions(&mut c);
        assert!(matches!(&a[..], [Action::StartMedia(Negotiated::Audio { .. })]), "{a:?}");
        c
    }

    fn reinvite_offer(a: &[Action]) -> &SessionDescription {
        match a {
            [Action::Reinvite { sdp, .. }] => sdp,
            other => panic!("expected one re-INVITE: {other:?}"),
        }
    }

    fn summary(c: &Call) -> &Summary {
        match c.outcome() {
            Some(Outcome::Ended(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    /// The caller asks for T.38 after the trunk's delay, not before; the
    /// accepted answer switches the media and the state.
    #[test]
    fn the_caller_asks_for_t38_after_its_delay() {
        let t0 = Instant::now();
        let mut c = placed_on_audio(t0);
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(4)));
        c.handle_timeout(t0 + Duration::from_millis(3999));
        assert!(actions(&mut c).is_empty());
        c.handle_timeout(t0 + Duration::from_secs(4));
        let a = actions(&mut c);
        let offer = reinvite_offer(&a);
        assert!(offer.media.iter().all(|m| m.is_t38()));
        assert_eq!(offer.session_version, 2);
        assert_eq!(c.state(), CallState::SwitchingToT38);
        c.handle(t0 + Duration::from_secs(5), reinvite_response(200, PEER_IMAGE));
        assert!(matches!(&actions(&mut c)[..], [Action::UpdateMedia(Negotiated::T38 { .. })]));
        assert_eq!(c.state(), CallState::T38);
        // The fax ends: we hang up.
        c.handle(t0 + Duration::from_secs(50), Input::MediaEnded(Some(result(true))));
        assert_eq!(actions(&mut c), [Action::Bye]);
        let s = summary(&c);
        assert_eq!(
            s.states,
            [CallState::Inviting, CallState::Audio, CallState::SwitchingToT38, CallState::T38, CallState::Ending]
        );
        assert!(s.t38);
        assert_eq!(s.answered_for, Duration::from_secs(49));
        assert_eq!(c.poll_timeout(), None);
    }

    /// The answering side asks 300 ms after it answers.
    #[test]
    fn the_answering_side_asks_at_once() {
        let t0 = Instant::now();
        let offer = SessionDescription::parse(PEER_AUDIO).unwrap();
        let mut c = answering(CallConfig { t38_switch_delay: RECEIVER_SWITCH_DELAY, ..cfg() }, &offer, t0, 1).unwrap();
        let a = actions(&mut c);
        assert!(matches!(&a[..], [Action::Accept { .. }, Action::StartMedia(_)]), "{a:?}");
        assert_eq!(c.timer(Timer::T38Switch), Some(t0 + RECEIVER_SWITCH_DELAY));
        c.handle_timeout(t0 + RECEIVER_SWITCH_DELAY);
        reinvite_offer(&actions(&mut c));
    }

    /// RFC 3261 14.1: after a 491 the caller (owner of the Call-ID) waits
    /// 2.1-4 s, the answering side 0-2 s, before asking again; different
    /// seeds give different waits.
    #[test]
    fn glare_backoff_follows_rfc_3261_14_1() {
        let t0 = Instant::now();
        let mut waits = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let mut c = Call::placing(cfg(), t0, seed);
            actions(&mut c);
            c.handle(t0, response(200, PEER_AUDIO));
            c.handle_timeout(t0 + Duration::from_secs(3));
            actions(&mut c);
            let at = t0 + Duration::from_secs(3);
            c.handle(at, reinvite_response(491, &[]));
            assert_eq!(c.state(), CallState::Audio);
            let wait = c.timer(Timer::GlareBackoff).unwrap() - at;
            assert!(wait >= Duration::from_millis(2100) && wait <= Duration::from_secs(4), "{wait:?}");
            waits.insert(wait);
            c.handle_timeout(at + wait);
            reinvite_offer(&actions(&mut c));
        }
        assert!(waits.len() > 10, "{waits:?}");
        let offer = SessionDescription::parse(PEER_AUDIO).unwrap();
        for seed in 0..40 {
            let mut c = answering(cfg(), &offer, t0, seed).unwrap();
            c.handle_timeout(t0 + Duration::from_secs(3));
            actions(&mut c);
            c.handle(t0 + Duration::from_secs(3), reinvite_response(491, &[]));
            let wait = c.timer(Timer::GlareBackoff).unwrap() - (t0 + Duration::from_secs(3));
            assert!(wait <= Duration::from_secs(2), "{wait:?}");
        }
        // The same seed, the same wait.
        let run = |seed| {
            let mut c = answering(cfg(), &offer, t0, seed).unwrap();
            c.handle_timeout(t0 + Duration::from_secs(3));
            c.handle(t0 + Duration::from_secs(3), reinvite_response(491, &[]));
            c.timer(Timer::GlareBackoff)
        };
        assert_eq!(run(5), run(5));
    }

    /// RFC 3261 14.2: a re-INVITE from the peer while ours is pending gets
    /// 491, and ours still decides.
    #[test]
    fn a_crossing_reinvite_gets_491() {
        let t0 = Instant::now();
        let mut c = placed_on_audio(t0);
        c.handle_timeout(t0 + Duration::from_secs(4));
        actions(&mut c);
        c.handle(t0 + Duration::from_secs(4), peer_reinvite(9, PEER_IMAGE));
        assert_eq!(answered(&actions(&mut c)), (9, 491, None));
        assert_eq!(c.state(), CallState::SwitchingToT38);
        c.handle(t0 + Duration::from_secs(5), reinvite_response(200, PEER_IMAGE));
        assert_eq!(c.state(), CallState::T38);
    }

    /// 488 and 606 keep the audio call; the fax goes on over G.711, and we
    /// do not ask again.
    #[test]
    fn refused_t38_keeps_audio() {
        for status in [488, 606] {
            let t0 = Instant::now();
            let mut c = placed_on_audio(t0);
            c.handle_timeout(t0 + Duration::from_secs(4));
            actions(&mut c);
            c.handle(t0 + Duration::from_secs(4), reinvite_response(status, &[]));
            assert!(actions(&mut c).is_empty(), "no media change, no BYE");
            assert_eq!(c.state(), CallState::Audio);
            assert_eq!(c.timer(Timer::T38Switch), None);
            assert_eq!(c.timer(Timer::GlareBackoff), None);
            c.handle(t0 + Duration::from_secs(60), Input::MediaEnded(Some(result(true))));
            let s = summary(&c);
            assert_eq!(s.t38_refused, 1);
            assert!(!s.t38);
        }
    }

    /// The peer switches first: answered with T.38, our own switch is off.
    #[test]
    fn the_peers_t38_reinvite_is_answered_and_ours_dropped() {
        let t0 = Instant::now();
        let mut c = placed_on_audio(t0);
        c.handle(t0 + Duration::from_secs(2), peer_reinvite(1, PEER_IMAGE));
        let a = actions(&mut c);
        match &a[..] {
            [Action::Answer { status: 200, sdp: Some(sdp), .. }, Action::UpdateMedia(Negotiated::T38 { .. })] => {
                assert!(sdp.media.iter().any(|m| m.is_t38() && m.port == 4002));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.state(), CallState::T38);
        assert_eq!(c.timer(Timer::T38Switch), None);
        c.handle_timeout(t0 + Duration::from_secs(10));
        assert!(actions(&mut c).is_empty());
    }

    /// On T.38, a session refresh that offers image and audio is answered
    /// with image only; a refresh without an offer gets our image SDP.
    #[test]
    fn refreshes_during_t38_keep_image() {
        let t0 = Instant::now();
        let mut c = placed_on_audio(t0);
        c.handle(t0, peer_reinvite(1, PEER_IMAGE));
        actions(&mut c);
        c.handle(t0, peer_reinvite(2, PEER_IMAGE_AND_AUDIO));
        match &actions(&mut c)[..] {
            [Action::Answer { status: 200, sdp: Some(sdp), .. }, Action::UpdateMedia(Negotiated::T38 { .. })] => {
                assert!(sdp.media.iter().any(|m| m.is_t38() && m.port != 0));
                assert!(sdp.media.iter().filter(|m| !m.is_t38()).all(|m| m.port == 0), "{sdp:?}");
            }
            other => panic!("{other:?}"),
        }
        c.handle(t0, peer_reinvite(3, &[]));
        match &actions(&mut c)[..] {
            [Action::Answer { status: 200, sdp: Some(sdp), .. }] => {
                assert!(sdp.media.iter().any(|m| m.is_t38() && m.port == 4002));
                assert_eq!(sdp.session_version, 4);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.state(), CallState::T38);
    }

    /// An unreadable offer gets 400, one with nothing usable 488; the call goes on.
    #[test]
    fn bad_reinvites_are_refused() {
        let t0 = Instant::now();
        let mut c = placed_on_audio(t0);
        c.handle(t0, peer_reinvite(1, b"nonsense"));
        let a = actions(&mut c);
        assert_eq!(answered(&a), (1, 400, None));
        assert!(matches!(&a[..], [Action::Answer { reason: Some(r), .. }] if r.contains("malformed SDP")), "{a:?}");
        let video =
            b"v=0\r\no=p 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n";
        c.handle(t0, peer_reinvite(2, video));
        let a = actions(&mut c);
        assert_eq!(answered(&a), (2, 488, None));
        assert!(
            matches!(&a[..], [Action::Answer { reason: Some(r), .. }] if r.contains("no acceptable media")),
            "{a:?}"
        );
        c.handle(t0, Input::PeerRequest { request: RequestId(3) });
        assert_eq!(answered(&actions(&mut c)), (3, 200, None));
        assert_eq!(c.state(), CallState::Audio);
    }

    /// Back to audio after a T.38 fax (Asterisk does so): accepted, the
    /// call still counts as T.38.
    #[test]
    fn back_to_audio_after_t38_is_accepted() {
        let t0 = Instant::now();
        let mut c = placed_on_audio(t0);
        c.handle(t0, peer_reinvite(1, PEER_IMAGE));
        actions(&mut c);
        c.handle(t0, peer_reinvite(2, PEER_AUDIO));
        assert!(matches!(&actions(&mut c)[..], [Action::Answer { status: 200, .. }, Action::UpdateMedia(_)]));
        c.handle(t0, Input::PeerHungUp);
        assert_eq!(actions(&mut c), [Action::StopMedia]);
        c.handle(t0, Input::MediaEnded(None));
        assert!(actions(&mut c).is_empty(), "the peer hung up: no BYE");
        let s = summary(&c);
        assert!(s.t38 && s.peer_hung_up);
    }

    /// No answer in time: CANCEL; the 487 that follows fails the attempt as
    /// a no-answer. Without any final response, the attempt ends after the grace.
    #[test]
    fn no_answer_is_cancelled() {
        let t0 = Instant::now();
        let mut c = Call::placing(CallConfig { answer_timeout: Duration::from_secs(4), ..cfg() }, t0, 1);
        actions(&mut c);
        c.handle_timeout(t0 + Duration::from_secs(4));
        assert_eq!(actions(&mut c), [Action::Cancel]);
        c.handle(t0 + Duration::from_secs(5), Input::HangUp);
        assert!(actions(&mut c).is_empty(), "CANCEL once");
        c.handle(t0 + Duration::from_secs(5), response(487, &[]));
        assert!(matches!(c.outcome(), Some(Outcome::Failed(CallError::NoAnswer(487)))));

        let mut c = Call::placing(CallConfig { answer_timeout: Duration::from_secs(4), ..cfg() }, t0, 1);
        actions(&mut c);
        c.handle_timeout(t0 + Duration::from_secs(4));
        assert_eq!(actions(&mut c), [Action::Cancel]);
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(4) + CANCEL_GRACE));
        c.handle_timeout(t0 + Duration::from_secs(4) + CANCEL_GRACE);
        assert!(matches!(c.outcome(), Some(Outcome::Failed(CallError::NoAnswer(408)))));
        assert!(actions(&mut c).is_empty());
    }

    /// The peer's BYE overtakes its 200 (both arrived together): the call
    /// is cleared as soon as it is answered, without a BYE of ours.
    #[test]
    fn a_bye_that_overtakes_the_200_clears_the_call() {
        let t0 = Instant::now();
        let mut c = Call::placing(cfg(), t0, 1);
        actions(&mut c);
        c.handle(t0, Input::PeerHungUp);
        assert!(actions(&mut c).is_empty());
        c.handle(t0, response(200, PEER_AUDIO));
        assert!(matches!(&actions(&mut c)[..], [Action::StartMedia(_), Action::StopMedia]));
        c.handle(t0, Input::MediaEnded(None));
        assert!(actions(&mut c).is_empty());
        assert!(summary(&c).peer_hung_up);
    }

    /// Refusals map to causes; an unusable answer is hung up.
    #[test]
    fn final_responses_of_the_invite() {
        let t0 = Instant::now();
        let mut c = Call::placing(cfg(), t0, 1);
        actions(&mut c);
        c.handle(t0, response(486, &[]));
        assert!(matches!(c.outcome(), Some(Outcome::Failed(CallError::Busy(486)))));
        assert!(actions(&mut c).is_empty());
        let mut c = Call::placing(cfg(), t0, 1);
        actions(&mut c);
        c.handle(t0, response(200, b"v=0\r\n"));
        assert_eq!(actions(&mut c), [Action::Bye]);
        assert!(matches!(c.outcome(), Some(Outcome::Failed(CallError::BadSdp(_)))));
        let mut c = Call::placing(cfg(), t0, 1);
        actions(&mut c);
        c.handle(t0, Input::InviteFailed("timeout".into()));
        assert!(matches!(c.outcome(), Some(Outcome::Failed(CallError::Signalling(_)))));
    }

    /// `t38-initial` offers image in the INVITE; answered with image, no
    /// switch follows.
    #[test]
    fn t38_in_the_initial_invite() {
        let t0 = Instant::now();
        let mut c = Call::placing(CallConfig { t38_initial: true, ..cfg() }, t0, 1);
        match &actions(&mut c)[..] {
            [Action::Invite { sdp, .. }] => assert!(sdp.media.iter().all(|m| m.is_t38())),
            other => panic!("{other:?}"),
        }
        c.handle(t0, response(200, PEER_IMAGE));
        assert!(matches!(&actions(&mut c)[..], [Action::StartMedia(Negotiated::T38 { .. })]));
        assert_eq!(c.state(), CallState::T38);
        assert_eq!(c.timer(Timer::T38Switch), None);
    }

    /// Ringing first; the caller's CANCEL while it rings leaves the call
    /// unanswered (487); otherwise it is answered when the ring timer runs out.
    #[test]
    fn ringing_then_answer_or_cancel() {
        let t0 = Instant::now();
        let offer = SessionDescription::parse(PEER_AUDIO).unwrap();
        let ring = CallConfig { ring: Duration::from_secs(5), ..cfg() };
        let mut c = answering(ring.clone(), &offer, t0, 1).unwrap();
        assert_eq!(actions(&mut c), [Action::Ringing]);
        c.handle(t0 + Duration::from_secs(2), Input::PeerHungUp);
        assert!(matches!(c.outcome(), Some(Outcome::Unanswered(487))));
        let mut c = answering(ring, &offer, t0, 1).unwrap();
        actions(&mut c);
        c.handle_timeout(t0 + Duration::from_secs(5));
        assert!(matches!(&actions(&mut c)[..], [Action::Accept { .. }, Action::StartMedia(_)]));
        assert_eq!(c.state(), CallState::Audio);
        // Nothing acceptable: refused before anything is sent.
        let video = SessionDescription::parse(
            b"v=0\r\no=p 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n",
        )
        .unwrap();
        assert!(
            matches!(answering(cfg(), &video, t0, 1).unwrap_err(), Refusal::NotAcceptable(r) if r.contains("no acceptable media"))
        );
    }

    /// The longest call: the fax is stopped, then we hang up; a media that
    /// never reports is given up on.
    #[test]
    fn max_call_time_stops_the_fax() {
        let t0 = Instant::now();
        let mut c = placed_on_audio(t0);
        c.handle(t0 + Duration::from_secs(1), reinvite_response(200, &[]));
        c.handle_timeout(t0 + Duration::from_secs(4));
        actions(&mut c);
        c.handle(t0 + Duration::from_secs(4), reinvite_response(488, &[]));
        c.handle_timeout(t0 + Duration::from_secs(1) + MAX_CALL);
        assert_eq!(actions(&mut c), [Action::StopMedia]);
        assert!(!c.is_over());
        c.handle_timeout(t0 + Duration::from_secs(1) + MAX_CALL + MEDIA_STOP_GRACE);
        assert_eq!(actions(&mut c), [Action::Bye]);
        let s = summary(&c);
        assert_eq!(s.answered_for, MAX_CALL + MEDIA_STOP_GRACE);
        assert!(s.result.is_none());
    }

    /// A silent peer: the fax ends by T.30's own timers (phase E); we hang
    /// up ourselves, once, and nothing follows.
    #[test]
    fn after_phase_e_we_hang_up_once() {
        let t0 = Instant::now();
        let mut c = placed_on_audio(t0);
        c.handle(t0 + Duration::from_secs(30), Input::Fax(Event::Finished(result(false))));
        c.handle(t0 + Duration::from_secs(30), Input::MediaEnded(Some(result(false))));
        assert_eq!(actions(&mut c), [Action::Bye]);
        c.handle(t0 + Duration::from_secs(31), Input::PeerHungUp);
        c.handle(t0 + Duration::from_secs(31), Input::MediaEnded(None));
        c.handle_timeout(t0 + Duration::from_secs(9999));
        assert!(actions(&mut c).is_empty());
        let s = summary(&c);
        assert_eq!(s.event_offsets, [Duration::from_secs(29)]);
        assert!(!s.peer_hung_up);
    }

    /// `t38-initial`: a T.38 offer refused with 488, 415 or 606 is followed
    /// at once, in the same attempt, by an audio INVITE; the call then stays
    /// on audio (the peer is not asked for T.38 again) and says so.
    #[test]
    fn t38_initial_refused_falls_back_to_audio() {
        for status in [488, 415, 606] {
            let t0 = Instant::now();
            let mut c = Call::placing(CallConfig { t38_initial: true, ..cfg() }, t0, 1);
            actions(&mut c);
            // The refused dialog's end is seen before its final response.
            c.handle(t0, Input::PeerHungUp);
            c.handle(t0 + Duration::from_millis(50), response(status, &[]));
            match &actions(&mut c)[..] {
                [Action::Invite { sdp, .. }] => {
                    assert!(sdp.media.iter().all(|m| !m.is_t38()), "{sdp:?}");
                    assert!(sdp.media.iter().any(|m| m.kind == sdp::MediaKind::Audio));
                }
                other => panic!("{status}: {other:?}"),
            }
            assert_eq!(c.timer(Timer::NoAnswer), Some(t0 + Duration::from_millis(50) + cfg().answer_timeout));
            c.handle(t0 + Duration::from_secs(1), response(200, PEER_AUDIO));
            assert!(matches!(&actions(&mut c)[..], [Action::StartMedia(Negotiated::Audio { .. })]));
            assert_eq!(c.timer(Timer::T38Switch), None, "not asked again");
            c.handle(t0 + Duration::from_secs(60), Input::MediaEnded(Some(result(true))));
            assert_eq!(actions(&mut c), [Action::Bye], "the earlier BYE was the refused dialog's");
            let s = summary(&c);
            assert!(s.t38_initial_refused && !s.t38 && !s.peer_hung_up);
        }
        // Other refusals end the attempt; an audio INVITE refused is not tried again.
        let t0 = Instant::now();
        let mut c = Call::placing(CallConfig { t38_initial: true, ..cfg() }, t0, 1);
        actions(&mut c);
        c.handle(t0, response(486, &[]));
        assert!(matches!(c.outcome(), Some(Outcome::Failed(CallError::Busy(486)))));
        let mut c = Call::placing(cfg(), t0, 1);
        actions(&mut c);
        c.handle(t0, response(488, &[]));
        assert!(matches!(c.outcome(), Some(Outcome::Failed(CallError::NotAcceptable(488)))));
        assert!(actions(&mut c).is_empty());
    }

    /// A call told not to ask for T.38 (a destination learned to refuse
    /// it) offers audio even on a `t38-initial` trunk and sends no
    /// re-INVITE to T.38 after the answer.
    #[test]
    fn told_not_to_ask_for_t38_stays_on_audio() {
        let t0 = Instant::now();
        let mut c = Call::placing(CallConfig { t38_initial: true, ask_t38: false, ..cfg() }, t0, 1);
        match &actions(&mut c)[..] {
            [Action::Invite { sdp, .. }] => {
                assert!(sdp.media.iter().all(|m| !m.is_t38()), "{sdp:?}");
                assert!(sdp.media.iter().any(|m| m.kind == sdp::MediaKind::Audio));
            }
            other => panic!("{other:?}"),
        }
        c.handle(t0 + Duration::from_secs(1), response(200, PEER_AUDIO));
        assert!(matches!(&actions(&mut c)[..], [Action::StartMedia(Negotiated::Audio { .. })]));
        assert_eq!(c.timer(Timer::T38Switch), None);
        c.handle_timeout(t0 + Duration::from_secs(10));
        assert!(actions(&mut c).is_empty(), "no re-INVITE");
    }

    /// RFC 4028 7.2: a 422 names the interval the peer wants; we ask again with it, once.
    #[test]
    fn a_422_asks_again_with_the_min_se() {
        let t0 = Instant::now();
        let mut c = Call::placing(CallConfig { session_expires: MIN_SE, ..cfg() }, t0, 1);
        assert!(matches!(&actions(&mut c)[..], [Action::Invite { session_expires, .. }] if *session_expires == MIN_SE));
        let min = Duration::from_secs(600);
        c.handle(t0, Input::InviteResponse { status: 422, body: vec![], session_expires: None, min_se: Some(min) });
        assert!(matches!(&actions(&mut c)[..], [Action::Invite { session_expires, .. }] if *session_expires == min));
        c.handle(t0, Input::InviteResponse { status: 422, body: vec![], session_expires: None, min_se: Some(min) });
        assert!(matches!(c.outcome(), Some(Outcome::Failed(CallError::Other(422)))));
    }

    /// A peer winding the call down declines T.38 (`m=image 0`): accepted
    /// with the stream declined back, the media untouched.
    #[test]
    fn an_image_0_reinvite_is_accepted() {
        let t0 = Instant::now();
        let mut c = placed_on_audio(t0);
        c.handle(t0, peer_reinvite(1, PEER_IMAGE));
        actions(&mut c);
        let declined =
            b"v=0\r\no=peer 1 4 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=image 0 udptl t38\r\n";
        c.handle(t0, peer_reinvite(2, declined));
        let a = actions(&mut c);
        match &a[..] {
            [Action::Answer { status: 200, sdp: Some(sdp), .. }] => {
                assert!(sdp.media.len() == 1 && sdp.media[0].is_t38() && sdp.media[0].port == 0, "{sdp:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.state(), CallState::T38);
        c.handle(t0, Input::PeerHungUp);
        c.handle(t0, Input::MediaEnded(None));
        assert!(summary(&c).t38);
    }

    /// Media only where the trunk allows: an INVITE, a 200 or a re-INVITE
    /// whose SDP names another address is refused, saying which.
    #[test]
    fn media_elsewhere_than_the_trunk_is_refused() {
        let t0 = Instant::now();
        let trunk_only = || CallConfig { media_sources: vec!["192.0.2.7".parse().unwrap()], ..cfg() };
        let offer = SessionDescription::parse(PEER_AUDIO).unwrap();
        match Call::answering(trunk_only(), &offer, TimerRequest::default(), t0, 1) {
            Err(Refusal::NotAcceptable(r)) => assert!(r.contains("192.0.2.9"), "{r}"),
            other => panic!("{other:?}"),
        }
        let mut c = Call::placing(trunk_only(), t0, 1);
        actions(&mut c);
        c.handle(t0, response(200, PEER_AUDIO));
        assert_eq!(actions(&mut c), [Action::Bye]);
        assert!(matches!(c.outcome(), Some(Outcome::Failed(CallError::BadSdp(r))) if r.contains("192.0.2.9")));
        // Allowed at first; a re-INVITE moving the media elsewhere is refused.
        let allowed = CallConfig { media_sources: vec!["192.0.2.9".parse().unwrap()], ..cfg() };
        let mut c = Call::answering(allowed, &offer, TimerRequest::default(), t0, 1).unwrap();
        actions(&mut c);
        let elsewhere = String::from_utf8_lossy(PEER_IMAGE).replace("192.0.2.9", "127.0.0.9");
        c.handle(t0, peer_reinvite(5, elsewhere.as_bytes()));
        let a = actions(&mut c);
        assert_eq!(answered(&a), (5, 488, None));
        assert!(matches!(&a[..], [Action::Answer { reason: Some(r), .. }] if r.contains("127.0.0.9")), "{a:?}");
        assert_eq!(c.state(), CallState::Audio);
    }

    fn se(secs: u64, refresher: Option<crate::sip::session_timer::Refresher>) -> SessionExpires {
        SessionExpires { interval: Duration::from_secs(secs), refresher }
    }

    /// A 3-minute fax with a peer that asks for `Session-Expires: 90` and
    /// refreshes itself (`refresher=uac`): each of its refreshes every 45 s
    /// is answered with the timer, the call lasts; had it stopped refreshing,
    /// we would have hung up 60 s after its last one (RFC 4028 10).
    #[test]
    fn a_three_minute_call_with_a_peer_that_refreshes() {
        use crate::sip::session_timer::Refresher;
        let t0 = Instant::now();
        let offer = SessionDescription::parse(PEER_IMAGE).unwrap();
        let req = TimerRequest { session_expires: Some(se(90, Some(Refresher::Uac))), supported: true };
        let mut c = Call::answering(cfg(), &offer, req, t0, 1).unwrap();
        match &actions(&mut c)[..] {
            [Action::Accept { timer: Some(t), .. }, Action::StartMedia(_)] => {
                assert_eq!(*t, SessionTimer { interval: Duration::from_secs(90), we_refresh: false });
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.timer(Timer::SessionExpiry), Some(t0 + Duration::from_secs(60)));
        let mut now = t0;
        for i in 1..=3 {
            now = t0 + Duration::from_secs(45 * i);
            c.handle_timeout(now);
            c.handle(
                now,
                Input::PeerReinvite {
                    request: RequestId(i),
                    body: vec![],
                    update: true,
                    session_expires: Some(se(90, Some(Refresher::Uac))),
                },
            );
            let a = actions(&mut c);
            assert!(
                matches!(&a[..], [Action::Answer { status: 200, sdp: None, timer: Some(t), .. }] if !t.we_refresh),
                "{a:?}"
            );
            assert_eq!(c.timer(Timer::SessionExpiry), Some(now + Duration::from_secs(60)));
        }
        c.handle_timeout(t0 + Duration::from_secs(180));
        assert!(!c.is_over());
        c.handle(t0 + Duration::from_secs(180), Input::MediaEnded(Some(result(true))));
        let s = summary(&c);
        assert_eq!((s.refreshes_received, s.session_expired), (3, false));
        assert_eq!(s.session_interval, Some(Duration::from_secs(90)));
        // The same peer falling silent after its first refresh.
        let mut c = Call::answering(cfg(), &offer, req, t0, 1).unwrap();
        actions(&mut c);
        c.handle(now, peer_reinvite_with(1, se(90, Some(Refresher::Uac))));
        actions(&mut c);
        c.handle_timeout(now + Duration::from_secs(59));
        assert!(actions(&mut c).is_empty());
        c.handle_timeout(now + Duration::from_secs(60));
        assert_eq!(actions(&mut c), [Action::StopMedia]);
        c.handle(now + Duration::from_secs(60), Input::MediaEnded(None));
        assert_eq!(actions(&mut c), [Action::Bye]);
        assert!(summary(&c).session_expired);
    }

    fn peer_reinvite_with(request: u64, session_expires: SessionExpires) -> Input {
        Input::PeerReinvite {
            request: RequestId(request),
            body: vec![],
            update: true,
            session_expires: Some(session_expires),
        }
    }

    /// The same 3-minute call when we are the refresher: the peer asks for
    /// 90 s without naming a refresher and without `Supported: timer`, so we
    /// refresh, every 45 s, with our SDP unchanged (image stays image).
    #[test]
    fn a_three_minute_call_in_which_we_refresh() {
        let t0 = Instant::now();
        let offer = SessionDescription::parse(PEER_IMAGE).unwrap();
        let req = TimerRequest { session_expires: Some(se(90, None)), supported: false };
        let mut c = Call::answering(cfg(), &offer, req, t0, 1).unwrap();
        let accepted = match &actions(&mut c)[..] {
            [Action::Accept { sdp, timer: Some(t) }, Action::StartMedia(_)] if t.we_refresh => sdp.clone(),
            other => panic!("{other:?}"),
        };
        for i in 1..=3u64 {
            let now = t0 + Duration::from_secs(45 * i);
            c.handle_timeout(now - Duration::from_millis(1));
            assert!(actions(&mut c).is_empty());
            c.handle_timeout(now);
            match &actions(&mut c)[..] {
                [Action::Reinvite { sdp, timer: Some(t) }] => {
                    assert_eq!(*sdp, accepted, "the refresh offers what we have");
                    assert!(t.we_refresh);
                }
                other => panic!("{i}: {other:?}"),
            }
            // A crossing re-INVITE while our refresh is pending: 491.
            c.handle(now, peer_reinvite(10 + i, PEER_IMAGE));
            assert_eq!(answered(&actions(&mut c)), (10 + i, 491, None));
            c.handle(now, reinvite_response(200, PEER_IMAGE));
            assert!(actions(&mut c).is_empty());
            assert_eq!(c.state(), CallState::T38);
        }
        c.handle(t0 + Duration::from_secs(180), Input::MediaEnded(Some(result(true))));
        let s = summary(&c);
        assert_eq!(s.refreshes_sent, 3);
        assert_eq!(s.states, [CallState::Inviting, CallState::T38, CallState::Ending]);
    }

    /// Calling: the 2xx makes us the refresher (`refresher=uac`); a refresh
    /// refused with 481 (the peer lost the dialog) ends the call (RFC 4028 10).
    #[test]
    fn as_caller_we_refresh_and_a_481_ends_the_call() {
        use crate::sip::session_timer::Refresher;
        let t0 = Instant::now();
        let mut c = Call::placing(cfg(), t0, 1);
        actions(&mut c);
        c.handle(
            t0,
            Input::InviteResponse {
                status: 200,
                body: PEER_AUDIO.to_vec(),
                session_expires: Some(se(120, Some(Refresher::Uac))),
                min_se: None,
            },
        );
        actions(&mut c);
        assert_eq!(c.session_timer(), Some(SessionTimer { interval: Duration::from_secs(120), we_refresh: true }));
        // Our T.38 switch at 3 s refreshes the session too.
        c.handle_timeout(t0 + Duration::from_secs(3));
        assert!(matches!(&actions(&mut c)[..], [Action::Reinvite { timer: Some(_), .. }]));
        let at = t0 + Duration::from_secs(4);
        c.handle(
            at,
            Input::ReinviteResponse {
                status: 200,
                body: PEER_IMAGE.to_vec(),
                session_expires: Some(se(120, Some(Refresher::Uac))),
            },
        );
        actions(&mut c);
        assert_eq!(c.timer(Timer::SessionRefresh), Some(at + Duration::from_secs(60)));
        c.handle_timeout(at + Duration::from_secs(60));
        assert!(matches!(&actions(&mut c)[..], [Action::Reinvite { .. }]));
        c.handle(at + Duration::from_secs(61), reinvite_response(481, &[]));
        assert_eq!(actions(&mut c), [Action::StopMedia]);
        // Without Session-Expires in the 2xx there is no timer (RFC 4028 7.2).
        let mut c = placed_on_audio(t0);
        assert_eq!(c.session_timer(), None);
        assert_eq!(c.timer(Timer::SessionRefresh), None);
        assert_eq!(c.timer(Timer::SessionExpiry), None);
        actions(&mut c);
    }

    /// Intervals below 90 s are refused: 422 to the INVITE, 422 to a refresh.
    #[test]
    fn intervals_below_min_se_are_refused() {
        let t0 = Instant::now();
        let offer = SessionDescription::parse(PEER_AUDIO).unwrap();
        let req = TimerRequest { session_expires: Some(se(30, None)), supported: true };
        assert_eq!(Call::answering(cfg(), &offer, req, t0, 1).unwrap_err(), Refusal::IntervalTooSmall);
        let mut c = placed_on_audio(t0);
        c.handle(t0, peer_reinvite_with(4, se(30, None)));
        assert_eq!(answered(&actions(&mut c)), (4, 422, None));
    }

    #[test]
    fn timers_are_data() {
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::MaxCall, t0 + Duration::from_secs(9));
        t.set(Timer::T38Switch, t0 + Duration::from_secs(3));
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(3)));
        assert_eq!(t.expired(t0 + Duration::from_secs(2)), None);
        assert_eq!(t.expired(t0 + Duration::from_secs(10)), Some(Timer::T38Switch));
        t.stop(Timer::T38Switch);
        assert_eq!(t.expired(t0 + Duration::from_secs(10)), Some(Timer::MaxCall));
    }
}
