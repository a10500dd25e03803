//! `faxgate check-config` and configuration errors at start.

use std::process::Command;

use crate::harness::{BIN, Setup};

#[test]
fn check_config_accepts_the_example_and_reports_every_error_with_its_line() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/faxgate.example.toml");
    let out = Command::new(BIN).args(["--config", example, "check-config"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));

    let s = Setup::new();
    std::fs::write(&s.config, "[storage]\ndata_dir = 7\n\n[admin]\nsockett = \"/x\"\n[log]\nlevel = \"=bad=\"\n")
        .unwrap();
    let out = s.cli(&["check-config"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("line 2: storage.data_dir: invalid type"), "{text}");
    assert!(text.contains("line 5: admin.sockett: unknown key"), "{text}");
    assert!(text.contains("line 7: log.level: not a log filter"), "{text}");
}

#[test]
fn a_bad_configuration_stops_the_daemon_at_start_with_the_reason() {
    let s = Setup::new();
    std::fs::write(&s.config, "[storage]\ndata_dir = \"/tmp/x\"\nunknown = 1\n").unwrap();
    let out = s.cli(&["serve"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3: storage.unknown: unknown key"), "{err}");
    assert!(!std::path::Path::new("/tmp/x").join("db").exists());
}

#[test]
fn no_configuration_means_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        Command::new(BIN).current_dir(dir.path()).env_remove("FAXGATE_CONFIG").arg("check-config").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    if std::path::Path::new("/etc/faxgate/faxgate.toml").exists() {
        return; // an installed configuration takes precedence on this machine
    }
    assert!(out.status.success(), "{text}");
    assert!(text.contains("(embedded default)"), "{text}");
}

/// `level = "debgu"` once passed (as a target with every level on) and
/// silenced all logging after a reload.
#[test]
fn check_config_refuses_a_misspelt_log_level() {
    let s = Setup::new();
    let text = std::fs::read_to_string(&s.config).unwrap().replace("level = \"debug,sled=info\"", "level = \"debgu\"");
    std::fs::write(&s.config, text).unwrap();
    let out = s.cli(&["check-config"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("log.level: not a log filter: \"debgu\" is not a level (trace, debug, info, warn, error or off)"),
        "{text}"
    );
}

/// A configuration file in a fresh directory: `body`, with `{dir}` standing
/// for that directory.
fn config_file(body: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("faxgate.toml");
    std::fs::write(&path, body.replace("{dir}", &dir.path().display().to_string())).unwrap();
    (dir, path)
}

/// `faxgate check-config FILE`: whether it passed, and what it printed.
fn check(path: &std::path::Path) -> (bool, String) {
    let out = Command::new(BIN).env_remove("FAXGATE_CONFIG").arg("check-config").arg(path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A self-signed certificate and its key, as PEM files in `dir` named `name`.cert/.key.
fn certificate(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join(format!("{name}.cert")), dir.join(format!("{name}.key")));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.key_pair.serialize_pem()).unwrap();
    (cert, key)
}

const BASE: &str = "[storage]\ndata_dir = \"{dir}/data\"\n[admin]\nsocket = \"{dir}/admin.sock\"\n";

#[test]
fn check_config_finds_a_missing_certificate() {
    let (dir, path) = config_file(&format!(
        "{BASE}[smtp]\ncertificate = \"{{dir}}/missing.pem\"\nkey = \"{{dir}}/a.key\"\n[[smtp.listen]]\n\
         address = \"127.0.0.1:0\"\nmode = \"submission\"\n"
    ));
    certificate(dir.path(), "a");
    let (ok, text) = check(&path);
    assert!(!ok, "{text}");
    assert!(text.contains("line 6: smtp.certificate: TLS certificate"), "{text}");
    assert!(text.contains("missing.pem: No such file or directory"), "{text}");
}

/// The daemon refuses what check-config finds, with the same words and line.
#[test]
fn a_certificate_that_does_not_match_its_key_is_found_by_check_config_and_refused_by_serve() {
    let (dir, path) = config_file(&format!(
        "{BASE}[smtp]\ncertificate = \"{{dir}}/a.cert\"\nkey = \"{{dir}}/b.key\"\n[[smtp.listen]]\n\
         address = \"127.0.0.1:0\"\nmode = \"submission\"\n"
    ));
    certificate(dir.path(), "a");
    certificate(dir.path(), "b");
    let (ok, text) = check(&path);
    assert!(!ok, "{text}");
    let expected = format!("line 7: smtp.key: TLS key {}/b.key: does not match the certificate", dir.path().display());
    assert!(text.contains(&expected), "{text}");

    let mut serve = Command::new(BIN);
    serve.arg("--config").arg(&path).arg("serve");
    match crate::harness::Daemon::try_spawn(serve) {
        Ok(d) => panic!("serve started on a certificate that does not match its key:\n{}", d.log()),
        Err((status, log)) => {
            assert!(status.is_some_and(|s| !s.success()), "{log}");
            assert!(log.contains(&expected), "{log}");
        }
    }
    assert!(!dir.path().join("data").exists(), "nothing is opened before the checks pass");
}

#[test]
fn check_config_finds_a_key_directory_others_may_read() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, path) = config_file(
        "[storage]\ndata_dir = \"{dir}/data\"\nkey_dir = \"{dir}/keys\"\n[admin]\nsocket = \"{dir}/admin.sock\"\n",
    );
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (ok, text) = check(&path);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "line 3: storage.key_dir: key directory {} must not be accessible to group or others (chmod 0700)",
            keys.display()
        )),
        "{text}"
    );
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (ok, text) = check(&path);
    assert!(ok, "{text}");
}

#[test]
fn check_config_finds_a_listen_address_used_twice() {
    let (_dir, path) = config_file(&format!(
        "{BASE}[metrics]\nlisten = \"127.0.0.1:2525\"\n[[smtp.listen]]\naddress = \"0.0.0.0:2525\"\n\
         [[smtp.listen]]\naddress = \"127.0.0.1:2587\"\n[[smtp.listen]]\naddress = \"127.0.0.1:2587\"\n\
         [[trunk]]\nname = \"a\"\nbind = \"127.0.0.1:5060\"\naddress = \"192.0.2.1\"\n\
         [[trunk]]\nname = \"b\"\nbind = \"0.0.0.0:5060\"\naddress = \"192.0.2.2\"\n"
    ));
    let (ok, text) = check(&path);
    assert!(!ok, "{text}");
    for line in [
        "line 6: metrics.listen: 127.0.0.1:2525 is also listened on by smtp.listen.0.address (0.0.0.0:2525)",
        "line 12: smtp.listen.2.address: 127.0.0.1:2587 is also listened on by smtp.listen.1.address",
        "line 19: trunk.1.bind: 0.0.0.0:5060 is also listened on by trunk.0.bind (127.0.0.1:5060)",
    ] {
        assert!(text.contains(line), "{line}\nnot in:\n{text}");
    }
    // TCP and UDP ports are apart: SMTP on 5060 and a trunk on 5060 are fine.
    let (_dir, path) = config_file(&format!(
        "{BASE}[[smtp.listen]]\naddress = \"127.0.0.1:5060\"\n\
         [[trunk]]\nname = \"a\"\nbind = \"127.0.0.1:5060\"\naddress = \"192.0.2.1\"\n"
    ));
    let (ok, text) = check(&path);
    assert!(ok, "{text}");
}

#[test]
fn check_config_finds_a_missing_relay_password_file() {
    let (dir, path) = config_file(&format!(
        "{BASE}[mail]\ntransport = \"relay\"\nrelay_host = \"relay.example.net\"\nrelay_tls = \"none\"\n\
         relay_user = \"fax\"\nrelay_password_file = \"{{dir}}/relay.password\"\n"
    ));
    let (ok, text) = check(&path);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "line 10: mail.relay_password_file: cannot read {}/relay.password: No such file or directory",
            dir.path().display()
        )),
        "{text}"
    );
    std::fs::write(dir.path().join("relay.password"), "secret\n").unwrap();
    let (ok, text) = check(&path);
    assert!(ok, "{text}");
}

/// A type error does not hide what else is wrong: each problem with its line.
#[test]
fn check_config_reports_every_problem_at_once_with_its_line() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, path) = config_file(
        "[storage]\n\
         data_dir = \"{dir}/data\"\n\
         key_dir = \"{dir}/keys\"\n\
         [admin]\n\
         socket = \"{dir}/admin.sock\"\n\
         [smtp]\n\
         max_recipients = \"ten\"\n\
         certificate = \"{dir}/missing.pem\"\n\
         key = \"{dir}/a.key\"\n\
         [[smtp.listen]]\n\
         address = \"127.0.0.1:2525\"\n\
         [[smtp.listen]]\n\
         address = \"127.0.0.1:2525\"\n\
         [mail]\n\
         transport = \"relay\"\n\
         relay_host = \"relay.example.net\"\n\
         relay_user = \"fax\"\n\
         relay_password_file = \"{dir}/relay.password\"\n\
         [retention]\n\
         sweep_window = \"3 days\"\n",
    );
    certificate(dir.path(), "a");
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::set_permissions(dir.path().join("keys"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let (ok, text) = check(&path);
    assert!(!ok, "{text}");
    for line in [
        "line 3: storage.key_dir: key directory",
        "line 7: smtp.max_recipients: invalid type",
        "line 8: smtp.certificate: TLS certificate",
        "line 13: smtp.listen.1.address: 127.0.0.1:2525 is also listened on by smtp.listen.0.address",
        "line 18: mail.relay_password_file: cannot read",
        "line 20: retention.sweep_window: retention.sweep_window = ",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
}

/// A trunk host that does not resolve (RFC 6761: `.invalid` never does) is
/// a warning; the daemon starts anyway, takes mail, and calls through the
/// trunk fail as a network failure, to be tried again.
#[test]
fn an_unresolvable_trunk_host_is_a_warning_and_the_daemon_takes_mail_anyway() {
    use crate::gateway::{Opts, fixture, send_mail, start};
    let g = start(Opts { out_address: "carrier.invalid", retry: "[600]", ..Default::default() });
    let out = g.setup.cli(&["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("configuration is valid, with 1 warning(s)"), "{text}");
    assert!(text.contains("trunk.0.address: \"carrier.invalid\" does not resolve"), "{text}");
    assert!(text.contains("  warning: line "), "{text}");
    g.daemon.wait_for_log("the trunk's host does not resolve");

    send_mail(&g, &["33221100@fax.acme.test"], "Unresolved", Some(&fixture("letter.pdf")));
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let job = loop {
        let jobs = g.setup.json(&["queue", "list"]);
        let job = jobs.as_array().and_then(|j| j.first()).cloned();
        if let Some(j) = job.filter(|j| j["state"] == "retrying") {
            break j;
        }
        assert!(std::time::Instant::now() < until, "no retrying job: {jobs:#}\n{}", g.daemon.log());
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(job["last_outcome"], "network-failure", "{job:#}");
    let shown = g.setup.json(&["queue", "show", job["id"].as_str().unwrap()]);
    assert!(shown["history"][0].to_string().contains("carrier.invalid does not resolve"), "{shown:#}");
}
