//! A load generator for the mail benchmark (scripts/bench-mail.sh): N
//! parallel SMTP sessions each send M copies of a message file, pipelining
//! MAIL, RCPT and DATA; it measures the time from the final "." to the
//! "250" and prints the rate of accepted messages and the latency
//! percentiles. Each copy gets its own Message-ID, so that no server may
//! take it for a resubmission. Standard library only, so that it measures
//! the server and not itself.
//!
//! Usage: smtp_load ADDR SESSIONS MESSAGES_PER_SESSION FROM TO FILE

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn reply(r: &mut impl BufRead) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).expect("read") == 0 {
            panic!("connection closed after {all:?}");
        }
        all.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return all;
        }
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 7 {
        eprintln!("usage: smtp_load ADDR SESSIONS MESSAGES_PER_SESSION FROM TO FILE");
        std::process::exit(2);
    }
    let (addr, sessions, per, from, to) =
        (a[1].clone(), a[2].parse::<usize>().unwrap(), a[3].parse::<usize>().unwrap(), a[4].clone(), a[5].clone());
    let text = std::fs::read_to_string(&a[6]).expect("message file");
    // CRLF line ends and dot-stuffing, as on the wire.
    let mut data = String::with_capacity(text.len() + text.len() / 50);
    for line in text.lines() {
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
        data.push_str("\r\n");
    }
    data.push_str(".\r\n");
    let started = Instant::now();
    let threads: Vec<_> = (0..sessions)
        .map(|thread| {
            let (addr, from, to, data) = (addr.clone(), from.clone(), to.clone(), data.clone());
            std::thread::spawn(move || {
                let s = TcpStream::connect(&addr).expect("connect");
                s.set_nodelay(true).unwrap();
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                reply(&mut r);
                w.write_all(b"EHLO bench.test\r\n").unwrap();
                reply(&mut r);
                let mut lat = Vec::with_capacity(per);
                let mut refused = 0;
                for i in 0..per {
                    w.write_all(format!("MAIL FROM:<{from}>\r\nRCPT TO:<{to}>\r\nDATA\r\n").as_bytes()).unwrap();
                    let m = reply(&mut r);
                    let rc = reply(&mut r);
                    let d = reply(&mut r);
                    assert!(m.starts_with("250") && rc.starts_with("250") && d.starts_with("354"), "{m}{rc}{d}");
                    let id = format!("Message-ID: <bench-{thread}-{i}-{}@bench.test>\r\n", std::process::id());
                    w.write_all(id.as_bytes()).unwrap();
                    w.write_all(data.as_bytes()).unwrap();
                    let t = Instant::now();
                    let done = reply(&mut r);
                    lat.push(t.elapsed());
                    if !done.starts_with("250") {
                        refused += 1;
                    }
                }
                w.write_all(b"QUIT\r\n").unwrap();
                (lat, refused)
            })
        })
        .collect();
    let mut lat: Vec<Duration> = Vec::new();
    let mut refused = 0;
    for t in threads {
        let (l, r) = t.join().unwrap();
        lat.extend(l);
        refused += r;
    }
    let elapsed = started.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "messages={} refused={refused} seconds={:.2} rate={:.0}/s p50={:.1}ms p99={:.1}ms max={:.1}ms",
        lat.len(),
        elapsed.as_secs_f64(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
}
