//! A fax sent by upload to the HTTPS API, with curl (multipart/form-data)
//! as an account's user, and one sent with `faxgate fax send` through the
//! admin socket: each rendered, faxed over real SIP and T.38 from one trunk
//! of the daemon to the other, received and mailed to the number's route as
//! a PDF (checked by qpdf and pdfinfo); the report goes to the sender; the
//! jobs show under `/v1/faxes`; each upload is in the audit. The same
//! Idempotency-Key again is answered with the first fax and nothing is
//! faxed twice. Refusals answer as problems with the reasons mail-to-fax
//! gives, and another tenant's sender is "not found".

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::gateway::{Gw, Opts, cdrs, extract_pdf, fixture, header, maildir, start};

/// Asserts that `answer` fits the document's schema of `method path`'s
/// `status` answer (read from the daemon's `/openapi.json`).
#[track_caller]
fn fits_document(g: &Gw, base: &str, method: &str, path: &str, status: u16, answer: &Value) {
    let (code, mut doc) = curl(g, base, None, &[], "/openapi.json");
    assert_eq!(code, 200, "{doc}");
    let schema =
        doc["paths"][path][method]["responses"][status.to_string()]["content"]["application/json"]["schema"].clone();
    assert!(schema["$ref"].is_string(), "{method} {path} {status}: {schema}");
    doc["$ref"] = schema["$ref"].clone();
    let v = jsonschema::options().with_draft(jsonschema::Draft::Draft202012).build(&doc).unwrap();
    let errors: Vec<String> = v.iter_errors(answer).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{method} {path}: {errors:?}\n{answer:#}");
}

/// `curl` against the API: (status, JSON answer).
fn curl(g: &Gw, base: &str, token: Option<&str>, args: &[&str], path: &str) -> (u16, Value) {
    let mut c = Command::new("curl");
    c.args(["-sS", "--cacert"]).arg(&g.ca).args(["-w", "\n%{http_code}"]);
    if let Some(t) = token {
        c.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    c.args(args).arg(format!("{base}{path}"));
    let out = c.output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "curl: {text}{}", String::from_utf8_lossy(&out.stderr));
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), serde_json::from_str(body).unwrap_or(Value::Null))
}

fn upload(g: &Gw, base: &str, token: &str, fields: &[&str], extra: &[&str]) -> (u16, Value) {
    let mut args: Vec<&str> = Vec::new();
    for f in fields {
        args.extend(["-F", f]);
    }
    args.extend_from_slice(extra);
    curl(g, base, Some(token), &args, "/v1/faxes")
}

#[test]
fn a_fax_sent_by_upload_and_by_the_cli_arrives_once_each() {
    let g = start(Opts { extra: "[api]\nlisten = \"127.0.0.1:0\"\n".into(), ..Default::default() });
    let base = g.daemon.announced("api");
    let s = &g.setup;
    let account =
        s.json(&["account", "list", "--tenant", "acme"]).as_array().unwrap()[0]["id"].as_str().unwrap().to_owned();
    let user =
        s.json(&["token", "create", "--tenant", "acme", "--account", &account, "--role", "account-user"])["token"]
            .as_str()
            .unwrap()
            .to_owned();
    // Another tenant's sender.
    s.add_tenant("beta");
    let beta = s.add_account("beta", "Beta Kunde");
    s.ok(&["sender", "add", "--account", &beta, "ops@beta.example", "--auth", "dmarc"]);

    let letter = format!("document=@{}", fixture("letter.pdf").display());
    let text = g.setup.path().join("note.txt");
    std::fs::write(&text, "Please call back about the contract.\n").unwrap();

    // Refused, each with its reason, and nothing queued.
    let (code, p) = upload(&g, &base, &user, &[&letter, "to=+4930123456", "sender=boss@customer.test"], &[]);
    assert_eq!(code, 400, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("national numbers only"), "{p}");
    let (code, p) = upload(&g, &base, &user, &[&letter, "to=fax", "sender=boss@customer.test"], &[]);
    assert_eq!(code, 400, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("is not a fax number"), "{p}");
    let (code, p) = upload(&g, &base, &user, &["to=33221100", "sender=boss@customer.test"], &[]);
    assert_eq!(code, 400, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("no document"), "{p}");
    let (code, p) = upload(&g, &base, &user, &[&letter, "to=33221100", "sender=ops@beta.example"], &[]);
    assert_eq!(code, 404, "another tenant's sender is not found: {p}");
    let (code, missing) = upload(&g, &base, &user, &[&letter, "to=33221100", "sender=nobody@beta.example"], &[]);
    assert_eq!(code, 404, "{missing}");
    assert_eq!(
        p["detail"].as_str().unwrap().replace("ops@beta.example", "X"),
        missing["detail"].as_str().unwrap().replace("nobody@beta.example", "X"),
        "a foreign sender answers as a missing one"
    );
    let (code, p) = curl(&g, &base, None, &["-F", &letter, "-F", "to=33221100"], "/v1/faxes");
    assert_eq!(code, 401, "{p}");
    let (code, p) = curl(&g, &base, Some(&user), &["-H", "Content-Type: application/json", "-d", "{}"], "/v1/faxes");
    assert_eq!(code, 415, "{p}");

    // Sent, then the same again with the same key: the first fax's answer.
    let fields = [letter.as_str(), "to=33 22 11 00", "sender=boss@customer.test", "subject=Invoice 7"];
    let key = ["-H", "Idempotency-Key: invoice-7"];
    let (code, first) = upload(&g, &base, &user, &fields, &key);
    assert_eq!(code, 202, "{first}\n{}", g.daemon.log());
    assert_eq!(first["to"], serde_json::json!(["+4533221100"]), "{first}");
    assert_eq!(first["already_queued"], false, "{first}");
    fits_document(&g, &base, "post", "/v1/faxes", 202, &first);
    let (code, again) = upload(&g, &base, &user, &fields, &key);
    assert_eq!(code, 202, "{again}");
    assert_eq!(again["id"], first["id"], "{again}");
    assert_eq!(again["already_queued"], true, "{again}");
    // The CLI through the admin socket: the same operation.
    let cli = s.json(&[
        "fax",
        "send",
        text.to_str().unwrap(),
        "--to",
        "+4533221100",
        "--sender",
        "boss@customer.test",
        "--subject",
        "Call back",
    ]);
    assert_eq!(cli["already_queued"], false, "{cli}");
    assert_ne!(cli["id"], first["id"]);

    // Two faxes arrive whole, and a report of each goes to the sender.
    let until = Instant::now() + Duration::from_secs(180);
    let mails = loop {
        let m = maildir(&g);
        let faxes = m.iter().filter(|(_, m)| m.contains("To: inbox@customer.test") && !m.contains("(INCOMPLETE)"));
        let reports = m.iter().filter(|(_, m)| m.contains("To: boss@customer.test") && m.contains("delivered"));
        if faxes.count() >= 2 && reports.count() >= 2 {
            break m;
        }
        assert!(Instant::now() < until, "not two faxes and two reports after 180 s; log:\n{}", g.daemon.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut pages: Vec<String> = mails
        .iter()
        .filter(|(_, m)| m.contains("To: inbox@customer.test") && !m.contains("(INCOMPLETE)"))
        .map(|(path, _)| {
            let dir = tempfile::tempdir_in(g.setup.path()).unwrap();
            let pdf = extract_pdf(path, dir.path());
            let check = Command::new("qpdf").arg("--check").arg(&pdf).output().unwrap();
            assert!(check.status.success(), "qpdf: {}", String::from_utf8_lossy(&check.stdout));
            let info =
                String::from_utf8_lossy(&Command::new("pdfinfo").arg(&pdf).output().unwrap().stdout).into_owned();
            info.lines().find(|l| l.starts_with("Pages:")).unwrap().split_whitespace().last().unwrap().to_owned()
        })
        .collect();
    pages.sort();
    // The letter's two pages, and the note on one.
    assert_eq!(pages, ["1", "2"], "pages of the faxes received");
    let subjects: Vec<&str> = mails
        .iter()
        .filter(|(_, m)| m.contains("To: boss@customer.test"))
        .filter_map(|(_, m)| header(m, "Subject"))
        .collect();
    assert!(subjects.contains(&"Fax to +4533221100 delivered (2 of 2 pages)"), "{subjects:?}");
    assert!(subjects.contains(&"Fax to +4533221100 delivered (1 of 1 pages)"), "{subjects:?}");

    // The history as the user sees it: one call out per fax, none twice
    // (the jobs themselves are erased with the documents once delivered).
    let (code, history) = curl(&g, &base, Some(&user), &[], "/v1/cdrs");
    assert_eq!(code, 200, "{history}");
    let out: Vec<&Value> =
        history["items"].as_array().unwrap().iter().filter(|c| c["direction"] == "mail-to-fax").collect();
    assert_eq!(out.len(), 2, "{history:#}");
    assert!(out.iter().all(|c| c["t30_code"] == 0 && c["called"] == "+4533221100"), "{history:#}");
    assert_eq!(cdrs(&g).iter().filter(|c| c["direction"] == "mail-to-fax").count(), 2);
    // The audit names the token for the upload and the socket user for the CLI.
    let audit = s.json(&["audit", "list", "--tenant", "acme"]);
    let sends: Vec<&Value> = audit.as_array().unwrap().iter().filter(|e| e["op"] == "fax_send").collect();
    assert!(sends.iter().any(|e| e["by"].as_str().unwrap().starts_with("token ") && e["result"] == "ok"), "{audit:#}");
    assert!(sends.iter().any(|e| e["by"].as_str().unwrap().starts_with("uid ") && e["result"] == "ok"), "{audit:#}");
    assert!(sends.iter().any(|e| e["result"] == "invalid"), "{audit:#}");
}

/// A received fax whose mail the mail server has not taken (the relay is
/// down): its account lists it and downloads its PDF over the API (curl;
/// qpdf and pdfinfo read it) and with `faxgate received get`; another
/// tenant's user gets the answer a missing one gets; each download is
/// audited.
#[test]
fn a_received_fax_whose_mail_waits_is_downloaded_by_its_account_only() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let extra = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n\n[mail]\ntransport = \"relay\"\nrelay_host = \"127.0.0.1\"\n\
         relay_port = {dead}\nrelay_tls = \"none\"\n"
    );
    let g = start(Opts { extra, ..Default::default() });
    let base = g.daemon.announced("api");
    let s = &g.setup;
    let account =
        s.json(&["account", "list", "--tenant", "acme"]).as_array().unwrap()[0]["id"].as_str().unwrap().to_owned();
    let token = |tenant: &str, account: &str| {
        s.json(&["token", "create", "--tenant", tenant, "--account", account, "--role", "account-user"])["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let user = token("acme", &account);
    s.add_tenant("beta");
    let beta = s.add_account("beta", "Beta Kunde");
    let stranger = token("beta", &beta);

    let letter = fixture("letter.pdf");
    s.ok(&["fax", "send", letter.to_str().unwrap(), "--to", "+4533221100", "--sender", "boss@customer.test"]);
    // The fax comes in on the other trunk; its mail waits for the relay.
    let until = Instant::now() + Duration::from_secs(120);
    let listed = loop {
        let (code, v) = curl(&g, &base, Some(&user), &[], "/v1/received");
        assert_eq!(code, 200, "{v}");
        let whole: Vec<Value> = v["items"].as_array().unwrap().iter().filter(|r| r["pages"] == 2).cloned().collect();
        if let Some(r) = whole.first() {
            fits_document(&g, &base, "get", "/v1/received", 200, &v);
            break r.clone();
        }
        assert!(Instant::now() < until, "no received fax kept after 120 s; log:\n{}", g.daemon.log());
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(listed["number"], "+4533221100", "{listed}");
    assert_eq!(listed["account"], account.as_str(), "{listed}");
    assert_eq!(listed["mail"], "waiting", "{listed}");
    assert!(listed["erase_by"].as_str().is_some(), "{listed}");
    assert_eq!(listed["documents"][0]["content_type"], "application/pdf", "{listed}");
    let id = listed["id"].as_str().unwrap().to_owned();

    // Downloaded as a PDF, with its type and a file name.
    let pdf = g.setup.path().join("download.pdf");
    let headers = g.setup.path().join("headers.txt");
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&g.ca)
        .args(["-H", &format!("Authorization: Bearer {user}"), "-D"])
        .arg(&headers)
        .arg("-o")
        .arg(&pdf)
        .arg(format!("{base}/v1/received/{id}/document"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let head = std::fs::read_to_string(&headers).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: application/pdf"), "{head}");
    assert!(head.contains("content-disposition: attachment; filename=\"fax-"), "{head}");
    let check = Command::new("qpdf").arg("--check").arg(&pdf).output().unwrap();
    assert!(check.status.success(), "qpdf: {}", String::from_utf8_lossy(&check.stdout));
    let info = String::from_utf8_lossy(&Command::new("pdfinfo").arg(&pdf).output().unwrap().stdout).into_owned();
    assert!(info.contains("Pages:           2"), "{info}");
    // The same with the CLI.
    let cli_pdf = g.setup.path().join("cli.pdf");
    s.ok(&["received", "get", &id, "--out", cli_pdf.to_str().unwrap()]);
    assert_eq!(std::fs::read(&cli_pdf).unwrap(), std::fs::read(&pdf).unwrap());

    // Another tenant's user: not there, as a missing one.
    let (code, v) = curl(&g, &base, Some(&stranger), &[], "/v1/received");
    assert_eq!((code, v["items"].as_array().unwrap().len()), (200, 0), "{v}");
    let (code, foreign) = curl(&g, &base, Some(&stranger), &[], &format!("/v1/received/{id}/document"));
    let missing_id = "job-0123456789abcdef0123456789abcdef";
    let (code2, missing) = curl(&g, &base, Some(&stranger), &[], &format!("/v1/received/{missing_id}/document"));
    assert_eq!((code, code2), (404, 404), "{foreign} {missing}");
    assert_eq!(
        foreign["detail"].as_str().unwrap().replace(&id, "X"),
        missing["detail"].as_str().unwrap().replace(missing_id, "X")
    );
    // Each download is audited with who made it.
    let audit = s.json(&["audit", "list", "--tenant", "acme"]);
    let gets: Vec<&Value> = audit.as_array().unwrap().iter().filter(|e| e["op"] == "received_get").collect();
    assert!(gets.iter().any(|e| e["by"].as_str().unwrap().starts_with("token ") && e["result"] == "ok"), "{audit:#}");
    assert!(gets.iter().any(|e| e["by"].as_str().unwrap().starts_with("uid ") && e["result"] == "ok"), "{audit:#}");
}
