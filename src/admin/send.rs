//! A document sent as a fax without mail: the API's upload
//! (`POST /v1/faxes`) and `faxgate fax send`.
//!
//! The document and its recipients become a message in the spool, as if the
//! sender had mailed it to `<number>@<the tenant's fax domain>`, and take
//! the mail-to-fax path from there: the same recipient rules (with the same
//! reasons), rendering, the queue, the report mailed to the sender, the
//! CDRs and the webhooks. The sender must be an address (not a pattern) of
//! the caller's view: the report goes there, so a token cannot send reports
//! to an address its account does not own. Nothing is answered before the
//! message is on disk ([`crate::mail::Spool::submit`]).

use std::net::{IpAddr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Caller, Context};
use crate::Error;
use crate::directory::{AccountStatus, Scope, SenderPattern};
use crate::mail::{MailJob, MailPolicy};
use crate::types::{AccountId, E164, EmailAddress, JobId};

/// Recipients of one fax, at most.
pub const MAX_RECIPIENTS: usize = 100;

/// An uploaded document.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upload {
    /// Its file name (`letter.pdf`).
    pub filename: String,
    /// Its media type (`application/pdf`, `image/tiff`, `text/plain`, …).
    pub content_type: String,
    /// Its content (base64 in JSON).
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// What to send.
#[derive(Debug)]
pub struct Fax {
    /// The sender: an address sender of an account, where the report goes.
    pub sender: EmailAddress,
    /// Fax numbers, international (`+4533221100`) or as the tenant's
    /// country dials them.
    pub to: Vec<String>,
    /// The subject (the report's, the cover page's); default the file name.
    pub subject: Option<String>,
    /// A text for the cover page (or a page of its own), as a mail's body.
    pub comment: Option<String>,
    /// The document.
    pub document: Upload,
    /// Sent again with the same key within a day: the first answer.
    pub idempotency_key: Option<String>,
}

fn invalid(why: impl Into<String>) -> Error {
    Error::Invalid(why.into())
}

/// A fax number as written by a person: spaces, dashes, dots and brackets
/// go; what is left must be digits, with a leading `+` or not.
fn number_text(to: &str) -> Result<String, Error> {
    let n: String = to.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '/')).collect();
    let digits = n.strip_prefix('+').unwrap_or(&n);
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!("to: {to:?} is not a fax number")));
    }
    Ok(n)
}

/// What a file name says a document is (by its extension), when nothing
/// else says: `application/octet-stream` when it does not tell.
pub fn media_type_of(filename: &str) -> &'static str {
    let lower = filename.to_ascii_lowercase();
    let ext = lower.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "pdf" => "application/pdf",
        "tif" | "tiff" => "image/tiff",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "txt" => "text/plain",
        "html" | "htm" => "text/html",
        _ => "application/octet-stream",
    }
}

/// `type/subtype` of a media type, lowercase, its parameters dropped.
fn media_type(v: &str) -> Result<String, Error> {
    let essence = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let token = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    match essence.split_once('/') {
        Some((t, s)) if token(t) && token(s) => Ok(essence),
        _ => Err(invalid(format!("document: {v:?} is not a media type"))),
    }
}

fn plain_text(what: &str, v: &str, max: usize) -> Result<(), Error> {
    if v.chars().count() > max {
        return Err(invalid(format!("{what} is longer than {max} characters")));
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        return Err(invalid(format!("{what} has control characters")));
    }
    Ok(())
}

/// Queues `fax` for the sender's account; answers the spool's job id and
/// the numbers, once the message is on disk.
pub fn send(ctx: &Context, caller: &Caller, fax: Fax) -> Result<Value, Error> {
    let spool = ctx.spool.as_ref().ok_or_else(|| {
        invalid("a fax is sent through the running daemon: start it, and the CLI sends through its admin socket")
    })?;
    let Fax { sender, to, subject, comment, document, idempotency_key } = fax;
    if to.is_empty() {
        return Err(invalid("to: at least one fax number is needed"));
    }
    if to.len() > MAX_RECIPIENTS {
        return Err(invalid(format!("to: at most {MAX_RECIPIENTS} fax numbers, not {}", to.len())));
    }
    if document.data.is_empty() {
        return Err(invalid("document: the file is empty"));
    }
    plain_text("document: the file name", &document.filename, 255)?;
    if document.filename.contains(['\r', '\n', '\t']) {
        return Err(invalid("document: the file name has control characters"));
    }
    let media = media_type(&document.content_type)?;
    if let Some(s) = &subject {
        plain_text("subject", s, 200)?;
        if s.contains(['\r', '\n']) {
            return Err(invalid("subject: one line"));
        }
    }
    if let Some(c) = &comment {
        plain_text("comment", c, 10_000)?;
    }
    if let Some(k) = &idempotency_key
        && (k.is_empty() || k.len() > 200 || !k.bytes().all(|b| b.is_ascii_graphic() && !b"<>@\"\\".contains(&b)))
    {
        return Err(invalid("Idempotency-Key: 1 to 200 printable ASCII characters, without <>@\"\\"));
    }

    let dir = &ctx.directory;
    let now = dir.now();
    let s = dir.sender_get(&Scope::Operator, &SenderPattern::Address(sender.clone()))?;
    let tenant = dir.tenant_get(&Scope::Operator, &s.tenant)?;
    let account = dir.account_get(&Scope::Operator, &s.account)?;
    if account.status(now) != AccountStatus::Active {
        return Err(invalid("the sender's account is not active"));
    }
    let domain = tenant
        .fax_domains
        .first()
        .ok_or_else(|| invalid(format!("tenant {} has no fax domain to send through", tenant.id)))?;
    // The recipients as mail to the fax domain would name them: the same
    // rules, the same reasons.
    let policy = MailPolicy::new(dir.clone());
    let mut numbers: Vec<E164> = Vec::new();
    for t in &to {
        let n = policy.recipient(&s, &format!("{}@{domain}", number_text(t)?)).map_err(|r| invalid(r.text))?;
        if !numbers.contains(&n) {
            numbers.push(n);
        }
    }

    let raw = faxgate_smtp::outgoing::build(&faxgate_smtp::outgoing::OutMessage {
        from_name: String::new(),
        from: sender.to_string(),
        to: numbers.iter().map(|n| format!("{n}@{domain}")).collect(),
        subject: subject.unwrap_or_else(|| document.filename.clone()),
        text: comment.unwrap_or_default(),
        attachments: vec![faxgate_smtp::outgoing::OutAttachment {
            filename: document.filename.clone(),
            content_type: media,
            data: document.data.clone(),
        }],
        message_id_domain: spool.hostname().to_owned(),
    })
    .map_err(|e| invalid(format!("document: {e}")))?;
    // The upload's hash (and the key) find the same fax sent again.
    let mut h = Sha256::new();
    h.update(&document.data);
    for n in &numbers {
        h.update(n.as_str().as_bytes());
    }
    let job = MailJob {
        id: JobId::generate(),
        tenant: s.tenant.clone(),
        account: s.account,
        mail_from: sender.to_string(),
        auth_user: Some(caller.by.clone()),
        caller_number: s.caller_number.clone(),
        recipients: numbers.clone(),
        client_ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
        helo: "api".into(),
        tls: true,
        received: now,
        message_id: idempotency_key.map(|k| format!("<{k}@api.{}>", spool.hostname())),
        size: document.data.len() as u64,
        sha256: format!("{:x}", h.finalize()),
    };
    let (id, again) = spool.submit(job, &raw)?;
    if again {
        tracing::info!(job = %id, "fax upload sent again, not queued twice");
    } else {
        tracing::info!(job = %id, by = %caller.by, "fax upload accepted");
    }
    super::to_value(FaxAccepted { id, to: numbers, sender, account: s.account, already_queued: again })
}

/// A fax accepted: the mail job that sends it to each number.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct FaxAccepted {
    /// The job's id; the faxes to each number show under `GET /v1/faxes`.
    pub id: JobId,
    /// The numbers it is sent to, in E.164.
    pub to: Vec<E164>,
    /// The sender the report goes to.
    pub sender: EmailAddress,
    /// The sender's account.
    pub account: AccountId,
    /// True: the same fax (the same `Idempotency-Key`) was sent before; this is its answer.
    pub already_queued: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_are_read_as_people_write_them() {
        assert_eq!(number_text("+45 33 22 11 00").unwrap(), "+4533221100");
        assert_eq!(number_text("(033) 22-11.00").unwrap(), "0332211 00".replace(' ', ""));
        for bad in ["", "+", "fax", "+45 33 22 11 00 ext 2", "33221100@elsewhere.example", "+4512345678901234567890"] {
            let e = number_text(bad).unwrap_err().to_string();
            assert!(e.contains("is not a fax number"), "{bad}: {e}");
        }
    }

    #[test]
    fn media_types_are_checked() {
        assert_eq!(media_type("Application/PDF; name=a.pdf").unwrap(), "application/pdf");
        for bad in ["", "pdf", "application/", "/pdf", "text/plain\r\nX-Evil: 1", "a b/c"] {
            assert!(media_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_upload_travels_as_base64_in_json() {
        let u = Upload { filename: "a.pdf".into(), content_type: "application/pdf".into(), data: vec![0, 255, 7] };
        let v = serde_json::to_value(&u).unwrap();
        assert_eq!(v["data"], "AP8H");
        let back: Upload = serde_json::from_value(v).unwrap();
        assert_eq!(back.data, vec![0, 255, 7]);
        let e = serde_json::from_value::<Upload>(json!({"filename": "a", "content_type": "text/plain", "data": "!!"}))
            .unwrap_err();
        assert!(e.to_string().contains("Invalid"), "{e}");
    }
}
