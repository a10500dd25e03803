//! Queue and outbox requests: the fax jobs and the outgoing mail as listed,
//! shown and steered (`faxgate queue ...`, `faxgate outbox ...`). A tenant's
//! admin sees and steers only that tenant's; another tenant's job is "not
//! found". Restricted subjects (GDPR Art. 18) are left out as in CDR lists.
//! Received faxes whose mail the outbox still keeps can be listed and
//! downloaded by their account (`faxgate received ...`, `/v1/received`).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Context, RESTRICTED, Restricted};
use crate::Error;
use crate::directory::{Language, Scope};
use crate::gateway::{FaxJob, JobState, Steer};
use crate::mail::outbox::{OutRecord, OutState};
use crate::types::{AccountId, JobId, TenantId};

/// Which jobs `queue list --state` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateFilter {
    /// Not tried yet.
    Waiting,
    /// Tried, due again at its next attempt.
    Retrying,
    /// Waiting or retrying.
    Queued,
    /// Held by `queue hold`.
    Held,
    /// Being called.
    Calling,
    /// Delivered (until swept).
    Done,
    /// Given up (until swept).
    Failed,
}

impl StateFilter {
    fn matches(self, j: &FaxJob) -> bool {
        match self {
            StateFilter::Queued => j.state == JobState::Queued,
            s => serde_json::to_value(s).ok().and_then(|v| v.as_str().map(|n| n == j.state_name())).unwrap_or(false),
        }
    }
}

/// The tenant a listing is limited to: a tenant's admin sees only its own.
fn tenant_of(scope: &Scope, asked: Option<TenantId>) -> Result<Option<TenantId>, Error> {
    match (scope, asked) {
        (Scope::Tenant(own), Some(t)) if *own != t => Err(Error::NotFound(format!("no tenant {t}"))),
        (Scope::Tenant(own), _) => Ok(Some(own.clone())),
        (Scope::Operator, t) => Ok(t),
    }
}

fn visible(scope: &Scope, tenant: &TenantId) -> bool {
    match scope {
        Scope::Operator => true,
        Scope::Tenant(own) => own == tenant,
    }
}

/// The queue requests work on: the daemon's, else the store's.
fn queue(ctx: &Context) -> Result<crate::gateway::Queue, Error> {
    match &ctx.queue {
        Some(q) => Ok(q.clone()),
        None => crate::gateway::Queue::stopped(&ctx.store, ctx.directory.clock()),
    }
}

/// A fax job, whoever's (for [`super::principal::target_of`]).
pub(super) fn job(ctx: &Context, id: &JobId) -> Result<Option<FaxJob>, Error> {
    queue(ctx)?.job(id)
}

/// The outbox requests work on: the daemon's, else the store's.
pub(super) fn outbox(ctx: &Context) -> Result<crate::mail::outbox::Outbox, Error> {
    match &ctx.outbox {
        Some(o) => Ok(o.clone()),
        None => crate::mail::outbox::Outbox::open(&ctx.store, ctx.directory.clock()),
    }
}

fn restricted_job(r: &Restricted, j: &FaxJob) -> bool {
    r.number(&j.to) || r.email(&j.mail_from)
}

fn restricted_mail(r: &Restricted, m: &OutRecord) -> bool {
    m.to.iter().any(|a| r.email(a))
}

/// A job as listed.
fn job_row(j: &FaxJob) -> Value {
    let waiting = matches!(j.state, JobState::Queued | JobState::Held);
    json!({
        "id": j.id,
        "tenant": j.tenant,
        "account": j.account,
        "to": j.to,
        "from": j.mail_from,
        "state": j.state_name(),
        "created": j.created,
        "attempts": j.attempts.len(),
        "next_attempt": waiting.then_some(j.next_at),
        "last_outcome": j.last_outcome().map(|o| o.code()),
        "pages": j.pages_total,
        "pages_sent": j.attempts.iter().map(|a| a.outcome.pages()).max().unwrap_or(0),
    })
}

/// A job as shown: its row, and each attempt with its cause.
fn job_view(j: &FaxJob) -> Value {
    let mut v = job_row(j);
    v["subject"] = json!(j.subject);
    v["caller"] = json!(j.caller);
    v["correlation_id"] = json!(j.correlation_id);
    v["mail"] = json!(j.mail_job);
    v["report_sent"] = json!(j.reported);
    v["next_attempt_safer"] = json!(j.safer);
    if let JobState::Calling { call_id, start, .. } = &j.state {
        v["call"] = json!({ "call_id": call_id, "since": start });
    }
    v["history"] = j
        .attempts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            json!({
                "attempt": i + 1,
                "start": a.start,
                "end": a.end,
                "outcome": a.outcome.code(),
                "cause": crate::gateway::report::reason(Language::En, &a.outcome),
                "sip_status": a.outcome.sip_status(),
                "pages": a.outcome.pages(),
                "remote_station": a.remote_station,
                "cdr": (!a.cdr_id.is_empty()).then_some(&a.cdr_id),
            })
        })
        .collect();
    v
}

fn subject_of(m: &OutRecord) -> String {
    crate::gateway::render::subject_of(&m.raw)
}

/// A message as listed.
fn mail_row(m: &OutRecord) -> Value {
    let waiting = m.state == OutState::Scheduled;
    json!({
        "id": m.id,
        "tenant": m.tenant,
        "to": m.to,
        "subject": subject_of(m),
        "state": if waiting { "waiting" } else { "failed" },
        "created": m.created,
        "attempts": m.attempts,
        "next_attempt": waiting.then_some(m.next_attempt),
        "last_error": m.last_error,
        "size": m.raw.len(),
    })
}

/// A message as shown: why it waits, or why it was given up.
fn mail_view(m: &OutRecord) -> Value {
    let mut v = mail_row(m);
    let error = m.last_error.as_deref().unwrap_or("no reason recorded");
    v["from"] = json!(m.from);
    v["why"] = json!(match (&m.state, m.attempts) {
        (OutState::Scheduled, 0) => format!("not tried yet; due at {}", m.next_attempt),
        (OutState::Scheduled, n) => {
            format!("attempt {} is due at {}; attempt {n} failed: {error}", n + 1, m.next_attempt)
        }
        (OutState::Failed, n) => format!("given up after {n} attempt(s): {error}"),
    });
    v
}

/// `queue list`.
pub(super) fn list(
    ctx: &Context,
    scope: &Scope,
    tenant: Option<TenantId>,
    account: Option<AccountId>,
    state: Option<StateFilter>,
) -> Result<Value, Error> {
    let tenant = tenant_of(scope, tenant)?;
    let restricted = Restricted::load(ctx)?;
    let rows: Vec<Value> = queue(ctx)?
        .jobs()?
        .iter()
        .filter(|j| tenant.as_ref().is_none_or(|t| *t == j.tenant))
        .filter(|j| account.is_none_or(|a| a == j.account))
        .filter(|j| state.is_none_or(|s| s.matches(j)))
        .filter(|j| !restricted_job(&restricted, j))
        .map(job_row)
        .collect();
    Ok(Value::Array(rows))
}

/// `queue show`.
pub(super) fn show(ctx: &Context, scope: &Scope, id: &JobId) -> Result<Value, Error> {
    let j = queue(ctx)?
        .job(id)?
        .filter(|j| visible(scope, &j.tenant))
        .ok_or_else(|| Error::NotFound(format!("no fax job {}", id.to_text())))?;
    if restricted_job(&Restricted::load(ctx)?, &j) {
        return Err(Error::Forbidden(RESTRICTED.into()));
    }
    Ok(job_view(&j))
}

/// `queue retry|cancel|hold|release`.
pub(super) fn steer(ctx: &Context, scope: &Scope, id: &JobId, what: Steer) -> Result<Value, Error> {
    let j = queue(ctx)?.steer(id, what, &|j| visible(scope, &j.tenant))?;
    tracing::info!(job = %j.id.to_text(), action = what.verb(), by = ?scope, state = j.state_name(), "fax job steered");
    Ok(job_row(&j))
}

/// `outbox list`.
pub(super) fn outbox_list(ctx: &Context, scope: &Scope, tenant: Option<TenantId>) -> Result<Value, Error> {
    let tenant = tenant_of(scope, tenant)?;
    let restricted = Restricted::load(ctx)?;
    let mut list = outbox(ctx)?.list()?;
    list.sort_by_key(|m| m.created);
    Ok(Value::Array(
        list.iter()
            .filter(|m| tenant.as_ref().is_none_or(|t| *t == m.tenant))
            .filter(|m| !restricted_mail(&restricted, m))
            .map(mail_row)
            .collect(),
    ))
}

fn mail_in_scope(ctx: &Context, scope: &Scope, id: &JobId) -> Result<OutRecord, Error> {
    outbox(ctx)?
        .get(id)?
        .filter(|m| visible(scope, &m.tenant))
        .ok_or_else(|| Error::NotFound(format!("no message {id} in the outbox")))
}

/// `outbox show`.
pub(super) fn outbox_show(ctx: &Context, scope: &Scope, id: &JobId) -> Result<Value, Error> {
    let m = mail_in_scope(ctx, scope, id)?;
    if restricted_mail(&Restricted::load(ctx)?, &m) {
        return Err(Error::Forbidden(RESTRICTED.into()));
    }
    Ok(mail_view(&m))
}

/// `outbox flush`: the caller's waiting messages are due now.
pub(super) fn outbox_flush(ctx: &Context, scope: &Scope) -> Result<Value, Error> {
    let tenant = tenant_of(scope, None)?;
    let n = outbox(ctx)?.flush(tenant.as_ref())?;
    tracing::info!(messages = n, by = ?scope, "outbox flushed");
    let note = match ctx.status.daemon {
        true => "handed to the relay now",
        false => "no daemon runs: they are handed to the relay when it starts",
    };
    Ok(json!({ "flushed": n, "note": note }))
}

/// `outbox drop`: the message and its key are gone.
pub(super) fn outbox_drop(ctx: &Context, scope: &Scope, id: &JobId) -> Result<Value, Error> {
    mail_in_scope(ctx, scope, id)?;
    let m = outbox(ctx)?.remove(id)?;
    tracing::info!(mail = %m.id, by = ?scope, attempts = m.attempts, "outbox message dropped");
    let mut v = mail_row(&m);
    v["state"] = json!("dropped");
    v["next_attempt"] = Value::Null;
    Ok(v)
}

/// A received fax's mail, by its id: its tenant and account.
pub(super) fn received_owner(ctx: &Context, id: &JobId) -> Result<Option<(TenantId, AccountId)>, Error> {
    Ok(outbox(ctx)?.get(id)?.and_then(|m| m.fax.map(|f| (m.tenant, f.account))))
}

/// When a kept message is erased: a given-up one `retention.outbox_failed`
/// after it was given up; one still tried at the latest that long after
/// it expires.
fn erase_by(ctx: &Context, m: &OutRecord) -> jiff::Timestamp {
    let kept = ctx.retention.policy().outbox_failed;
    match m.state {
        OutState::Failed => crate::retention::policy::after(m.next_attempt, kept),
        OutState::Scheduled => crate::retention::policy::after(m.created + crate::mail::outbox::EXPIRY, kept),
    }
}

/// The documents a message carries: (file name, media type, content).
fn attachments(m: &OutRecord) -> Vec<(String, String, Vec<u8>)> {
    use mail_parser::MimeHeaders;
    let Some(parsed) = mail_parser::MessageParser::default().parse(&m.raw) else { return Vec::new() };
    parsed
        .attachments()
        .map(|a| {
            let media = a
                .content_type()
                .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("octet-stream")))
                .unwrap_or_else(|| "application/octet-stream".into());
            (a.attachment_name().unwrap_or("fax").to_owned(), media.to_ascii_lowercase(), a.contents().to_vec())
        })
        .collect()
}

/// A received fax as listed.
fn received_row(ctx: &Context, m: &OutRecord) -> Value {
    let fax = m.fax.as_ref();
    json!({
        "id": m.id,
        "tenant": m.tenant,
        "account": fax.map(|f| f.account),
        "number": fax.map(|f| &f.number),
        "cdr": fax.map(|f| &f.cdr),
        "pages": fax.map(|f| f.pages),
        "received": m.created,
        "to": m.to,
        "mail": if m.state == OutState::Scheduled { "waiting" } else { "failed" },
        "attempts": m.attempts,
        "last_error": m.last_error,
        "erase_by": erase_by(ctx, m),
        "documents": attachments(m)
            .into_iter()
            .map(|(name, media, data)| json!({ "filename": name, "content_type": media, "size": data.len() }))
            .collect::<Vec<_>>(),
    })
}

fn restricted_fax(r: &Restricted, m: &OutRecord) -> bool {
    restricted_mail(r, m) || m.fax.as_ref().is_some_and(|f| r.number(&f.number))
}

/// `received list`: the received faxes whose mail is kept.
pub(super) fn received_list(
    ctx: &Context,
    scope: &Scope,
    tenant: Option<TenantId>,
    account: Option<AccountId>,
) -> Result<Value, Error> {
    let tenant = tenant_of(scope, tenant)?;
    let restricted = Restricted::load(ctx)?;
    let rows: Vec<Value> = outbox(ctx)?
        .list()?
        .iter()
        .filter(|m| m.fax.as_ref().is_some_and(|f| account.is_none_or(|a| a == f.account)))
        .filter(|m| tenant.as_ref().is_none_or(|t| *t == m.tenant))
        .filter(|m| !restricted_fax(&restricted, m))
        .map(|m| received_row(ctx, m))
        .collect();
    Ok(Value::Array(rows))
}

/// `received get`: a received fax with its document (the PDF, else the
/// first), base64, while its mail is kept.
pub(super) fn received_get(ctx: &Context, scope: &Scope, id: &JobId) -> Result<Value, Error> {
    let m = outbox(ctx)?
        .get(id)?
        .filter(|m| m.fax.is_some() && visible(scope, &m.tenant))
        .ok_or_else(|| Error::NotFound(format!("no received fax {} (or it is no longer kept)", id.to_text())))?;
    if restricted_fax(&Restricted::load(ctx)?, &m) {
        return Err(Error::Forbidden(RESTRICTED.into()));
    }
    let docs = attachments(&m);
    let doc = docs
        .iter()
        .find(|(_, media, _)| media == "application/pdf")
        .or(docs.first())
        .ok_or_else(|| Error::NotFound(format!("received fax {} has no document", id.to_text())))?;
    use base64::Engine;
    let mut v = received_row(ctx, &m);
    v["document"] = json!({
        "filename": doc.0,
        "content_type": doc.1,
        "data": base64::engine::general_purpose::STANDARD.encode(&doc.2),
    });
    tracing::info!(message = %m.id.to_text(), "received fax downloaded");
    Ok(v)
}
