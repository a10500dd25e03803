//! Restart, crash and disk-content tests.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use serde_json::{Value, json};

use crate::harness::{Setup, files_under};

fn seed(s: &Setup) -> String {
    s.ok(&[
        "tenant",
        "add",
        "acme",
        "--name",
        "Acme Telecom",
        "--from-address",
        "fax@acme-telecom.dk",
        "--country",
        "DK",
        "--domain",
        "fax.acme-telecom.dk",
    ]);
    let a = s.json(&[
        "account",
        "add",
        "--tenant",
        "acme",
        "--name",
        "Hansen Blikkenslager ApS",
        "--reference",
        "kunde-4711",
    ]);
    let id = a["id"].as_str().unwrap().to_owned();
    s.ok(&["number", "add", "+45 33 22 11 00", "--account", &id, "--route", "jens.hansen@blikkenslager.dk"]);
    s.ok(&["sender", "add", "@hansen-blik.dk", "--account", &id, "--auth", "dmarc", "--caller-number", "+4587654321"]);
    s.ok(&["sender", "add", "regnskab@hansen-blik.dk", "--account", &id, "--auth", "smtp-auth"]);
    id
}

#[test]
fn restart_keeps_the_data() {
    let s = Setup::new();
    let d = s.start();
    let id = seed(&s);
    assert!(d.stop().success());
    // Without a daemon the CLI opens the store itself.
    let st = s.json(&["status"]);
    assert_eq!(st["daemon"], false);
    assert_eq!(s.json(&["account", "show", &id])["name"], "Hansen Blikkenslager ApS");
    let d = s.start();
    let shown = s.json(&["account", "show", &id]);
    assert_eq!(shown["numbers"][0]["routes"][0]["email"], "jens.hansen@blikkenslager.dk");
    assert_eq!(shown["senders"].as_array().unwrap().len(), 2);
    assert_eq!(s.json(&["tenant", "show", "acme"])["fax_domains"][0], "fax.acme-telecom.dk");
    d.stop();
}

fn request(conn: &mut BufReader<UnixStream>, req: &Value) -> Option<Value> {
    let mut line = serde_json::to_vec(req).unwrap();
    line.push(b'\n');
    conn.get_mut().write_all(&line).ok()?;
    let mut answer = String::new();
    match conn.read_line(&mut answer) {
        Ok(n) if n > 0 => Some(serde_json::from_str(&answer).unwrap()),
        _ => None,
    }
}

#[test]
fn kill_9_during_writes_keeps_every_acknowledged_write() {
    let s = Setup::new();
    let d = s.start();
    let id = seed(&s);
    let mut acknowledged: Vec<String> = Vec::new();
    let mut next = 33_900_000u32; // a range where every DK number is in use
    let mut d = Some(d);
    for round in 0..3 {
        let socket = s.socket();
        let account = id.clone();
        let start = next;
        // A writer adds numbers as fast as the daemon acknowledges them,
        // until the daemon dies under it.
        let writer = std::thread::spawn(move || {
            let mut conn = BufReader::new(UnixStream::connect(&socket).unwrap());
            let mut acked = Vec::new();
            for n in start.. {
                let number = format!("+45{n}");
                let req = json!({ "scope": "operator", "request": {
                    "op": "number_add", "account": account, "number": number, "routes": [] } });
                match request(&mut conn, &req) {
                    Some(v) if v.get("ok").is_some() => acked.push(number),
                    Some(v) => panic!("refused: {v}"),
                    None => break,
                }
            }
            acked
        });
        // Kill once a good number of writes have been acknowledged.
        let want = 60 + 40 * round;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let listed = s.json(&["number", "list", "--account", &id]);
            if listed.as_array().unwrap().len() >= acknowledged.len() + want {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "daemon too slow");
        }
        d.take().unwrap().kill9();
        let acked = writer.join().unwrap();
        assert!(!acked.is_empty());
        next = start + acked.len() as u32 + 1000;
        acknowledged.extend(acked);
        d = Some(s.start());
        let listed = s.json(&["number", "list", "--account", &id]);
        let present: std::collections::HashSet<&str> =
            listed.as_array().unwrap().iter().map(|n| n["number"].as_str().unwrap()).collect();
        for n in &acknowledged {
            assert!(present.contains(n.as_str()), "round {round}: acknowledged {n} lost after kill -9");
        }
    }
    // The directory is consistent: every listed number can be shown.
    let listed = s.json(&["number", "list"]);
    for n in listed.as_array().unwrap() {
        s.ok(&["number", "show", n["number"].as_str().unwrap()]);
    }
}

#[test]
fn no_personal_data_in_plaintext_on_disk() {
    let s = Setup::new();
    let d = s.start();
    seed(&s);
    let file = s.path().join("dir.toml");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/directory.example.toml"), &file).unwrap();
    s.ok(&["directory", "apply", file.to_str().unwrap()]);
    assert!(d.stop().success());
    let needles = [
        "+4533221100",
        "4533221100",
        "33221100",
        "+4587654321",
        "87654321",
        "jens.hansen@blikkenslager.dk",
        "blikkenslager",
        "hansen-blik.dk",
        "regnskab@",
        "Hansen Blikkenslager",
        "kunde-4711",
        "Acme Telecom",
        "acme-telecom.dk",
        // From directory.example.toml.
        "Nordisk Revision",
        "bogholderi@nordisk-revision.dk",
        "nordisk-revision.dk",
        "+4570203040",
        "70203040",
    ];
    let files = files_under(&s.data_dir());
    assert!(files.len() >= 3, "{files:?}");
    let mut scanned = 0;
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        scanned += bytes.len();
        for n in needles {
            assert!(!bytes.windows(n.len()).any(|w| w == n.as_bytes()), "{n:?} found in plaintext in {}", f.display());
        }
    }
    assert!(scanned > 0);
}
