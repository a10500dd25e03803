//! Trust under faults, on the real binary: a damaged store, a lost or
//! changed key, a wrong clock, a full disk, and backups.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cdr::{cdr, write_cdrs};
use crate::harness::{BIN, Daemon, Setup, files_under};

const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

fn ago_hours(h: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(h)).to_string()
}

/// Two tenants, an account each with a number, and 20 CDRs of this month,
/// written while no daemon runs; then one clean start and stop, so that the
/// copy of the manifests beside the store is there as in production.
fn seeded() -> (Setup, String, String) {
    let s = Setup::new();
    for t in ["alpha", "beta"] {
        s.ok(&["tenant", "add", t, "--name", t, "--from-address", &format!("fax@{t}.dk"), "--country", "DK"]);
    }
    let a =
        s.json(&["account", "add", "--tenant", "alpha", "--name", "Alpha Kunde"])["id"].as_str().unwrap().to_owned();
    let b = s.json(&["account", "add", "--tenant", "beta", "--name", "Beta Kunde"])["id"].as_str().unwrap().to_owned();
    s.ok(&["number", "add", "+4533990011", "--account", &a]);
    s.ok(&["number", "add", "+4533990022", "--account", &b]);
    let cdrs: Vec<_> = (0..20)
        .map(|i| cdr(&ago_hours(1 + i), if i % 2 == 0 { "alpha" } else { "beta" }, "+4533990011", &["k@kunde.dk"]))
        .collect();
    write_cdrs(&s, &cdrs);
    let d = s.start();
    assert!(d.stop().success());
    (s, a, b)
}

/// Every key file's bytes, by name.
fn keys(s: &Setup) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(s.data_dir().join("keys"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    let ok = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap().success();
    assert!(ok, "cp -a {} {}", from.display(), to.display());
}

fn try_serve(s: &Setup, env: &[(&str, &str)]) -> Result<Daemon, String> {
    let mut cmd = Command::new(BIN);
    cmd.envs(env.iter().copied()).arg("--config").arg(&s.config).arg("serve");
    Daemon::try_spawn(cmd).map_err(|(status, log)| {
        assert!(status.is_some_and(|st| !st.success()), "the daemon neither started nor exited: {log}");
        log
    })
}

fn sweeps_in_trail(s: &Setup) -> usize {
    std::fs::read_to_string(s.data_dir().join("retention-audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"categories\""))
        .count()
}

/// Bit flips, a run of flipped bytes and truncations at several offsets of
/// sled's file of a cleanly stopped store: the daemon either refuses to
/// start naming the damage, or starts with every record there; it never
/// starts on less, and nothing is erased either way.
#[test]
fn damaged_sled_files_are_refused_and_nothing_is_erased() {
    let (s, a, _) = seeded();
    let pristine = s.path().join("pristine");
    copy_dir(&s.data_dir(), &pristine);
    let db = s.data_dir().join("db/db");
    // sled writes its log from the start of a segment it keeps at full
    // length: past the last message the file is zeros it never reads, and
    // the records of this store take a small part of it. The damage goes in
    // the part written, where a store of any size keeps its data.
    let written = std::fs::read(pristine.join("db/db")).unwrap();
    let len = written.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    assert!(len > 4096, "sled's file holds {len} bytes of data");
    let keys_before = keys(&s);
    let sweeps_before = sweeps_in_trail(&s);
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let flip = |at: usize| -> Damage { Box::new(move |b: &mut Vec<u8>| b[at] ^= 0x10) };
    let mut cases: Vec<(String, Damage)> = [len / 16, len / 8, len / 4, len / 2, 3 * len / 4]
        .iter()
        .map(|&at| (format!("bit flip at {at}"), flip(at)))
        .collect();
    cases.push((
        format!("64 bytes flipped at {}", len / 3),
        Box::new(move |b: &mut Vec<u8>| b[len / 3..len / 3 + 64].iter_mut().for_each(|x| *x ^= 0xff)),
    ));
    for cut in [len / 2, 3 * len / 4] {
        cases.push((format!("cut to {cut} bytes"), Box::new(move |b: &mut Vec<u8>| b.truncate(cut))));
    }
    let mut refused_named = 0;
    let mut outcomes = Vec::new();
    for (what, damage) in &cases {
        copy_dir(&pristine, &s.data_dir());
        let mut bytes = std::fs::read(&db).unwrap();
        damage(&mut bytes);
        std::fs::write(&db, &bytes).unwrap();
        match try_serve(&s, &[]) {
            Ok(d) => {
                // Started: then nothing is missing.
                let cdrs = s.json(&["cdr", "list"]);
                assert_eq!(cdrs.as_array().unwrap().len(), 20, "{what}: started on less\n{}", d.log());
                assert_eq!(s.json(&["number", "list"]).as_array().unwrap().len(), 2, "{what}");
                assert!(s.cli(&["store", "verify"]).status.success(), "{what}");
                d.stop();
                outcomes.push(format!("{what}: started, all there"));
                assert_eq!(keys(&s), keys_before, "{what}: a key was destroyed or changed");
                continue;
            }
            Err(log) => {
                assert!(log.contains("the store is damaged"), "{what}: refused without saying why:\n{log}");
                if log.contains("the store is damaged") {
                    refused_named += 1;
                }
                // Offline verification names it too, and exits non-zero.
                let v = s.cli(&["store", "verify"]);
                assert!(!v.status.success(), "{what}: verify passed a store the daemon refused");
                let why = log.lines().rfind(|l| l.contains("damaged") || l.contains("error")).unwrap_or("");
                outcomes.push(format!("{what}: refused: {why}"));
            }
        }
        assert_eq!(keys(&s), keys_before, "{what}: a key was destroyed or changed");
        assert_eq!(sweeps_in_trail(&s), sweeps_before, "{what}: a sweep ran");
    }
    eprintln!("{outcomes:#?}");
    assert!(refused_named > 0, "no damage was found and named: {outcomes:#?}");

    // Writes lost: sled's files put back as they were before the last
    // writes (a snapshot restored under the daemon, a disk that lied about
    // a flush), the copy of the manifests beside the store kept. sled opens
    // them without complaint; the manifests name the tree.
    copy_dir(&pristine, &s.data_dir());
    let d = s.start();
    s.ok(&["number", "add", "+4533990033", "--account", &a]);
    assert!(d.stop().success());
    let keys_now = keys(&s);
    let sweeps_now = sweeps_in_trail(&s);
    let _ = std::fs::remove_dir_all(s.data_dir().join("db"));
    copy_dir(&pristine.join("db"), &s.data_dir().join("db"));
    let log = try_serve(&s, &[]).err().expect("started on a store that lost writes");
    assert!(
        log.contains("the store is damaged") && log.contains("tree directory") && log.contains("writes were lost"),
        "{log}"
    );
    let v = s.cli(&["store", "verify"]);
    assert!(!v.status.success());
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("writes were lost")
            || String::from_utf8_lossy(&v.stderr).contains("writes were lost")
    );
    assert_eq!(keys(&s), keys_now, "a key was destroyed or changed");
    assert_eq!(sweeps_in_trail(&s), sweeps_now, "a sweep ran");
}

/// The index key deleted, then changed: the daemon stops, naming it, and
/// makes no new one; put back, everything is found again.
#[test]
fn a_missing_or_changed_index_key_stops_the_daemon() {
    let (s, _, _) = seeded();
    let index = s.data_dir().join("keys/index.key");
    let saved = std::fs::read(&index).unwrap();
    std::fs::remove_file(&index).unwrap();
    let log = try_serve(&s, &[]).err().expect("refused without its index key");
    assert!(log.contains("index key") && log.contains("missing") && log.contains("backup"), "{log}");
    assert!(!index.exists(), "no new index key was made");
    let mut changed = saved.clone();
    let at = changed.len() - 40;
    changed[at] ^= 1;
    std::fs::write(&index, &changed).unwrap();
    let log = try_serve(&s, &[]).err().expect("refused with a changed index key");
    assert!(log.contains("key index is damaged"), "{log}");
    std::fs::write(&index, &saved).unwrap();
    let d = s.start();
    assert_eq!(s.json(&["cdr", "list", "--number", "+4533990011"]).as_array().unwrap().len(), 20);
    assert!(s.json(&["number", "show", "+4533990022"])["account"].is_string());
    d.stop();
}

fn flip_key(s: &Setup, name: &str) -> Vec<u8> {
    let path = s.data_dir().join("keys").join(format!("{name}.key"));
    let saved = std::fs::read(&path).unwrap();
    let mut b = saved.clone();
    let at = b.len() - 40;
    b[at] ^= 1;
    std::fs::write(&path, b).unwrap();
    saved
}

/// A tenant's key damaged, then an account's: the daemon starts and names
/// it; only that tenant's or account's operations fail, with the key named;
/// the others go on, and the sweeper names the key instead of failing.
#[test]
fn a_damaged_tenant_or_account_key_stops_only_its_owner() {
    let (s, a, b) = seeded();
    let saved = flip_key(&s, "tenant-alpha");
    let d = s.start();
    d.wait_for_log("key tenant-alpha is damaged");
    let status = s.json(&["status"]);
    assert!(status["key_faults"].to_string().contains("tenant-alpha"), "{status}");
    let tenants = s.json(&["tenant", "list"]);
    let ids: Vec<&str> = tenants.as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["beta"], "alpha is left out, beta is listed");
    let err = s.fails(&["tenant", "show", "alpha"]);
    assert!(err.contains("key tenant-alpha is damaged"), "{err}");
    s.ok(&["number", "add", "+4533990033", "--account", &b]);
    d.stop();
    std::fs::write(s.data_dir().join("keys/tenant-alpha.key"), saved).unwrap();

    let key = format!("account-{b}");
    flip_key(&s, &key);
    let d = s.start();
    d.wait_for_log(&format!("key {key} is damaged"));
    let err = s.fails(&["account", "show", &b]);
    assert!(err.contains(&format!("key {key} is damaged")), "{err}");
    s.ok(&["account", "show", &a]);
    s.ok(&["number", "add", "+4533990044", "--account", &a]);
    let listed = s.json(&["number", "list"]);
    let numbers: Vec<&str> = listed.as_array().unwrap().iter().map(|n| n["number"].as_str().unwrap()).collect();
    assert_eq!(numbers, ["+4533990011", "+4533990044"], "beta's numbers are left out");
    let sweep = s.json(&["retention", "sweep"]);
    assert!(sweep.to_string().contains(&format!("key {key} is damaged")), "{sweep}");
    assert!(s.data_dir().join("keys").join(format!("{key}.key")).exists(), "never replaced or destroyed");
    d.stop();
}

fn faketime_env(spec: &str) -> Vec<(&'static str, String)> {
    vec![("LD_PRELOAD", FAKETIME.into()), ("FAKETIME", spec.into()), ("DONT_FAKE_MONOTONIC", "1".into())]
}

fn serve_at(s: &Setup, env: &[(&'static str, String)]) -> Daemon {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut cmd = Command::new(BIN);
    cmd.envs(env).arg("--config").arg(&s.config).arg("serve");
    Daemon::spawn(cmd)
}

/// The clock 400 days ahead at start: nothing of CDRs or accounts is
/// erased until an operator confirms the time, and status, retention status
/// and the audit say so; back at the right time the sweeps dated in the
/// future are flagged until confirmed; 30 days back only warns.
#[test]
fn a_clock_far_ahead_suspends_erasure_until_confirmed() {
    let (s, a, _) = seeded();
    s.ok(&["account", "terminate", &a, "--at", &ago_hours(1)]);
    let d = s.start();
    d.stop();
    let d = serve_at(&s, &faketime_env("+400d"));
    d.wait_for_log("erasure of CDRs and accounts is suspended");
    s.ok(&["retention", "sweep"]);
    assert_eq!(s.json(&["cdr", "list"]).as_array().unwrap().len(), 20, "no CDR erased");
    s.ok(&["account", "show", &a]);
    let status = s.json(&["status"]);
    assert!(status["clock_suspended"]["reason"].as_str().unwrap().contains("ahead"), "{status}");
    let rs = s.json(&["retention", "status"]);
    assert!(rs["clock_suspended"].is_object(), "{rs}");
    let audit = s.cli(&["retention", "audit"]);
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(!audit.status.success() && text.contains("suspended"), "{text}");
    d.stop();

    // Back at the real time: the clock went back (a warning), erasure stays
    // suspended until confirmed, and the audit flags the sweeps dated ahead.
    let d = s.start();
    d.wait_for_log("behind the latest time seen");
    let audit = s.cli(&["retention", "audit"]);
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(!audit.status.success() && text.contains("dated after now"), "{text}");
    s.ok(&["retention", "confirm-clock"]);
    s.ok(&["retention", "sweep"]);
    assert_eq!(s.json(&["cdr", "list"]).as_array().unwrap().len(), 20, "nothing is due at the real time");
    let audit = s.json(&["retention", "audit"]);
    assert_eq!(audit["ok"], true, "{audit}");
    d.stop();

    // 30 days back: a warning, nothing suspended, nothing erased.
    let d = serve_at(&s, &faketime_env("-30d"));
    d.wait_for_log("behind the latest time seen");
    assert!(s.json(&["status"])["clock_suspended"].is_null());
    s.ok(&["retention", "sweep"]);
    assert_eq!(s.json(&["cdr", "list"]).as_array().unwrap().len(), 20);
    d.stop();
}

/// The clock set 400 days ahead while the daemon runs: the next sweep is
/// suspended (the wall clock moved far more than the time that passed).
#[test]
fn a_clock_jump_between_sweeps_suspends_erasure() {
    let (s, _, _) = seeded();
    let file = s.path().join("faketime");
    std::fs::write(&file, "+0d\n").unwrap();
    let mut env = faketime_env("");
    env.retain(|(k, _)| *k != "FAKETIME");
    env.push(("FAKETIME_TIMESTAMP_FILE", file.display().to_string()));
    env.push(("FAKETIME_NO_CACHE", "1".into()));
    let d = serve_at(&s, &env);
    s.ok(&["retention", "sweep"]);
    std::fs::write(&file, "+400d\n").unwrap();
    let sweep = s.json(&["retention", "sweep"]);
    let cdr = sweep["categories"].as_array().unwrap().iter().find(|c| c["category"] == "cdr").unwrap();
    assert!(cdr["suspended"].as_str().unwrap().contains("ahead while"), "{sweep}");
    assert_eq!(cdr["erased"], 0);
    assert_eq!(s.json(&["cdr", "list"]).as_array().unwrap().len(), 20);
    d.wait_for_log("erasure of CDRs and accounts is suspended");
    d.stop();
}

/// Mounts a tmpfs of `size` on `dir`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0750"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount a tmpfs on {} (the tests run as root)", dir.display());
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A full disk during intake: 451, nothing left behind (no partial spool
/// file, no temporary key file), and mail is accepted again once there is
/// room.
#[test]
fn a_full_disk_during_intake_is_a_451_and_leaves_nothing_behind() {
    let mut mount = None;
    let m = crate::mail::start_on("", |setup| mount = Some(Tmpfs::mount(&setup.data_dir(), "24m")));
    let data = m.setup.data_dir();
    // Fill the disk but for a little room.
    let filler = data.join("filler");
    let free = |p: &Path| nix::sys::statvfs::statvfs(p).map(|s| s.blocks_available() * s.fragment_size());
    let room = free(&data).unwrap();
    std::fs::write(&filler, vec![0u8; room.saturating_sub(96 * 1024) as usize]).unwrap();
    let body = m.setup.path().join("big-body.txt");
    std::fs::write(&body, "x".repeat(76).repeat(5500).as_bytes().chunks(76).collect::<Vec<_>>().join(&b"\r\n"[..]))
        .unwrap();
    let body_arg = format!("@{}", body.display());
    let out = crate::mail::swaks(
        &m.smtp,
        &[
            "--from",
            "a@customer.test",
            "--to",
            "33221100@fax.acme.test",
            "--body",
            &body_arg,
            "--header",
            "Subject: big",
        ],
    );
    assert!(out.contains("451"), "{out}\n{}", m.daemon.log());
    let leftovers: Vec<PathBuf> = files_under(&data)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(".tmp-") || p.parent().is_some_and(|d| d.ends_with("spool"))
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    std::fs::remove_file(&filler).unwrap();
    let out = crate::mail::swaks(
        &m.smtp,
        &["--from", "a@customer.test", "--to", "33221100@fax.acme.test", "--body", "small", "--header", "Subject: ok"],
    );
    assert!(out.contains("250 2.0.0"), "{out}\n{}", m.daemon.log());
    drop(m);
    drop(mount);
}

fn pending_mails(data: &Path) -> usize {
    let store = faxgate::store::Store::open(data, &data.join("keys")).unwrap();
    let tree = store.tree(faxgate::store::TreeName::Mail).unwrap();
    tree.keys_with_prefix(faxgate::store::layout::mail::PENDING).unwrap().len()
}

/// A backup taken while mail is being accepted restores into a store that
/// verifies, with every mail it holds whole; one whose deadlines have passed
/// is refused, and restored with its expired data erased when asked.
#[test]
fn a_backup_during_intake_restores_and_verifies_and_an_expired_one_is_refused() {
    let m = crate::mail::start_with("");
    let cfg = std::fs::read_to_string(&m.setup.config).unwrap();
    std::fs::write(&m.setup.config, cfg.replace("\n[smtp]\n", "\n[fax]\nhold = true\n\n[smtp]\n")).unwrap();
    drop(m.daemon);
    // CDRs of this month, whose month key's deadline is a year and a month away.
    write_cdrs(&m.setup, &[cdr(&ago_hours(2), "acme", "+4533221100", &["k@kunde.dk"])]);
    let d = m.setup.start();
    let smtp = d.announced("smtp");
    let sender = std::thread::spawn(move || {
        for i in 0..20 {
            let out = crate::mail::swaks(
                &smtp,
                &[
                    "--from",
                    "a@customer.test",
                    "--to",
                    "33221100@fax.acme.test",
                    "--header",
                    &format!("Message-ID: <backup-{i}@customer.test>"),
                    "--body",
                    &format!("fax {i}"),
                ],
            );
            assert!(out.contains("250 2.0.0"), "{out}");
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(800));
    let backup = m.setup.path().join("backup");
    let made = m.setup.json(&["backup", "--out", backup.to_str().unwrap()]);
    sender.join().unwrap();
    assert!(made["earliest_deadline"].is_string(), "{made}");
    d.stop();

    // Restored into a new data directory: it verifies, and holds the mails
    // accepted before the copy, each with its message.
    let s2 = Setup::new();
    let out = s2.ok(&["restore", "--from", backup.to_str().unwrap()]);
    assert!(out.contains("restored the backup"), "{out}");
    let v = s2.cli(&["store", "verify"]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    let restored = pending_mails(&s2.data_dir());
    assert!(restored <= 20, "{restored}");
    assert_eq!(
        std::fs::read_dir(s2.data_dir().join("spool")).unwrap().count(),
        restored,
        "every mail with its message file"
    );
    // Into a directory that is not empty: refused.
    let again = s2.fails(&["restore", "--from", backup.to_str().unwrap()]);
    assert!(again.contains("not empty"), "{again}");

    // 400 days on, its CDR month keys are past their deadline: refused,
    // then restored with that data erased.
    let late = faketime_env("+400d");
    let s3 = Setup::new();
    let out = Command::new(BIN)
        .envs(late.iter().map(|(k, v)| (*k, v.as_str())))
        .arg("--config")
        .arg(&s3.config)
        .args(["restore", "--from", backup.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("past its deadline"), "{err}");
    assert!(!s3.data_dir().join("db").exists(), "nothing restored");
    let out = Command::new(BIN)
        .envs(late.iter().map(|(k, v)| (*k, v.as_str())))
        .arg("--config")
        .arg(&s3.config)
        .args(["restore", "--from", backup.to_str().unwrap(), "--erase-expired"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("; 0 key(s) past their deadline erased"), "{text}");
    assert!(
        !files_under(&s3.data_dir().join("keys")).iter().any(|k| k.to_string_lossy().contains("cdr-")),
        "month keys gone"
    );
}
