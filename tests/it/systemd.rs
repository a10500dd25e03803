//! The systemd side: the notify protocol, and the unit file.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::harness::{BIN, Daemon, Setup};

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("no notification from the daemon");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Receives until a message containing `what` arrives; returns all seen.
fn until(sock: &UnixDatagram, what: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let m = recv(sock);
        let done = m.lines().any(|l| l == what);
        seen.push(m);
        if done {
            return seen;
        }
    }
}

#[test]
fn ready_reloading_stopping_and_the_watchdog_are_notified() {
    let s = Setup::new();
    let path = s.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // As systemd does, name the daemon's own pid in WATCHDOG_PID: a shell
    // that execs the daemon knows it.
    let mut cmd = std::process::Command::new("sh");
    cmd.env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000")
        .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" --config \"$1\" serve", BIN])
        .arg(&s.config);
    let d = Daemon::spawn(cmd);
    until(&sock, "READY=1");
    until(&sock, "WATCHDOG=1");
    d.signal(Signal::SIGHUP);
    let seen = until(&sock, "READY=1");
    let reloading = seen.iter().find(|m| m.contains("RELOADING=1")).expect("RELOADING=1 before READY=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    d.signal(Signal::SIGTERM);
    let seen = until(&sock, "STOPPING=1");
    let stopping = seen.last().unwrap();
    assert!(stopping.contains("STATUS=draining: 0 calls"), "the drain in STATUS=: {stopping}");
}

#[test]
fn the_unit_file_verifies_and_is_hardened() {
    if std::process::Command::new("systemd-analyze").arg("--version").output().is_err() {
        panic!("systemd-analyze is missing: install the systemd package (the test script does)");
    }
    let tmp = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/faxgate.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec=") && unit.contains("User=faxgate"));
    let path = tmp.path().join("faxgate.service");
    std::fs::write(&path, unit.replace("/usr/bin/faxgate", BIN)).unwrap();
    let out = std::process::Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "systemd-analyze verify: {err}");
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let level: f64 = text
        .lines()
        .find_map(|l| l.split("exposure level for faxgate.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {text}"));
    assert!(level <= 2.0, "exposure {level} is too high:\n{text}");
}
