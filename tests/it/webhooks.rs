//! Webhooks against a real HTTP receiver (Python's http.server on
//! loopback, which checks each signature with Python's own hmac): retried
//! while it answers 500, delivered once it answers 200, not delivered
//! again after a restart, disabled after failures in a row, personal data
//! only when asked for; and through the running daemon, a number added
//! over the API reaches the receiver signed. Retries run on a fake clock
//! moved by hand; no test waits for a retry timer.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faxgate::clock::{Clock, FakeClock};
use faxgate::directory::webhooks::Event;
use faxgate::directory::{Directory, Scope, Tenant};
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
        let hook =
            dir.webhook_create(&acme, Some(&acc), &rx.url, vec![Event::FaxSent, Event::FaxFailed], false).unwrap();
        let private = dir.webhook_create(&acme, None, &rx.url, vec![Event::FaxReceived], true).unwrap();
        rx.secret(&hook.secret);
        let hooks = Webhooks::open(&store, dir.clone(), Arc::new(clock.clone()), config.clone()).unwrap();

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
    let hooks = Webhooks::open(&store, dir.clone(), Arc::new(clock.clone()), config).unwrap();
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
    assert_eq!(h.view()["state"], "disabled");
    assert!(h.view().get("secret").is_none());
    // A disabled webhook gets nothing new.
    assert_eq!(hooks.emit(&acme, Some(&acc), Event::FaxFailed, "job-4", json!({}), json!({})).unwrap(), 0);
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
