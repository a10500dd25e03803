//! Claims: a tenant admin's new fax domain or From: address takes effect
//! only once a TXT record proves it (looked up through `[smtp]
//! dns_servers`, here a DNS fixture on loopback) or the operator approves
//! it; until then it is pending, listed, and routes no mail. Through the
//! CLI over the admin socket, SMTP, and the HTTPS API.

use serde_json::{Value, json};

use crate::api::{Api, problem};
use crate::dns::DnsFixture;
use crate::mail;

const RECORD: &str = "_faxgate-challenge.fax2.acme.test";

/// The answer to a RCPT TO for `to`.
fn rcpt(m: &mail::Mail, to: &str) -> String {
    mail::converse(&m.smtp, &[&format!("EHLO c\r\nMAIL FROM:<alice@customer.test>\r\nRCPT TO:<{to}>\r\n"), "QUIT\r\n"])
}

fn tenant_of<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array().unwrap().iter().find(|t| t["id"] == id).unwrap()
}

#[test]
fn a_tenant_admins_fax_domain_routes_only_once_its_txt_record_is_published() {
    let m = mail::start();
    let s = &m.setup;
    let to = "33221100@fax2.acme.test";
    assert!(rcpt(&m, to).contains("relaying denied: fax2.acme.test is not a fax domain here"));

    // Asked for by acme's admin: pending, with the record to publish.
    let t = s.json(&["--as-tenant", "acme", "tenant", "change", "acme", "--add-domain", "fax2.acme.test"]);
    assert_eq!(t["fax_domains"], json!(["fax.acme.test"]), "{t:#}");
    let pending = &t["pending"][0];
    assert_eq!((pending["kind"].as_str(), pending["claim"].as_str()), (Some("fax_domain"), Some("fax2.acme.test")));
    assert_eq!(pending["record"], RECORD);
    let txt = pending["txt"].as_str().unwrap().to_owned();
    assert!(txt.starts_with("faxgate-verify=") && txt.len() == 15 + 32, "{txt}");
    // Listed as pending to its admin and to the operator, in show and list.
    let shown = s.json(&["--as-tenant", "acme", "tenant", "show", "acme"]);
    assert_eq!(shown["pending"][0]["txt"], txt.as_str());
    let listed = s.json(&["tenant", "list"]);
    assert_eq!(tenant_of(&listed, "acme")["pending"].as_array().unwrap().len(), 1);
    assert_eq!(tenant_of(&listed, "other")["pending"], json!([]));
    let human = s.ok(&["--as-tenant", "acme", "tenant", "show", "acme"]);
    assert!(human.contains("pending:") && human.contains(RECORD) && human.contains(&txt), "{human}");
    // It routes nothing yet.
    assert!(rcpt(&m, to).contains("fax2.acme.test is not a fax domain here"));

    // No record: refused, saying which record to publish.
    let verify = ["--as-tenant", "acme", "tenant", "verify", "acme", "fax2.acme.test"];
    let e = s.fails(&verify);
    assert!(e.contains(RECORD) && e.contains(&txt) && e.contains("there is none"), "{e}");
    // A record with another token: refused, saying what it holds.
    m.dns.set(RECORD, &["faxgate-verify=00112233445566778899aabbccddeeff"]);
    let e = s.fails(&verify);
    assert!(e.contains("it holds \"faxgate-verify=00112233445566778899aabbccddeeff\"") && e.contains(&txt), "{e}");

    // Another tenant's admin cannot verify nor approve it: not there, as a
    // tenant that does not exist. Acme's admin may not approve its own.
    let e = s.fails(&["--as-tenant", "other", "tenant", "verify", "acme", "fax2.acme.test"]);
    assert!(e.contains("no tenant acme"), "{e}");
    let e = s.fails(&["--as-tenant", "other", "tenant", "verify", "nosuch", "fax2.acme.test"]);
    assert!(e.contains("no tenant nosuch"), "{e}");
    let e = s.fails(&["--as-tenant", "other", "tenant", "approve", "acme", "fax2.acme.test"]);
    assert!(e.contains("no tenant acme"), "{e}");
    let e = s.fails(&["--as-tenant", "acme", "tenant", "approve", "acme", "fax2.acme.test"]);
    assert!(e.contains("only the operator may do claim_approve"), "{e}");
    assert_eq!(s.json(&["tenant", "show", "acme"])["fax_domains"], json!(["fax.acme.test"]));
    assert!(rcpt(&m, to).contains("fax2.acme.test is not a fax domain here"));

    // Published, beside another TXT record: in effect, routing, no longer pending.
    m.dns.set(RECORD, &["v=spf1 -all", &txt]);
    let t = s.json(&verify);
    assert_eq!(t["fax_domains"], json!(["fax.acme.test", "fax2.acme.test"]), "{t:#}");
    assert_eq!(t["pending"], json!([]));
    let after = rcpt(&m, to);
    assert!(after.contains("250 2.1.5 fax to +4533221100 ok"), "{after}");

    // A From: address: pending until the operator approves it.
    let t = s.json(&["--as-tenant", "acme", "tenant", "change", "acme", "--from-address", "fax@brand.test"]);
    assert_eq!(t["branding"]["from_address"], "fax@acme.test");
    assert_eq!(t["pending"][0]["record"], "_faxgate-challenge.brand.test");
    let t = s.json(&["tenant", "approve", "acme", "fax@brand.test"]);
    assert_eq!((t["branding"]["from_address"].as_str(), &t["pending"]), (Some("fax@brand.test"), &json!([])));

    // The audit has every attempt, with its principal, in the tenant of the one asking.
    let claim = format!("claim:address:{}", s.ok(&["log", "hash", "fax2.acme.test", "--kind", "address"]).trim());
    let audit = s.json(&["audit", "list"]);
    let seen: Vec<(String, String, String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["op"].as_str().unwrap().starts_with("claim_") || e["op"] == "tenant_change")
        .map(|e| {
            let f = |k: &str| e[k].as_str().unwrap().to_owned();
            (f("op"), f("principal"), f("tenant"), f("result"))
        })
        .collect();
    let row = |op: &str, p: &str, t: &str, r: &str| (op.to_owned(), p.to_owned(), t.to_owned(), r.to_owned());
    let acme = "tenant-admin acme";
    assert_eq!(
        seen,
        vec![
            row("tenant_change", acme, "acme", "ok"),
            row("claim_verify", acme, "acme", "conflict"),
            row("claim_verify", acme, "acme", "conflict"),
            row("claim_verify", "tenant-admin other", "other", "not_found"),
            row("claim_verify", "tenant-admin other", "other", "not_found"),
            row("claim_approve", "tenant-admin other", "other", "not_found"),
            row("claim_approve", acme, "acme", "forbidden"),
            row("claim_verify", acme, "acme", "ok"),
            row("tenant_change", acme, "acme", "ok"),
            row("claim_approve", "operator", "acme", "ok"),
        ],
        "{audit:#}"
    );
    let verified = audit.as_array().unwrap().iter().rfind(|e| e["op"] == "claim_verify").unwrap();
    assert_eq!(verified["objects"], json!(["tenant:acme", claim]), "{verified}");
    assert!(verified["by"].as_str().unwrap().starts_with("uid "), "{verified}");
    // Acme's admin sees its own tenant's entries, not the other's attempts.
    let own = s.json(&["--as-tenant", "acme", "audit", "list"]);
    assert!(own.as_array().unwrap().iter().all(|e| e["principal"] != "tenant-admin other"), "{own:#}");
}

#[test]
fn claims_through_the_api_are_verified_against_the_configured_resolvers() {
    let dns = DnsFixture::start(&[]);
    let api = Api::start(&format!("[smtp]\ndns_servers = [\"{}\"]\n", dns.addr));
    api.s.add_tenant("acme");
    api.s.add_tenant("beta");
    let admin = api.token("acme", None, "tenant-admin");
    let beta = api.token("beta", None, "tenant-admin");

    // Two domains asked for: both pending.
    let body = json!({"add_domains": ["fax2.acme.dk", "fax3.acme.dk"]});
    let a = api.call("PATCH", "/v1/tenants/acme", Some(&admin), Some(&body));
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["fax_domains"], json!(["fax.acme.dk"]), "{a:?}");
    let pending = a.body["pending"].as_array().unwrap().clone();
    assert_eq!(pending.len(), 2, "{a:?}");
    let txt = |d: &str| pending.iter().find(|p| p["claim"] == d).unwrap()["txt"].as_str().unwrap().to_owned();

    // The right record for one of them only.
    dns.set("_faxgate-challenge.fax2.acme.dk", &[&txt("fax2.acme.dk")]);
    let a = api.post("/v1/tenants/acme/claims/fax3.acme.dk/verify", &admin, json!({}));
    let detail = problem(&a, 409);
    assert!(detail.contains("_faxgate-challenge.fax3.acme.dk") && detail.contains(&txt("fax3.acme.dk")), "{detail}");
    let a = api.post("/v1/tenants/acme/claims/fax2.acme.dk/verify", &admin, json!({}));
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["fax_domains"], json!(["fax.acme.dk", "fax2.acme.dk"]), "{a:?}");
    let a = api.get("/v1/tenants/acme", &admin);
    let left: Vec<&str> = a.body["pending"].as_array().unwrap().iter().map(|p| p["claim"].as_str().unwrap()).collect();
    assert_eq!(left, vec!["fax3.acme.dk"], "{a:?}");

    // Another tenant: 404, as for a tenant that does not exist; a claim not
    // there: 404; the tenant's own admin may not approve: 403.
    for path in ["/v1/tenants/acme/claims/fax3.acme.dk/verify", "/v1/tenants/acme/claims/fax3.acme.dk/approve"] {
        let foreign = problem(&api.post(path, &beta, json!({})), 404);
        let missing = problem(&api.post(&path.replace("acme/", "gamma/"), &beta, json!({})), 404);
        assert_eq!((foreign.as_str(), missing.as_str()), ("no tenant acme", "no tenant gamma"));
    }
    let a = api.post("/v1/tenants/acme/claims/fax9.acme.dk/verify", &admin, json!({}));
    assert_eq!(problem(&a, 404), "tenant acme has no pending claim fax9.acme.dk");
    let a = api.post("/v1/tenants/acme/claims/fax3.acme.dk/approve", &admin, json!({}));
    assert!(problem(&a, 403).contains("only the operator"), "{a:?}");

    // The operator approves over the socket.
    let t = api.s.json(&["tenant", "approve", "acme", "fax3.acme.dk"]);
    assert_eq!(t["fax_domains"], json!(["fax.acme.dk", "fax2.acme.dk", "fax3.acme.dk"]), "{t:#}");

    // Audited as the token.
    let a = api.get("/v1/audit", &admin);
    let items = a.body["items"].as_array().unwrap();
    let verifies: Vec<_> = items.iter().filter(|e| e["op"] == "claim_verify").collect();
    assert_eq!(verifies.len(), 3, "{a:?}");
    let id = &admin[4..20];
    assert!(verifies.iter().all(|e| e["by"] == format!("token {id}") && e["principal"] == "tenant-admin acme"));
    let results: Vec<&str> = verifies.iter().map(|e| e["result"].as_str().unwrap()).collect();
    assert_eq!(results, vec!["conflict", "ok", "not_found"]);

    // Both operations are in the OpenAPI document.
    let doc = api.call("GET", "/openapi.json", None, None).body;
    for p in ["/v1/tenants/{tenant}/claims/{claim}/verify", "/v1/tenants/{tenant}/claims/{claim}/approve"] {
        assert!(doc["paths"][p]["post"].is_object(), "{p}");
    }
}
