//! Webhooks against a real HTTP receiver (Python's http.server on
//! loopback, which checks each signature with Python's own hmac): retried
//! while it answers 500, delivered once it answers 200, not delivered
//! again after a restart, disabled after failures in a row, personal data
//! only when asked for, and the disabling reported by mail; and through
//! the running daemon, a number added over the API reaches the receiver
//! signed, and webhooks that fail are disabled with a notice in the
//! daemon's Maildir. Retries run on a fake clock moved by hand; no test
//! waits for a retry timer.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faxgate::clock::{Clock, FakeClock};
use faxgate::directory::webhooks::Event;
use faxgate::directory::{Directory, Scope, Tenant};
use faxgate::mail::outbox::Outbox;
use faxgate::store::Store;
use faxgate::webhook::{WebhookConfig, Webhooks};
use jiff::SignedDuration;
use serde_json::{Value, json};

const RECEIVER: &str = r#"
import hashlib, hmac, http.server, json, os, sys, time
log, status_file, secret_file = sys.argv[1], sys.argv[2], sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        secret = open(secret_file).read().strip() if os.path.exists(secret_file) else ""
        parts = dict(p.split("=", 1) for p in self.headers.get("Faxgate-Signature", "").split(","))
        want = hmac.new(secret.encode(), (parts.get("t", "") + "." + body).encode(), hashlib.sha256).hexdigest()
        valid = hmac.compare_digest(want, parts.get("v1", "")) and abs(time.time() - int(parts.get("t", "0"))) < 86400 * 3650
        status = int(open(status_file).read()) if os.path.exists(status_file) else 500
        with open(log, "a") as f:
            f.write(json.dumps({"event": self.headers["Faxgate-Event"], "delivery": self.headers["Faxgate-Delivery"],
                                "valid": valid, "status": status, "body": json.loads(body)}) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

/// A mail as Python's email parser (not ours) reads it: To, Subject, the plain-text body.
fn read_mail(path: &Path) -> (String, String, String) {
    let script = r#"
import email, email.policy, json, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
print(json.dumps([str(m["To"]), str(m["Subject"]), m.get_body(preferencelist=("plain",)).get_content()]))
"#;
    let out = Command::new("/usr/bin/python3").arg("-c").arg(script).arg(path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let [to, subject, body]: [String; 3] = serde_json::from_slice(&out.stdout).unwrap();
    (to, subject, body)
}

/// The receiver: what it was sent, and what it answers (`answer`).
struct Receiver {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Receiver {
    fn start(dir: &Path) -> Receiver {
        let mut child = Command::new("/usr/bin/python3")
            .args(["-c", RECEIVER])
            .arg(dir.join("log.jsonl"))
            .arg(dir.join("status"))
            .arg(dir.join("secret"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = format!("http://127.0.0.1:{}/hooks/fax", line.trim());
        Receiver { child, dir: dir.to_owned(), url }
    }

    fn answer(&self, status: u16) {
        std::fs::write(self.dir.join("status"), status.to_string()).unwrap();
    }

    fn secret(&self, secret: &str) {
        std::fs::write(self.dir.join("secret"), secret).unwrap();
    }

    fn got(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("log.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.got();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tenant() -> Tenant {
    serde_json::from_value(json!({
        "id": "acme", "name": "Acme", "paper": "a4", "default_country": "DK", "fax_domains": ["fax.acme.dk"],
        "branding": {"display_name": "Acme Fax", "from_address": "fax@acme.dk", "language": "da"},
    }))
    .unwrap()
}

#[test]
fn deliveries_are_signed_retried_until_200_once_only_and_a_failing_hook_is_disabled() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start(tmp.path());
    let data = tmp.path().join("data");
    let clock = FakeClock::new("2026-12-04T09:00:00Z".parse().unwrap());
    let config = WebhookConfig { retry_delays: vec![60, 300], max_failures: 3 };
    let (acc, hook, private) = {
        let store = Store::open(&data, &data.join("keys")).unwrap();
        let dir = Directory::open(&store, Arc::new(clock.clone())).unwrap();
        dir.tenant_add(&Scope::Operator, tenant()).unwrap();
        let acc = dir.account_add(&Scope::Operator, &"acme".parse().unwrap(), "Hansen", None, None).unwrap().id;
        let acme = "acme".parse().unwrap();
        let events = vec![Event::FaxSent, Event::FaxFailed];
        let hook = dir.webhook_create(&acme, Some(&acc), &rx.url, events, false, None).unwrap();
        let private = dir.webhook_create(&acme, None, &rx.url, vec![Event::FaxReceived], true, None).unwrap();
        rx.secret(&hook.secret);
        let outbox = Outbox::open(&store, Arc::new(clock.clone())).unwrap();
        let hooks = Webhooks::open(&store, dir.clone(), Arc::new(clock.clone()), config.clone(), outbox).unwrap();

        // One event, for the account's webhook only (the tenant's wants another).
        let fields = json!({"job": "job-1", "result": "sent", "pages": 2});
        let personal = json!({"to": "+4533221100"});
        let acme = "acme".parse().unwrap();
        assert_eq!(
            hooks.emit(&acme, Some(&acc), Event::FaxSent, "job-1", fields.clone(), personal.clone()).unwrap(),
            1
        );
        // The same event again is the same delivery.
        assert_eq!(hooks.emit(&acme, Some(&acc), Event::FaxSent, "job-1", fields, personal).unwrap(), 1);
        assert_eq!(hooks.pending().unwrap().len(), 1);

        // 500: tried, kept, due again in 60 s; not before.
        rx.answer(500);
        assert_eq!(hooks.deliver_due().unwrap().0..2, 0..2);
        let d = &hooks.pending().unwrap()[0];
        assert_eq!((d.attempts, d.next), (1, clock.now() + SignedDuration::from_secs(60)));
        assert!(d.last_error.as_deref().unwrap().contains("500"), "{d:?}");
        hooks.deliver_due().unwrap();
        assert_eq!(rx.got().len(), 1);
        clock.advance(SignedDuration::from_secs(60));
        rx.answer(200);
        let (ok, failed, next) = hooks.deliver_due().unwrap();
        assert_eq!((ok, failed, next), (1, 0, None));
        assert!(hooks.pending().unwrap().is_empty());
        (acc, hook, private)
    };
    let got = rx.got();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(got.iter().all(|g| g["valid"] == true), "a signature did not verify: {got:#?}");
    assert_eq!(got[0]["delivery"], got[1]["delivery"]);
    assert_eq!(got[1]["event"], "fax.sent");
    let body = &got[1]["body"];
    assert_eq!(
        (body["job"].as_str(), body["pages"].as_u64(), body["account"].as_str()),
        (Some("job-1"), Some(2), Some(acc.to_text().as_str()))
    );
    assert!(body.get("to").is_none(), "a number in a payload without personal_data: {body}");

    // After a restart: nothing is delivered again.
    let store = Store::open(&data, &data.join("keys")).unwrap();
    let dir = Directory::open(&store, Arc::new(clock.clone())).unwrap();
    let outbox = Outbox::open(&store, Arc::new(clock.clone())).unwrap();
    let hooks = Webhooks::open(&store, dir.clone(), Arc::new(clock.clone()), config, outbox.clone()).unwrap();
    assert_eq!(hooks.deliver_due().unwrap(), (0, 0, None));
    assert_eq!(rx.got().len(), 2);

    // With personal_data, the number is in it.
    rx.secret(&private.secret);
    let acme = "acme".parse().unwrap();
    hooks
        .emit(&acme, Some(&acc), Event::FaxReceived, "cdr-1", json!({"pages": 1}), json!({"from": "+4570203040"}))
        .unwrap();
    assert_eq!(hooks.deliver_due().unwrap().0, 1);
    let got = rx.got();
    assert_eq!((got[2]["valid"].as_bool(), got[2]["body"]["from"].as_str()), (Some(true), Some("+4570203040")));

    // Three failures in a row: the webhook is disabled, its deliveries dropped.
    rx.secret(&hook.secret);
    rx.answer(503);
    for job in ["job-2", "job-3"] {
        hooks.emit(&acme, Some(&acc), Event::FaxFailed, job, json!({"result": "failed"}), json!({})).unwrap();
    }
    assert_eq!(hooks.deliver_due().unwrap().1, 2);
    clock.advance(SignedDuration::from_secs(60));
    assert_eq!(hooks.deliver_due().unwrap().1, 1);
    let h = dir.webhook_get(&hook.id).unwrap().unwrap();
    let (_, why) = h.disabled.clone().expect("disabled");
    assert!(why.contains("3 deliveries failed in a row") && why.contains("503"), "{why}");
    assert!(hooks.pending().unwrap().is_empty());
    let view = serde_json::to_value(h.view()).unwrap();
    assert_eq!(view["state"], "disabled");
    assert!(view.get("secret").is_none());
    // A disabled webhook gets nothing new.
    assert_eq!(hooks.emit(&acme, Some(&acc), Event::FaxFailed, "job-4", json!({}), json!({})).unwrap(), 0);

    // The tenant is told, without a notify address at its From address, in
    // its language (Danish), through the outbox: queued once, durably.
    let mails = outbox.list().unwrap();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(
        (mails[0].from.as_str(), mails[0].to.as_slice()),
        ("fax@acme.dk", ["fax@acme.dk".to_owned()].as_slice())
    );
    let file = tmp.path().join("notice.eml");
    std::fs::write(&file, &mails[0].raw).unwrap();
    let (to, subject, body) = read_mail(&file);
    assert_eq!((to.as_str(), subject.as_str()), ("fax@acme.dk", "Webhook deaktiveret: 127.0.0.1"));
    for want in [
        format!("Webhook:         {}\n", hook.id),
        format!("URL:             {}\n", rx.url),
        "Hændelser:       fax.failed, fax.sent\n".to_owned(),
        format!("Konto:           {}\n", acc.to_text()),
        "Årsag:           3 deliveries failed in a row; the last: the receiver answered 503".to_owned(),
        "Kasseret:        2 ventende leveringer".to_owned(),
        format!("faxgate webhook enable {}", hook.id),
        format!("POST /v1/webhooks/{}/enable", hook.id),
    ] {
        assert!(body.contains(&want), "{want:?} in\n{body}");
    }
    let raw = String::from_utf8_lossy(&mails[0].raw);
    assert!(!raw.contains(&hook.secret) && !body.contains(&hook.secret) && !raw.contains("whsec"), "{raw}");
}

/// The mails in the daemon's Maildir, by path.
fn maildir(s: &crate::harness::Setup) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(s.data_dir().join("maildir/new"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn webhooks_failing_in_the_daemon_are_disabled_and_reported_in_its_maildir() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start(tmp.path());
    rx.answer(500);
    let api = crate::api::Api::start("[webhooks]\nmax_failures = 3\n");
    let s = &api.s;
    s.add_tenant("acme");
    let acc = s.add_account("acme", "Hansen");
    let token = api.token("acme", None, "tenant-admin");

    // Over the API with `notify` (and a query the notice must not show);
    // with the CLI with --notify, and without (the tenant's From address).
    let url = format!("{}?token=t0ps3cret", rx.url);
    let body = json!({"tenant": "acme", "url": url, "events": ["number.changed"], "notify": "ops@customer.test"});
    let a = api.post("/v1/webhooks", &token, body);
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body["record"]["notify"], "ops@customer.test");
    let mut hooks = vec![(a.body["record"]["id"].as_str().unwrap().to_owned(), "ops@customer.test")];
    let mut secrets = vec![a.body["secret"].as_str().unwrap().to_owned()];
    for notify in [Some("alerts@customer.test"), None] {
        let mut args = vec!["webhook", "create", "--tenant", "acme", "--url", &rx.url, "--event", "number.changed"];
        args.extend(notify.iter().flat_map(|n| ["--notify", n]));
        let made = s.json(&args);
        hooks.push((made["record"]["id"].as_str().unwrap().to_owned(), notify.unwrap_or("fax@acme.dk")));
        secrets.push(made["secret"].as_str().unwrap().to_owned());
    }
    // A notify address that is not one is refused.
    let bad = json!({"tenant": "acme", "url": rx.url, "events": ["number.changed"], "notify": "nobody"});
    assert_eq!(api.post("/v1/webhooks", &token, bad).status, 400);
    // An account's admin may make its webhook, but not choose where mail in
    // the tenant's name goes.
    let acc_admin = api.token("acme", Some(&acc), "account-admin");
    let body = json!({"tenant": "acme", "account": acc, "url": rx.url, "events": ["fax.sent"], "notify": "x@elsewhere.example"});
    let a = api.post("/v1/webhooks", &acc_admin, body);
    assert!(crate::api::problem(&a, 403).contains("only a tenant's admin may set notify"), "{a:?}");

    // Three numbers: three failed deliveries to each webhook, the third disables it.
    for n in ["+4533221100", "+4533221101", "+4533221102"] {
        let a = api.post("/v1/numbers", &token, json!({"account": acc, "number": n}));
        assert_eq!(a.status, 201, "{a:?}");
    }
    let until = Instant::now() + Duration::from_secs(30);
    while maildir(s).len() < 3 {
        assert!(Instant::now() < until, "{} notices after 30 s; log:\n{}", maildir(s).len(), api.d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(rx.got().len(), 9, "{:#?}", rx.got());
    let listed = s.json(&["webhook", "list", "--tenant", "acme"]);
    assert!(listed.as_array().unwrap().iter().all(|w| w["state"] == "disabled"), "{listed:#}");

    let mails: Vec<_> = maildir(s).iter().map(|p| (read_mail(p), std::fs::read_to_string(p).unwrap())).collect();
    assert_eq!(mails.len(), 3);
    for (id, to) in &hooks {
        let ((_, subject, body), raw) =
            mails.iter().find(|((t, ..), _)| t == to).unwrap_or_else(|| panic!("no notice to {to}: {mails:#?}"));
        assert_eq!(subject, "Webhook disabled: 127.0.0.1");
        assert!(raw.contains("From: \"acme Telecom\" <fax@acme.dk>"), "{raw}");
        for want in [
            format!("Webhook:         {id}\n"),
            format!("URL:             {}\n", rx.url),
            "Events:          number.changed\n".to_owned(),
            "Reason:          3 deliveries failed in a row; the last: the receiver answered 500".to_owned(),
            "Dropped:         3 pending deliveries".to_owned(),
            format!("faxgate webhook enable {id}"),
            format!("POST /v1/webhooks/{id}/enable"),
        ] {
            assert!(body.contains(&want), "{want:?} in the notice to {to}:\n{body}");
        }
        for secret in secrets.iter().map(String::as_str).chain(["t0ps3cret", "whsec"]) {
            assert!(!raw.contains(secret), "{secret} in the notice to {to}:\n{raw}");
        }
    }
}

#[test]
fn a_number_added_over_the_api_reaches_the_tenants_webhook_signed() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start(tmp.path());
    rx.answer(200);
    let api = crate::api::Api::start("");
    let s = &api.s;
    s.add_tenant("acme");
    let acc = s.add_account("acme", "Hansen");
    let token = api.token("acme", None, "tenant-admin");

    // Made over the API: the secret once.
    let a = api.post("/v1/webhooks", &token, json!({"tenant": "acme", "url": rx.url, "events": ["number.changed"]}));
    assert_eq!(a.status, 201, "{a:?}");
    let secret = a.body["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 64);
    rx.secret(secret);
    let listed = api.get("/v1/webhooks", &token);
    assert_eq!(listed.body["items"][0]["state"], "active");
    assert!(!listed.body.to_string().contains(secret), "{listed:?}");
    // A URL that is neither https nor loopback is refused.
    let a = api.post(
        "/v1/webhooks",
        &token,
        json!({"tenant": "acme", "url": "http://hooks.example.com/x", "events": ["fax.sent"]}),
    );
    assert!(crate::api::problem(&a, 400).contains("use https"), "{a:?}");

    // A number added: the receiver gets number.changed, signed, without the number.
    let a = api.post("/v1/numbers", &token, json!({"account": acc, "number": "+4533221100"}));
    assert_eq!(a.status, 201, "{a:?}");
    let got = rx.wait_for(1);
    assert_eq!(got.len(), 1, "{}", api.d.log());
    assert_eq!((got[0]["event"].as_str(), got[0]["valid"].as_bool()), (Some("number.changed"), Some(true)), "{got:#?}");
    assert_eq!(got[0]["body"]["change"], "added");
    assert_eq!(got[0]["body"]["number_account"], acc.as_str());
    assert!(!got[0].to_string().contains("33221100"), "the number without personal_data: {got:#?}");

    // Restarted: delivered is not delivered again.
    let crate::api::Api { s, d, .. } = api;
    d.stop();
    let d = s.start();
    s.ok(&["status"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rx.got().len(), 1, "{}", d.log());
    // The audit names who made the webhook.
    let audit = s.json(&["audit", "list", "--tenant", "acme"]).to_string();
    assert!(audit.contains("webhook_create") && audit.contains(&format!("token {}", &token[4..20])), "{audit}");
}
