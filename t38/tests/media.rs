//! The media loop the user agent runs each call on ([`faxgate_t38::media`]),
//! over real UDP sockets on the loopback interface: a sender and a receiver
//! per pair, each a `CallMedia` on the media runtime, faster than real time
//! (both ends on the same clock factor) and in real time.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use faxgate_t38::media::{CallMedia, FaxJob, MediaClock, MediaCmd, bind_media, lateness, spawn_media};
use faxgate_t38::sdp::Negotiated;
use faxgate_t38::testpage::{Length, VRes, Width};
use faxgate_t38::udptl::ErrorCorrection;
use faxgate_t38::{Direction, FaxSettings};
use tokio::sync::mpsc;

fn t38_to(remote: SocketAddr) -> Negotiated {
    Negotiated::T38 { remote, version: 0, ec: ErrorCorrection::Redundancy { depth: 3 }, max_datagram: 400 }
}

async fn run_pairs(pairs: usize, scale: f64) {
    let dir = tmpdir(&format!("media-{pairs}-{scale}"));
    let input = make_tiff(
        &dir,
        "in",
        &spec(Width::A4, Length::Mm(if scale > 1.0 { 100 } else { 20 }), VRes::Fine, 21),
        1,
        false,
    );
    let clock = MediaClock::scaled(scale).unwrap();
    let before = lateness().ticks;
    let mut calls = Vec::new();
    for i in 0..pairs {
        let (a_audio, a_image) = bind_media("127.0.0.1".parse().unwrap()).await.unwrap();
        let (b_audio, b_image) = bind_media("127.0.0.1".parse().unwrap()).await.unwrap();
        let out = dir.join(format!("out-{i}.tif"));
        let job =
            |direction, calling| FaxJob { direction, calling, settings: FaxSettings::default(), peers: Vec::new() };
        let tx = CallMedia::new(
            job(Direction::Send { tiff: input.clone(), max_pages: None }, true),
            &t38_to(b_image.local_addr().unwrap()),
            clock.now(),
            2 * i as u64,
        )
        .unwrap();
        let rx = CallMedia::new(
            job(Direction::Receive { tiff: out.clone() }, false),
            &t38_to(a_image.local_addr().unwrap()),
            clock.now(),
            2 * i as u64 + 1,
        )
        .unwrap();
        let (a_cmd, a_rx) = mpsc::unbounded_channel::<MediaCmd>();
        let (b_cmd, b_rx) = mpsc::unbounded_channel::<MediaCmd>();
        let (ev, _events) = mpsc::unbounded_channel();
        let a = spawn_media(tx, a_audio, a_image, clock, a_rx, ev.clone());
        let b = spawn_media(rx, b_audio, b_image, clock, b_rx, ev);
        calls.push((a, b, out, a_cmd, b_cmd));
    }
    for (a, b, out, _a_cmd, _b_cmd) in calls {
        let (ra, _) = tokio::time::timeout(Duration::from_secs(120), a).await.unwrap().unwrap();
        let (rb, stats) = tokio::time::timeout(Duration::from_secs(120), b).await.unwrap().unwrap();
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(ra.is_ok() && rb.is_ok(), "{ra:?} {rb:?}");
        assert!(stats.udptl_in > 0 && stats.udptl_out > 0, "{stats:?}");
        assert_pixels_equal(&input, &out, 1);
    }
    let l = lateness();
    assert!(l.ticks > before + 10, "{l:?}");
    eprintln!("{pairs} pairs at x{scale}: {l:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn media_runs_pairs_over_udp_time_compressed() {
    run_pairs(4, 25.0).await;
}

#[tokio::test(flavor = "current_thread")]
async fn media_runs_a_pair_in_real_time() {
    run_pairs(1, 1.0).await;
}
