//! Sans-IO fax sessions: one T.30 call sending or receiving a TIFF over
//! T.38 (IFP packets) or G.711 audio.
//!
//! Time comes in as `now`. A session runs in 20 ms (160-sample) ticks; a
//! late wake-up is caught up tick by tick, never in one large step (spandsp
//! emits at most one paced T.38 chunk per call). After any input, drain
//! [`FaxSession::poll_transmit`] and [`FaxSession::poll_event`], then sleep
//! until [`FaxSession::poll_timeout`].

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::Error;
use crate::ffi::{self, Engine, RawEvent, RawStats, T30Config, T38Config};
use crate::g711::Law;

/// Samples per tick at 8 kHz.
pub const TICK_SAMPLES: usize = 160;
/// One tick.
pub const TICK: Duration = Duration::from_millis(20);
/// Received audio buffered at most (1 s); older samples are dropped.
const MAX_AUDIO_BACKLOG: usize = 8000;
/// A call with nothing received (and, over T.38, nothing sent either: a
/// sender streaming a long page hears nothing back) for this long is
/// cleared, whatever state T.30 is in. Longer than every T.30 timer (T.30 5.4.3: T1 35 s, T5 60 s),
/// so spandsp normally ends the call first; this only guards against a
/// state with no timer running.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(75);

/// Modems offered (T.30 Table 2, DIS bits 11-14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Modems {
    /// ITU-T V.17: 7200-14400 bit/s.
    pub v17: bool,
    /// ITU-T V.29: 7200 and 9600 bit/s.
    pub v29: bool,
    /// ITU-T V.27ter: 2400 and 4800 bit/s.
    pub v27ter: bool,
}

/// Image compressions offered (T.30 Table 2: bit 16 2D, bit 31 T.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Compressions {
    /// T.4 one-dimensional (MH); every fax machine has it.
    pub t4_1d: bool,
    /// T.4 two-dimensional (MR).
    pub t4_2d: bool,
    /// T.6 (MMR); used only with ECM.
    pub t6: bool,
}

/// Vertical resolutions offered (T.4 2.2 and T.30 Table 2 bits 15, 41, 42).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resolutions {
    /// 3.85 lines/mm (or 200 x 100 dpi).
    pub standard: bool,
    /// 7.7 lines/mm (or 200 x 200 dpi).
    pub fine: bool,
    /// 15.4 lines/mm (or 200 x 400 dpi).
    pub superfine: bool,
}

/// Paper widths accepted (T.4 2.2; T.30 Table 2 bits 17-18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PaperWidths {
    /// 215 mm, 1728 pels: ISO A4 and US Letter/Legal.
    pub a4: bool,
    /// 255 mm, 2048 pels: ISO B4.
    pub b4: bool,
    /// 303 mm, 2432 pels: ISO A3.
    pub a3: bool,
}

/// T.30 settings of a session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FaxSettings {
    /// Local station identity sent as TSI or CSI (T.30 5.3.6.2.4: up to 20
    /// characters, digits, `+` and space).
    pub ident: String,
    /// Text of the page header line printed on each sent page, if any.
    pub page_header: Option<String>,
    /// Offer error correction mode (T.30 Annex A).
    pub ecm: bool,
    /// Modems offered.
    pub modems: Modems,
    /// Slowest data signalling rate accepted, bit/s: a DCS below it is
    /// refused (receiving) or the call abandoned (sending).
    pub min_bit_rate: u32,
    /// Compressions offered.
    pub compressions: Compressions,
    /// Resolutions offered.
    pub resolutions: Resolutions,
    /// Paper widths accepted.
    pub paper: PaperWidths,
}

impl Default for FaxSettings {
    fn default() -> Self {
        Self {
            ident: String::new(),
            page_header: None,
            ecm: true,
            modems: Modems { v17: true, v29: true, v27ter: true },
            min_bit_rate: 2400,
            compressions: Compressions { t4_1d: true, t4_2d: true, t6: true },
            resolutions: Resolutions { standard: true, fine: true, superfine: true },
            paper: PaperWidths { a4: true, b4: true, a3: true },
        }
    }
}

impl FaxSettings {
    fn validate(&self) -> Result<(), Error> {
        if self.ident.len() > 20 || !self.ident.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
            return Err(Error::InvalidSetting("station ident: at most 20 printable ASCII characters"));
        }
        if let Some(h) = &self.page_header
            && (h.len() > 50 || !h.chars().all(|c| c.is_ascii_graphic() || c == ' '))
        {
            return Err(Error::InvalidSetting("page header: at most 50 printable ASCII characters"));
        }
        if !(self.modems.v17 || self.modems.v29 || self.modems.v27ter) {
            return Err(Error::InvalidSetting("no modem enabled"));
        }
        if !(self.compressions.t4_1d || self.compressions.t4_2d || self.compressions.t6) {
            return Err(Error::InvalidSetting("no compression enabled"));
        }
        if !(self.resolutions.standard || self.resolutions.fine || self.resolutions.superfine) {
            return Err(Error::InvalidSetting("no resolution enabled"));
        }
        if !(self.paper.a4 || self.paper.b4 || self.paper.a3) {
            return Err(Error::InvalidSetting("no paper width enabled"));
        }
        if self.min_bit_rate > 14400 {
            return Err(Error::InvalidSetting("minimum bit rate above 14400"));
        }
        Ok(())
    }

    fn t30_config(&self) -> T30Config {
        let m = self.modems;
        let c = self.compressions;
        let r = self.resolutions;
        let p = self.paper;
        let bit = |on: bool, v: i32| if on { v } else { 0 };
        T30Config {
            ident: self.ident.clone(),
            page_header: self.page_header.clone(),
            ecm: self.ecm,
            modems: bit(m.v17, ffi::T30_SUPPORT_V17)
                | bit(m.v29, ffi::T30_SUPPORT_V29)
                | bit(m.v27ter, ffi::T30_SUPPORT_V27TER),
            compressions: bit(c.t4_1d, ffi::T4_COMPRESSION_T4_1D)
                | bit(c.t4_2d, ffi::T4_COMPRESSION_T4_2D)
                | bit(c.t6, ffi::T4_COMPRESSION_T6),
            resolutions: bit(r.standard, ffi::T4_RESOLUTION_R8_STANDARD | ffi::T4_RESOLUTION_200_100)
                | bit(r.fine, ffi::T4_RESOLUTION_R8_FINE | ffi::T4_RESOLUTION_200_200)
                | bit(r.superfine, ffi::T4_RESOLUTION_R8_SUPERFINE | ffi::T4_RESOLUTION_200_400),
            image_sizes: bit(p.a4, ffi::T4_SUPPORT_WIDTH_215MM)
                | bit(p.b4, ffi::T4_SUPPORT_WIDTH_255MM)
                | bit(p.a3, ffi::T4_SUPPORT_WIDTH_303MM)
                | ffi::T4_SUPPORT_LENGTH_UNLIMITED
                | ffi::T4_SUPPORT_LENGTH_A4
                | ffi::T4_SUPPORT_LENGTH_B4
                | ffi::T4_SUPPORT_LENGTH_US_LETTER
                | ffi::T4_SUPPORT_LENGTH_US_LEGAL,
            min_bit_rate: self.min_bit_rate,
            tx_file: None,
            rx_file: None,
        }
    }
}

/// Send or receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Direction {
    /// Send the pages of a TIFF.
    Send {
        /// The TIFF/F file.
        tiff: PathBuf,
        /// Send at most this many pages (from the first).
        max_pages: Option<u32>,
    },
    /// Receive into a TIFF (written as pages arrive).
    Receive {
        /// Where to write the received pages.
        tiff: PathBuf,
    },
}

/// The media the session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// ITU-T T.38 IFP packets.
    T38 {
        /// T.38 version (0-3); answer with the lower of both sides' versions.
        version: u8,
        /// Largest IFP packet to produce, in bytes (from `T38FaxMaxDatagram`
        /// minus UDPTL overhead).
        max_ifp: usize,
    },
    /// G.711 audio, 160 samples per 20 ms packet.
    Audio(Law),
}

/// How to set up a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Send or receive.
    pub direction: Direction,
    /// T.38 or audio.
    pub transport: Transport,
    /// The calling party sends CNG and waits for DIS; the answering party
    /// sends CED and DIS.
    pub calling: bool,
    /// T.30 settings.
    pub settings: FaxSettings,
}

/// A T.30 completion code (spandsp `t30_err_e`), kept open: codes this
/// crate has no name for are still carried and printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct CompletionCode(pub i32);

impl CompletionCode {
    /// The fax was transferred.
    pub const OK: Self = Self(0);
    /// Timed out waiting for the first message (T.30 timer T1).
    pub const T1_EXPIRED: Self = Self(sys_code(spandsp_sys::t30_err_e::T30_ERR_T1_EXPIRED));
    /// Could not train at any acceptable rate.
    pub const CANNOT_TRAIN: Self = Self(sys_code(spandsp_sys::t30_err_e::T30_ERR_CANNOT_TRAIN));
    /// The call was cleared before the procedure ended.
    pub const CALL_DROPPED: Self = Self(sys_code(spandsp_sys::t30_err_e::T30_ERR_CALLDROPPED));

    /// spandsp's description of the code.
    pub fn text(self) -> String {
        ffi::completion_code_text(self.0)
    }

    /// True when the fax was transferred completely.
    pub fn is_ok(self) -> bool {
        self == Self::OK
    }
}

const fn sys_code(e: spandsp_sys::t30_err_e) -> i32 {
    e as i32
}

impl std::fmt::Display for CompletionCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.0, self.text())
    }
}

/// Phase B: what was agreed in a DCS.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Negotiated {
    /// Data signalling rate, bit/s.
    pub bit_rate: u32,
    /// Error correction mode in use.
    pub ecm: bool,
    /// The far end's station identity (TSI or CSI), if it sent one.
    pub remote_ident: Option<String>,
}

/// Phase D: statistics of one page, taken when it ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PageStats {
    /// Pages transferred so far, this one included.
    pub page: u32,
    /// Width in pels.
    pub width: u32,
    /// Length in rows.
    pub length: u32,
    /// Horizontal resolution, pels per metre.
    pub x_resolution: u32,
    /// Vertical resolution, rows per metre.
    pub y_resolution: u32,
    /// Compressed size in bytes.
    pub image_size: u32,
    /// spandsp compression code (`T4_COMPRESSION_*`).
    pub compression: u32,
    /// Rows received damaged.
    pub bad_rows: u32,
    /// Longest run of damaged rows.
    pub longest_bad_row_run: u32,
    /// ECM frames retransmitted.
    pub ecm_retries: u32,
    /// Data signalling rate, bit/s.
    pub bit_rate: u32,
}

/// Phase E: how the call ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FaxResult {
    /// T.30 completion code.
    pub code: CompletionCode,
    /// Its text.
    pub text: String,
    /// Pages transferred (sent and confirmed, or received).
    pub pages: u32,
    /// Pages in the file being sent (sender only).
    pub pages_in_file: Option<u32>,
    /// Last data signalling rate, bit/s.
    pub bit_rate: u32,
    /// Error correction mode used.
    pub ecm: bool,
    /// The far end's station identity.
    pub remote_ident: Option<String>,
}

impl FaxResult {
    /// True when the fax was transferred completely.
    pub fn is_ok(&self) -> bool {
        self.code.is_ok()
    }
}

/// Something that happened in a session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Event {
    /// Phase B: parameters agreed (again after each retrain).
    Negotiated(Negotiated),
    /// Phase D: a page ended.
    Page(PageStats),
    /// Phase E: the call is over; the session is finished.
    Finished(FaxResult),
}

/// Something to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// One IFP packet, to be sent `copies` times in the same UDPTL datagram
    /// (same sequence number): spandsp repeats indicators and end-of-data.
    Ifp {
        /// The IFP packet.
        data: Vec<u8>,
        /// How many times to send it.
        copies: u32,
    },
    /// 20 ms of G.711 audio (160 octets).
    Audio(Vec<u8>),
}

/// One fax call.
#[derive(Debug)]
pub struct FaxSession {
    engine: Engine,
    transport: Transport,
    sending: bool,
    min_bit_rate: u32,
    next_tick: Instant,
    ticks: u64,
    audio_rx: VecDeque<i16>,
    transmit: VecDeque<Transmit>,
    events: VecDeque<Event>,
    pages: u32,
    abort_low_rate: bool,
    finished: bool,
    rx_errors: u64,
    last_activity: Instant,
}

impl FaxSession {
    /// Creates a session starting at `now`.
    pub fn new(cfg: SessionConfig, now: Instant) -> Result<Self, Error> {
        cfg.settings.validate()?;
        let mut t30 = cfg.settings.t30_config();
        let sending = match &cfg.direction {
            Direction::Send { tiff, max_pages } => {
                if !tiff.is_file() {
                    return Err(Error::NoSuchFile(tiff.clone()));
                }
                let stop = match max_pages {
                    Some(0) => return Err(Error::InvalidSetting("page limit of 0")),
                    Some(n) => i32::try_from(*n - 1).unwrap_or(i32::MAX),
                    None => -1,
                };
                t30.tx_file = Some((path_str(tiff)?, -1, stop));
                true
            }
            Direction::Receive { tiff } => {
                t30.rx_file = Some(path_str(tiff)?);
                false
            }
        };
        let engine = match cfg.transport {
            Transport::T38 { version, max_ifp } => {
                if version > 3 {
                    return Err(Error::InvalidSetting("T.38 version above 3"));
                }
                if max_ifp < 32 {
                    return Err(Error::InvalidSetting("maximum IFP below 32 octets"));
                }
                let t38 = T38Config {
                    version: i32::from(version),
                    max_ifp: i32::try_from(max_ifp).unwrap_or(i32::MAX),
                    end_copies: 3,
                };
                Engine::new_t38(cfg.calling, t38, &t30)?
            }
            Transport::Audio(_) => Engine::new_audio(cfg.calling, &t30)?,
        };
        Ok(Self {
            engine,
            transport: cfg.transport,
            sending,
            min_bit_rate: cfg.settings.min_bit_rate,
            next_tick: now,
            ticks: 0,
            audio_rx: VecDeque::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            pages: 0,
            abort_low_rate: false,
            finished: false,
            rx_errors: 0,
            last_activity: now,
        })
    }

    /// True once phase E was reported.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Ticks run so far (simulated call time = ticks x 20 ms).
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// IFP packets spandsp refused so far.
    pub fn rx_errors(&self) -> u64 {
        self.rx_errors
    }

    /// When the session next needs [`FaxSession::handle_timeout`]; None once finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.finished).then_some(self.next_tick)
    }

    /// Runs every tick due by `now`, one 160-sample step at a time.
    pub fn handle_timeout(&mut self, now: Instant) {
        while !self.finished && self.next_tick <= now {
            self.tick();
            self.next_tick += TICK;
        }
    }

    /// A received IFP packet (T.38 sessions), in UDPTL sequence order.
    pub fn handle_ifp(&mut self, now: Instant, seq: u16, ifp: &[u8]) -> Result<(), Error> {
        if !matches!(self.transport, Transport::T38 { .. }) {
            return Err(Error::WrongTransport);
        }
        self.handle_timeout(now);
        if self.finished {
            return Ok(());
        }
        self.last_activity = self.last_activity.max(now);
        let r = self.engine.rx_ifp(ifp, seq);
        if r.is_err() {
            self.rx_errors += 1;
        }
        self.drain();
        r
    }

    /// Received G.711 audio (audio sessions); consumed by the following ticks.
    pub fn handle_audio(&mut self, now: Instant, payload: &[u8]) -> Result<(), Error> {
        let Transport::Audio(law) = self.transport else {
            return Err(Error::WrongTransport);
        };
        self.handle_timeout(now);
        self.last_activity = self.last_activity.max(now);
        let mut pcm = Vec::with_capacity(payload.len());
        law.decode(payload, &mut pcm);
        self.audio_rx.extend(pcm);
        while self.audio_rx.len() > MAX_AUDIO_BACKLOG {
            self.audio_rx.pop_front();
        }
        Ok(())
    }

    /// The call was cleared (BYE, or we hang up): ends T.30 now. The
    /// [`Event::Finished`] that follows says what was transferred.
    pub fn hang_up(&mut self) {
        if !self.finished {
            self.engine.terminate();
            self.drain();
            if !self.finished {
                // spandsp always reports phase E from t30_terminate; be safe.
                let stats = self.engine.stats();
                self.finish(CompletionCode::CALL_DROPPED, stats);
            }
        }
    }

    /// Next thing to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn tick(&mut self) {
        self.ticks += 1;
        let mut engine_done = false;
        match self.transport {
            Transport::T38 { .. } => {
                engine_done = self.engine.t38_timeout(TICK_SAMPLES as i32);
            }
            Transport::Audio(law) => {
                let mut rx = [0i16; TICK_SAMPLES];
                for s in rx.iter_mut() {
                    *s = self.audio_rx.pop_front().unwrap_or(0);
                }
                self.engine.audio_rx(&mut rx);
                let mut tx = [0i16; TICK_SAMPLES];
                let n = self.engine.audio_tx(&mut tx);
                // Anything short of a full frame is padded with silence.
                tx[n..].fill(0);
                let mut out = Vec::with_capacity(TICK_SAMPLES);
                law.encode(&tx, &mut out);
                self.transmit.push_back(Transmit::Audio(out));
            }
        }
        self.drain();
        if self.transmit.iter().any(|t| matches!(t, Transmit::Ifp { .. })) {
            self.last_activity = self.last_activity.max(self.next_tick);
        }
        if !self.finished
            && (engine_done || self.next_tick.saturating_duration_since(self.last_activity) > SILENCE_LIMIT)
        {
            tracing::info!(engine_done, "fax session ended without phase E; clearing the call");
            self.hang_up();
            return;
        }
        if self.abort_low_rate && !self.finished {
            tracing::info!(min = self.min_bit_rate, "data signalling rate below the minimum; abandoning the call");
            self.engine.terminate();
            self.drain();
        }
    }

    fn drain(&mut self) {
        let ctx = self.engine.ctx();
        if ctx.panicked && !self.finished {
            tracing::error!("a spandsp callback panicked; ending the session");
        }
        for (data, copies) in ctx.packets.drain(..) {
            self.transmit.push_back(Transmit::Ifp { data, copies });
        }
        let raw: Vec<RawEvent> = ctx.events.drain(..).collect();
        let panicked = ctx.panicked;
        for ev in raw {
            match ev {
                RawEvent::Dcs { outgoing, rate } => {
                    let Some(rate) = rate else { continue };
                    if outgoing && self.sending && rate < self.min_bit_rate {
                        self.abort_low_rate = true;
                    }
                    let stats = self.engine.stats();
                    let remote_ident = self.engine.remote_ident();
                    self.events.push_back(Event::Negotiated(Negotiated {
                        bit_rate: rate,
                        ecm: stats.ecm,
                        remote_ident,
                    }));
                }
                RawEvent::PageEnd { stats } => {
                    let page = if self.sending { stats.pages_tx } else { stats.pages_rx };
                    let page = u32::try_from(page).unwrap_or(0);
                    if page <= self.pages {
                        // A page repeated after RTN/PPR: not a new page.
                        continue;
                    }
                    self.pages = page;
                    self.events.push_back(Event::Page(page_stats(page, &stats)));
                }
                RawEvent::Finished { code, stats } => {
                    let code = if self.abort_low_rate && code == CompletionCode::CALL_DROPPED.0 {
                        CompletionCode::CANNOT_TRAIN
                    } else {
                        CompletionCode(code)
                    };
                    self.finish(code, stats);
                }
            }
        }
        if panicked && !self.finished {
            self.engine.terminate();
            self.finish(CompletionCode::CALL_DROPPED, RawStats::default());
        }
    }

    fn finish(&mut self, code: CompletionCode, stats: RawStats) {
        if self.finished {
            return;
        }
        self.finished = true;
        let pages = if self.sending { stats.pages_tx } else { stats.pages_rx };
        let remote_ident = self.engine.remote_ident();
        self.events.push_back(Event::Finished(FaxResult {
            code,
            text: code.text(),
            pages: u32::try_from(pages).unwrap_or(0),
            pages_in_file: if self.sending { u32::try_from(stats.pages_in_file).ok() } else { None },
            bit_rate: u32::try_from(stats.bit_rate).unwrap_or(0),
            ecm: stats.ecm,
            remote_ident,
        }));
    }
}

fn page_stats(page: u32, s: &RawStats) -> PageStats {
    let u = |v: i32| u32::try_from(v).unwrap_or(0);
    PageStats {
        page,
        width: u(s.width),
        length: u(s.length),
        x_resolution: u(s.x_resolution),
        y_resolution: u(s.y_resolution),
        image_size: u(s.image_size),
        compression: u(s.compression),
        bad_rows: u(s.bad_rows),
        longest_bad_row_run: u(s.longest_bad_row_run),
        ecm_retries: u(s.ecm_retries),
        bit_rate: u(s.bit_rate),
    }
}

fn path_str(p: &std::path::Path) -> Result<String, Error> {
    let s = p.to_str().ok_or(Error::InvalidSetting("file name is not UTF-8"))?;
    if s.len() >= 256 {
        // spandsp keeps file names in 256-byte arrays.
        return Err(Error::InvalidSetting("file name longer than 255 bytes"));
    }
    Ok(s.to_owned())
}
