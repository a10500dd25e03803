//! The Debian package: `scripts/package.sh` packs the binary this test run
//! built (`--profile dev --no-build --fast`), `dpkg -i` installs it on this machine,
//! and the installed files are checked: `faxgate --version`, `faxgate
//! check-config` on the installed configuration, `systemd-analyze verify` on
//! the installed unit, no debug info in the binary, the user, man pages and
//! completions; then the package is purged. Needs root (dpkg); skipped, with
//! the reason printed, only when cargo-deb cannot be installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Purges the package when the test ends, however it ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "faxgate"]).output();
    }
}

#[test]
fn the_debian_package_installs_and_its_unit_verifies() {
    assert!(nix::unistd::geteuid().is_root(), "the package test installs with dpkg: run the tests as root (CI does)");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let has_deb = |c: &mut Command| c.args(["deb", "--version"]).output().is_ok_and(|o| o.status.success());
    if !has_deb(&mut Command::new("cargo")) {
        let out = run(Command::new("cargo").args(["install", "cargo-deb", "--locked"]));
        if !out.status.success() || !has_deb(&mut Command::new("cargo")) {
            eprintln!(
                "SKIPPED the_debian_package_installs_and_its_unit_verifies: cargo-deb cannot be installed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
    }
    let printed = ok(Command::new("bash")
        .args(["scripts/package.sh", "--profile", "dev", "--no-build", "--fast"])
        .current_dir(root));
    let deb = PathBuf::from(printed.lines().last().unwrap().trim());
    let deb = if deb.is_absolute() { deb } else { root.join(deb) };
    assert!(deb.extension().is_some_and(|e| e == "deb"), "{printed}");
    let depends = ok(Command::new("dpkg-deb").args(["-f"]).arg(&deb).arg("Depends"));
    assert!(depends.contains("libc6"), "the shared libraries it links: {depends}");

    let _installed = Installed;
    ok(Command::new("dpkg").arg("-i").arg(&deb));
    let version = ok(Command::new("/usr/bin/faxgate").arg("--version"));
    assert!(version.starts_with(&format!("faxgate {} (commit ", env!("CARGO_PKG_VERSION"))), "{version}");
    let checked = ok(Command::new("/usr/bin/faxgate").args(["--config", "/etc/faxgate/faxgate.toml", "check-config"]));
    assert!(checked.contains("configuration is valid"), "{checked}");
    let unit = ["/usr/lib/systemd/system/faxgate.service", "/lib/systemd/system/faxgate.service"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("the unit is installed");
    let out = run(Command::new("systemd-analyze").arg("verify").arg(unit));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "systemd-analyze verify {unit}: {err}");
    // Stripped: no debug info (`.debug_gdb_scripts`, loaded with the
    // program, names gdb's pretty-printers and is not debug info).
    let sections = ok(Command::new("readelf").args(["-S", "-W", "/usr/bin/faxgate"]));
    for s in [".debug_info", ".debug_line", ".debug_str"] {
        assert!(!sections.contains(s), "{s} in the installed binary:\n{sections}");
    }
    // The user and the configuration's owner and mode.
    ok(Command::new("getent").args(["passwd", "faxgate"]));
    let stat = ok(Command::new("stat").args(["-c", "%a %U %G", "/etc/faxgate/faxgate.toml"]));
    assert_eq!(stat.trim(), "640 root faxgate");
    for f in [
        "/usr/share/man/man1/faxgate.1.gz",
        "/usr/share/man/man1/faxgate-queue.1.gz",
        "/usr/share/bash-completion/completions/faxgate",
        "/usr/lib/sysusers.d/faxgate.conf",
        "/usr/lib/tmpfiles.d/faxgate.conf",
        "/usr/share/doc/faxgate/CHANGELOG.md",
        "/usr/share/doc/faxgate/prometheus/faxgate-alerts.yml",
    ] {
        assert!(Path::new(f).exists(), "{f} is not installed");
    }
    let man = ok(Command::new("sh").arg("-c").arg("zcat /usr/share/man/man1/faxgate-queue.1.gz"));
    assert!(man.contains("hold"), "{man}");
}
