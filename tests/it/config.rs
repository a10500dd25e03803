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
