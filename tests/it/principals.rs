//! Principals, API tokens and the audit of changes, through the CLI over
//! the admin socket of a running daemon.

use crate::harness::Setup;

#[test]
fn tokens_are_created_listed_and_revoked_by_the_cli() {
    let s = Setup::new();
    let _d = s.start();
    s.add_tenant("acme");
    s.add_tenant("beta");
    let acc = s.add_account("acme", "Hansen ApS");

    // Made: the secret is printed once, on standard output alone.
    let out = s.cli(&["token", "create", "--tenant", "acme", "--role", "tenant-admin", "--name", "billing"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("fgt_") && token.len() == 85, "{token}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("shown only this once"));
    let made = s.json(&[
        "token",
        "create",
        "--tenant",
        "acme",
        "--account",
        &acc,
        "--role",
        "account-user",
        "--expires",
        "2099-01-01",
    ]);
    let user_id = made["record"]["id"].as_str().unwrap().to_owned();
    assert_eq!(made["record"]["role"], "account-user");
    assert_eq!(made["record"]["expires"], "2099-01-01T00:00:00Z");

    // Listed, without secrets or their hashes.
    let list = s.json(&["token", "list", "--tenant", "acme"]);
    let text = list.to_string();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list:#}");
    assert!(!text.contains(&token[token.len() - 64..]) && !text.contains("sha256"), "{text}");
    assert!(list.as_array().unwrap().iter().all(|t| t["state"] == "active"));
    let admin_id = token[4..20].to_owned();
    assert!(text.contains(&admin_id), "{text}");

    // Another tenant's admin sees none of them and cannot revoke one: not found.
    assert!(s.json(&["--as-tenant", "beta", "token", "list"]).as_array().unwrap().is_empty());
    let e = s.fails(&["--as-tenant", "beta", "token", "revoke", &admin_id]);
    assert!(e.contains(&format!("no token {admin_id}")), "{e}");
    let e = s.fails(&["--as-tenant", "beta", "token", "revoke", "00112233aabbccdd"]);
    assert!(e.contains("no token 00112233aabbccdd"), "{e}");
    // Nor make one in a tenant not its own.
    let e = s.fails(&["--as-tenant", "beta", "token", "create", "--tenant", "acme", "--role", "tenant-admin"]);
    assert!(e.contains("no tenant acme"), "{e}");

    // Bad input is refused with what was wrong.
    let e = s.fails(&["token", "create", "--tenant", "acme", "--role", "account-user"]);
    assert!(e.contains("needs a tenant and an account"), "{e}");
    let e = s.fails(&["token", "create", "--tenant", "acme", "--role", "tenant-admin", "--expires", "2001-01-01"]);
    assert!(e.contains("not in the future"), "{e}");
    let e = s.fails(&["token", "create", "--tenant", "acme", "--role", "operator"]);
    assert!(e.contains("operator"), "{e}");

    // Revoked: listed as such.
    let r = s.json(&["token", "revoke", &admin_id]);
    assert_eq!(r["state"], "revoked", "{r}");
    let list = s.json(&["token", "list", "--tenant", "acme"]);
    let states: Vec<&str> = list.as_array().unwrap().iter().map(|t| t["state"].as_str().unwrap()).collect();
    assert_eq!(states.iter().filter(|s| **s == "revoked").count(), 1, "{list:#}");

    // The store verifies with tokens in it.
    assert_eq!(s.json(&["store", "verify"])["ok"], true);

    // Removing the account removes its token.
    s.ok(&["account", "remove", &acc]);
    let list = s.json(&["token", "list"]);
    assert!(!list.to_string().contains(&user_id), "{list:#}");
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(s.json(&["store", "verify"])["ok"], true);
}

#[test]
fn every_change_is_audited_with_its_principal_and_no_number_in_clear() {
    let s = Setup::new();
    let _d = s.start();
    s.add_tenant("acme");
    s.add_tenant("beta");
    let acc = s.add_account("acme", "Hansen ApS");
    let beta_acc = s.add_account("beta", "Hansen ApS");
    s.ok(&["number", "add", "+4533221100", "--account", &acc, "--route", "jens@hansen.dk"]);
    s.ok(&["--as-tenant", "acme", "route", "add", "+4533221100", "bogholderi@hansen.dk"]);
    s.ok(&["number", "add", "+4533221177", "--account", &beta_acc]);
    s.ok(&["gdpr", "restrict", "--number", "+4533221177"]);
    s.ok(&["gdpr", "restrict", "--number", "+4533221177", "--lift"]);
    // A refused change is audited too, with its error.
    s.fails(&["--as-tenant", "acme", "number", "remove", "+4533221177"]);

    let hash = s.ok(&["log", "hash", "+4533221100"]).trim().to_owned();
    let entries = s.json(&["audit", "list"]);
    let all = entries.as_array().unwrap();
    let text = entries.to_string();
    for clear in ["33221100", "33221177", "jens@hansen.dk", "bogholderi", "hansen"] {
        assert!(!text.to_lowercase().contains(clear), "{clear} in the audit: {text}");
    }
    let added = all.iter().find(|e| e["op"] == "number_add").unwrap();
    assert_eq!(added["principal"], "operator");
    assert!(added["by"].as_str().unwrap().starts_with("uid "), "{added}");
    assert_eq!(added["result"], "ok");
    assert_eq!(added["tenant"], "acme");
    assert!(added["objects"].as_array().unwrap().iter().any(|o| *o == format!("number:{hash}")), "{added}");
    let routed = all.iter().find(|e| e["op"] == "route_set").unwrap();
    assert_eq!(routed["principal"], "tenant-admin acme", "{routed}");
    let restricts: Vec<_> = all.iter().filter(|e| e["op"] == "gdpr_restrict").collect();
    assert_eq!(restricts.len(), 2, "{text}");
    let refused = all.iter().find(|e| e["op"] == "number_remove").unwrap();
    assert_eq!((refused["result"].as_str(), refused["tenant"].as_str()), (Some("not_found"), Some("acme")));
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    // Reads are not changes.
    assert!(!all.iter().any(|e| e["op"] == "number_list" || e["op"] == "audit_list"));

    // The human listing shows the same, without the number.
    let human = s.ok(&["audit", "list", "--since", "2000-01-01"]);
    assert!(human.contains("route_set") && human.contains(&hash) && !human.contains("33221100"), "{human}");

    // A tenant's admin sees its tenant's entries only.
    let own = s.json(&["--as-tenant", "acme", "audit", "list"]);
    let own = own.as_array().unwrap();
    assert!(!own.is_empty() && own.iter().all(|e| e["tenant"] == "acme"), "{own:?}");
    assert!(!own.iter().any(|e| e["op"] == "gdpr_restrict"));
    // It sees that the operator acted, not which of the operator's users.
    let by_operator: Vec<_> = own.iter().filter(|e| e["principal"] == "operator").collect();
    assert!(!by_operator.is_empty() && by_operator.iter().all(|e| e["by"] == "operator"), "{own:?}");
    assert!(own.iter().any(|e| e["principal"] == "tenant-admin acme" && e["by"].as_str().unwrap().starts_with("uid ")));
    let e = s.fails(&["--as-tenant", "acme", "audit", "list", "--tenant", "beta"]);
    assert!(e.contains("no tenant beta"), "{e}");
    let beta = s.json(&["audit", "list", "--tenant", "beta"]);
    assert!(beta.as_array().unwrap().iter().all(|e| e["tenant"] == "beta"), "{beta}");
    assert!(s.json(&["audit", "list", "--since", "2999-01-01"]).as_array().unwrap().is_empty());

    // The entries are sealed: the tree holds no object id in clear.
    drop(_d);
    let db = s.data_dir().join("db");
    for f in crate::harness::files_under(&db) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(hash.len()).any(|w| w == hash.as_bytes()),
            "{} holds an audit entry in clear",
            f.display()
        );
    }
}
