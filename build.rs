//! Build script: the commit faxgate is built from, for `faxgate --version`
//! (`FAXGATE_COMMIT`): `git rev-parse --short=12 HEAD`, or "unknown" outside
//! a git checkout (a source tarball).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).filter(|c| !c.is_empty());
    println!("cargo:rustc-env=FAXGATE_COMMIT={}", commit.as_deref().unwrap_or("unknown"));
    // Built again when HEAD moves (a commit, a checkout).
    if let Some(p) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={p}");
    }
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]).and_then(|r| git(&["rev-parse", "--git-path", &r])) {
        println!("cargo:rerun-if-changed={r}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
