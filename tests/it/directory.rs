//! Directory management through the CLI against a running daemon.

use crate::harness::Setup;

fn add_tenant(s: &Setup, id: &str, domain: &str) {
    s.ok(&[
        "tenant",
        "add",
        id,
        "--name",
        &format!("{id} Telecom"),
        "--from-address",
        &format!("fax@{domain}"),
        "--language",
        "da",
        "--country",
        "DK",
        "--domain",
        domain,
    ]);
}

fn add_account(s: &Setup, tenant: &str, name: &str) -> String {
    let a = s.json(&["account", "add", "--tenant", tenant, "--name", name]);
    a["id"].as_str().unwrap().to_owned()
}

#[test]
fn directory_changes_through_the_cli_against_a_running_daemon() {
    let s = Setup::new();
    let d = s.start();
    let status = s.json(&["status"]);
    assert_eq!(status["daemon"], true, "{status}");
    assert_eq!(status["pid"], d.pid());

    add_tenant(&s, "acme", "fax.acme.dk");
    let t = s.json(&["tenant", "show", "acme"]);
    assert_eq!(t["branding"]["language"], "da");
    assert_eq!(t["fax_domains"][0], "fax.acme.dk");
    s.ok(&["tenant", "change", "acme", "--add-domain", "fax2.acme.dk", "--display-name", "Acme Fax"]);
    let t = s.json(&["tenant", "show", "acme"]);
    assert_eq!(t["fax_domains"].as_array().unwrap().len(), 2);
    assert_eq!(t["branding"]["display_name"], "Acme Fax");

    let acc = s.json(&["account", "add", "--tenant", "acme", "--name", "Hansen ApS", "--reference", "c-1001"]);
    let id = acc["id"].as_str().unwrap();
    s.ok(&["number", "add", "33 22 11 00", "--account", id, "--route", "jens@hansen.dk"]);
    s.ok(&["route", "add", "+4533221100", "bogholderi@hansen.dk", "--format", "both"]);
    s.ok(&["sender", "add", "@hansen.dk", "--account", id, "--auth", "dmarc", "--caller-number", "33221100"]);
    s.ok(&["sender", "add", "chef@hansen.dk", "--account", id, "--auth", "smtp-auth"]);

    let shown = s.json(&["account", "show", id]);
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["numbers"][0]["number"], "+4533221100");
    assert_eq!(shown["numbers"][0]["routes"].as_array().unwrap().len(), 2);
    assert_eq!(shown["senders"].as_array().unwrap().len(), 2);
    let human = s.ok(&["account", "show", id]);
    assert!(human.contains("name: Hansen ApS") && human.contains("number: +4533221100"), "{human}");
    // An account's cover page: its own from the start, or inherited.
    assert_eq!(shown["cover_page"], serde_json::Value::Null);
    let own = s.json(&["account", "add", "--tenant", "acme", "--name", "Jensen A/S", "--cover-page", "no"]);
    assert_eq!(own["cover_page"], false, "{own:#}");
    let shown = s.json(&["account", "show", own["id"].as_str().unwrap()]);
    assert_eq!(shown["cover_page"], false, "{shown:#}");
    let err = s.fails(&["account", "change", id, "--cover-page", "maybe"]);
    assert!(err.contains("possible values: yes, no, inherit"), "{err}");
    s.ok(&["account", "remove", own["id"].as_str().unwrap()]);

    s.ok(&["route", "change", "+4533221100", "jens@hansen.dk", "--format", "tiff"]);
    s.ok(&["route", "remove", "+4533221100", "bogholderi@hansen.dk"]);
    let n = s.json(&["number", "show", "+4533221100"]);
    assert_eq!(n["routes"], serde_json::json!([{ "email": "jens@hansen.dk", "format": "tiff" }]));
    s.ok(&["sender", "change", "@hansen.dk", "--caller-number", "none", "--auth", "smtp-auth"]);
    let snd = s.json(&["sender", "show", "@hansen.dk"]);
    assert_eq!(snd["auth"], "smtp-auth");
    assert!(snd["caller_number"].is_null());
    s.ok(&["sender", "remove", "chef@hansen.dk"]);
    s.ok(&["account", "change", id, "--name", "Hansen & Søn ApS"]);
    assert_eq!(s.json(&["account", "show", id])["name"], "Hansen & Søn ApS");

    // Bad input: a clear error, and nothing changes.
    let err = s.fails(&["number", "add", "33 22 1x 00", "--account", id]);
    assert!(err.contains("not a valid fax number") && err.contains("letters"), "{err}");
    let other = add_account(&s, "acme", "Jensen A/S");
    let err = s.fails(&["number", "add", "+45 33 22 11 00", "--account", &other]);
    assert!(err.contains("already belongs to account acc-"), "{err}");
    let err = s.fails(&["account", "add", "--tenant", "nope", "--name", "X"]);
    assert!(err.contains("no tenant nope"), "{err}");
    let err = s.fails(&["tenant", "add", "Bad_Id", "--name", "x", "--from-address", "a@b.dk", "--country", "DK"]);
    assert!(err.contains("not a tenant id"), "{err}");
    let err = s.fails(&["tenant", "remove", "acme"]);
    assert!(err.contains("still has 2 account(s)"), "{err}");
    assert_eq!(s.json(&["number", "show", "+4533221100"])["account"], id);
    assert_eq!(s.json(&["number", "list", "--account", &other]), serde_json::json!([]));

    // A number moves to another account with its routes, and back.
    let moved = s.json(&["number", "change", "+4533221100", "--account", &other]);
    assert_eq!(moved["account"], other.as_str());
    assert_eq!(s.json(&["number", "list", "--account", &other]).as_array().unwrap().len(), 1);
    assert_eq!(s.json(&["number", "list", "--account", id]), serde_json::json!([]));
    s.ok(&["number", "change", "+4533221100", "--account", id]);
    assert_eq!(s.json(&["number", "show", "+4533221100"])["routes"][0]["email"], "jens@hansen.dk");

    // Termination at a time, then now.
    let t = s.json(&["account", "terminate", &other, "--at", "2099-01-01T00:00:00Z"]);
    assert_eq!(t["status"], "active");
    let t = s.json(&["account", "terminate", &other]);
    assert_eq!(t["status"], "terminated");
    s.ok(&["account", "reactivate", &other]);
    let removed = s.json(&["account", "remove", &other]);
    assert_eq!(removed["numbers"], 0);
    s.ok(&["number", "remove", "33221100".replace("3322", "+453322").as_str()]);
    assert_eq!(s.json(&["number", "list"]), serde_json::json!([]));
    d.stop();
}

#[test]
fn tenants_see_only_their_own_data_through_the_cli() {
    let s = Setup::new();
    let _d = s.start();
    add_tenant(&s, "alpha", "fax.alpha.dk");
    add_tenant(&s, "beta", "fax.beta.dk");
    let a = add_account(&s, "alpha", "Alpha Kunde");
    let b = add_account(&s, "beta", "Beta Kunde");
    s.ok(&["number", "add", "+4533221100", "--account", &a]);
    s.ok(&["number", "add", "+4544556677", "--account", &b]);

    let as_alpha = |args: &[&str]| {
        let mut v = vec!["--as-tenant", "alpha"];
        v.extend_from_slice(args);
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| s.cli(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let out = run(as_alpha(&["--json", "account", "list"]));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], a.as_str());
    let out = run(as_alpha(&["--json", "tenant", "list"]));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);

    for args in [
        vec!["account", "show", b.as_str()],
        vec!["account", "terminate", b.as_str()],
        vec!["account", "remove", b.as_str()],
        vec!["account", "list", "--tenant", "beta"],
        vec!["tenant", "show", "beta"],
        vec!["number", "show", "+4544556677"],
        vec!["number", "remove", "+4544556677"],
        vec!["route", "add", "+4544556677", "spy@alpha.dk"],
        vec!["number", "add", "+4599887766", "--account", b.as_str()],
        vec!["account", "add", "--tenant", "beta", "--name", "Sneaky"],
    ] {
        let out = run(as_alpha(&args));
        assert!(!out.status.success(), "{args:?} succeeded for another tenant");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no "), "{args:?}: {err}");
    }
    // Another tenant is not found, its own tenant is the operator's to remove.
    let out = run(as_alpha(&["tenant", "remove", "beta"]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no tenant beta"));
    let out = run(as_alpha(&["tenant", "remove", "alpha"]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only the operator"));
    // Beta's data is untouched.
    assert_eq!(s.json(&["account", "show", &b])["status"], "active");
    assert!(s.json(&["number", "show", "+4544556677"])["routes"].as_array().unwrap().is_empty());
    // A tenant works with its own data, national numbers in its own country.
    let out = run(as_alpha(&["number", "add", "22 33 44 55", "--account", &a]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.json(&["number", "show", "+4522334455"])["tenant"], "alpha");
}

#[test]
fn directory_apply_is_idempotent() {
    let s = Setup::new();
    let _d = s.start();
    let file = s.path().join("directory.toml");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/directory.example.toml"), &file).unwrap();
    let f = file.to_str().unwrap();
    let first = s.json(&["directory", "apply", f]);
    assert!(first["changes"].as_array().unwrap().len() >= 5, "{first}");
    let second = s.json(&["directory", "apply", f]);
    assert_eq!(second["changes"], serde_json::json!([]), "{second}");
    let human = s.ok(&["directory", "apply", f]);
    assert_eq!(human.trim(), format!("{f}: the directory already holds what the file says"));
    // A file with a bad number changes nothing and says why, with the line
    // of the number's entry.
    let text = std::fs::read_to_string(&file).unwrap().replace("70 20 30 40", "70 20 30 4O");
    std::fs::write(&file, &text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("number = \"70 20 30 4O\"")).unwrap();
    let entry = (0..at).rev().find(|&i| lines[i].trim() == "[[tenant.account.number]]").unwrap() + 1;
    let out = s.cli(&["directory", "apply", f]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{shown}");
    assert!(shown.contains("nothing was changed") && shown.contains("letters"), "{shown}");
    assert!(shown.contains(&format!("line {entry} (tenant.")), "{shown}");
    // A file with a new number and one bad value (a control character in a
    // name) changes nothing, not even the number; --dry-run says the same.
    let good = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/directory.example.toml")).unwrap();
    let bad = good
        .replace("number = \"+45 86 12 34 56\"", "number = \"+45 86 12 34 99\"")
        .replace("name = \"Nordisk Revision A/S\"", "name = \"Nordisk\\u0007Revision A/S\"");
    assert_ne!(bad, good);
    std::fs::write(&file, &bad).unwrap();
    let numbers = || s.json(&["number", "list"]).as_array().unwrap().len();
    let before = numbers();
    let dry = s.cli(&["directory", "apply", "--dry-run", f]);
    let real = s.cli(&["directory", "apply", f]);
    assert!(!dry.status.success() && !real.status.success());
    let (dry, real) = (String::from_utf8_lossy(&dry.stdout), String::from_utf8_lossy(&real.stdout));
    assert!(real.contains("control character") && real.contains("line "), "{real}");
    assert_eq!(dry.replace("would ", ""), real.replace("would ", ""), "dry run and apply differ");
    assert_eq!(numbers(), before, "a number was added from a file that was refused");
    assert!(s.fails(&["number", "show", "+4586123499"]).contains("no"));
    // A file with an unknown key is refused with its line.
    std::fs::write(&file, "[[tenant]]\nid = \"x\"\nnmae = \"y\"\n").unwrap();
    let err = s.fails(&["directory", "apply", f]);
    assert!(err.contains("line 3") && err.contains("unknown field `nmae`"), "{err}");
}
