//! `faxleg`: one fax leg on its own, for tests, benchmarks and diagnostics.
//!
//! ```text
//! faxleg receive --trunk 127.0.0.1 --dir /tmp/in [options]
//! faxleg send    --trunk 127.0.0.1:5060 --to 100 --tiff page.tif [options]
//! ```
//!
//! It prints `listening <addr>` once the signalling socket is bound, then
//! one JSON line per call report (`faxleg --help` lists the options). On
//! stdin, the line `stats` prints the counters as JSON, and `drain` makes it
//! refuse new calls with 503 and Retry-After, as faxgate does when stopping.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use faxgate_t38::FaxSettings;
use faxgate_t38::media::MediaClock;
use faxgate_t38::sip::{CallReport, UaConfig, UserAgent};
use faxgate_t38::trunk::{Credentials, MediaPreference, Registration, TrunkConfig};
use tokio::io::AsyncBufReadExt;

/// One fax leg: a SIP user agent towards one trunk, with its fax sessions.
#[derive(Debug, Parser)]
#[command(name = "faxleg")]
struct Args {
    #[command(subcommand)]
    mode: Mode,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Answer calls and receive faxes into `--dir`.
    Receive {
        /// Where received faxes are written (default: the temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Numbers that are ours, comma-separated; others get 404 (default: all).
        #[arg(long, value_delimiter = ',')]
        numbers: Option<Vec<String>>,
        /// Exit after this many calls.
        #[arg(long)]
        calls: Option<u64>,
        /// Exit after this many seconds.
        #[arg(long)]
        run: Option<f64>,
    },
    /// Place one call and send `--tiff`.
    Send {
        /// The number to call (user part at the trunk).
        #[arg(long)]
        to: String,
        /// The TIFF to send.
        #[arg(long)]
        tiff: PathBuf,
        /// The calling number.
        #[arg(long, default_value = "4511223344")]
        from: String,
    },
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Signalling address to bind (UDP).
    #[arg(long, global = true, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// The trunk, HOST or HOST:PORT (port 5060 when left out).
    #[arg(long, global = true, default_value = "127.0.0.1")]
    trunk: String,
    /// Media preference.
    #[arg(long, global = true, value_enum, default_value_t = Media::T38Preferred)]
    media: Media,
    /// Media time runs this many times faster than real time (both legs must agree).
    #[arg(long, global = true, default_value_t = 1.0)]
    scale: f64,
    /// Simultaneous calls.
    #[arg(long, global = true, default_value_t = 30)]
    channels: u32,
    /// Status at the channel limit.
    #[arg(long, global = true, default_value_t = 503, value_parser = busy_status)]
    busy_status: u16,
    /// Seconds to wait for an answer before CANCEL.
    #[arg(long, global = true, default_value_t = 60)]
    answer_timeout: u32,
    /// Seconds to ring before answering.
    #[arg(long, global = true, default_value_t = 0)]
    answer_delay: u32,
    /// Clear every call after this many seconds of call time.
    #[arg(long, global = true)]
    bye_after: Option<f64>,
    /// Source addresses allowed to send requests, comma-separated (default: the trunk).
    #[arg(long, global = true, value_delimiter = ',')]
    allow: Vec<std::net::IpAddr>,
    /// Seconds the sending side waits before asking for T.38.
    #[arg(long, global = true, default_value_t = 3)]
    sender_delay: u32,
    /// No T.30 error correction mode.
    #[arg(long, global = true)]
    no_ecm: bool,
    /// Digest credentials, USER:PASSWORD.
    #[arg(long, global = true)]
    auth: Option<String>,
    /// REGISTER as this user (with the `--auth` password), refreshed.
    #[arg(long, global = true)]
    register: Option<String>,
    /// Send OPTIONS to the trunk this often, in seconds.
    #[arg(long, global = true, default_value_t = 0)]
    keepalive: u32,
    /// Where the trunk's media may be, comma-separated (default: its signalling sources).
    #[arg(long, global = true, value_delimiter = ',')]
    media_sources: Vec<std::net::IpAddr>,
    /// The session interval (RFC 4028) asked for on calls placed, in seconds.
    #[arg(long, global = true, default_value_t = 1800)]
    session_expires: u32,
    /// Log numbers and names in clear, and SIP messages in full at debug
    /// (otherwise as keyed hashes, as faxgate does by default).
    #[arg(long, global = true)]
    log_personal_data: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Media {
    T38Preferred,
    T38Initial,
    AudioOnly,
}

fn report_json(r: &CallReport) -> serde_json::Value {
    let pages: Vec<_> = r
        .events
        .iter()
        .filter_map(|e| match e {
            faxgate_t38::Event::Page(p) => Some(serde_json::to_value(p).unwrap_or_default()),
            _ => None,
        })
        .collect();
    serde_json::json!({
        "call_id": r.call_id,
        "incoming": r.incoming,
        "caller": r.caller,
        "called": r.called,
        "ok": r.result.as_ref().is_some_and(|x| x.is_ok()),
        "result": r.result,
        "t38": r.t38,
        "peer_hung_up": r.peer_hung_up,
        "t38_refused": r.t38_refused,
        "t38_initial_refused": r.t38_initial_refused,
        "session_interval": r.session_interval.map(|d| d.as_secs_f64()),
        "refreshes_sent": r.refreshes_sent,
        "refreshes_received": r.refreshes_received,
        "session_expired": r.session_expired,
        "needed": r.needed(),
        "states": r.states,
        "pages": pages,
        "rtp_in": r.media.rtp_in,
        "udptl_in": r.media.udptl_in,
        "switches": r.media.switches,
        "answered_for_s": r.answered_for.as_secs_f64(),
        "foreign_media": r.media.foreign,
        "remote_media": r.remote_media.map(|a| a.to_string()),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Logs go to stderr (RUST_LOG); stdout carries the JSON lines.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(faxgate_t38::sip::log_filter(
            &std::env::var("RUST_LOG").unwrap_or_default(),
        )))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let c = &args.common;
    faxgate_retention::logid::set_personal_data(c.log_personal_data);
    let (host, port) = match c.trunk.rsplit_once(':') {
        Some((h, p)) => match p.parse() {
            Ok(p) => (h.to_string(), p),
            Err(_) => fail(&format!("--trunk {}: bad port", c.trunk)),
        },
        None => (c.trunk.clone(), 5060),
    };
    let credentials = c.auth.as_ref().map(|v| match v.split_once(':') {
        Some((username, password)) => Credentials { username: username.into(), password: password.into(), realm: None },
        None => fail("--auth wants USER:PASSWORD"),
    });
    let trunk = TrunkConfig {
        name: "trunk".into(),
        bind: None,
        outbound: false,
        address: host,
        port,
        domain: None,
        registration: c.register.as_ref().map(|user| Registration { user: user.clone(), expires_secs: 60 }),
        credentials,
        allowed_sources: c.allow.clone(),
        channels: c.channels,
        busy_status: c.busy_status,
        media: match c.media {
            Media::T38Preferred => MediaPreference::T38Preferred,
            Media::T38Initial => MediaPreference::T38Initial,
            Media::AudioOnly => MediaPreference::AudioOnly,
        },
        sender_reinvite_delay_secs: c.sender_delay,
        answer_timeout_secs: c.answer_timeout,
        answer_delay_secs: c.answer_delay,
        keepalive_secs: c.keepalive,
        max_datagram: None,
        redundancy: 3,
        ecm: !c.no_ecm,
        media_sources: c.media_sources.clone(),
        session_expires_secs: c.session_expires,
    };
    let clock = MediaClock::scaled(c.scale).unwrap_or_else(|e| fail(&format!("--scale: {e}")));
    let cfg = UaConfig {
        socket: None,
        bind: c.bind,
        advertise: None,
        media_ip: c.bind.ip(),
        trunk,
        fax: FaxSettings { ident: "+45 0000 0000".into(), ..FaxSettings::default() },
        clock,
        user_agent: "faxgate-faxleg".into(),
    };
    let (dir, numbers) = match &args.mode {
        Mode::Receive { dir, numbers, .. } => (dir.clone(), numbers.clone()),
        Mode::Send { .. } => (None, None),
    };
    let router: faxgate_t38::sip::ua::Router = Arc::new(move |call| {
        if let Some(n) = &numbers
            && !n.contains(&call.called)
        {
            return None;
        }
        let d = dir.clone().unwrap_or_else(std::env::temp_dir);
        let safe: String = call.call_id.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        Some(d.join(format!("{}-{safe}.tif", call.called)))
    });
    let (ua, mut reports) = match UserAgent::start(cfg, router).await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("faxleg: {e}");
            std::process::exit(1);
        }
    };
    println!("listening {}", ua.local_addr());
    let ua2 = ua.clone();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            match l.trim() {
                "stats" => println!("{}", serde_json::to_string(&ua2.stats()).unwrap_or_default()),
                // Refuse new calls from now on (as faxgate does when stopping).
                "drain" => ua2.drain(),
                _ => {}
            }
        }
    });
    if let Some(secs) = c.bye_after {
        let ua3 = ua.clone();
        tokio::spawn(async move {
            tokio::time::sleep(clock.real_duration(Duration::from_secs_f64(secs))).await;
            ua3.hang_up_all();
        });
    }
    match args.mode {
        Mode::Receive { calls, run, .. } => {
            if let Some(secs) = run {
                let ua4 = ua.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                    ua4.shutdown();
                    std::process::exit(0);
                });
            }
            let mut n = 0u64;
            while let Some(r) = reports.recv().await {
                if let Some(status) = r.refused {
                    // Not a call: logged, not counted.
                    tracing::info!(call_id = %r.call_id, status, "INVITE refused before answering");
                    continue;
                }
                println!("{}", report_json(&r));
                n += 1;
                if calls.is_some_and(|l| n >= l) {
                    break;
                }
            }
        }
        Mode::Send { to, tiff, from } => {
            match ua.send_fax(&to, &from, tiff).await {
                Ok(r) => println!("{}", report_json(&r)),
                Err(e) => println!(
                    "{}",
                    serde_json::json!({"error": e.to_string(), "status": e.status(), "transient": e.is_transient()})
                ),
            }
            // Let the BYE's transaction finish.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    ua.shutdown();
}

fn busy_status(s: &str) -> Result<u16, String> {
    match s {
        "486" => Ok(486),
        "503" => Ok(503),
        _ => Err("486 or 503".into()),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("faxleg: {msg}");
    std::process::exit(2)
}
