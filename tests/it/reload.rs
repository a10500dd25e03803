//! SIGHUP applies what can change while the daemon runs: a renewed TLS
//! certificate (the next handshake gets it), `fax.hold`, trunks added and
//! removed, SMTP limits; what cannot is named in `faxgate status`.

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::gateway::{Gw, Opts, cdrs, fixture, send_mail, start, wait_for_mail};

/// Whether a STARTTLS handshake with `addr` now shows the certificate in
/// the PEM file `cert` (Python's ssl module, not our code).
fn serves_certificate(addr: &str, cert: &std::path::Path) -> bool {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let script = format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("{host}", {port}, local_hostname="client.test", timeout=20)
s.starttls(context=ctx)
seen = s.sock.getpeercert(binary_form=True)
s.quit()
print(seen == ssl.PEM_cert_to_DER_cert(open("{cert}").read()))
"#,
        cert = cert.display()
    );
    let out = Command::new("/usr/bin/python3").arg("-c").arg(&script).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    text.trim() == "True"
}

/// A new SMTP connection's first line, and the connection (kept open).
fn greeting(addr: &str) -> (String, std::net::TcpStream) {
    use std::io::BufRead;
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut line = String::new();
    std::io::BufReader::new(&s).read_line(&mut line).unwrap();
    (line, s)
}

/// Sends OPTIONS from `from` to `to`; the first line of the answer, if one
/// comes within 3 s.
fn options(from: &UdpSocket, to: u16) -> Option<String> {
    let me = from.local_addr().unwrap();
    let req = format!(
        "OPTIONS sip:ping@127.0.0.1:{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-reload-{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:test@{me}>;tag=r{n}\r\nTo: <sip:ping@127.0.0.1:{to}>\r\n\
         Call-ID: reload-{n}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        n = fastrand::u32(..)
    );
    from.send_to(req.as_bytes(), ("127.0.0.1", to)).unwrap();
    from.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 4096];
    let n = from.recv(&mut buf).ok()?;
    String::from_utf8_lossy(&buf[..n]).lines().next().map(str::to_owned)
}

#[test]
fn sighup_renews_the_certificate_sets_the_hold_and_adds_and_removes_a_trunk() {
    let g = start(Opts::default());
    let cert = g.setup.path().join("cert.pem");
    let key = g.setup.path().join("key.pem");
    let original = std::fs::read_to_string(&g.setup.config).unwrap();
    let reload = |g: &Gw, text: &str, n: usize| {
        std::fs::write(&g.setup.config, text).unwrap();
        g.daemon.signal(Signal::SIGHUP);
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while g.daemon.log().matches("configuration reloaded").count() < n {
            assert!(std::time::Instant::now() < until, "no reload:\n{}", g.daemon.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // A renewed certificate: the next handshake gets it.
    assert!(serves_certificate(&g.submission, &cert));
    let renewed = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    std::fs::write(&cert, renewed.cert.pem()).unwrap();
    std::fs::write(&key, renewed.key_pair.serialize_pem()).unwrap();
    reload(&g, &original, 1);
    g.daemon.wait_for_log("TLS certificate read again");
    assert!(serves_certificate(&g.submission, &cert), "the old certificate after the reload");

    // fax.hold on: mail is kept, nothing is called; off: it is faxed.
    let held = original.replacen("[fax]\n", "[fax]\nhold = true\n", 1);
    reload(&g, &held, 2);
    g.daemon.wait_for_log("fax.hold is on: accepted mail is kept");
    send_mail(&g, &["33221100@fax.acme.test"], "Held by a reload", Some(&fixture("letter.pdf")));
    assert!(!g.daemon.log().contains("calling"), "nothing is called while held");
    assert!(cdrs(&g).is_empty());
    reload(&g, &original, 3);
    g.daemon.wait_for_log("fax.hold is off: the mail kept is faxed");
    let mails = wait_for_mail(&g, 2, 120);
    assert!(mails.iter().any(|(_, m)| m.contains("delivered (2 of 2 pages)")), "{mails:#?}");

    // A trunk added: it answers its peer; removed: it stops.
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let extra_port = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let with_trunk = format!(
        "{original}\n[[trunk]]\nname = \"extra\"\nbind = \"127.0.0.1:{extra_port}\"\naddress = \"127.0.0.1\"\n\
         port = {}\n",
        peer.local_addr().unwrap().port()
    );
    reload(&g, &with_trunk, 4);
    g.daemon.wait_for_log(&format!("trunk started: sip extra 127.0.0.1:{extra_port}"));
    let answer = options(&peer, extra_port);
    assert_eq!(answer.as_deref(), Some("SIP/2.0 200 OK"), "{}", g.daemon.log());
    reload(&g, &original, 5);
    g.daemon.wait_for_log("trunk extra: removed");
    g.daemon.wait_for_log("trunk stopped: its calls have ended");
    assert_eq!(options(&peer, extra_port), None, "the removed trunk still answers");
    // The trunks that stayed still carry faxes.
    send_mail(&g, &["33221100@fax.acme.test"], "After the reloads", Some(&fixture("letter.pdf")));
    let mails = wait_for_mail(&g, 4, 120);
    assert_eq!(mails.iter().filter(|(_, m)| m.contains("delivered (2 of 2 pages)")).count(), 2, "{mails:#?}");

    // SMTP limits: one connection per address from now on.
    let one = original
        .replace("hostname = \"fax.acme.test\"", "hostname = \"fax.acme.test\"\nmax_connections_per_address = 1");
    reload(&g, &one, 6);
    g.daemon.wait_for_log("SMTP limits changed");
    let first = greeting(&g.submission);
    assert!(first.0.starts_with("220 "), "{}", first.0);
    assert_eq!(greeting(&g.submission).0, "421 4.7.0 too many connections from your address, try again later\r\n");
    drop(first);
    reload(&g, &original, 7);
    let (a, b) = (greeting(&g.submission), greeting(&g.submission));
    assert!(a.0.starts_with("220 ") && b.0.starts_with("220 "), "{a:?} {b:?}");
    drop((a, b));

    // What cannot change while running is named, in the log and in status.
    let renamed = original.replace("hostname = \"fax.acme.test\"", "hostname = \"fax2.acme.test\"");
    reload(&g, &renamed, 8);
    g.daemon.wait_for_log("changed in the configuration; takes effect on restart setting=smtp");
    let status = g.setup.json(&["status"]);
    assert_eq!(status["restart_needed"], serde_json::json!(["smtp"]), "{status:#}");
}
