//! `[metrics] listen` on the running binary: `/health`, and `/metrics`
//! after a real round trip (a fax from mail delivered over T.38 to the
//! daemon's own inbound trunk and mailed, and one to a number that does not
//! exist), checked by Prometheus's own `promtool check metrics` and for the
//! counts the round trip must leave; the example alert rules pass their
//! `promtool test rules` tests.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::gateway::{Opts, fixture, send_mail, start, wait_for_cdrs, wait_for_mail};

/// GET `path` from `addr`: the status code and the body.
fn get(addr: &str, path: &str) -> (u16, String) {
    get_with(addr, path, "")
}

/// [`get`] with more header lines (each ending in CRLF).
fn get_with(addr: &str, path: &str, headers: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// The value of the sample written exactly `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

fn promtool() -> Command {
    let mut c = Command::new("promtool");
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

#[test]
fn metrics_after_a_round_trip_pass_promtool_and_count_what_happened() {
    let g = start(Opts { extra: "\n[metrics]\nlisten = \"127.0.0.1:0\"\n".into(), ..Default::default() });
    let addr = g.daemon.announced("metrics");
    assert_eq!(get(&addr, "/health"), (200, "ready\n".into()));
    assert_eq!(get(&addr, "/nothing").0, 404);

    // 33 22 11 00 is ours (delivered, 2 pages); 33 22 11 01 is not (404).
    send_mail(&g, &["33221100@fax.acme.test", "33221101@fax.acme.test"], "Metrics", Some(&fixture("letter.pdf")));
    wait_for_mail(&g, 3, 120);
    assert_eq!(wait_for_cdrs(&g, 4).len(), 4);

    let (status, text) = get(&addr, "/metrics");
    assert_eq!(status, 200);
    let mut check =
        promtool().args(["check", "metrics"]).stdin(Stdio::piped()).spawn().expect("promtool (scripts/packages.sh)");
    check.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let expect = [
        (r#"faxgate_faxes_total{direction="mail_to_fax",result="sent",tenant="acme",trunk="out"}"#, 1.0),
        (r#"faxgate_faxes_total{direction="mail_to_fax",result="bad-number",tenant="acme",trunk="out"}"#, 1.0),
        (r#"faxgate_faxes_total{direction="fax_to_mail",result="received",tenant="acme",trunk="in"}"#, 1.0),
        (r#"faxgate_faxes_total{direction="fax_to_mail",result="refused",tenant="unassigned",trunk="in"}"#, 1.0),
        (r#"faxgate_pages_total{direction="mail_to_fax",tenant="acme",trunk="out"}"#, 2.0),
        (r#"faxgate_pages_total{direction="fax_to_mail",tenant="acme",trunk="in"}"#, 2.0),
        (r#"faxgate_fax_transport_total{direction="mail_to_fax",transport="t38"}"#, 1.0),
        (r#"faxgate_fax_transport_total{direction="fax_to_mail",transport="t38"}"#, 1.0),
        (r#"faxgate_call_duration_seconds_count{direction="mail_to_fax"}"#, 2.0),
        ("faxgate_smtp_sessions_total", 1.0),
        (r#"faxgate_queue_jobs{state="waiting"}"#, 0.0),
        (r#"faxgate_queue_jobs{state="calling"}"#, 0.0),
        ("faxgate_queue_oldest_age_seconds", 0.0),
        (r#"faxgate_outbox_messages{state="waiting"}"#, 0.0),
        (r#"faxgate_trunk_channels_in_use{trunk="out"}"#, 0.0),
        (r#"faxgate_trunk_channels_limit{trunk="out"}"#, 8.0),
        ("faxgate_up", 1.0),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&text, series), Some(value), "{series}\n{text}");
    }
    assert!(sample(&text, "faxgate_store_size_bytes").is_some_and(|b| b > 0.0), "{text}");
    // A scraper that asks for OpenMetrics gets it.
    let (_, om) = get_with(&addr, "/metrics", "Accept: application/openmetrics-text; version=1.0.0\r\n");
    assert!(om.ends_with("# EOF\n") && om.contains("# TYPE faxgate_faxes counter"), "{om}");
    // The call lasted a while: not in the first bucket.
    let fast = sample(&text, r#"faxgate_call_duration_seconds_bucket{le="5.0",direction="mail_to_fax"}"#);
    assert!(fast.is_some_and(|n| n < 2.0), "{text}");
}

/// A trunk that must register, at a registrar that never answers: the
/// daemon serves, but is not ready, and says why.
#[test]
fn health_is_not_ready_while_a_trunk_is_not_registered() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let extra = format!(
        "\n[[trunk]]\nname = \"reg\"\nbind = \"127.0.0.1:0\"\naddress = \"127.0.0.1\"\nport = {port}\n\
         registration = {{ user = \"4533221199\", expires_secs = 300 }}\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n"
    );
    let g = start(Opts { extra, ..Default::default() });
    let addr = g.daemon.announced("metrics");
    let (status, body) = get(&addr, "/health");
    assert_eq!((status, body.as_str()), (503, "not ready: trunk reg is not registered\n"));
    let (_, text) = get(&addr, "/metrics");
    assert_eq!(sample(&text, r#"faxgate_trunk_registered{trunk="reg"}"#), Some(0.0), "{text}");
    assert_eq!(sample(&text, r#"faxgate_trunk_registered{trunk="out"}"#), None, "out does not register: {text}");
}

#[test]
fn the_example_alert_rules_pass_their_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/prometheus");
    for args in [&["check", "rules", "faxgate-alerts.yml"][..], &["test", "rules", "faxgate-alerts.test.yml"]] {
        let out = promtool().args(args).current_dir(&dir).output().expect("promtool (scripts/packages.sh)");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
