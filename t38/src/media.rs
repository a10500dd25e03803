//! The media of one fax call: a fax session over G.711 RTP or T.38 UDPTL,
//! switched from audio to T.38 when the SDP says so, and the one loop that
//! drives it over UDP.
//!
//! [`CallMedia`] is sans-IO: datagrams and `now` in, datagrams (with the
//! socket and destination) and events out. Media is symmetric: once the
//! peer's packets arrive, replies go to where they come from rather than to
//! the SDP address (NAT). On a switch to T.38 the fax session restarts T.30
//! from scratch, as Asterisk and FreeSWITCH do.
//!
//! [`run_media`] is the thin tokio loop around it (two sockets and one
//! sleep), run on the media runtime ([`spawn_media`]); it counts how late
//! each wake-up for a session tick comes ([`lateness`]). Time comes from a
//! [`MediaClock`]: real time in the daemon, faster for tests and
//! benchmarks in which both ends run on the same clock factor.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::Error;
use crate::g711::Law;
use crate::rtp::{FRAME, JitterBuffer, RtpPacket, RtpSender};
use crate::sdp::Negotiated;
use crate::session::{Direction, Event, FaxResult, FaxSession, FaxSettings, SessionConfig, TICK, Transmit, Transport};
use crate::udptl::Udptl;

/// Jitter buffer depth in 20 ms frames.
const JITTER_DEPTH: usize = 5;

/// Which local socket a datagram uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Socket {
    /// The RTP socket.
    Audio,
    /// The UDPTL socket.
    Image,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// From which socket.
    pub socket: Socket,
    /// To where.
    pub to: SocketAddr,
    /// The bytes.
    pub data: Vec<u8>,
}

/// What the fax does and how.
#[derive(Debug, Clone)]
pub struct FaxJob {
    /// Send or receive.
    pub direction: Direction,
    /// We placed the call (CNG) or answered it (CED).
    pub calling: bool,
    /// T.30 settings.
    pub settings: FaxSettings,
    /// Where the peer's packets may come from (the trunk's media sources);
    /// packets from elsewhere are counted and ignored, never answered.
    /// Empty: anywhere.
    pub peers: Vec<std::net::IpAddr>,
}

/// Counters of one call's media.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// RTP packets received and accepted.
    pub rtp_in: u64,
    /// RTP packets sent.
    pub rtp_out: u64,
    /// UDPTL datagrams received.
    pub udptl_in: u64,
    /// UDPTL datagrams sent.
    pub udptl_out: u64,
    /// Datagrams refused as malformed or of the wrong payload type.
    pub malformed: u64,
    /// Datagrams from an address the trunk does not allow, ignored.
    pub foreign: u64,
    /// Times the session restarted on a switch to T.38.
    pub switches: u32,
}

enum Media {
    Audio { law: Law, rx_pt: u8, sender: RtpSender, jitter: JitterBuffer, remote: SocketAddr, started: bool },
    T38 { udptl: Udptl, remote: SocketAddr },
}

/// The media state of one call.
pub struct CallMedia {
    job: FaxJob,
    session: Box<FaxSession>,
    media: Media,
    out: std::collections::VecDeque<Datagram>,
    events: std::collections::VecDeque<Event>,
    stats: MediaStats,
    seed: u64,
    result: Option<FaxResult>,
    next_tick: Instant,
}

impl std::fmt::Debug for CallMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallMedia").field("t38", &self.is_t38()).field("stats", &self.stats).finish()
    }
}

impl CallMedia {
    /// Starts the fax session over `media` at `now`.
    pub fn new(job: FaxJob, media: &Negotiated, now: Instant, seed: u64) -> Result<Self, Error> {
        let (session, m) = Self::make(&job, media, now, seed)?;
        Ok(Self {
            job,
            session: Box::new(session),
            media: m,
            out: Default::default(),
            events: Default::default(),
            stats: MediaStats::default(),
            seed,
            result: None,
            next_tick: now,
        })
    }

    fn make(job: &FaxJob, media: &Negotiated, now: Instant, seed: u64) -> Result<(FaxSession, Media), Error> {
        match media {
            Negotiated::Audio { remote, law, pt, .. } => {
                let s = FaxSession::new(
                    SessionConfig {
                        direction: job.direction.clone(),
                        transport: Transport::Audio(*law),
                        calling: job.calling,
                        settings: job.settings.clone(),
                    },
                    now,
                )?;
                Ok((
                    s,
                    Media::Audio {
                        law: *law,
                        rx_pt: *pt,
                        sender: RtpSender::new(*pt, seed),
                        jitter: JitterBuffer::new(JITTER_DEPTH),
                        remote: *remote,
                        started: false,
                    },
                ))
            }
            Negotiated::T38 { remote, version, ec, max_datagram } => {
                let udptl = Udptl::new(*ec, *max_datagram);
                let s = FaxSession::new(
                    SessionConfig {
                        direction: job.direction.clone(),
                        transport: Transport::T38 { version: *version, max_ifp: udptl.max_ifp().max(32) },
                        calling: job.calling,
                        settings: job.settings.clone(),
                    },
                    now,
                )?;
                Ok((s, Media::T38 { udptl, remote: *remote }))
            }
        }
    }

    /// True once on T.38.
    pub fn is_t38(&self) -> bool {
        matches!(self.media, Media::T38 { .. })
    }

    /// Counters.
    pub fn stats(&self) -> MediaStats {
        self.stats
    }

    /// The peer's media address in use (learned from its packets).
    pub fn remote(&self) -> SocketAddr {
        match &self.media {
            Media::Audio { remote, .. } | Media::T38 { remote, .. } => *remote,
        }
    }

    /// The SDP changed. A switch to T.38 restarts the fax session; the same
    /// kind of media only updates the address.
    pub fn update(&mut self, media: &Negotiated, now: Instant) -> Result<(), Error> {
        if self.result.is_some() {
            return Ok(());
        }
        match (&mut self.media, media) {
            (Media::T38 { remote, .. }, Negotiated::T38 { remote: r, .. })
            | (Media::Audio { remote, .. }, Negotiated::Audio { remote: r, .. }) => {
                *remote = *r;
                Ok(())
            }
            (Media::Audio { .. }, Negotiated::T38 { .. }) => {
                self.seed = self.seed.wrapping_add(1);
                let (s, m) = Self::make(&self.job, media, now, self.seed)?;
                *self.session = s;
                self.media = m;
                // Audio not yet sent is stale once on T.38.
                self.out.clear();
                self.next_tick = now;
                self.stats.switches += 1;
                Ok(())
            }
            // Back to audio (Asterisk does so after a T.38 fax): the fax
            // stays on T.38 until it ends; audio media is not used again.
            (Media::T38 { .. }, Negotiated::Audio { .. }) => Ok(()),
        }
    }

    /// A datagram arrived on `socket` from `from`.
    pub fn handle_datagram(&mut self, now: Instant, socket: Socket, from: SocketAddr, data: &[u8]) {
        self.handle_timeout(now);
        if !self.job.peers.is_empty() && !self.job.peers.contains(&from.ip()) {
            self.stats.foreign += 1;
            return;
        }
        match (&mut self.media, socket) {
            (Media::Audio { rx_pt, jitter, remote, started, .. }, Socket::Audio) => match RtpPacket::parse(data) {
                Ok(p) if p.pt == *rx_pt && p.payload.len() <= 4 * FRAME => {
                    *remote = from;
                    *started = true;
                    jitter.push(p.seq, p.payload);
                    self.stats.rtp_in += 1;
                }
                // telephone-event and comfort noise are not fax.
                Ok(_) => {}
                Err(_) => self.stats.malformed += 1,
            },
            (Media::T38 { udptl, remote }, Socket::Image) => match udptl.decode(data) {
                Ok(list) => {
                    *remote = from;
                    self.stats.udptl_in += 1;
                    for r in list {
                        let _ = self.session.handle_ifp(now, r.seq, &r.ifp);
                    }
                    self.drain();
                }
                Err(_) => self.stats.malformed += 1,
            },
            // Stray packets of the other media (late RTP after the switch).
            _ => {}
        }
    }

    /// Runs everything due by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while self.result.is_none() && self.next_tick <= now {
            let t = self.next_tick;
            if let Media::Audio { jitter, law, started, .. } = &mut self.media
                && *started
            {
                let frame = jitter.pop().unwrap_or_else(|| vec![law.silence(); FRAME]);
                let _ = self.session.handle_audio(t, &frame);
            }
            self.session.handle_timeout(t);
            self.drain();
            self.next_tick += TICK;
        }
    }

    /// When [`CallMedia::handle_timeout`] is next needed; None once finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.result.is_none().then_some(self.next_tick)
    }

    /// The call was cleared (BYE): ends T.30 now.
    pub fn hang_up(&mut self) {
        self.session.hang_up();
        self.drain();
    }

    /// The fax's result once phase E is reached.
    pub fn result(&self) -> Option<&FaxResult> {
        self.result.as_ref()
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.out.pop_front()
    }

    /// Next fax event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn drain(&mut self) {
        while let Some(tx) = self.session.poll_transmit() {
            match (tx, &mut self.media) {
                (Transmit::Audio(payload), Media::Audio { sender, remote, .. }) => {
                    self.stats.rtp_out += 1;
                    self.out.push_back(Datagram { socket: Socket::Audio, to: *remote, data: sender.packet(&payload) });
                }
                (Transmit::Ifp { data, copies }, Media::T38 { udptl, remote }) => match udptl.encode(&data) {
                    Ok(d) => {
                        for _ in 0..copies.max(1) {
                            self.stats.udptl_out += 1;
                            self.out.push_back(Datagram { socket: Socket::Image, to: *remote, data: d.clone() });
                        }
                    }
                    Err(e) => tracing::warn!("udptl: {e}"),
                },
                _ => {}
            }
        }
        while let Some(ev) = self.session.poll_event() {
            if let Event::Finished(r) = &ev {
                self.result = Some(r.clone());
            }
            self.events.push_back(ev);
        }
    }
}

/// Commands to a running media loop.
#[derive(Debug)]
pub enum MediaCmd {
    /// New SDP was agreed.
    Update(Negotiated),
    /// The call was cleared.
    HangUp,
}

/// The clock of media loops and call control: call time runs `scale` times
/// faster than real time (1 in the daemon; more in tests and benchmarks,
/// where both ends of a call must use the same factor, since spandsp counts
/// time in samples).
#[derive(Debug, Clone, Copy)]
pub struct MediaClock {
    epoch: Instant,
    scale: f64,
}

impl MediaClock {
    /// A real-time clock.
    pub fn real_time() -> Self {
        Self { epoch: Instant::now(), scale: 1.0 }
    }

    /// A clock running `scale` times faster than real time (1 to 1000).
    pub fn scaled(scale: f64) -> Result<Self, Error> {
        if !(scale.is_finite() && (1.0..=1000.0).contains(&scale)) {
            return Err(Error::InvalidSetting("the media clock's rate must be between 1 and 1000"));
        }
        Ok(Self { epoch: Instant::now(), scale })
    }

    /// Call seconds per real second.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Call time now.
    pub fn now(&self) -> Instant {
        self.epoch + self.epoch.elapsed().mul_f64(self.scale)
    }

    /// The real instant at which call time `t` comes.
    pub fn real(&self, t: Instant) -> Instant {
        self.epoch + t.saturating_duration_since(self.epoch).div_f64(self.scale)
    }

    /// A span of call time in real time.
    pub fn real_duration(&self, d: Duration) -> Duration {
        d.div_f64(self.scale)
    }
}

/// Runs `media` over its two sockets until the fax ends or the call is
/// cleared; fax events go to `events`. Returns the fax result.
pub async fn run_media(
    mut media: CallMedia,
    audio: Arc<UdpSocket>,
    image: Arc<UdpSocket>,
    clock: MediaClock,
    mut cmds: mpsc::UnboundedReceiver<MediaCmd>,
    events: mpsc::UnboundedSender<Event>,
) -> (Option<FaxResult>, MediaStats) {
    let mut abuf = vec![0u8; 2048];
    let mut ibuf = vec![0u8; 2048];
    let mut hung_up = false;
    let sleep = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(sleep);
    loop {
        while let Some(d) = media.poll_transmit() {
            let s = match d.socket {
                Socket::Audio => &audio,
                Socket::Image => &image,
            };
            if let Err(e) = s.try_send_to(&d.data, d.to) {
                tracing::debug!("media send to {}: {e}", d.to);
            }
        }
        while let Some(ev) = media.poll_event() {
            let _ = events.send(ev);
        }
        if media.result().is_some() {
            return (media.result().cloned(), media.stats());
        }
        let deadline = media.poll_timeout().map(|t| clock.real(t));
        sleep.as_mut().reset(deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(1)).into());
        tokio::select! {
            r = audio.recv_from(&mut abuf) => {
                if let Ok((n, from)) = r {
                    record_lateness(deadline);
                    media.handle_datagram(clock.now(), Socket::Audio, from, &abuf[..n]);
                }
            }
            r = image.recv_from(&mut ibuf) => {
                if let Ok((n, from)) = r {
                    record_lateness(deadline);
                    media.handle_datagram(clock.now(), Socket::Image, from, &ibuf[..n]);
                }
            }
            c = cmds.recv(), if !hung_up => match c {
                Some(MediaCmd::Update(n)) => {
                    if let Err(e) = media.update(&n, clock.now()) {
                        tracing::warn!("media update: {e}");
                        media.hang_up();
                    }
                }
                Some(MediaCmd::HangUp) | None => {
                    hung_up = true;
                    media.hang_up();
                }
            },
            () = &mut sleep => {
                record_lateness(deadline);
                media.handle_timeout(clock.now());
            }
        }
    }
}

/// A pair of media sockets bound on `ip`, port 0 each, registered with the
/// media runtime (see [`spawn_media`]).
pub async fn bind_media(ip: std::net::IpAddr) -> Result<(Arc<UdpSocket>, Arc<UdpSocket>), Error> {
    let bind = async move {
        let a = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let i = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        Ok::<_, Error>((Arc::new(a), Arc::new(i)))
    };
    media_runtime().spawn(bind).await.map_err(|e| Error::Io(std::io::Error::other(e)))?
}

/// Threads of the media runtime unless [`set_media_threads`] says otherwise.
const MEDIA_THREADS: usize = 2;
/// Their name.
const MEDIA_THREAD_NAME: &str = "fax-media";

static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();

/// Sets how many threads the media runtime gets (1 to 256; default 2). Only
/// before its first use (benchmarks of many concurrent calls).
pub fn set_media_threads(n: usize) -> Result<(), Error> {
    if !(1..=256).contains(&n) {
        return Err(Error::InvalidSetting("media threads must be between 1 and 256"));
    }
    if RUNTIME.get().is_some() || THREADS.set(n).is_err() {
        return Err(Error::InvalidSetting("the media runtime has started already"));
    }
    Ok(())
}

/// The runtime that runs every call's media loop, apart from the one that
/// serves SIP (and, in the daemon, SMTP and the admin socket).
///
/// spandsp does several milliseconds of uninterruptible work when a page
/// starts (decoding the TIFF page) and when it ends (encoding and writing
/// it). On the signalling runtime that would hold up every SIP transaction
/// and SMTP session on the same worker; here it only delays other calls'
/// media, which their jitter buffers and T.38's redundancy absorb. Created
/// on first use and never dropped (a runtime cannot be dropped from inside
/// another one).
fn media_runtime() -> &'static tokio::runtime::Runtime {
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(*THREADS.get_or_init(|| MEDIA_THREADS))
            .thread_name(MEDIA_THREAD_NAME)
            .enable_all()
            .build()
            .expect("the fax media runtime starts")
    })
}

/// Runs [`run_media`] on the media runtime; the handle can be awaited (or
/// aborted) from any runtime.
pub fn spawn_media(
    media: CallMedia,
    audio: Arc<UdpSocket>,
    image: Arc<UdpSocket>,
    clock: MediaClock,
    cmds: mpsc::UnboundedReceiver<MediaCmd>,
    events: mpsc::UnboundedSender<Event>,
) -> tokio::task::JoinHandle<(Option<FaxResult>, MediaStats)> {
    media_runtime().spawn(run_media(media, audio, image, clock, cmds, events))
}

/// Whether the current thread is one of the media runtime's.
pub fn on_media_thread() -> bool {
    std::thread::current().name() == Some(MEDIA_THREAD_NAME)
}

/// How late media loops woke up for their sessions' ticks, in real time,
/// over every call since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Lateness {
    /// Wake-ups measured.
    pub ticks: u64,
    /// Median lateness.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Worst.
    pub max: Duration,
}

/// Histogram resolution.
const BUCKET_US: u64 = 10;
/// Buckets (10 µs each, up to 200 ms; later wake-ups count in the last one).
const BUCKETS: usize = 20_000;

static LATE: [AtomicU64; BUCKETS] = [const { AtomicU64::new(0) }; BUCKETS];
static LATE_MAX_US: AtomicU64 = AtomicU64::new(0);

/// Counts a wake-up that came after the session's tick was due.
fn record_lateness(deadline: Option<Instant>) {
    let Some(late) = deadline.and_then(|d| Instant::now().checked_duration_since(d)) else { return };
    let us = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
    LATE_MAX_US.fetch_max(us, Ordering::Relaxed);
    let b = usize::try_from(us / BUCKET_US).unwrap_or(BUCKETS - 1).min(BUCKETS - 1);
    LATE[b].fetch_add(1, Ordering::Relaxed);
}

/// Lateness of session ticks so far: how long after a tick was due the
/// media loop woke up to run it.
pub fn lateness() -> Lateness {
    let counts: Vec<u64> = LATE.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let max_us = LATE_MAX_US.load(Ordering::Relaxed);
    let total: u64 = counts.iter().sum();
    let percentile = |p: f64| {
        if total == 0 {
            return Duration::ZERO;
        }
        let want = ((total as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return if i == BUCKETS - 1 {
                    Duration::from_micros(max_us)
                } else {
                    Duration::from_micros((i as u64 + 1) * BUCKET_US)
                };
            }
        }
        Duration::from_micros(max_us)
    };
    Lateness {
        ticks: total,
        p50: percentile(0.50),
        p99: percentile(0.99),
        p999: percentile(0.999),
        max: Duration::from_micros(max_us),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::udptl::ErrorCorrection;

    fn job(dir: &std::path::Path) -> FaxJob {
        FaxJob {
            direction: Direction::Receive { tiff: dir.join("rx.tif") },
            calling: false,
            settings: FaxSettings::default(),
            peers: Vec::new(),
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("faxgate-call-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Media goes to where the peer's packets come from, not to the SDP address.
    #[test]
    fn t38_is_symmetric() {
        let now = Instant::now();
        let sdp_addr: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let real: SocketAddr = "127.0.0.1:2000".parse().unwrap();
        let neg = Negotiated::T38 { remote: sdp_addr, version: 0, ec: ErrorCorrection::None, max_datagram: 400 };
        let mut m = CallMedia::new(job(&tmp("t38")), &neg, now, 1).unwrap();
        m.handle_timeout(now + Duration::from_millis(200));
        let first = m.poll_transmit().expect("the answering terminal sends");
        assert_eq!((first.socket, first.to), (Socket::Image, sdp_addr));
        while m.poll_transmit().is_some() {}
        // A datagram from the peer's real (NATed) address: an IFP indicator (no signal).
        let mut peer = Udptl::new(ErrorCorrection::None, 400);
        let d = peer.encode(&[0x00]).unwrap();
        m.handle_datagram(now + Duration::from_millis(220), Socket::Image, real, &d);
        assert_eq!(m.remote(), real);
        m.handle_timeout(now + Duration::from_secs(4));
        let next = m.poll_transmit().expect("still sending");
        assert_eq!(next.to, real);
        // Malformed datagrams are counted and do not move the peer.
        m.handle_datagram(now + Duration::from_secs(4), Socket::Image, sdp_addr, &[0xff]);
        assert_eq!(m.remote(), real);
        assert_eq!(m.stats().malformed, 1);
    }

    /// With the trunk's media sources set, a packet from anywhere else is
    /// counted and ignored: media is never sent to where it came from.
    #[test]
    fn packets_from_foreign_addresses_are_ignored() {
        let now = Instant::now();
        let sdp_addr: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let neg = Negotiated::T38 { remote: sdp_addr, version: 0, ec: ErrorCorrection::None, max_datagram: 400 };
        let job = FaxJob { peers: vec![sdp_addr.ip()], ..job(&tmp("foreign")) };
        let mut m = CallMedia::new(job, &neg, now, 1).unwrap();
        let mut peer = Udptl::new(ErrorCorrection::None, 400);
        let d = peer.encode(&[0x00]).unwrap();
        m.handle_datagram(now, Socket::Image, "127.0.0.9:5000".parse().unwrap(), &d);
        assert_eq!((m.remote(), m.stats().foreign, m.stats().udptl_in), (sdp_addr, 1, 0));
        m.handle_datagram(now, Socket::Image, "127.0.0.1:2000".parse().unwrap(), &d);
        assert_eq!((m.remote(), m.stats().udptl_in), ("127.0.0.1:2000".parse().unwrap(), 1));
        m.handle_timeout(now + Duration::from_secs(4));
        assert!(std::iter::from_fn(|| m.poll_transmit()).all(|d| d.to.ip() == sdp_addr.ip()));
    }

    /// The media loop runs on the media runtime: it keeps sending while the
    /// runtime that started it is not polled at all (as when SIP or SMTP work
    /// holds the signalling runtime), and a spandsp step never runs there.
    #[test]
    fn media_runs_apart_from_the_signalling_runtime() {
        let signalling = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let neg = Negotiated::T38 {
            remote: peer.local_addr().unwrap(),
            version: 0,
            ec: ErrorCorrection::None,
            max_datagram: 400,
        };
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, _ev_rx) = mpsc::unbounded_channel();
        let (audio, image) = signalling.block_on(bind_media("127.0.0.1".parse().unwrap())).unwrap();
        let clock = MediaClock::real_time();
        let media = CallMedia::new(job(&tmp("apart")), &neg, clock.now(), 1).unwrap();
        let task = spawn_media(media, audio, image, clock, cmd_rx, ev_tx);
        // The signalling runtime is idle from here on: the answering
        // terminal's IFPs still arrive.
        let mut buf = [0u8; 512];
        for _ in 0..3 {
            let (n, _) = peer.recv_from(&mut buf).expect("the media loop sends without the signalling runtime");
            assert!(n >= 2);
        }
        cmd_tx.send(MediaCmd::HangUp).unwrap();
        let (result, _) = signalling.block_on(task).unwrap();
        assert!(result.is_some(), "a hung-up call ends with a result");
        assert!(!on_media_thread());
    }

    #[test]
    fn audio_is_symmetric_and_switches_to_t38() {
        let now = Instant::now();
        let sdp_addr: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let real: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let neg = Negotiated::Audio { remote: sdp_addr, law: Law::Alaw, pt: 8, telephone_event: None };
        let mut m = CallMedia::new(job(&tmp("audio")), &neg, now, 1).unwrap();
        let mut s = RtpSender::new(8, 9);
        for i in 0..10u32 {
            let t = now + TICK * i;
            m.handle_datagram(t, Socket::Audio, real, &s.packet(&[0xD5; FRAME]));
            m.handle_timeout(t);
        }
        assert_eq!(m.remote(), real);
        let mut last = None;
        while let Some(d) = m.poll_transmit() {
            assert_eq!(d.socket, Socket::Audio);
            last = Some(d.to);
        }
        assert_eq!(last, Some(real));
        assert_eq!(m.stats().rtp_in, 10);
        // Wrong payload type (telephone-event) is not fax audio.
        let mut te = RtpSender::new(101, 3);
        m.handle_datagram(now + TICK * 10, Socket::Audio, real, &te.packet(&[0; 4]));
        assert_eq!(m.stats().rtp_in, 10);
        let t38 = Negotiated::T38 { remote: sdp_addr, version: 0, ec: ErrorCorrection::None, max_datagram: 400 };
        m.update(&t38, now + TICK * 11).unwrap();
        assert!(m.is_t38());
        assert_eq!(m.stats().switches, 1);
        m.handle_timeout(now + TICK * 200);
        let sent: Vec<Datagram> = std::iter::from_fn(|| m.poll_transmit()).collect();
        assert!(!sent.is_empty() && sent.iter().all(|d| d.socket == Socket::Image), "{sent:?}");
    }
}
