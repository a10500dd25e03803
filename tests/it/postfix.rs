//! Postfix in front of faxgate, as a real deployment would have it: a
//! private Postfix instance (its own configuration and queue in a
//! temporary directory, run as root like the tests) relays the fax domain
//! to faxgate through a transport map. faxgate's refusals reach the
//! sender as Postfix bounces with faxgate's reason.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::mail;

/// The services of a minimal master.cf (no chroot: the queue is private).
pub const MASTER_CF: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

pub struct Postfix {
    etc: PathBuf,
    pub port: u16,
    pub maillog: PathBuf,
}

impl Postfix {
    /// A Postfix on 127.0.0.1 relaying `domain` to `next_hop` (`host:port`).
    pub fn start(dir: &Path, domain: &str, next_hop: &str) -> Postfix {
        assert!(nix::unistd::Uid::effective().is_root(), "the Postfix test runs as root (as CI does)");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // The postfix user must reach its data directory: open the way down to it.
        if let Some(parent) = dir.parent() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let (etc, spool, data) = (dir.join("etc"), dir.join("spool"), dir.join("data"));
        for d in [&etc, &spool, &data] {
            std::fs::create_dir_all(d).unwrap();
        }
        let postfix = nix::unistd::User::from_name("postfix").unwrap().expect("postfix is installed");
        nix::unistd::chown(&data, Some(postfix.uid), None).unwrap();
        let maillog = dir.join("maillog");
        let (host, hop_port) = next_hop.rsplit_once(':').unwrap();
        std::fs::write(
            etc.join("main.cf"),
            format!(
                "compatibility_level = 3.6\nqueue_directory = {}\ndata_directory = {}\nmail_owner = postfix\n\
                 setgid_group = postdrop\ninet_interfaces = 127.0.0.1\ninet_protocols = ipv4\n\
                 myhostname = mx.customer.test\nmydestination =\nmynetworks = 127.0.0.0/8\n\
                 relay_domains = {domain}\ntransport_maps = inline:{{ {domain}=smtp:[{host}]:{hop_port} }}\n\
                 smtpd_recipient_restrictions = reject_unauth_destination\nmaillog_file = {}\n\
                 maillog_file_prefixes = {}\n\
                 smtp_tls_security_level = may\nnotify_classes =\n",
                spool.display(),
                data.display(),
                maillog.display(),
                dir.display()
            ),
        )
        .unwrap();
        std::fs::write(etc.join("master.cf"), format!("127.0.0.1:{port} inet n - n - - smtpd\n{MASTER_CF}")).unwrap();
        let _ = Command::new("postfix").arg("-c").arg(&etc).arg("set-permissions").output();
        let out = Command::new("postfix").arg("-c").arg(&etc).arg("start").output().unwrap();
        assert!(out.status.success(), "postfix start: {}", String::from_utf8_lossy(&out.stderr));
        let p = Postfix { etc, port, maillog };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "postfix did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    /// Waits (up to 60 s) until the mail log has a line with all of `needles`.
    pub fn wait_for_log(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = std::fs::read_to_string(&self.maillog).unwrap_or_default();
            if let Some(l) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return l.to_owned();
            }
            if Instant::now() > deadline {
                // Ask the queue manager to try now, in case a retry timer stands between.
                panic!("postfix log never showed {needles:?}:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix").arg("-c").arg(&self.etc).arg("stop").output();
    }
}

#[test]
fn postfix_relays_the_fax_domain_to_faxgate_and_bounces_its_refusals() {
    let m = mail::start();
    let pf = Postfix::start(&m.setup.path().join("postfix"), "fax.acme.test", &m.smtp);
    let server = format!("127.0.0.1:{}", pf.port);
    let ok = mail::swaks(
        &server,
        &["--from", "alice@customer.test", "--to", "33221100@fax.acme.test", "--header", "From: alice@customer.test"],
    );
    assert!(ok.contains("<-  250 2.0.0 Ok: queued as"), "{ok}");
    let relayed = pf.wait_for_log(&["to=<33221100@fax.acme.test>", "status=sent"]);
    assert!(relayed.contains("250 2.0.0 queued as job-"), "{relayed}");
    m.daemon.wait_for_log("mail accepted");

    // Postfix takes the bad number (it knows no better); faxgate refuses it
    // during Postfix's session, and Postfix bounces with faxgate's reason.
    let bad = mail::swaks(
        &server,
        &["--from", "alice@customer.test", "--to", "nonsense@fax.acme.test", "--header", "From: alice@customer.test"],
    );
    assert!(bad.contains("<-  250 2.0.0 Ok: queued as"), "{bad}");
    let bounced = pf.wait_for_log(&["to=<nonsense@fax.acme.test>", "status=bounced"]);
    assert!(bounced.contains("550 5.1.3") && bounced.contains("is not a fax number"), "{bounced}");
}
