//! The `faxgate fax loopback` diagnostic: a sender and a receiver in one
//! process on simulated time, joined by [`crate::pair`].

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::g711::Law;
use crate::pair::{LinkConfig, Pair};
use crate::session::{Direction, FaxSession, FaxSettings, SessionConfig, Transport};
use crate::udptl::{ErrorCorrection, Udptl};
use crate::{Error, Event};

/// Longest simulated call before giving up (a 20-page fax at 2400 bit/s).
const SIMULATED_LIMIT: Duration = Duration::from_secs(3 * 3600);

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopbackOptions {
    /// TIFF/F file to send.
    pub input: PathBuf,
    /// Where the receiver writes what it received.
    pub output: PathBuf,
    /// Send at most this many pages.
    pub pages: Option<u32>,
    /// Random datagram loss in percent (0-100), both directions.
    pub loss_percent: f64,
    /// G.711 A-law audio instead of T.38.
    pub audio: bool,
    /// Offer error correction mode.
    pub ecm: bool,
}

impl LoopbackOptions {
    /// T.38 with ECM, no loss, every page.
    pub fn new(input: impl Into<PathBuf>, output: impl Into<PathBuf>) -> Self {
        Self { input: input.into(), output: output.into(), pages: None, loss_percent: 0.0, audio: false, ecm: true }
    }
}

/// The JSON result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoopbackReport {
    /// The receiver's T.30 completion code.
    pub completion_code: i32,
    /// Its text.
    pub completion_text: String,
    /// The sender's completion code.
    pub sender_completion_code: i32,
    /// Pages received.
    pub pages: u32,
    /// Pages the sender had to send.
    pub pages_in_file: Option<u32>,
    /// Last data signalling rate, bit/s.
    pub bit_rate: u32,
    /// Error correction mode used.
    pub ecm: bool,
    /// `"t38"` or `"g711-alaw"`.
    pub transport: &'static str,
    /// Loss applied, percent.
    pub loss_percent: f64,
    /// Datagrams lost on the simulated link.
    pub datagrams_lost: u64,
    /// Simulated call duration, seconds.
    pub simulated_duration_s: f64,
    /// CPU time used by both ends, milliseconds.
    pub cpu_time_ms: f64,
    /// Received image file.
    pub output: PathBuf,
}

/// Runs the loopback call.
pub fn run(opts: &LoopbackOptions) -> Result<LoopbackReport, Error> {
    if !(0.0..=100.0).contains(&opts.loss_percent) || opts.loss_percent.is_nan() {
        return Err(Error::InvalidSetting("loss must be between 0 and 100 percent"));
    }
    if !opts.input.is_file() {
        return Err(Error::NoSuchFile(opts.input.clone()));
    }
    let transport = if opts.audio {
        Transport::Audio(Law::Alaw)
    } else {
        let max = Udptl::new(ErrorCorrection::default(), crate::udptl::DEFAULT_MAX_DATAGRAM).max_ifp();
        Transport::T38 { version: 0, max_ifp: max }
    };
    let settings = |ident: &str| FaxSettings { ident: ident.into(), ecm: opts.ecm, ..FaxSettings::default() };
    let start = Instant::now();
    let cpu0 = crate::thread_cpu_time();
    let sender = FaxSession::new(
        SessionConfig {
            direction: Direction::Send { tiff: opts.input.clone(), max_pages: opts.pages },
            transport,
            calling: true,
            settings: settings("+1 555 0100"),
        },
        start,
    )?;
    let receiver = FaxSession::new(
        SessionConfig {
            direction: Direction::Receive { tiff: opts.output.clone() },
            transport,
            calling: false,
            settings: settings("+1 555 0199"),
        },
        start,
    )?;
    let link = LinkConfig { loss: opts.loss_percent / 100.0, ..LinkConfig::default() };
    let mut pair = Pair::new(sender, receiver, link, LinkConfig { seed: 2, ..link }, start, !opts.audio);
    let out = pair.run(SIMULATED_LIMIT)?;
    let cpu = crate::thread_cpu_time().saturating_sub(cpu0);
    let rx = out.b_result().ok_or(Error::Spandsp("receiver ended without a result"))?;
    let tx = out.a_result().ok_or(Error::Spandsp("sender ended without a result"))?;
    let bit_rate = out
        .b
        .iter()
        .rev()
        .find_map(|(_, e)| match e {
            Event::Page(p) => Some(p.bit_rate),
            _ => None,
        })
        .unwrap_or(rx.bit_rate);
    Ok(LoopbackReport {
        completion_code: rx.code.0,
        completion_text: rx.text.clone(),
        sender_completion_code: tx.code.0,
        pages: rx.pages,
        pages_in_file: tx.pages_in_file,
        bit_rate,
        ecm: rx.ecm,
        transport: if opts.audio { "g711-alaw" } else { "t38" },
        loss_percent: opts.loss_percent,
        datagrams_lost: out.lost,
        simulated_duration_s: out.elapsed.as_secs_f64(),
        cpu_time_ms: cpu.as_secs_f64() * 1000.0,
        output: opts.output.clone(),
    })
}
