//! The HTTPS API of a running daemon, through a real HTTPS client (ureq
//! on rustls, trusting only the test's certificate): each role's
//! operations, the isolation matrix, pagination, problem+json errors, the
//! rate limit, the audit, and the OpenAPI document.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::harness::{Daemon, Setup};

/// A daemon with the API on, and a client trusting its certificate.
pub struct Api {
    pub s: Setup,
    pub d: Daemon,
    pub base: String,
    pub agent: ureq::Agent,
}

/// An answer: status, content type, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub kind: String,
    pub body: Value,
    pub retry_after: Option<String>,
}

impl Api {
    pub fn start(extra: &str) -> Api {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let s = Setup::with(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\ncertificate = \"@DIR@/api.crt\"\nkey = \"@DIR@/api.key\"\n{extra}\n"
        ));
        std::fs::write(s.path().join("api.crt"), cert.cert.pem()).unwrap();
        std::fs::write(s.path().join("api.key"), cert.key_pair.serialize_pem()).unwrap();
        let text = std::fs::read_to_string(&s.config).unwrap();
        std::fs::write(&s.config, text.replace("@DIR@", &s.path().display().to_string())).unwrap();
        let d = s.start();
        let base = d.announced("api");
        assert!(base.starts_with("https://127.0.0.1:"), "{base}");
        let root = ureq::tls::Certificate::from_der(cert.cert.der()).to_owned();
        let tls =
            ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![root]))).build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .build()
            .into();
        Api { s, d, base, agent }
    }

    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Answer {
        let url = format!("{}{path}", self.base);
        let auth = token.map(|t| format!("Bearer {t}"));
        let r = match (method, body) {
            ("GET", _) => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            ("DELETE", _) => {
                let mut r = self.agent.delete(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            (m, b) => {
                let mut r = match m {
                    "POST" => self.agent.post(&url),
                    "PUT" => self.agent.put(&url),
                    "PATCH" => self.agent.patch(&url),
                    _ => unreachable!("{m}"),
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                match b {
                    Some(b) => r.send_json(b),
                    None => r.send_empty(),
                }
            }
        }
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.d.log()));
        let status = r.status().as_u16();
        let kind = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let retry_after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let text = r.into_body().read_to_string().unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        Answer { status, kind, body, retry_after }
    }

    pub fn get(&self, path: &str, token: &str) -> Answer {
        self.call("GET", path, Some(token), None)
    }

    pub fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call("POST", path, Some(token), Some(&body))
    }

    /// A token made by the operator over the admin socket.
    pub fn token(&self, tenant: &str, account: Option<&str>, role: &str) -> String {
        let mut args = vec!["token", "create", "--tenant", tenant, "--role", role];
        if let Some(a) = account {
            args.extend(["--account", a]);
        }
        self.s.json(&args)["token"].as_str().unwrap().to_owned()
    }
}

#[track_caller]
pub fn problem(a: &Answer, status: u16) -> String {
    assert_eq!(a.status, status, "{a:?}");
    assert_eq!(a.kind, "application/problem+json", "{a:?}");
    assert_eq!(a.body["status"], status, "{a:?}");
    assert!(a.body["type"].as_str().unwrap().starts_with("urn:faxgate:problem:"), "{a:?}");
    a.body["detail"].as_str().unwrap().to_owned()
}

#[test]
fn each_role_does_what_it_may_through_the_api() {
    let api = Api::start("");
    let s = &api.s;
    s.add_tenant("acme");
    s.add_tenant("beta");
    let acc = s.add_account("acme", "Hansen ApS");
    let admin = api.token("acme", None, "tenant-admin");
    let acc_admin = api.token("acme", Some(&acc), "account-admin");
    let user = api.token("acme", Some(&acc), "account-user");

    // No token, a wrong one: 401 with the scheme to use.
    let a = api.call("GET", "/v1/tenants", None, None);
    assert!(problem(&a, 401).contains("Authorization: Bearer"), "{a:?}");
    let a = api.get("/v1/tenants", "fgt_0011223344556677_00");
    assert_eq!(problem(&a, 401), "the API token is not valid");
    let mut forged = admin.clone();
    forged.pop();
    forged.push('0');
    assert_eq!(problem(&api.get("/v1/tenants", &forged), 401), "the API token is not valid");
    // The two failed tokens are logged with the address, for fail2ban, and no secret.
    api.d.wait_for_log("api auth failed from 127.0.0.1");
    let log = api.d.log();
    assert!(!log.contains(&forged[21..]) && !log.contains(&admin[21..]), "a secret in the log");
    let file = s.path().join("faxgate.log");
    std::fs::write(&file, &log).unwrap();
    let filter = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/fail2ban/filter.d/faxgate.conf");
    let out = std::process::Command::new("fail2ban-regex").args(["-o", "ip"]).arg(&file).arg(filter).output().unwrap();
    let ips = String::from_utf8_lossy(&out.stdout);
    assert_eq!(ips.lines().filter(|l| !l.is_empty()).collect::<Vec<_>>(), vec!["127.0.0.1"; 2], "{ips}");

    // The tenant admin: its tenant only, accounts, numbers, routes, senders.
    let a = api.get("/v1/tenants", &admin);
    assert_eq!(a.status, 200, "{a:?}");
    let ids: Vec<&str> = a.body["items"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["acme"]);
    let a = api.call("PATCH", "/v1/tenants/acme", Some(&admin), Some(&json!({"display_name": "Acme Fax"})));
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["branding"]["display_name"], "Acme Fax");
    let a = api.post("/v1/tenants", &admin, json!({"id": "gamma"}));
    assert_eq!(a.status, 400, "an incomplete tenant: {a:?}");
    let a = api.post("/v1/accounts", &admin, json!({"tenant": "acme", "name": "Jensen A/S"}));
    assert_eq!(a.status, 201, "{a:?}");
    let second = a.body["id"].as_str().unwrap().to_owned();
    let a = api.post("/v1/numbers", &admin, json!({"account": acc, "number": "+4533221100"}));
    assert_eq!(a.status, 201, "{a:?}");
    let a = api.call(
        "PUT",
        "/v1/numbers/+4533221100/routes",
        Some(&admin),
        Some(&json!({"email": "fax@hansen.dk", "format": "pdf"})),
    );
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(api.get("/v1/numbers/+4533221100", &admin).body["routes"][0]["email"], "fax@hansen.dk");
    let a = api.post("/v1/senders", &admin, json!({"account": acc, "sender": "@hansen.dk", "auth": "dmarc"}));
    assert_eq!(a.status, 201, "{a:?}");
    // A number of the same tenant moves between its accounts.
    let a = api.post("/v1/numbers/+4533221100/move", &admin, json!({"account": second}));
    assert_eq!(a.status, 200, "{a:?}");
    let a = api.post("/v1/numbers/+4533221100/move", &admin, json!({"account": acc}));
    assert_eq!(a.status, 200, "{a:?}");

    // The account admin: its account's routes and senders, not numbers or other accounts.
    assert_eq!(api.get(&format!("/v1/accounts/{acc}"), &acc_admin).body["name"], "Hansen ApS");
    let a = api.get("/v1/accounts", &acc_admin);
    assert!(problem(&a, 403).contains("only a tenant's admin"), "{a:?}");
    assert_eq!(problem(&api.get(&format!("/v1/accounts/{second}"), &acc_admin), 404), format!("no account {second}"));
    let a = api.post("/v1/numbers", &acc_admin, json!({"account": acc, "number": "+4533221101"}));
    assert!(problem(&a, 403).contains("this caller is account-admin"), "{a:?}");
    let a = api.call("DELETE", "/v1/numbers/+4533221100/routes/fax@hansen.dk", Some(&acc_admin), None);
    assert_eq!(a.status, 200, "{a:?}");

    // The account user reads its faxes and history, and changes nothing.
    assert_eq!(api.get("/v1/cdrs", &user).status, 200);
    assert_eq!(api.get("/v1/faxes", &user).status, 200);
    problem(&api.get("/v1/numbers", &user), 403);
    let a = api.post("/v1/senders", &user, json!({"account": acc, "sender": "x@hansen.dk", "auth": "dmarc"}));
    problem(&a, 403);
    let a = api.call("PATCH", &format!("/v1/accounts/{acc}"), Some(&user), Some(&json!({"name": "X"})));
    problem(&a, 403);

    // Tokens: an admin makes one at or below its role, shown once; revokes it.
    let a = api.post("/v1/tokens", &admin, json!({"tenant": "acme", "account": acc, "role": "account-user"}));
    assert_eq!(a.status, 201, "{a:?}");
    let made = a.body["token"].as_str().unwrap().to_owned();
    let id = a.body["record"]["id"].as_str().unwrap().to_owned();
    assert_eq!(api.get("/v1/cdrs", &made).status, 200);
    let listed = api.get("/v1/tokens", &admin).body.to_string();
    assert!(listed.contains(&id) && !listed.contains(&made[made.len() - 64..]), "{listed}");
    assert_eq!(api.call("DELETE", &format!("/v1/tokens/{id}"), Some(&admin), None).status, 200);
    assert!(problem(&api.get("/v1/cdrs", &made), 401).contains("revoked"));
    let a = api.post("/v1/tokens", &acc_admin, json!({"tenant": "acme", "role": "tenant-admin"}));
    problem(&a, 403);

    // Bad input: what was wrong, as problem+json; nothing changes.
    let a = api.post("/v1/numbers", &admin, json!({"account": acc, "number": "33 22 1x 00"}));
    assert!(problem(&a, 400).contains("letters"), "{a:?}");
    let a = api.post("/v1/accounts", &admin, json!({"tenant": "acme", "name": "X", "colour": "red"}));
    assert!(problem(&a, 400).contains("colour"), "{a:?}");
    let a = api.get("/v1/accounts?limit=0", &admin);
    assert!(problem(&a, 400).contains("limit"), "{a:?}");
    let a = api.get("/v1/nothing", &admin);
    problem(&a, 404);
    assert_eq!(api.get("/v1/accounts", &admin).body["items"].as_array().unwrap().len(), 2);

    // Every change is in the audit, with the token that made it.
    let audit = api.get("/v1/audit", &admin);
    assert_eq!(audit.status, 200, "{audit:?}");
    let text = audit.body.to_string();
    let admin_id = &admin[4..20];
    assert!(text.contains(&format!("token {admin_id}")), "{text}");
    for op in ["account_add", "number_add", "route_set", "sender_add", "number_move", "token_create", "token_revoke"] {
        assert!(text.contains(op), "{op} not in the audit: {text}");
    }
    // The operator's own audit shows the API's changes too.
    let all = s.json(&["audit", "list", "--tenant", "acme"]).to_string();
    assert!(all.contains(&format!("token {admin_id}")), "{all}");
}

/// Every endpoint that names an object, for every role: another tenant's
/// or account's object answers exactly as one that does not exist (404,
/// the same text with the id swapped), and nothing else tells them apart.
#[test]
fn other_tenants_and_accounts_answer_as_not_there() {
    // Each token asks about 60 times in a second here.
    let api = Api::start("burst = 1000\n");
    let s = &api.s;
    s.add_tenant("acme");
    s.add_tenant("beta");
    let mine = s.add_account("acme", "Hansen ApS");
    let neighbour = s.add_account("acme", "Jensen A/S");
    let foreign = s.add_account("beta", "Berg GmbH");
    s.ok(&["number", "add", "+4533221100", "--account", &mine]);
    s.ok(&["number", "add", "+4533221102", "--account", &neighbour]);
    s.ok(&["number", "add", "+4544556677", "--account", &foreign]);
    s.ok(&["route", "add", "+4544556677", "fax@berg.de"]);
    s.ok(&["sender", "add", "@jensen.dk", "--account", &neighbour, "--auth", "dmarc"]);
    s.ok(&["sender", "add", "@berg.de", "--account", &foreign, "--auth", "dmarc"]);
    let foreign_token = s.json(&["token", "create", "--tenant", "beta", "--role", "tenant-admin"]);
    let foreign_token_id = foreign_token["record"]["id"].as_str().unwrap().to_owned();
    let foreign_hook =
        s.json(&["webhook", "create", "--tenant", "beta", "--url", "http://127.0.0.1:9/x", "--event", "fax.sent"]);
    let foreign_hook_id = foreign_hook["record"]["id"].as_str().unwrap().to_owned();
    let missing_acc = "acc-00000000000000000000000000000000";
    let missing_job = "job-00000000000000000000000000000000";

    let roles = [
        ("tenant-admin", api.token("acme", None, "tenant-admin")),
        ("account-admin", api.token("acme", Some(&mine), "account-admin")),
        ("account-user", api.token("acme", Some(&mine), "account-user")),
    ];
    // (method, path with {id}, body, the foreign id, a missing id of the same kind)
    let account_body = json!({"name": "X"});
    let cases: Vec<(&str, String, Option<Value>, String, String)> = vec![
        ("GET", "/v1/tenants/{id}".into(), None, "beta".into(), "gamma".into()),
        ("PATCH", "/v1/tenants/{id}".into(), Some(json!({"name": "X"})), "beta".into(), "gamma".into()),
        ("DELETE", "/v1/tenants/{id}".into(), None, "beta".into(), "gamma".into()),
        ("POST", "/v1/tenants/{id}/claims/fax.beta.dk/verify".into(), None, "beta".into(), "gamma".into()),
        ("POST", "/v1/tenants/{id}/claims/fax.beta.dk/approve".into(), None, "beta".into(), "gamma".into()),
        ("GET", "/v1/accounts/{id}".into(), None, foreign.clone(), missing_acc.into()),
        ("PATCH", "/v1/accounts/{id}".into(), Some(account_body.clone()), foreign.clone(), missing_acc.into()),
        ("DELETE", "/v1/accounts/{id}".into(), None, foreign.clone(), missing_acc.into()),
        ("POST", "/v1/accounts/{id}/terminate".into(), Some(json!({})), foreign.clone(), missing_acc.into()),
        ("POST", "/v1/accounts/{id}/reactivate".into(), None, foreign.clone(), missing_acc.into()),
        ("GET", "/v1/numbers/{id}".into(), None, "+4544556677".into(), "+4544556678".into()),
        ("DELETE", "/v1/numbers/{id}".into(), None, "+4544556677".into(), "+4544556678".into()),
        (
            "POST",
            "/v1/numbers/{id}/move".into(),
            Some(json!({"account": mine})),
            "+4544556677".into(),
            "+4544556678".into(),
        ),
        (
            "PUT",
            "/v1/numbers/{id}/routes".into(),
            Some(json!({"email": "x@acme.dk"})),
            "+4544556677".into(),
            "+4544556678".into(),
        ),
        ("DELETE", "/v1/numbers/{id}/routes/fax@berg.de".into(), None, "+4544556677".into(), "+4544556678".into()),
        ("GET", "/v1/senders/{id}".into(), None, "@berg.de".into(), "@nowhere.de".into()),
        (
            "PATCH",
            "/v1/senders/{id}".into(),
            Some(json!({"auth": "smtp-auth"})),
            "@berg.de".into(),
            "@nowhere.de".into(),
        ),
        ("DELETE", "/v1/senders/{id}".into(), None, "@berg.de".into(), "@nowhere.de".into()),
        ("GET", "/v1/accounts?tenant={id}".into(), None, "beta".into(), "gamma".into()),
        ("GET", "/v1/numbers?account={id}".into(), None, foreign.clone(), missing_acc.into()),
        ("GET", "/v1/senders?account={id}".into(), None, foreign.clone(), missing_acc.into()),
        ("GET", "/v1/cdrs?tenant={id}".into(), None, "beta".into(), "gamma".into()),
        ("GET", "/v1/faxes?tenant={id}".into(), None, "beta".into(), "gamma".into()),
        ("GET", "/v1/audit?tenant={id}".into(), None, "beta".into(), "gamma".into()),
        ("GET", "/v1/tokens?tenant={id}".into(), None, "beta".into(), "gamma".into()),
        ("DELETE", "/v1/tokens/{id}".into(), None, foreign_token_id.clone(), "00112233aabbccdd".into()),
        ("DELETE", "/v1/webhooks/{id}".into(), None, foreign_hook_id.clone(), "00112233aabbccdd".into()),
        ("POST", "/v1/webhooks/{id}/enable".into(), None, foreign_hook_id.clone(), "00112233aabbccdd".into()),
        ("GET", "/v1/webhooks?tenant={id}".into(), None, "beta".into(), "gamma".into()),
        (
            "POST",
            "/v1/webhooks".into(),
            Some(json!({"tenant": "{id}", "url": "http://127.0.0.1:9/x", "events": ["fax.sent"]})),
            "beta".into(),
            "gamma".into(),
        ),
        ("POST", "/v1/accounts".into(), Some(json!({"tenant": "{id}", "name": "X"})), "beta".into(), "gamma".into()),
        (
            "POST",
            "/v1/numbers".into(),
            Some(json!({"account": "{id}", "number": "+4533000000"})),
            foreign.clone(),
            missing_acc.into(),
        ),
        (
            "POST",
            "/v1/senders".into(),
            Some(json!({"account": "{id}", "sender": "a@b.dk", "auth": "dmarc"})),
            foreign.clone(),
            missing_acc.into(),
        ),
        (
            "POST",
            "/v1/tokens".into(),
            Some(json!({"tenant": "{id}", "role": "tenant-admin"})),
            "beta".into(),
            "gamma".into(),
        ),
        ("GET", "/v1/tenants/{id}/rating".into(), None, "beta".into(), "gamma".into()),
        (
            "PUT",
            "/v1/tenants/{id}/rating".into(),
            Some(json!({"rules": "currency = \"DKK\""})),
            "beta".into(),
            "gamma".into(),
        ),
        ("GET", "/v1/billing?tenant={id}&month=2026-11".into(), None, "beta".into(), "gamma".into()),
        ("GET", "/v1/billing/check?tenant={id}&month=2026-11".into(), None, "beta".into(), "gamma".into()),
        ("POST", "/v1/billing/close?tenant={id}&month=2026-11".into(), None, "beta".into(), "gamma".into()),
        ("GET", "/v1/received?tenant={id}".into(), None, "beta".into(), "gamma".into()),
        ("GET", "/v1/faxes/{id}".into(), None, missing_job.into(), "job-11111111111111111111111111111111".into()),
        (
            "POST",
            "/v1/faxes/{id}/cancel".into(),
            None,
            missing_job.into(),
            "job-11111111111111111111111111111111".into(),
        ),
    ];
    let fill = |t: &str, id: &str| t.replace("{id}", id);
    let mut checked = 0;
    for (role, token) in &roles {
        for (method, path, body, foreign_id, missing_id) in &cases {
            let ask = |id: &str| {
                let b = body.as_ref().map(|b| serde_json::from_str::<Value>(&fill(&b.to_string(), id)).unwrap());
                api.call(method, &fill(path, id), Some(token), b.as_ref())
            };
            let (f, m) = (ask(foreign_id), ask(missing_id));
            let what = format!("{role} {method} {path}");
            assert_eq!(f.status, m.status, "{what}: {f:?} / {m:?}");
            // Either both not found, or both refused for the role alone.
            assert!([404, 403].contains(&f.status), "{what}: {f:?}");
            assert_eq!(f.kind, "application/problem+json", "{what}");
            let (fd, md) = (f.body["detail"].as_str().unwrap(), m.body["detail"].as_str().unwrap());
            assert_eq!(fd.replace(foreign_id.as_str(), "<id>"), md.replace(missing_id.as_str(), "<id>"), "{what}");
            for leak in ["beta", "Berg", "berg.de", "4544556677", foreign.as_str()] {
                if !(foreign_id.contains(leak) || leak.contains(foreign_id.as_str())) {
                    assert!(!fd.contains(leak), "{what} names {leak}: {fd}");
                }
            }
            checked += 1;
        }
        // The same tenant's other account is as foreign to an account's roles.
        if *role != "tenant-admin" {
            let f = api.get(&format!("/v1/accounts/{neighbour}"), token);
            let m = api.get(&format!("/v1/accounts/{missing_acc}"), token);
            assert_eq!((f.status, m.status), (404, 404), "{role}: {f:?} {m:?}");
            let f = api.get("/v1/senders/@jensen.dk", token);
            assert_eq!(f.status, 404, "{role}: {f:?}");
            let f = api.get("/v1/numbers/+4533221102", token);
            assert_eq!(f.status, 404, "{role}: {f:?}");
        }
    }
    assert_eq!(checked, roles.len() * cases.len());

    // And the caller's own objects: never "not there"; allowed or refused
    // by role alone, as the README's table says.
    s.ok(&["sender", "add", "@hansen.dk", "--account", &mine, "--auth", "dmarc"]);
    let own: Vec<(&str, String, [u16; 3])> = vec![
        // (path, [tenant-admin, account-admin, account-user])
        ("GET", "/v1/tenants/acme".into(), [200, 403, 403]),
        ("GET", format!("/v1/accounts/{mine}"), [200, 200, 403]),
        ("GET", "/v1/numbers/+4533221100".into(), [200, 200, 403]),
        ("GET", "/v1/senders/@hansen.dk".into(), [200, 200, 403]),
        ("GET", "/v1/accounts?tenant=acme".into(), [200, 403, 403]),
        ("GET", format!("/v1/numbers?account={mine}"), [200, 200, 403]),
        ("GET", format!("/v1/senders?account={mine}"), [200, 200, 403]),
        ("GET", "/v1/cdrs?tenant=acme".into(), [200, 200, 200]),
        ("GET", format!("/v1/cdrs?account={mine}"), [200, 200, 200]),
        ("GET", "/v1/faxes?tenant=acme".into(), [200, 200, 200]),
        ("GET", "/v1/tokens?tenant=acme".into(), [200, 200, 200]),
        ("GET", "/v1/audit?tenant=acme".into(), [200, 403, 403]),
        ("GET", "/v1/webhooks?tenant=acme".into(), [200, 200, 403]),
        ("GET", "/v1/received?tenant=acme".into(), [200, 200, 200]),
    ];
    for (i, (role, token)) in roles.iter().enumerate() {
        for (method, path, want) in &own {
            let a = api.call(method, path, Some(token), None);
            assert_eq!(a.status, want[i], "{role} {method} {path}: {a:?}");
        }
    }

    // A number or sender held elsewhere cannot be added, without saying where.
    let admin = &roles[0].1;
    let a = api.post("/v1/numbers", admin, json!({"account": mine, "number": "+4544556677"}));
    assert_eq!(problem(&a, 409), "fax number +4544556677 cannot be added");
    let a = api.post("/v1/senders", admin, json!({"account": mine, "sender": "@berg.de", "auth": "dmarc"}));
    assert_eq!(problem(&a, 409), "sender @berg.de cannot be added");
    let a = api.call("PATCH", "/v1/tenants/acme", Some(admin), Some(&json!({"add_domains": ["fax.beta.dk"]})));
    assert_eq!(problem(&a, 409), "fax domain fax.beta.dk cannot be added");

    // Nothing of beta's changed.
    let n = s.json(&["number", "show", "+4544556677"]);
    assert_eq!(n["account"], foreign.as_str());
    assert_eq!(n["routes"][0]["email"], "fax@berg.de");
    assert_eq!(s.json(&["sender", "show", "@berg.de"])["account"], foreign.as_str());
    assert_eq!(s.json(&["account", "show", &foreign])["name"], "Berg GmbH");
}

#[test]
fn lists_come_in_pages_and_each_token_has_a_rate() {
    let api = Api::start("requests_per_minute = 1\nburst = 12\n");
    let s = &api.s;
    s.add_tenant("acme");
    let mut made: Vec<String> = (0..7).map(|i| s.add_account("acme", &format!("Kunde {i}"))).collect();
    made.sort();
    let admin = api.token("acme", None, "tenant-admin");
    let other = api.token("acme", None, "tenant-admin");

    // Pages of 3: 3, 3, 1, in the list's order, each account once.
    let mut seen = Vec::new();
    let mut path = "/v1/accounts?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let a = api.get(&path, &admin);
        assert_eq!(a.status, 200, "{a:?}");
        pages += 1;
        seen.extend(a.body["items"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_owned()));
        match a.body["next"].as_str() {
            Some(c) => path = format!("/v1/accounts?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    seen.sort();
    assert_eq!(seen, made);
    // Past the end (the list shrank): an empty last page; not a cursor: refused.
    let a = api.get("/v1/accounts?cursor=99", &admin);
    assert_eq!((a.status, a.body["items"].as_array().unwrap().len(), a.body.get("next")), (200, 0, None), "{a:?}");
    assert!(problem(&api.get("/v1/accounts?cursor=x", &admin), 400).contains("cursor"));

    // 12 at once, then 429 with when to come back; another token is not held up.
    let mut codes = Vec::new();
    for _ in 0..12 {
        codes.push(api.get("/v1/tenants", &admin).status);
    }
    let a = api.get("/v1/tenants", &admin);
    assert!(codes.iter().filter(|c| **c == 429).count() > 0 || a.status == 429, "{codes:?} {a:?}");
    let a = api.get("/v1/tenants", &admin);
    let detail = problem(&a, 429);
    assert!(detail.contains("try again"), "{detail}");
    let wait: u64 = a.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(api.get("/v1/tenants", &other).status, 200);
}

/// A body that trickles in is answered 408 after `api.body_timeout` (1 s
/// here), and the API goes on answering; one over 1 MiB is refused with 413.
#[test]
fn a_slow_or_oversized_body_is_refused_and_the_api_goes_on() {
    let api = Api::start("body_timeout = 1\n");
    api.s.add_tenant("acme");
    let token = api.token("acme", None, "tenant-admin");
    let (host, port) = api.base.trim_start_matches("https://").rsplit_once(':').unwrap();
    // Headers and 1 byte of a 100-byte body, then nothing (Python's ssl).
    let script = format!(
        r#"
import socket, ssl, time
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("{host}", {port}), timeout=20))
s.sendall(b"POST /v1/accounts HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{")
start = time.time()
answer = s.recv(65536).split(b"\r\n")[0].decode()
print(answer, round(time.time() - start))
"#
    );
    let out = std::process::Command::new("/usr/bin/python3").arg("-c").arg(&script).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let (line, secs) = text.trim().rsplit_once(' ').unwrap();
    assert_eq!(line, "HTTP/1.1 408 Request Timeout");
    assert!(secs.parse::<u64>().unwrap() <= 5, "{text}");
    let a = api.post("/v1/accounts", &token, json!({"tenant": "acme", "name": "x".repeat(1 << 20)}));
    assert!(problem(&a, 413).contains("larger than 1 MiB"), "{a:?}");
    assert_eq!(api.get("/v1/accounts", &token).status, 200);
}

/// A request hyper refuses before its body (a control character in a
/// header) while the client is still sending a large body: the client gets
/// the 400, not a reset connection (Python's ssl, raw HTTP/1.1).
#[test]
fn a_refused_request_with_a_large_body_gets_its_answer() {
    let api = Api::start("");
    let (host, port) = api.base.trim_start_matches("https://").rsplit_once(':').unwrap();
    let script = format!(
        r#"
import socket, ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
answers = []
for body_size in (100, 8000000):
    s = ctx.wrap_socket(socket.create_connection(("{host}", {port}), timeout=20))
    body = b"x" * body_size
    head = b"POST /v1/accounts HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\x7fy\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    # As HTTP clients do: the answer is read once the request is sent.
    try:
        s.sendall(head + body)
    except OSError as e:
        answers.append("sending failed: " + repr(e))
        continue
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError as e:
        data += b" ERROR " + repr(e).encode()
    answers.append(data.split(b"\r\n")[0].decode(errors="replace"))
print("|".join(answers))
"#
    );
    for _ in 0..5 {
        let out = std::process::Command::new("/usr/bin/python3").arg("-c").arg(&script).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(text.trim(), "HTTP/1.1 400 Bad Request|HTTP/1.1 400 Bad Request", "{}", api.d.log());
    }
}

#[test]
fn the_openapi_document_describes_every_operation() {
    let api = Api::start("");
    let a = api.call("GET", "/openapi.json", None, None);
    assert_eq!(a.status, 200, "{a:?}");
    let doc = &a.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc:#}");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/tenants",
        "/v1/tenants/{tenant}",
        "/v1/accounts/{account}/terminate",
        "/v1/numbers/{number}/routes/{email}",
        "/v1/senders/{sender}",
        "/v1/cdrs",
        "/v1/faxes/{job}/{action}",
        "/v1/tokens/{id}",
        "/v1/audit",
    ] {
        assert!(paths.contains_key(p), "{p} missing: {:?}", paths.keys().collect::<Vec<_>>());
    }
    assert_eq!(doc["components"]["securitySchemes"]["token"]["scheme"], "bearer");
    // The request bodies are checked against the document's schemas: what
    // the document calls a valid new account is one.
    let schema = &doc["components"]["schemas"]["NewAccount"];
    assert!(schema["required"].as_array().unwrap().iter().any(|r| r == "tenant"), "{schema:#}");
    let mut full = doc.clone();
    full["$ref"] = json!("#/components/schemas/NewAccount");
    let v = jsonschema::options().with_draft(jsonschema::Draft::Draft202012).build(&full).unwrap();
    assert!(v.is_valid(&json!({"tenant": "acme", "name": "Hansen ApS"})));
    assert!(!v.is_valid(&json!({"name": "Hansen ApS"})));

    // The answers are typed: a page of tenants holds the tenant schema, a
    // page of CDRs the CDR schema, each reached through `$ref`s.
    let ok =
        |path: &str| doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"].clone();
    for (path, item) in
        [("/v1/tenants", "Tenant"), ("/v1/cdrs", "Cdr"), ("/v1/faxes", "JobRow"), ("/v1/audit", "AuditEntry")]
    {
        let page = resolve(doc, &ok(path));
        assert_eq!(page["type"], "object", "{path}: {page:#}");
        let items = resolve(doc, &page["properties"]["items"]);
        assert_eq!(items["type"], "array", "{path}: {items:#}");
        assert!(refers_to(doc, &items["items"], item, 3), "{path}: its items are not {item}: {items:#}");
    }
    let cdr = &doc["components"]["schemas"]["Cdr"];
    for field in ["id", "tenant", "direction", "start", "end", "pages", "timeline"] {
        assert!(cdr["required"].as_array().unwrap().iter().any(|r| r == field), "{field}: {cdr:#}");
    }
    assert_eq!(cdr["properties"]["start"]["format"], "date-time", "{cdr:#}");
    // The real answer fits the schema; one without a tenant's `pending`, or
    // with a number for its id, does not.
    let s = &api.s;
    s.add_tenant("acme");
    let token = api.token("acme", None, "tenant-admin");
    let a = api.get("/v1/tenants", &token);
    assert_eq!(a.status, 200, "{a:?}");
    let mut full = doc.clone();
    full["$ref"] = ok("/v1/tenants")["$ref"].clone();
    let v = jsonschema::options().with_draft(jsonschema::Draft::Draft202012).build(&full).unwrap();
    assert!(v.is_valid(&a.body), "{:?}", v.iter_errors(&a.body).map(|e| e.to_string()).collect::<Vec<_>>());
    let mut bad = a.body.clone();
    bad["items"][0].as_object_mut().unwrap().remove("pending");
    assert!(!v.is_valid(&bad), "{bad:#}");
    let mut bad = a.body.clone();
    bad["items"][0]["id"] = json!(7);
    assert!(!v.is_valid(&bad), "{bad:#}");
}

/// A schema with its `$ref` followed.
fn resolve(doc: &Value, schema: &Value) -> Value {
    match schema["$ref"].as_str() {
        Some(r) => resolve(doc, doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("no {r}"))),
        None => schema.clone(),
    }
}

/// Whether `schema` is, or is composed of (`allOf`), the component `name`,
/// following `$ref`s at most `depth` deep.
fn refers_to(doc: &Value, schema: &Value, name: &str, depth: usize) -> bool {
    if schema["$ref"] == format!("#/components/schemas/{name}") {
        return true;
    }
    if depth == 0 {
        return false;
    }
    let parts = schema["allOf"].as_array().cloned().unwrap_or_default();
    let next = schema["$ref"].is_string().then(|| resolve(doc, schema));
    parts.iter().chain(next.iter()).any(|s| refers_to(doc, s, name, depth - 1))
}

/// schemathesis (PyPI; `ensure_schemathesis` in scripts/packages.sh puts it
/// in target/schemathesis) fuzzes the live API from its own document:
/// every operation, its examples, boundary values, and generated sequences
/// of calls. Every check but `positive_data_acceptance` is on, among them
/// no server error, responses, status codes, content types and headers as
/// documented, and authentication not ignored. That one is off because the
/// document does not (and cannot fully) describe what makes a phone number
/// or a mail address valid: schema-valid values such as `+10` are refused
/// with 400, as they should be.
#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/schemathesis/bin/schemathesis");
    let bin = std::env::var("FAXGATE_SCHEMATHESIS").map(std::path::PathBuf::from).unwrap_or(venv);
    assert!(
        bin.exists(),
        "{} is missing: install it with `(. scripts/packages.sh; ensure_schemathesis)` (scripts/test.sh does)",
        bin.display()
    );
    let api = Api::start("burst = 100000\nrequests_per_minute = 100000\n");
    let s = &api.s;
    s.add_tenant("acme");
    s.add_tenant("beta");
    let acc = s.add_account("acme", "Hansen ApS");
    let other = s.add_account("beta", "Berg GmbH");
    s.ok(&["number", "add", "+4533221100", "--account", &acc]);
    s.ok(&["number", "add", "+4544556677", "--account", &other]);
    s.ok(&["sender", "add", "@hansen.dk", "--account", &acc, "--auth", "dmarc"]);
    // As a tenant's admin, and as an account's user (most operations refused).
    for token in [api.token("acme", None, "tenant-admin"), api.token("acme", Some(&acc), "account-user")] {
        let out = std::process::Command::new(&bin)
            .args(["run", &format!("{}/openapi.json", api.base)])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args(["--tls-verify", "false", "--checks", "all", "--exclude-checks", "positive_data_acceptance"])
            .args(["--max-examples", "30", "--seed", "7", "--no-color"])
            // Webhooks it would make would POST to the URLs it makes up
            // (tests/it/webhooks.rs makes them against a real receiver).
            .args(["--exclude-operation-id", "webhook_create"])
            .env("SCHEMATHESIS_HOOKS", "")
            // Its cache in the test's directory, not the checkout.
            .current_dir(s.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "schemathesis found problems:\n{text}\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            api.d.log()
        );
        // It did test every operation.
        assert!(text.contains("Tested: 50"), "{text}");
    }
    assert!(!api.d.log().contains("panicked"), "{}", api.d.log());
    // beta's data is as it was.
    assert_eq!(s.json(&["number", "show", "+4544556677"])["account"], other.as_str());
}

/// Operator tokens: with `api.operator_tokens` on, one made on the socket
/// sees every tenant, adds and removes one, and makes the data-subject
/// requests and a disclosure over the API, each audited with the token; a
/// tenant's admin gets 403 for those, and cannot see or revoke the operator's
/// token. Turned off, the token stops working and no new one can be made.
#[test]
fn operator_tokens_act_as_the_operator_only_while_allowed() {
    let api = Api::start("operator_tokens = true");
    let s = &api.s;
    s.add_tenant("acme");
    s.add_tenant("beta");
    let acc = s.add_account("acme", "Hansen ApS");
    s.ok(&["number", "add", "+4533221100", "--account", &acc, "--route", "ops@hansen.dk"]);
    let made = s.json(&["token", "create", "--role", "operator", "--name", "back office"]);
    let op = made["token"].as_str().unwrap().to_owned();
    let op_id = made["record"]["id"].as_str().unwrap().to_owned();
    assert_eq!(made["record"]["tenant"], Value::Null, "{made}");
    let admin = api.token("acme", None, "tenant-admin");

    // Every tenant; one added and removed.
    let a = api.get("/v1/tenants", &op);
    let ids: Vec<&str> = a.body["items"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["acme", "beta"], "{a:?}");
    let new = json!({"id": "gamma", "name": "Gamma Tele",
        "branding": {"display_name": "Gamma Fax", "from_address": "fax@gamma.dk", "language": "da"},
        "default_country": "DK", "fax_domains": ["fax.gamma.dk"], "paper": "a4"});
    let a = api.post("/v1/tenants", &op, new.clone());
    assert_eq!(a.status, 201, "{a:?}");
    assert!(problem(&api.post("/v1/tenants", &admin, new), 403).contains("only the operator"));
    assert_eq!(api.call("DELETE", "/v1/tenants/gamma", Some(&op), None).status, 200);

    // Data-subject requests and a disclosure; a tenant's admin may not.
    let number = json!({"number": "+4533221100"});
    let a = api.post("/v1/gdpr/export", &op, number.clone());
    assert_eq!(a.status, 200, "{a:?}");
    assert!(a.body.to_string().contains("ops@hansen.dk"), "the export holds the number's route: {a:?}");
    problem(&api.post("/v1/gdpr/export", &admin, number.clone()), 403);
    let a = api.post("/v1/gdpr/restrict", &op, json!({"number": "+4533221100"}));
    assert_eq!((a.status, &a.body["restricted"]), (200, &Value::Bool(true)), "{a:?}");
    let a = api.post("/v1/gdpr/restrict", &op, json!({"number": "+4533221100", "lift": true}));
    assert_eq!((a.status, &a.body["restricted"]), (200, &Value::Bool(false)), "{a:?}");
    let a = api.post("/v1/gdpr/rectify", &op, json!({"email": "ops@hansen.dk", "to": "fax@hansen.dk"}));
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(s.json(&["number", "show", "+4533221100"])["routes"][0]["email"], "fax@hansen.dk");
    let a = api.post("/v1/gdpr/export", &op, json!({"number": "+4533221100", "email": "fax@hansen.dk"}));
    assert_eq!(problem(&a, 400), "give one of number and email");
    let period = json!({"number": "+4533221100", "since": "2026-01-01T00:00:00Z", "until": "2026-12-31T00:00:00Z",
        "case": "SKM-2026-17", "authority": "Politiet"});
    let a = api.post("/v1/disclosures", &op, period.clone());
    assert_eq!(a.status, 200, "{a:?}");
    problem(&api.post("/v1/disclosures", &admin, period), 403);

    // Audited with the token.
    let audit = s.json(&["audit", "list"]);
    let by_op: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["by"] == format!("token {op_id}"))
        .map(|e| e["op"].as_str().unwrap())
        .collect();
    for op_name in ["tenant_add", "tenant_remove", "gdpr_export", "gdpr_restrict", "gdpr_rectify", "disclosure"] {
        assert!(by_op.contains(&op_name), "{op_name} not audited with the token: {by_op:?}");
    }
    // The tenant's admin neither sees nor revokes the operator's token: not there.
    let listed = api.get("/v1/tokens", &admin);
    assert!(!listed.body.to_string().contains(&op_id), "{listed:?}");
    let a = api.call("DELETE", &format!("/v1/tokens/{op_id}"), Some(&admin), None);
    let missing = api.call("DELETE", "/v1/tokens/00112233aabbccdd", Some(&admin), None);
    assert_eq!(problem(&a, 404).replace(&op_id, "X"), problem(&missing, 404).replace("00112233aabbccdd", "X"));

    // Off again: the token no longer works, and none can be made.
    let Api { s, d, agent, .. } = api;
    assert!(d.stop().success());
    let text = std::fs::read_to_string(&s.config).unwrap().replace("operator_tokens = true", "operator_tokens = false");
    std::fs::write(&s.config, text).unwrap();
    let d = s.start();
    let base = d.announced("api");
    let api = Api { s, d, base, agent };
    assert!(problem(&api.get("/v1/tenants", &op), 401).contains("operator tokens are off"));
    assert_eq!(api.get("/v1/tenants", &admin).status, 200);
    let err = api.s.fails(&["token", "create", "--role", "operator"]);
    assert!(err.contains("operator tokens are off"), "{err}");
}
