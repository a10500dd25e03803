//! The daemon's life: one per data directory, signals, the admin socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::process::Command;

use nix::sys::signal::Signal;

use crate::harness::{BIN, Daemon, Setup};

#[test]
fn a_second_daemon_on_the_same_data_directory_is_refused() {
    let s = Setup::new();
    let d = s.start();
    s.ok(&["tenant", "add", "acme", "--name", "Acme", "--from-address", "fax@acme.dk", "--country", "DK"]);
    // Same configuration: the socket answers.
    let out = s.cli(&["serve"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another faxgate process") && err.contains(&format!("pid {}", d.pid())), "{err}");
    // Another socket, same data: the store lock refuses it.
    let other = s.path().join("other.toml");
    let text = std::fs::read_to_string(&s.config).unwrap().replace("admin.sock", "other.sock");
    std::fs::write(&other, text).unwrap();
    let out = Command::new(BIN).arg("--config").arg(&other).arg("serve").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another faxgate process"), "{err}");
    // The CLI pointed at the data without the socket says what is going on.
    let out = Command::new(BIN).arg("--config").arg(&other).args(["tenant", "list"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("holds the data directory") && err.contains("does not answer"), "{err}");
    // The first daemon is unharmed.
    assert_eq!(s.json(&["tenant", "show", "acme"])["name"], "Acme");
    assert!(d.stop().success());
}

#[test]
fn sighup_reloads_and_a_broken_configuration_keeps_the_old_one() {
    let s = Setup::new();
    let d = s.start();
    let good = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(&s.config, good.replace("level = \"debug\"", "level = \"info\"")).unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_for_log("configuration reloaded");
    std::fs::write(&s.config, format!("{good}\n[nonsense]\n")).unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_for_log("configuration not reloaded");
    assert!(d.log().contains("nonsense"), "{}", d.log());
    // A level that is not one keeps the old configuration, and says why.
    std::fs::write(&s.config, good.replace("level = \"debug,sled=info\"", "level = \"debgu\"")).unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_for_log("\"debgu\" is not a level");
    assert!(d.log().matches("configuration not reloaded").count() == 2, "{}", d.log());
    std::fs::write(&s.config, &good).unwrap();
    // Still serving, and still logging.
    assert_eq!(s.json(&["status"])["daemon"], true);
    d.wait_for_log("admin request");
    let status = d.stop();
    assert!(status.success(), "{status:?}");
}

#[test]
fn log_lines_on_standard_error_can_be_json() {
    let s = Setup::new();
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("target = \"stderr\"", "target = \"stderr\"\nformat = \"json\"");
    std::fs::write(&s.config, text).unwrap();
    let d = s.start();
    assert_eq!(s.json(&["status"])["daemon"], true);
    d.wait_for_log("admin request");
    let log = d.log();
    let mut seen = 0;
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string() && v["target"].is_string(), "{line}");
        if v["message"] == "faxgate started" {
            assert!(v["data_dir"].is_string(), "fields beside the message: {line}");
            seen += 1;
        }
    }
    assert_eq!(seen, 1, "{log}");
    assert!(d.stop().success());
}

#[test]
fn sigterm_stops_cleanly_and_removes_the_socket() {
    let s = Setup::new();
    let d = s.start();
    assert!(s.socket().exists());
    let log = d.log.clone();
    assert!(d.stop().success());
    assert!(!s.socket().exists());
    assert!(log.lock().unwrap().contains("stopped"));
    // A stale socket file left by a crash does not stop the next start.
    let d = s.start();
    d.kill9();
    assert!(s.socket().exists());
    let d = s.start();
    assert!(d.stop().success());
}

#[test]
fn the_admin_socket_is_private_or_group_restricted() {
    let s = Setup::new();
    let d = s.start();
    let meta = std::fs::metadata(s.socket()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    drop(d);
    let group = nix::unistd::Group::from_gid(nix::unistd::getegid()).unwrap().unwrap();
    let s = Setup::with(&format!("group = \"{}\"\n", group.name));
    let _d = s.start();
    let meta = std::fs::metadata(s.socket()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), group.gid.as_raw());
}

#[test]
fn malformed_admin_requests_get_an_error_and_the_daemon_keeps_serving() {
    let s = Setup::new();
    let d: Daemon = s.start();
    let mut conn = BufReader::new(UnixStream::connect(s.socket()).unwrap());
    for bad in ["not json", "{\"scope\":\"operator\",\"request\":{\"op\":\"explode\"}}", "{}"] {
        conn.get_mut().write_all(format!("{bad}\n").as_bytes()).unwrap();
        let mut answer = String::new();
        conn.read_line(&mut answer).unwrap();
        let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(v["error"]["kind"], "invalid", "{bad}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("not an admin request"));
    }
    conn.get_mut().write_all(b"{\"scope\":\"operator\",\"request\":{\"op\":\"status\"}}\n").unwrap();
    let mut answer = String::new();
    conn.read_line(&mut answer).unwrap();
    assert!(answer.contains("\"ok\""), "{answer}");
    assert!(d.stop().success());
}

/// Sockets passed by the service manager (`LISTEN_FDS`, as systemd's
/// socket activation does): an SMTP listener configured on a passed
/// socket's address uses it; the socket outlives the daemon, so a client
/// that connects while the daemon restarts waits in the backlog and is
/// greeted by the next one; a passed socket nothing is configured for is
/// named in a warning.
#[test]
fn sockets_passed_by_the_service_manager_are_used_and_outlive_a_restart() {
    let mut s = Setup::new();
    let smtp = s.tcp_listener();
    let stray = s.udp_socket();
    let config = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        format!("{config}\n[smtp]\nhostname = \"fax.test\"\n[[smtp.listen]]\naddress = \"{smtp}\"\nmode = \"smtp\"\n"),
    )
    .unwrap();
    let d = s.start();
    assert_eq!(d.announced("smtp"), smtp.to_string());
    // The log is read from stderr by a thread of its own: wait for the line.
    d.wait_for_log(&format!("passed a socket (udp {stray})"));
    assert!(d.stop().success());
    // No daemon: the connection is queued by the kernel, not refused.
    let mut c = std::net::TcpStream::connect(smtp).expect("the passed socket is still listening");
    let d = s.start();
    c.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let mut greeting = String::new();
    BufReader::new(&mut c).read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with("220 fax.test"), "{greeting:?}");
    c.write_all(b"QUIT\r\n").unwrap();
    drop(d);
}

/// As root with the daemon stopped, the CLI does not open a data directory
/// that belongs to another user (the daemon's): it would leave root's files
/// there. It names the owner, and changes nothing; root's own directory
/// opens as before.
#[test]
fn cli_as_root_refuses_a_data_directory_of_another_user() {
    assert!(nix::unistd::geteuid().is_root(), "the integration tests run as root");
    let nobody = nix::unistd::User::from_name("nobody").unwrap().expect("the user nobody");
    let setup = Setup::new();
    let data = setup.data_dir();
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(nobody.uid.as_raw()), Some(nobody.gid.as_raw())).unwrap();
    let err = setup.fails(&["tenant", "list"]);
    assert!(err.contains("belongs to user nobody") && err.contains("sudo -u nobody"), "{err}");
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0, "something was made in the data directory");
    std::os::unix::fs::chown(&data, Some(0), Some(0)).unwrap();
    setup.ok(&["tenant", "list"]);
}

/// The admin socket acts for its peer's credentials, not for the scope a
/// client writes in its request: a user mapped to a tenant sees that
/// tenant only, even claiming the operator's scope, and is refused another
/// tenant's; a user who may open the socket but is mapped to nothing is
/// refused.
#[test]
fn the_admin_socket_acts_for_its_peer_not_for_the_scope_a_client_claims() {
    use std::os::unix::process::CommandExt;
    let nobody = nix::unistd::User::from_name("nobody").unwrap().expect("the user nobody");
    let group = nix::unistd::Group::from_gid(nobody.gid).unwrap().expect("nobody's group");
    let mapped = format!("group = \"{}\"\n[admin.tenants.acme]\nusers = [\"nobody\"]\n", group.name);
    let unmapped = format!("group = \"{}\"\n", group.name);
    // A request written by hand on the socket, as nobody.
    let raw = |s: &Setup, line: &str| -> String {
        let script = format!(
            "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect({:?})\ns.sendall(sys.argv[1].encode()+b'\\n')\n\
             print(s.makefile().readline())",
            s.socket().display().to_string()
        );
        let out = Command::new("/usr/bin/python3")
            .args(["-c", &script, line])
            .uid(nobody.uid.as_raw())
            .gid(nobody.gid.as_raw())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let s = Setup::with(&mapped);
    // nobody reaches the socket and reads the configuration through the directory.
    std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let d = s.start();
    s.ok(&["tenant", "add", "acme", "--name", "Acme", "--from-address", "fax@acme.dk", "--country", "DK"]);
    s.ok(&["tenant", "add", "beta", "--name", "Beta", "--from-address", "fax@beta.dk", "--country", "DK"]);
    let as_nobody = Command::new(BIN)
        .arg("--config")
        .arg(&s.config)
        .args(["--json", "tenant", "list"])
        .uid(nobody.uid.as_raw())
        .gid(nobody.gid.as_raw())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&as_nobody.stdout);
    assert!(as_nobody.status.success(), "{text}{}", String::from_utf8_lossy(&as_nobody.stderr));
    assert!(text.contains("\"acme\"") && !text.contains("\"beta\""), "{text}");
    // Claiming the operator's scope changes nothing; another tenant's is refused.
    let claimed = raw(&s, r#"{"scope":"operator","request":{"op":"tenant_list"}}"#);
    assert!(claimed.contains("acme") && !claimed.contains("beta"), "{claimed}");
    let other = raw(&s, r#"{"scope":{"tenant":"beta"},"request":{"op":"tenant_list"}}"#);
    assert!(other.contains("forbidden") && !other.contains("Beta"), "{other}");
    // Root is the operator and sees both.
    let all = s.ok(&["tenant", "list"]);
    assert!(all.contains("acme") && all.contains("beta"), "{all}");
    drop(d);
    // Mapped to nothing: refused, whatever the request claims.
    let s = Setup::with(&unmapped);
    std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let _d = s.start();
    let refused = raw(&s, r#"{"scope":"operator","request":{"op":"status"}}"#);
    assert!(refused.contains("forbidden") && refused.contains("may not use the admin socket"), "{refused}");
}
