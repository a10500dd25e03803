//! `faxleg`: one fax leg on its own, for tests, benchmarks and diagnostics.
//!
//! ```text
//! faxleg receive --bind 127.0.0.1:0 --trunk 127.0.0.1 --dir /tmp/in [options]
//! faxleg send    --bind 127.0.0.1:0 --trunk 127.0.0.1:5060 --to 100 --tiff page.tif [options]
//! ```
//!
//! It prints `listening <addr>` once the signalling socket is bound, then
//! one JSON line per call report. Options: `--media t38-preferred|t38-initial|audio-only`,
//! `--scale <n>` (media time runs n times faster; both legs must agree),
//! `--channels <n>`, `--busy-status 486|503`, `--numbers 100,101` (others get 404),
//! `--answer-timeout <s>`, `--answer-delay <s>` (ring before answering),
//! `--bye-after <s>` (clear the call after s seconds of call time), `--calls <n>`
//! (receive: exit after n calls), `--allow <ip>`, `--sender-delay <s>`, `--no-ecm`, `--auth user:password` (digest), `--register <user>`
//! (REGISTER with the `--auth` password, refreshed), `--keepalive <s>` (OPTIONS to the trunk),
//! `--run <s>` (receive: exit after s seconds).
//! On stdin, the line `stats` prints the counters as JSON.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use faxgate_t38::FaxSettings;
use faxgate_t38::sip::{CallReport, UaConfig, UserAgent};
use faxgate_t38::trunk::{Credentials, MediaPreference, Registration, TrunkConfig};
use tokio::io::AsyncBufReadExt;

fn usage() -> ! {
    eprintln!("usage: faxleg receive|send --bind ADDR --trunk HOST[:PORT] [options] (see the source's header)");
    std::process::exit(2)
}

struct Args {
    mode: String,
    opts: std::collections::HashMap<String, String>,
}

impl Args {
    fn parse() -> Self {
        let mut it = std::env::args().skip(1);
        let mode = it.next().unwrap_or_else(|| usage());
        let mut opts = std::collections::HashMap::new();
        while let Some(k) = it.next() {
            let Some(name) = k.strip_prefix("--") else { usage() };
            if name == "no-ecm" {
                opts.insert(name.to_string(), String::new());
                continue;
            }
            let v = it.next().unwrap_or_else(|| usage());
            opts.insert(name.to_string(), v);
        }
        Self { mode, opts }
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.opts.get(k).map(String::as_str)
    }

    fn num<T: std::str::FromStr>(&self, k: &str) -> Option<T> {
        self.get(k).map(|v| v.parse().unwrap_or_else(|_| usage()))
    }
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
        "states": r.states,
        "pages": pages,
        "rtp_in": r.media.rtp_in,
        "udptl_in": r.media.udptl_in,
        "switches": r.media.switches,
        "remote_media": r.remote_media.map(|a| a.to_string()),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Logs go to stderr (RUST_LOG); stdout carries the JSON lines.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let trunk_arg = a.get("trunk").unwrap_or_else(|| usage()).to_string();
    let (host, port) = match trunk_arg.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().unwrap_or_else(|_| usage())),
        None => (trunk_arg.clone(), 5060),
    };
    let media = match a.get("media").unwrap_or("t38-preferred") {
        "t38-preferred" => MediaPreference::T38Preferred,
        "t38-initial" => MediaPreference::T38Initial,
        "audio-only" => MediaPreference::AudioOnly,
        _ => usage(),
    };
    let trunk = TrunkConfig {
        name: "trunk".into(),
        bind: None,
        outbound: false,
        address: host,
        port,
        domain: None,
        registration: a.get("register").map(|user| Registration { user: user.to_string(), expires_secs: 60 }),
        credentials: a.get("auth").map(|v| {
            let (username, password) = v.split_once(':').unwrap_or_else(|| usage());
            Credentials { username: username.into(), password: password.into(), realm: None }
        }),
        allowed_sources: a
            .get("allow")
            .map(|v| v.split(',').map(|s| s.parse().unwrap_or_else(|_| usage())).collect())
            .unwrap_or_default(),
        channels: a.num("channels").unwrap_or(30),
        busy_status: a.num("busy-status").unwrap_or(503),
        media,
        sender_reinvite_delay_secs: a.num("sender-delay").unwrap_or(3),
        answer_timeout_secs: a.num("answer-timeout").unwrap_or(60),
        answer_delay_secs: a.num("answer-delay").unwrap_or(0),
        keepalive_secs: a.num("keepalive").unwrap_or(0),
        max_datagram: None,
        redundancy: 3,
        ecm: a.get("no-ecm").is_none(),
    };
    let bind = a.get("bind").unwrap_or("127.0.0.1:0").parse().unwrap_or_else(|_| usage());
    let cfg = UaConfig {
        bind,
        advertise: None,
        media_ip: std::net::SocketAddr::ip(&bind),
        trunk,
        fax: FaxSettings { ident: "+45 0000 0000".into(), ..FaxSettings::default() },
        time_scale: a.num("scale").unwrap_or(1.0),
        user_agent: "faxgate-faxleg".into(),
    };
    let scale = cfg.time_scale;
    let dir: Option<PathBuf> = a.get("dir").map(PathBuf::from);
    let numbers: Option<Vec<String>> = a.get("numbers").map(|v| v.split(',').map(String::from).collect());
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
            if l.trim() == "stats" {
                println!("{}", serde_json::to_string(&ua2.stats()).unwrap_or_default());
            }
        }
    });
    if let Some(secs) = a.num::<f64>("bye-after") {
        let ua3 = ua.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(secs / scale)).await;
            ua3.hang_up_all();
        });
    }
    match a.mode.as_str() {
        "receive" => {
            let limit: Option<u64> = a.num("calls");
            if let Some(secs) = a.num::<f64>("run") {
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
                if limit.is_some_and(|l| n >= l) {
                    break;
                }
            }
        }
        "send" => {
            let to = a.get("to").unwrap_or_else(|| usage());
            let tiff = PathBuf::from(a.get("tiff").unwrap_or_else(|| usage()));
            match ua.send_fax(to, a.get("from").unwrap_or("4511223344"), tiff).await {
                Ok(r) => println!("{}", report_json(&r)),
                Err(e) => println!(
                    "{}",
                    serde_json::json!({"error": e.to_string(), "status": e.status(), "transient": e.is_transient()})
                ),
            }
            // Let the BYE's transaction finish.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        _ => usage(),
    }
    ua.shutdown();
}
