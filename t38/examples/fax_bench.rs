//! Fax engine benchmarks (run with `--release`):
//!
//! ```text
//! fax_bench cpu [ITERATIONS]              CPU per fine A4 page, both ends, T.38 and G.711
//! fax_bench memory [SESSIONS]             resident memory per idle session
//! fax_bench realtime PAIRS [SCALE] [MM] [THREADS] [STAGGER_S]  concurrent T.38 pairs over UDP
//! ```
//!
//! `realtime` runs each end of each pair as the user agent runs a call's
//! media: a `CallMedia` in its own loop on the media runtime (`THREADS`
//! threads), over its own UDP sockets.
//!
//! Test pages come from `faxgate_t38::testpage`, compressed to T.6 by
//! libtiff's `tiffcp -c g4`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use faxgate_t38::g711::Law;
use faxgate_t38::media::{self, CallMedia, FaxJob, MediaClock, MediaCmd};
use faxgate_t38::pair::{LinkConfig, Pair};
use faxgate_t38::sdp::Negotiated;
use faxgate_t38::testpage::{self, Length, PageSpec, VRes, Width};
use faxgate_t38::udptl::{ErrorCorrection, Udptl};
use faxgate_t38::{Direction, Event, FaxSession, FaxSettings, SessionConfig, Transport};

fn page(dir: &Path, name: &str, length: Length, density: u32) -> PathBuf {
    let raw = dir.join(format!("{name}.raw.tif"));
    let spec = PageSpec { width: Width::A4, length, vres: VRes::Fine, density, seed: 42 };
    testpage::write_tiff(&raw, &spec, 1).expect("write test page");
    let out = dir.join(format!("{name}.tif"));
    let st = Command::new("tiffcp").args(["-c", "g4"]).arg(&raw).arg(&out).status().expect("tiffcp (libtiff-tools)");
    assert!(st.success());
    out
}

fn t38() -> Transport {
    Transport::T38 { version: 0, max_ifp: Udptl::new(ErrorCorrection::default(), 400).max_ifp() }
}

fn session(dir: Direction, transport: Transport, calling: bool, now: Instant) -> FaxSession {
    FaxSession::new(SessionConfig { direction: dir, transport, calling, settings: FaxSettings::default() }, now)
        .expect("session")
}

fn one_call(input: &Path, out: &Path, transport: Transport) -> (Duration, Duration, u32) {
    let start = Instant::now();
    let cpu0 = faxgate_t38::thread_cpu_time();
    let a = session(Direction::Send { tiff: input.to_owned(), max_pages: None }, transport, true, start);
    let b = session(Direction::Receive { tiff: out.to_owned() }, transport, false, start);
    let t38 = matches!(transport, Transport::T38 { .. });
    let mut pair = Pair::new(a, b, LinkConfig::default(), LinkConfig { seed: 2, ..LinkConfig::default() }, start, t38);
    let o = pair.run(Duration::from_secs(3600)).expect("call ends");
    let cpu = faxgate_t38::thread_cpu_time() - cpu0;
    let r = o.b_result().expect("result");
    assert!(r.is_ok(), "{r:?}");
    let size =
        o.b.iter()
            .find_map(|(_, e)| match e {
                Event::Page(p) => Some(p.image_size),
                _ => None,
            })
            .unwrap_or(0);
    (cpu, o.elapsed, size)
}

fn cpu(iterations: usize) {
    let dir = std::env::temp_dir().join(format!("fax-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (label, density) in [("typical (density 25)", 25), ("dense (density 45)", 45)] {
        let input = page(&dir, &format!("p{density}"), Length::A4, density);
        let file_size = std::fs::metadata(&input).unwrap().len();
        for (tname, transport) in [("T.38", t38()), ("G.711 A-law", Transport::Audio(Law::Alaw))] {
            let mut cpus = Vec::new();
            let mut sim = Duration::ZERO;
            let mut size = 0;
            for _ in 0..iterations {
                let (c, s, z) = one_call(&input, &dir.join("out.tif"), transport);
                cpus.push(c);
                sim = s;
                size = z;
            }
            cpus.sort();
            let mean: Duration = cpus.iter().sum::<Duration>() / cpus.len() as u32;
            println!(
                "cpu {tname:12} {label:22} G4 file {file_size:6} B, T.4/T.6 on the line {size:6} B, call {:5.1} s simulated: CPU both ends min {:7.2} ms, mean {:7.2} ms, max {:7.2} ms ({iterations} runs)",
                sim.as_secs_f64(),
                cpus[0].as_secs_f64() * 1e3,
                mean.as_secs_f64() * 1e3,
                cpus[cpus.len() - 1].as_secs_f64() * 1e3,
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn memory(n: usize) {
    let dir = std::env::temp_dir().join(format!("fax-bench-mem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = page(&dir, "m", Length::A4, 25);
    for (name, transport, send) in [
        ("T.38 receive", t38(), false),
        ("T.38 send", t38(), true),
        ("G.711 receive", Transport::Audio(Law::Alaw), false),
    ] {
        let before = rss_kib();
        let now = Instant::now();
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            let d = if send {
                Direction::Send { tiff: input.clone(), max_pages: None }
            } else {
                Direction::Receive { tiff: dir.join(format!("r{i}.tif")) }
            };
            let mut s = session(d, transport, send, now);
            // Run one tick so the terminal has allocated what it needs to start.
            s.handle_timeout(now);
            while s.poll_transmit().is_some() {}
            v.push(s);
        }
        let after = rss_kib();
        println!(
            "memory {name:14}: {n} sessions, RSS +{} KiB = {:.1} KiB per session",
            after - before,
            (after - before) as f64 / n as f64
        );
        drop(v);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// CPU time of the media runtime's threads so far (Linux: /proc/self/task).
fn media_threads_cpu() -> Duration {
    let tick = 100.0; // USER_HZ on Linux
    let mut total = 0.0;
    for t in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() != "fax-media" {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // Fields after the command name: state is field 3; utime 14, stime 15.
        let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| f.get(i - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        total += (ticks(14) + ticks(15)) / tick;
    }
    Duration::from_secs_f64(total)
}

fn realtime(pairs: usize, scale: f64, mm: u32, threads: usize, stagger: f64) {
    let dir = std::env::temp_dir().join(format!("fax-bench-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let length = if mm == 0 { Length::A4 } else { Length::Mm(mm) };
    let input = page(&dir, "rt", length, 25);
    media::set_media_threads(threads).expect("media threads");
    let clock = MediaClock::scaled(scale).expect("scale");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let workdir = dir.clone();
    rt.block_on(async move {
        let dir = workdir;
        let rss0 = rss_kib();
        let wall = Instant::now();
        let mut calls = Vec::new();
        for i in 0..pairs {
            // Calls arrive evenly over the stagger window (real seconds).
            let due = wall + Duration::from_secs_f64(stagger * i as f64 / pairs as f64);
            tokio::time::sleep_until(due.into()).await;
            let ip = "127.0.0.1".parse().unwrap();
            let (a_audio, a_image) = media::bind_media(ip).await.expect("bind (raise ulimit -n?)");
            let (b_audio, b_image) = media::bind_media(ip).await.expect("bind (raise ulimit -n?)");
            let t38 = |remote| Negotiated::T38 {
                remote,
                version: 0,
                ec: ErrorCorrection::Redundancy { depth: 3 },
                max_datagram: 400,
            };
            let job = |direction, calling| FaxJob { direction, calling, settings: FaxSettings::default(), peers: Vec::new() };
            let now = clock.now();
            let tx = CallMedia::new(
                job(Direction::Send { tiff: input.clone(), max_pages: None }, true),
                &t38(b_image.local_addr().unwrap()),
                now,
                2 * i as u64,
            )
            .expect("sender");
            let rx = CallMedia::new(
                job(Direction::Receive { tiff: dir.join(format!("o{i}.tif")) }, false),
                &t38(a_image.local_addr().unwrap()),
                now,
                2 * i as u64 + 1,
            )
            .expect("receiver");
            let (a_cmd, a_cmds) = tokio::sync::mpsc::unbounded_channel::<MediaCmd>();
            let (b_cmd, b_cmds) = tokio::sync::mpsc::unbounded_channel::<MediaCmd>();
            let (ev, _) = tokio::sync::mpsc::unbounded_channel();
            let a = media::spawn_media(tx, a_audio, a_image, clock, a_cmds, ev.clone());
            let b = media::spawn_media(rx, b_audio, b_image, clock, b_cmds, ev);
            calls.push((a, b, a_cmd, b_cmd));
        }
        let setup = wall.elapsed();
        let rss1 = rss_kib();
        let mut ok = 0;
        let mut failed = Vec::new();
        for (a, b, _a_cmd, _b_cmd) in calls {
            let limit = Duration::from_secs_f64(600.0 / scale);
            let ra = tokio::time::timeout(limit, a).await.ok().and_then(Result::ok).and_then(|r| r.0);
            let rb = tokio::time::timeout(limit, b).await.ok().and_then(Result::ok).and_then(|r| r.0);
            match (ra, rb) {
                (Some(x), Some(y)) if x.is_ok() && y.is_ok() && y.pages == 1 => ok += 1,
                other => failed.push(format!("{other:?}")),
            }
        }
        let total = wall.elapsed();
        let l = media::lateness();
        let cpu = media_threads_cpu();
        println!(
            "realtime pairs={pairs} scale=x{scale} page={} : completed {ok}/{pairs}; wall {:.1} s (calls started over {:.1} s) = {:.1} s simulated; session-tick lateness p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms max {:.2} ms over {} wake-ups; media threads {threads}, their CPU {:.1} s ({:.0}% of wall); RSS +{} MiB while running",
            if mm == 0 { "A4".to_string() } else { format!("{mm} mm") },
            total.as_secs_f64(),
            setup.as_secs_f64(),
            total.as_secs_f64() * scale,
            l.p50.as_secs_f64() * 1e3,
            l.p99.as_secs_f64() * 1e3,
            l.p999.as_secs_f64() * 1e3,
            l.max.as_secs_f64() * 1e3,
            l.ticks,
            cpu.as_secs_f64(),
            100.0 * cpu.as_secs_f64() / total.as_secs_f64(),
            (rss1.saturating_sub(rss0)) / 1024,
        );
        for f in failed.iter().take(5) {
            println!("  failed: {f}");
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    match arg(1) {
        Some("cpu") => cpu(arg(2).and_then(|s| s.parse().ok()).unwrap_or(5)),
        Some("memory") => memory(arg(2).and_then(|s| s.parse().ok()).unwrap_or(200)),
        Some("realtime") => realtime(
            arg(2).and_then(|s| s.parse().ok()).unwrap_or(100),
            arg(3).and_then(|s| s.parse().ok()).unwrap_or(1.0),
            arg(4).and_then(|s| s.parse().ok()).unwrap_or(0),
            arg(5).and_then(|s| s.parse().ok()).unwrap_or(8),
            arg(6).and_then(|s| s.parse().ok()).unwrap_or(0.0),
        ),
        _ => eprintln!(
            "usage: fax_bench cpu [N] | memory [N] | realtime PAIRS [SCALE] [PAGE_MM, 0 = A4] [THREADS] [STAGGER_S]"
        ),
    }
}
