//! The real-time driver over real UDP sockets on the loopback interface.

mod common;

use std::time::Duration;

use common::*;
use faxgate_t38::driver::{Driver, DriverConfig};
use faxgate_t38::testpage::{Length, VRes, Width};
use faxgate_t38::udptl::{ErrorCorrection, Udptl};
use faxgate_t38::{Direction, FaxSession, FaxSettings, SessionConfig};
use tokio::net::UdpSocket;

async fn run_pairs(pairs: usize, scale: f64) {
    let dir = tmpdir(&format!("driver-{pairs}-{scale}"));
    let input = make_tiff(
        &dir,
        "in",
        &spec(Width::A4, Length::Mm(if scale > 1.0 { 100 } else { 20 }), VRes::Fine, 21),
        1,
        false,
    );
    let (driver, epoch) = Driver::start(DriverConfig { time_scale: scale, shards: 2 }).unwrap();
    let mut handles = Vec::new();
    for i in 0..pairs {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let now = driver.now().max(epoch);
        let mk = |direction, calling| {
            FaxSession::new(
                SessionConfig { direction, transport: t38(), calling, settings: FaxSettings::default() },
                now,
            )
            .unwrap()
        };
        let out = dir.join(format!("out-{i}.tif"));
        let tx = mk(Direction::Send { tiff: input.clone(), max_pages: None }, true);
        let rx = mk(Direction::Receive { tiff: out.clone() }, false);
        let u = || Udptl::new(ErrorCorrection::default(), 400);
        handles.push((driver.add(tx, u(), a, ba).unwrap(), driver.add(rx, u(), b, aa).unwrap(), out));
    }
    for (mut a, mut b, out) in handles {
        let ra = tokio::time::timeout(Duration::from_secs(120), a.finished()).await.unwrap().unwrap();
        let rb = tokio::time::timeout(Duration::from_secs(120), b.finished()).await.unwrap().unwrap();
        assert!(ra.is_ok() && rb.is_ok(), "{ra:?} {rb:?}");
        assert_pixels_equal(&input, &out, 1);
    }
    let l = driver.lateness();
    assert!(l.ticks > 10, "{l:?}");
    eprintln!("{pairs} pairs at x{scale}: {l:?}");
    driver.stop();
}

#[tokio::test(flavor = "current_thread")]
async fn driver_runs_pairs_over_udp_time_compressed() {
    run_pairs(4, 25.0).await;
}

#[tokio::test(flavor = "current_thread")]
async fn driver_runs_a_pair_in_real_time() {
    run_pairs(1, 1.0).await;
}
