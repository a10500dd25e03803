//! The thin wrapper over spandsp (through `spandsp-sys`): the one module of
//! the workspace allowed `unsafe`.
//!
//! An [`Engine`] owns one spandsp fax terminal, either a T.38 terminal
//! (`t38_terminal_state_t`, exchanging IFP packets) or an audio fax terminal
//! (`fax_state_t`, exchanging 8 kHz linear samples), together with a boxed
//! [`Context`] handed to spandsp as `user_data`. The C callbacks only record
//! what happened into that context (packets to send, phase events) and never
//! call back into the terminal that invoked them, except the read-only
//! statistics getters the phase handlers need (per-page statistics are only
//! available inside the phase D handler). Every callback body runs inside
//! `catch_unwind`, so a Rust panic never unwinds through C.
//!
//! spandsp's log lines go to `tracing` (target `spandsp`) through one global
//! message handler installed before the first terminal is created.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::Once;

use spandsp_sys as sys;

use crate::Error;

// ---------------------------------------------------------------------------
// Constants missing from the bindings (anonymous enums in spandsp's t4_rx.h).
// ---------------------------------------------------------------------------

/// `T4_COMPRESSION_T4_1D`: ITU-T T.4 one-dimensional (MH) coding (spandsp t4_rx.h).
pub(crate) const T4_COMPRESSION_T4_1D: c_int = 0x02;
/// `T4_COMPRESSION_T4_2D`: ITU-T T.4 two-dimensional (MR) coding.
pub(crate) const T4_COMPRESSION_T4_2D: c_int = 0x04;
/// `T4_COMPRESSION_T6`: ITU-T T.6 (MMR) coding; needs ECM (T.30 Annex A).
pub(crate) const T4_COMPRESSION_T6: c_int = 0x08;

/// `T4_RESOLUTION_R8_STANDARD`: 8 pels/mm x 3.85 lines/mm (T.4 2.2).
pub(crate) const T4_RESOLUTION_R8_STANDARD: c_int = 0x1;
/// `T4_RESOLUTION_R8_FINE`: 8 pels/mm x 7.7 lines/mm.
pub(crate) const T4_RESOLUTION_R8_FINE: c_int = 0x2;
/// `T4_RESOLUTION_R8_SUPERFINE`: 8 pels/mm x 15.4 lines/mm.
pub(crate) const T4_RESOLUTION_R8_SUPERFINE: c_int = 0x4;
/// `T4_RESOLUTION_200_100`: 200 x 100 dpi (inch-based equivalent of standard).
pub(crate) const T4_RESOLUTION_200_100: c_int = 0x20;
/// `T4_RESOLUTION_200_200`: 200 x 200 dpi (inch-based equivalent of fine).
pub(crate) const T4_RESOLUTION_200_200: c_int = 0x40;
/// `T4_RESOLUTION_200_400`: 200 x 400 dpi (inch-based equivalent of superfine).
pub(crate) const T4_RESOLUTION_200_400: c_int = 0x80;

/// `T4_SUPPORT_WIDTH_215MM`: 1728 pels, ISO A4 and US Letter/Legal (T.4 2.2).
pub(crate) const T4_SUPPORT_WIDTH_215MM: c_int = 0x01;
/// `T4_SUPPORT_WIDTH_255MM`: 2048 pels, ISO B4.
pub(crate) const T4_SUPPORT_WIDTH_255MM: c_int = 0x02;
/// `T4_SUPPORT_WIDTH_303MM`: 2432 pels, ISO A3.
pub(crate) const T4_SUPPORT_WIDTH_303MM: c_int = 0x04;
/// `T4_SUPPORT_LENGTH_UNLIMITED`: any page length.
pub(crate) const T4_SUPPORT_LENGTH_UNLIMITED: c_int = 0x10000;
/// `T4_SUPPORT_LENGTH_A4`.
pub(crate) const T4_SUPPORT_LENGTH_A4: c_int = 0x20000;
/// `T4_SUPPORT_LENGTH_B4`.
pub(crate) const T4_SUPPORT_LENGTH_B4: c_int = 0x40000;
/// `T4_SUPPORT_LENGTH_US_LETTER`.
pub(crate) const T4_SUPPORT_LENGTH_US_LETTER: c_int = 0x80000;
/// `T4_SUPPORT_LENGTH_US_LEGAL`.
pub(crate) const T4_SUPPORT_LENGTH_US_LEGAL: c_int = 0x100000;

/// Modem bits for `t30_set_supported_modems` (spandsp t30.h; T.30 Table 2 bits 11-14).
pub(crate) const T30_SUPPORT_V27TER: c_int = sys::T30_SUPPORT_V27TER as c_int;
/// V.29 (7200 and 9600 bit/s).
pub(crate) const T30_SUPPORT_V29: c_int = sys::T30_SUPPORT_V29 as c_int;
/// V.17 (7200 to 14400 bit/s).
pub(crate) const T30_SUPPORT_V17: c_int = sys::T30_SUPPORT_V17 as c_int;

/// T.30 5.3.6.1: facsimile control field of DCS (the X bit masked off).
const T30_FCF_DCS: u8 = sys::T30_DCS as u8;

/// spandsp log levels (spandsp logging.h).
const SPAN_LOG_WARNING: c_int = 2;
const SPAN_LOG_PROTOCOL_ERROR: c_int = 3;
const SPAN_LOG_PROTOCOL_WARNING: c_int = 4;
const SPAN_LOG_FLOW: c_int = 5;
const SPAN_LOG_SEVERITY_MASK: c_int = 0xFF;
const SPAN_LOG_SHOW_PROTOCOL: c_int = 0x0800;

/// spandsp's T.38 packet categories, for `t38_set_redundancy_control`.
const T38_PACKET_CATEGORY_INDICATOR: c_int = 0;
const T38_PACKET_CATEGORY_CONTROL_DATA: c_int = 1;
const T38_PACKET_CATEGORY_CONTROL_DATA_END: c_int = 2;
const T38_PACKET_CATEGORY_IMAGE_DATA: c_int = 3;
const T38_PACKET_CATEGORY_IMAGE_DATA_END: c_int = 4;

/// A phase D snapshot of `t30_stats_t`, taken inside the handler.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawStats {
    pub(crate) bit_rate: i32,
    pub(crate) ecm: bool,
    pub(crate) pages_tx: i32,
    pub(crate) pages_rx: i32,
    pub(crate) pages_in_file: i32,
    pub(crate) x_resolution: i32,
    pub(crate) y_resolution: i32,
    pub(crate) width: i32,
    pub(crate) length: i32,
    pub(crate) image_size: i32,
    pub(crate) compression: i32,
    pub(crate) bad_rows: i32,
    pub(crate) longest_bad_row_run: i32,
    pub(crate) ecm_retries: i32,
}

impl From<&sys::t30_stats_t> for RawStats {
    fn from(t: &sys::t30_stats_t) -> Self {
        Self {
            bit_rate: t.bit_rate,
            ecm: t.error_correcting_mode != 0,
            pages_tx: t.pages_tx,
            pages_rx: t.pages_rx,
            pages_in_file: t.pages_in_file,
            x_resolution: t.x_resolution,
            y_resolution: t.y_resolution,
            width: t.width,
            length: t.length,
            image_size: t.image_size,
            compression: t.compression,
            bad_rows: t.bad_rows,
            longest_bad_row_run: t.longest_bad_row_run,
            ecm_retries: t.error_correcting_mode_retries,
        }
    }
}

/// What a callback recorded.
#[derive(Debug, Clone)]
pub(crate) enum RawEvent {
    /// A DCS went out (`outgoing`) or came in; its data signalling rate in bit/s.
    Dcs { outgoing: bool, rate: Option<u32> },
    /// Phase D: a page ended (`fcf` is the post-message command or response).
    PageEnd { stats: RawStats },
    /// Phase E: the call ended with this completion code.
    Finished { code: i32, stats: RawStats },
}

/// State shared with the C callbacks through `user_data`.
#[derive(Debug, Default)]
pub(crate) struct Context {
    /// The T.30 state, set right after the terminal is created; used only by
    /// the read-only statistics getters inside the phase handlers.
    t30: Option<NonNull<sys::t30_state_t>>,
    /// IFP packets spandsp asked to send, each with its copy count.
    pub(crate) packets: Vec<(Vec<u8>, u32)>,
    /// Events in the order they happened.
    pub(crate) events: Vec<RawEvent>,
    /// The slowest data signalling rate accepted, in bit/s (0: any).
    pub(crate) min_bit_rate: u32,
    /// Rate of the DCS most recently received.
    last_rx_dcs_rate: Option<u32>,
    /// A callback panicked; the session is unusable.
    pub(crate) panicked: bool,
}

/// T.30 Table 2, DIS/DCS bits 11-14 (octet 2 of the FIF, mask 0x3C): the
/// data signalling rate selected by a DCS.
pub(crate) fn dcs_rate(frame: &[u8]) -> Option<u32> {
    // frame: address, control, FCF, FIF...
    let b = *frame.get(4)? & 0x3C;
    Some(match b {
        0x20 => 14400,
        0x28 => 12000,
        0x24 | 0x04 => 9600,
        0x2C | 0x0C => 7200,
        0x08 => 4800,
        0x00 => 2400,
        _ => return None,
    })
}

static LOG_HANDLER: Once = Once::new();

/// Forwards spandsp's log lines to `tracing`.
unsafe extern "C" fn message_handler(_user_data: *mut c_void, level: c_int, text: *const c_char) {
    let _ = catch_unwind(|| {
        if text.is_null() {
            return;
        }
        // SAFETY: spandsp passes a NUL-terminated buffer (vsnprintf output)
        // that lives for the duration of this call.
        let msg = unsafe { CStr::from_ptr(text) }.to_string_lossy();
        let msg = msg.trim_end();
        match level & SPAN_LOG_SEVERITY_MASK {
            1..=SPAN_LOG_WARNING => tracing::warn!(target: "spandsp", "{msg}"),
            SPAN_LOG_PROTOCOL_ERROR | SPAN_LOG_PROTOCOL_WARNING => {
                tracing::info!(target: "spandsp", "{msg}")
            }
            // The T.30 flow names the stations (TSI, CSI: numbers, names):
            // only with `log.personal_data`.
            _ if !faxgate_retention::logid::personal_data() => {}
            SPAN_LOG_FLOW => tracing::debug!(target: "spandsp", "{msg}"),
            _ => tracing::trace!(target: "spandsp", "{msg}"),
        }
    });
}

fn install_log_handler() {
    LOG_HANDLER.call_once(|| {
        // SAFETY: spandsp keeps the pointer in a global that `span_log_init`
        // copies into each new logging state; `Once` makes this the only
        // write, and it happens before any terminal is created.
        unsafe { sys::span_set_message_handler(Some(message_handler), std::ptr::null_mut()) };
    });
}

fn log_level() -> c_int {
    let sev = if tracing::enabled!(target: "spandsp", tracing::Level::DEBUG) {
        SPAN_LOG_FLOW
    } else if tracing::enabled!(target: "spandsp", tracing::Level::INFO) {
        SPAN_LOG_PROTOCOL_WARNING
    } else {
        SPAN_LOG_WARNING
    };
    sev | SPAN_LOG_SHOW_PROTOCOL
}

/// Runs `f` on the context behind `user_data`, unless it panicked before.
///
/// # Safety
/// `user_data` must be the `Context` pointer registered by [`Engine`], which
/// outlives the terminal, and no other reference to it may be live.
unsafe fn with_ctx<R: Default>(user_data: *mut c_void, f: impl FnOnce(&mut Context) -> R) -> R {
    if user_data.is_null() {
        return R::default();
    }
    // SAFETY: guaranteed by the caller (see above): the Engine is inside a
    // spandsp call, so it holds no reference to the context itself.
    let ctx = unsafe { &mut *user_data.cast::<Context>() };
    if ctx.panicked {
        return R::default();
    }
    match catch_unwind(AssertUnwindSafe(|| f(ctx))) {
        Ok(r) => r,
        Err(_) => {
            ctx.panicked = true;
            R::default()
        }
    }
}

fn stats_of(t30: Option<NonNull<sys::t30_state_t>>) -> RawStats {
    let Some(t30) = t30 else {
        return RawStats::default();
    };
    let mut t = sys::t30_stats_t::default();
    // SAFETY: `t30` points into the live terminal whose callback is running;
    // `t30_get_transfer_statistics` only reads it and writes `t`.
    unsafe { sys::t30_get_transfer_statistics(t30.as_ptr(), &mut t) };
    RawStats::from(&t)
}

unsafe extern "C" fn tx_packet_handler(
    _s: *mut sys::t38_core_state_t,
    user_data: *mut c_void,
    buf: *const u8,
    len: c_int,
    count: c_int,
) -> c_int {
    // SAFETY: user_data is our Context (registered in Engine::new_t38).
    unsafe {
        with_ctx(user_data, |ctx| {
            let Ok(len) = usize::try_from(len) else {
                return 0;
            };
            if buf.is_null() && len > 0 {
                return 0;
            }
            let data = if len == 0 {
                Vec::new()
            } else {
                // SAFETY: spandsp hands a buffer of `len` bytes valid for this call.
                std::slice::from_raw_parts(buf, len).to_vec()
            };
            ctx.packets.push((data, count.clamp(1, 16) as u32));
            0
        })
    }
}

unsafe extern "C" fn real_time_frame_handler(user_data: *mut c_void, incoming: bool, msg: *const u8, len: c_int) {
    // SAFETY: user_data is our Context (registered in Engine::configure_handlers).
    unsafe {
        with_ctx(user_data, |ctx| {
            let Ok(len) = usize::try_from(len) else {
                return;
            };
            if msg.is_null() || len < 3 {
                return;
            }
            // SAFETY: spandsp hands a frame of `len` bytes valid for this call.
            let frame = std::slice::from_raw_parts(msg, len);
            if frame[2] & 0xFE == T30_FCF_DCS {
                let rate = dcs_rate(frame);
                if incoming {
                    ctx.last_rx_dcs_rate = rate;
                }
                ctx.events.push(RawEvent::Dcs { outgoing: !incoming, rate });
            }
        })
    }
}

unsafe extern "C" fn phase_b_handler(user_data: *mut c_void, fcf: c_int) -> c_int {
    // SAFETY: user_data is our Context.
    unsafe {
        with_ctx(user_data, |ctx| {
            // On a received DCS, refuse a rate below the configured floor
            // (spandsp then sends DCN).
            if (fcf as u8) & 0xFE == T30_FCF_DCS
                && ctx.min_bit_rate > 0
                && let Some(rate) = ctx.last_rx_dcs_rate
                && rate < ctx.min_bit_rate
            {
                return sys::t30_err_e::T30_ERR_CANNOT_TRAIN as c_int;
            }
            0
        })
    }
}

unsafe extern "C" fn phase_d_handler(user_data: *mut c_void, _fcf: c_int) -> c_int {
    // SAFETY: user_data is our Context.
    unsafe {
        with_ctx(user_data, |ctx| {
            let stats = stats_of(ctx.t30);
            ctx.events.push(RawEvent::PageEnd { stats });
            0
        })
    }
}

unsafe extern "C" fn phase_e_handler(user_data: *mut c_void, code: c_int) {
    // SAFETY: user_data is our Context.
    unsafe {
        with_ctx(user_data, |ctx| {
            let stats = stats_of(ctx.t30);
            ctx.events.push(RawEvent::Finished { code, stats });
        })
    }
}

/// The text spandsp gives a T.30 completion code.
pub(crate) fn completion_code_text(code: i32) -> String {
    // SAFETY: t30_completion_code_to_str returns a pointer to a static
    // NUL-terminated string for every input (unknown codes included).
    let p = unsafe { sys::t30_completion_code_to_str(code) };
    if p.is_null() {
        return format!("T.30 completion code {code}");
    }
    // SAFETY: as above, a static C string.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[derive(Debug)]
enum Kind {
    T38(NonNull<sys::t38_terminal_state_t>),
    Audio(NonNull<sys::fax_state_t>),
}

/// The T.30 settings an engine is configured with.
#[derive(Debug, Clone)]
pub(crate) struct T30Config {
    pub(crate) ident: String,
    pub(crate) page_header: Option<String>,
    pub(crate) ecm: bool,
    pub(crate) modems: c_int,
    pub(crate) compressions: c_int,
    pub(crate) resolutions: c_int,
    pub(crate) image_sizes: c_int,
    pub(crate) min_bit_rate: u32,
    /// Transmit this TIFF (start page, stop page; -1 for all).
    pub(crate) tx_file: Option<(String, i32, i32)>,
    /// Receive into this TIFF.
    pub(crate) rx_file: Option<String>,
}

/// T.38 core settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct T38Config {
    /// T.38 version to speak (0-3).
    pub(crate) version: i32,
    /// Largest IFP spandsp may produce, in bytes.
    pub(crate) max_ifp: i32,
    /// Copies asked for indicators and end-of-data packets.
    pub(crate) end_copies: i32,
}

/// One spandsp fax terminal with its callback context.
#[derive(Debug)]
pub(crate) struct Engine {
    kind: Kind,
    t30: NonNull<sys::t30_state_t>,
    ctx: Box<Context>,
}

// SAFETY: an Engine exclusively owns its spandsp terminal and context; no
// pointer to either escapes, and spandsp keeps no thread-affine state (the
// global log handler is set once, before any terminal exists). Moving it to
// another thread is therefore sound; it is not Sync.
unsafe impl Send for Engine {}

fn cstring(s: &str, what: &'static str) -> Result<CString, Error> {
    CString::new(s).map_err(|_| Error::InvalidSetting(what))
}

impl Engine {
    /// A T.38 terminal.
    pub(crate) fn new_t38(calling: bool, t38: T38Config, cfg: &T30Config) -> Result<Self, Error> {
        install_log_handler();
        let mut ctx = Box::new(Context::default());
        let ud = (&mut *ctx as *mut Context).cast::<c_void>();
        // SAFETY: a NULL state asks spandsp to allocate one; `ud` points to
        // the boxed context, whose heap address is stable and which the
        // Engine frees only after the terminal (see Drop).
        let p = unsafe { sys::t38_terminal_init(std::ptr::null_mut(), calling, Some(tx_packet_handler), ud) };
        let term = NonNull::new(p).ok_or(Error::Spandsp("t38_terminal_init failed"))?;
        // SAFETY: `term` is a live terminal; the getters return interior pointers.
        let (t30, core) = unsafe {
            (sys::t38_terminal_get_t30_state(term.as_ptr()), sys::t38_terminal_get_t38_core_state(term.as_ptr()))
        };
        let Some(t30) = NonNull::new(t30) else {
            // SAFETY: freeing the terminal we just created, once.
            unsafe { sys::t38_terminal_free(term.as_ptr()) };
            return Err(Error::Spandsp("t38 terminal without T.30 state"));
        };
        let mut engine = Self { kind: Kind::T38(term), t30, ctx };
        engine.ctx.t30 = Some(t30);
        // SAFETY: `core` is the live terminal's interior T.38 core state;
        // the setters only store values.
        unsafe {
            let level = log_level();
            sys::span_log_set_level(sys::t38_terminal_get_logging_state(term.as_ptr()), level);
            sys::span_log_set_level(sys::t38_core_get_logging_state(core), level);
            sys::t38_set_t38_version(core, t38.version);
            sys::t38_set_max_datagram_size(core, t38.max_ifp);
            sys::t38_set_fastest_image_data_rate(core, 14400);
            for cat in [
                T38_PACKET_CATEGORY_INDICATOR,
                T38_PACKET_CATEGORY_CONTROL_DATA_END,
                T38_PACKET_CATEGORY_IMAGE_DATA_END,
            ] {
                sys::t38_set_redundancy_control(core, cat, t38.end_copies);
            }
            for cat in [T38_PACKET_CATEGORY_CONTROL_DATA, T38_PACKET_CATEGORY_IMAGE_DATA] {
                sys::t38_set_redundancy_control(core, cat, 1);
            }
        }
        engine.configure_t30(cfg)?;
        Ok(engine)
    }

    /// A G.711 audio fax terminal (8 kHz linear samples in and out).
    pub(crate) fn new_audio(calling: bool, cfg: &T30Config) -> Result<Self, Error> {
        install_log_handler();
        let ctx = Box::new(Context::default());
        // SAFETY: a NULL state asks spandsp to allocate one.
        let p = unsafe { sys::fax_init(std::ptr::null_mut(), calling) };
        let fax = NonNull::new(p).ok_or(Error::Spandsp("fax_init failed"))?;
        // SAFETY: `fax` is live; the getter returns an interior pointer.
        let t30 = unsafe { sys::fax_get_t30_state(fax.as_ptr()) };
        let Some(t30) = NonNull::new(t30) else {
            // SAFETY: freeing the state we just created, once (no fax_release).
            unsafe { sys::fax_free(fax.as_ptr()) };
            return Err(Error::Spandsp("fax state without T.30 state"));
        };
        let mut engine = Self { kind: Kind::Audio(fax), t30, ctx };
        engine.ctx.t30 = Some(t30);
        // SAFETY: live state; setters only store values.
        unsafe {
            sys::span_log_set_level(sys::fax_get_logging_state(fax.as_ptr()), log_level());
            // Keep sending (silence) when idle so the far end's clock runs.
            sys::fax_set_transmit_on_idle(fax.as_ptr(), 1);
        }
        engine.configure_t30(cfg)?;
        Ok(engine)
    }

    fn configure_t30(&mut self, cfg: &T30Config) -> Result<(), Error> {
        let ident = cstring(&cfg.ident, "station ident contains NUL")?;
        let header = cfg.page_header.as_deref().map(|h| cstring(h, "page header contains NUL")).transpose()?;
        let tx = cfg
            .tx_file
            .as_ref()
            .map(|(f, a, b)| cstring(f, "file name contains NUL").map(|c| (c, *a, *b)))
            .transpose()?;
        let rx = cfg.rx_file.as_deref().map(|f| cstring(f, "file name contains NUL")).transpose()?;
        self.ctx.min_bit_rate = cfg.min_bit_rate;
        let t30 = self.t30.as_ptr();
        let ud = (&mut *self.ctx as *mut Context).cast::<c_void>();
        // SAFETY: `t30` is the live terminal's T.30 state. spandsp copies the
        // strings (strcpy/strncpy into its own arrays) before the calls
        // return. `ud` is the boxed context, valid until the terminal is freed.
        unsafe {
            let log = sys::t30_get_logging_state(t30);
            sys::span_log_set_level(log, log_level());
            if sys::t30_set_tx_ident(t30, ident.as_ptr()) != 0 {
                return Err(Error::InvalidSetting("station ident longer than 20 characters"));
            }
            if let Some(h) = &header
                && sys::t30_set_tx_page_header_info(t30, h.as_ptr()) != 0
            {
                return Err(Error::InvalidSetting("page header too long"));
            }
            sys::t30_set_ecm_capability(t30, cfg.ecm);
            sys::t30_set_supported_modems(t30, cfg.modems);
            sys::t30_set_supported_compressions(t30, cfg.compressions);
            sys::t30_set_supported_output_compressions(t30, cfg.compressions);
            sys::t30_set_supported_bilevel_resolutions(t30, cfg.resolutions);
            sys::t30_set_supported_image_sizes(t30, cfg.image_sizes);
            if let Some((f, a, b)) = &tx {
                sys::t30_set_tx_file(t30, f.as_ptr(), *a, *b);
            }
            if let Some(f) = &rx {
                sys::t30_set_rx_file(t30, f.as_ptr(), -1);
            }
            sys::t30_set_phase_b_handler(t30, Some(phase_b_handler), ud);
            sys::t30_set_phase_d_handler(t30, Some(phase_d_handler), ud);
            sys::t30_set_phase_e_handler(t30, Some(phase_e_handler), ud);
            sys::t30_set_real_time_frame_handler(t30, Some(real_time_frame_handler), ud);
        }
        Ok(())
    }

    /// Access to the callback context (packets and events recorded).
    pub(crate) fn ctx(&mut self) -> &mut Context {
        &mut self.ctx
    }

    /// Feeds one received IFP packet to a T.38 terminal.
    pub(crate) fn rx_ifp(&mut self, ifp: &[u8], seq: u16) -> Result<(), Error> {
        let Kind::T38(term) = self.kind else {
            return Err(Error::WrongTransport);
        };
        let len = c_int::try_from(ifp.len()).map_err(|_| Error::Malformed("IFP too long"))?;
        // SAFETY: `term` is live; spandsp reads `len` bytes of `ifp` during
        // the call and keeps no pointer to it.
        let r = unsafe {
            let core = sys::t38_terminal_get_t38_core_state(term.as_ptr());
            sys::t38_core_rx_ifp_packet(core, ifp.as_ptr(), len, seq)
        };
        if r < 0 { Err(Error::Malformed("IFP packet refused by T.38 core")) } else { Ok(()) }
    }

    /// Advances a T.38 terminal by `samples` (at 8 kHz); true once it is done.
    pub(crate) fn t38_timeout(&mut self, samples: i32) -> bool {
        let Kind::T38(term) = self.kind else {
            return false;
        };
        // SAFETY: `term` is live and exclusively ours.
        unsafe { sys::t38_terminal_send_timeout(term.as_ptr(), samples) != 0 }
    }

    /// Feeds received audio to an audio terminal.
    pub(crate) fn audio_rx(&mut self, samples: &mut [i16]) {
        let Kind::Audio(fax) = self.kind else { return };
        let Ok(len) = c_int::try_from(samples.len()) else {
            return;
        };
        // SAFETY: `fax` is live; spandsp reads `len` samples (the buffer is
        // declared mutable in its API but only read).
        unsafe { sys::fax_rx(fax.as_ptr(), samples.as_mut_ptr(), len) };
    }

    /// Produces up to `out.len()` samples of audio to send; returns how many.
    pub(crate) fn audio_tx(&mut self, out: &mut [i16]) -> usize {
        let Kind::Audio(fax) = self.kind else {
            return 0;
        };
        let Ok(len) = c_int::try_from(out.len()) else {
            return 0;
        };
        // SAFETY: `fax` is live; spandsp writes at most `len` samples.
        let n = unsafe { sys::fax_tx(fax.as_ptr(), out.as_mut_ptr(), len) };
        usize::try_from(n).unwrap_or(0).min(out.len())
    }

    /// Ends the T.30 session now (the call was cleared).
    pub(crate) fn terminate(&mut self) {
        // SAFETY: the T.30 state is live; t30_terminate is idempotent once
        // the call has finished.
        unsafe { sys::t30_terminate(self.t30.as_ptr()) };
    }

    /// Current transfer statistics.
    pub(crate) fn stats(&mut self) -> RawStats {
        stats_of(Some(self.t30))
    }

    /// The far end's station identity (TSI or CSI), if received.
    pub(crate) fn remote_ident(&mut self) -> Option<String> {
        // SAFETY: the T.30 state is live; the returned pointer is an interior
        // NUL-terminated array (or NULL), copied before we return.
        let p = unsafe { sys::t30_get_rx_ident(self.t30.as_ptr()) };
        if p.is_null() {
            return None;
        }
        // SAFETY: see above.
        let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().trim().to_owned();
        (!s.is_empty()).then_some(s)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: each terminal is freed exactly once, with its *_free only
        // (`*_release` followed by `*_free` double-frees). The context box is
        // dropped after this, so no callback can see a dangling pointer.
        unsafe {
            match self.kind {
                Kind::T38(t) => {
                    sys::t38_terminal_free(t.as_ptr());
                }
                Kind::Audio(f) => {
                    sys::fax_free(f.as_ptr());
                }
            }
        }
    }
}

/// CPU time used by the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
pub(crate) fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec to the pointer we pass.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if r != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dcs_rates_follow_t30_table_2() {
        let mk = |b: u8| [0xFF, 0x13, 0x83, 0x00, b, 0x00];
        assert_eq!(dcs_rate(&mk(0x20)), Some(14400));
        assert_eq!(dcs_rate(&mk(0x28)), Some(12000));
        assert_eq!(dcs_rate(&mk(0x04)), Some(9600));
        assert_eq!(dcs_rate(&mk(0x0C)), Some(7200));
        assert_eq!(dcs_rate(&mk(0x08)), Some(4800));
        assert_eq!(dcs_rate(&mk(0x00)), Some(2400));
        assert_eq!(dcs_rate(&mk(0x3C)), None);
        assert_eq!(dcs_rate(&[0xFF, 0x13, 0x83]), None);
    }

    #[test]
    fn completion_codes_have_text() {
        assert!(!completion_code_text(0).is_empty());
        assert!(!completion_code_text(12345).is_empty());
    }
}
