//! Call control (`faxgate_t38::sip::call`), stateful: a call placed or
//! answered, then any sequence of SIP events, media reports and time steps.
//! Session timers and trunk media restrictions vary too. Invariants: never
//! two INVITEs or two re-INVITEs (switches or refreshes) pending; CANCEL,
//! BYE, Accept, StartMedia and StopMedia at most once each, and in order; no
//! re-INVITE once the media is stopping; every request of the peer answered
//! exactly once; no action and no timer once the call is over; no deadline
//! in the past; and the call always ends once the peer hangs up and the
//! media reports its end.
#![no_main]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use faxgate_t38::sdp::{Capabilities, LocalMedia, SessionDescription};
use faxgate_t38::sip::call::{Action, Call, CallConfig, CallState, Input, Outcome, RequestId, TimerRequest};
use faxgate_t38::sip::session_timer::{Refresher, SessionExpires};
use faxgate_t38::{CompletionCode, Event, FaxResult};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Sdp {
    Audio { port: u16 },
    Image { port: u16, version: u8, max_datagram: u16 },
    ImageAndAudio,
    ImageRefused,
    Empty,
    Raw(Vec<u8>),
}

impl Sdp {
    fn bytes(&self) -> Vec<u8> {
        let head = "v=0\r\no=peer 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n";
        match self {
            Sdp::Audio { port } => format!("{head}m=audio {port} RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\n").into_bytes(),
            Sdp::Image { port, version, max_datagram } => format!(
                "{head}m=image {port} udptl t38\r\na=T38FaxVersion:{version}\r\na=T38FaxMaxDatagram:{max_datagram}\r\n\
                 a=T38FaxUdpEC:t38UDPRedundancy\r\n"
            )
            .into_bytes(),
            Sdp::ImageAndAudio => format!(
                "{head}m=image 6002 udptl t38\r\na=T38FaxVersion:0\r\nm=audio 6000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
            )
            .into_bytes(),
            Sdp::ImageRefused => format!("{head}m=image 0 udptl t38\r\nm=audio 6000 RTP/AVP 8\r\n").into_bytes(),
            Sdp::Empty => Vec::new(),
            Sdp::Raw(b) => b.clone(),
        }
    }
}

/// A `Session-Expires` as a message may carry it.
#[derive(Debug, Arbitrary)]
enum Se {
    None,
    Secs(u16),
    Uac(u16),
    Uas(u16),
}

impl Se {
    fn get(&self) -> Option<SessionExpires> {
        let se = |secs: &u16, refresher| SessionExpires { interval: Duration::from_secs(u64::from(*secs)), refresher };
        match self {
            Se::None => None,
            Se::Secs(s) => Some(se(s, None)),
            Se::Uac(s) => Some(se(s, Some(Refresher::Uac))),
            Se::Uas(s) => Some(se(s, Some(Refresher::Uas))),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// Time passes (ms).
    Advance(u32),
    InviteResponse(u16, Sdp, Se, Option<u16>),
    InviteFailed,
    ReinviteResponse(u16, Sdp, Se),
    ReinviteFailed,
    PeerReinvite(Sdp, bool, Se),
    PeerRequest,
    PeerHungUp,
    HangUp,
    Page,
    MediaEnded(bool),
    MediaFailed,
}

#[derive(Debug, Arbitrary)]
struct Scenario {
    incoming: bool,
    offer: Sdp,
    t38_initial: bool,
    /// A destination known to refuse T.38: do not ask for it.
    stay_in_audio: bool,
    audio_only: bool,
    trunk_media_only: bool,
    session_expires: u16,
    timer: Se,
    timer_supported: bool,
    ring_s: u8,
    switch_ms: u16,
    answer_timeout_s: u8,
    seed: u64,
    ops: Vec<Op>,
}

/// What the harness knows of the call's dealings, to check them.
#[derive(Default)]
struct Model {
    invite_pending: bool,
    invites: u32,
    reinvite_pending: bool,
    cancels: u32,
    byes: u32,
    accepts: u32,
    rejects: u32,
    media_started: bool,
    media_stopped: bool,
    ringing: u32,
    open_requests: BTreeSet<u64>,
    next_request: u64,
    over: bool,
}

impl Model {
    fn take_actions(&mut self, call: &mut Call) {
        while let Some(a) = call.poll_action() {
            assert!(!self.over, "an action after the call was over: {a:?}");
            match a {
                Action::Invite { session_expires, .. } => {
                    assert!(!self.invite_pending, "two INVITEs pending");
                    assert!(session_expires >= Duration::from_secs(90), "Session-Expires below Min-SE");
                    self.invite_pending = true;
                    self.invites += 1;
                    assert!(self.invites <= 3, "at most a fallback and a 422 retry");
                }
                Action::Cancel => {
                    assert!(self.invite_pending, "CANCEL without an INVITE pending");
                    self.cancels += 1;
                    assert!(self.cancels <= 1, "CANCEL twice");
                }
                Action::Ringing => {
                    self.ringing += 1;
                    assert!(self.ringing <= 1 && self.accepts == 0);
                }
                Action::Accept { .. } => {
                    self.accepts += 1;
                    assert!(self.accepts <= 1 && self.rejects == 0, "answered twice");
                }
                Action::Reject(status) => {
                    assert!((400..700).contains(&status));
                    self.rejects += 1;
                    assert!(self.rejects <= 1 && self.accepts == 0);
                }
                Action::Reinvite { sdp, timer } => {
                    assert!(!self.reinvite_pending, "two re-INVITEs pending");
                    assert!(self.media_started && self.byes == 0 && !self.media_stopped);
                    assert!(!sdp.media.is_empty());
                    assert!(timer.is_none_or(|t| t.interval >= Duration::from_secs(90)));
                    self.reinvite_pending = true;
                }
                Action::Answer { request, status, .. } => {
                    assert!(self.open_requests.remove(&request.0), "{request:?} answered twice or never asked");
                    assert!((200..700).contains(&status));
                }
                Action::StartMedia(_) => {
                    assert!(!self.media_started, "media started twice");
                    self.media_started = true;
                }
                Action::UpdateMedia(_) => assert!(self.media_started),
                Action::StopMedia => {
                    assert!(self.media_started && !self.media_stopped, "StopMedia twice or before the media");
                    self.media_stopped = true;
                }
                Action::Bye => {
                    self.byes += 1;
                    assert!(self.byes <= 1, "BYE twice");
                }
            }
        }
        if call.is_over() {
            self.over = true;
            assert_eq!(call.poll_timeout(), None, "a timer after the end");
        }
    }

    fn request(&mut self) -> RequestId {
        self.next_request += 1;
        self.open_requests.insert(self.next_request);
        RequestId(self.next_request)
    }
}

fn result(ok: bool) -> FaxResult {
    FaxResult {
        code: CompletionCode(if ok { 0 } else { 48 }),
        text: String::new(),
        pages: 1,
        pages_in_file: None,
        bit_rate: 9600,
        ecm: false,
        remote_ident: None,
    }
}

fuzz_target!(|s: Scenario| {
    let caps = Capabilities { t38: !s.audio_only, ..Capabilities::default() };
    let cfg = CallConfig {
        caps,
        local: LocalMedia { addr: "192.0.2.1".parse().unwrap(), audio_port: 4000, image_port: 4002 },
        media_sources: if s.trunk_media_only { vec!["192.0.2.8".parse().unwrap()] } else { Vec::new() },
        session_expires: Duration::from_secs(u64::from(s.session_expires)),
        t38_initial: s.t38_initial,
        ask_t38: !s.stay_in_audio,
        t38_switch_delay: Duration::from_millis(u64::from(s.switch_ms)),
        answer_timeout: Duration::from_secs(u64::from(s.answer_timeout_s)),
        ring: Duration::from_secs(u64::from(s.ring_s % 8)),
        max_call: Duration::from_secs(3600),
    };
    let mut now = Instant::now();
    let mut call = if s.incoming {
        let Ok(offer) = SessionDescription::parse(&s.offer.bytes()) else { return };
        let timer = TimerRequest { session_expires: s.timer.get(), supported: s.timer_supported };
        match Call::answering(cfg, &offer, timer, now, s.seed) {
            Ok(c) => c,
            Err(_) => return,
        }
    } else {
        Call::placing(cfg, now, s.seed)
    };
    let mut m = Model::default();
    m.take_actions(&mut call);
    let check_deadline = |call: &Call, now: Instant, strict: bool| {
        if let Some(t) = call.poll_timeout() {
            assert!(if strict { t > now } else { t >= now }, "a deadline in the past");
        }
    };
    for op in s.ops.iter().take(200) {
        let input = match op {
            Op::Advance(ms) => {
                now += Duration::from_millis(u64::from(*ms % 7_200_000));
                call.handle_timeout(now);
                m.take_actions(&mut call);
                check_deadline(&call, now, true);
                continue;
            }
            Op::InviteResponse(status, sdp, se, min_se) => {
                let status = 100 + status % 600;
                if status >= 200 {
                    m.invite_pending = false;
                }
                Input::InviteResponse {
                    status,
                    body: sdp.bytes(),
                    session_expires: se.get(),
                    min_se: min_se.map(|s| Duration::from_secs(u64::from(s))),
                }
            }
            Op::InviteFailed => {
                m.invite_pending = false;
                Input::InviteFailed("timeout".into())
            }
            Op::ReinviteResponse(status, sdp, se) => {
                m.reinvite_pending = false;
                Input::ReinviteResponse { status: 200 + status % 500, body: sdp.bytes(), session_expires: se.get() }
            }
            Op::ReinviteFailed => {
                m.reinvite_pending = false;
                Input::ReinviteFailed
            }
            Op::PeerReinvite(sdp, update, se) => Input::PeerReinvite {
                request: m.request(),
                body: sdp.bytes(),
                update: *update,
                session_expires: se.get(),
            },
            Op::PeerRequest => Input::PeerRequest { request: m.request() },
            Op::PeerHungUp => Input::PeerHungUp,
            Op::HangUp => Input::HangUp,
            Op::Page => Input::Fax(Event::Finished(result(true))),
            Op::MediaEnded(ok) => Input::MediaEnded(Some(result(*ok))),
            Op::MediaFailed => Input::MediaFailed("engine".into()),
        };
        if m.over {
            // The driver answers requests of a call that is over itself.
            call.handle(now, input);
            assert!(call.poll_action().is_none());
            m.open_requests.clear();
            continue;
        }
        call.handle(now, input);
        m.take_actions(&mut call);
        check_deadline(&call, now, false);
    }
    if !m.over {
        assert!(m.open_requests.is_empty(), "requests left unanswered: {:?}", m.open_requests);
    }
    // The peer goes, the media ends, time passes: the call is over.
    for _ in 0..4 {
        if m.invite_pending && !m.over {
            let cancelled =
                Input::InviteResponse { status: 487, body: Vec::new(), session_expires: None, min_se: None };
            call.handle(now, cancelled);
            m.invite_pending = false;
            m.take_actions(&mut call);
        }
        call.handle(now, Input::PeerHungUp);
        m.take_actions(&mut call);
        if m.media_started {
            call.handle(now, Input::MediaEnded(None));
            m.take_actions(&mut call);
        }
        now += Duration::from_secs(7200);
        call.handle_timeout(now);
        m.take_actions(&mut call);
    }
    assert!(call.is_over(), "the call never ended: {:?}", call.state());
    match call.outcome() {
        Some(Outcome::Ended(summary)) => {
            assert!(m.media_started);
            assert_eq!(summary.states.first(), Some(&CallState::Inviting));
            assert_eq!(summary.states.last(), Some(&CallState::Ending));
            assert_eq!(summary.t38, summary.states.contains(&CallState::T38));
            assert_eq!(summary.events.len(), summary.event_offsets.len());
        }
        Some(Outcome::Failed(_)) => {}
        Some(Outcome::Unanswered(status)) => {
            assert!(s.incoming && !m.media_started && (400..700).contains(status));
        }
        None => unreachable!(),
    }
});
