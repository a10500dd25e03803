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
use crate::types::{AccountId, E164, JobId, TenantId};
use jiff::Timestamp;

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

/// Where a fax job stands, in one word (see [`FaxJob::state_name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStateName {
    /// Not tried yet.
    Waiting,
    /// Tried, due again at its next attempt.
    Retrying,
    /// Held.
    Held,
    /// Being called.
    Calling,
    /// Delivered (until swept).
    Done,
    /// Given up (until swept).
    Failed,
}

impl JobStateName {
    fn of(j: &FaxJob) -> Self {
        match j.state {
            JobState::Queued if j.attempts.is_empty() => JobStateName::Waiting,
            JobState::Queued => JobStateName::Retrying,
            JobState::Held => JobStateName::Held,
            JobState::Calling { .. } => JobStateName::Calling,
            JobState::Done => JobStateName::Done,
            JobState::Failed => JobStateName::Failed,
        }
    }
}

/// A fax job as listed.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct JobRow {
    /// The job's id.
    pub id: JobId,
    /// Its tenant.
    pub tenant: TenantId,
    /// Its account.
    pub account: AccountId,
    /// The number called.
    pub to: E164,
    /// The mail sender it came from.
    pub from: String,
    /// Where it stands.
    pub state: JobStateName,
    /// When it was queued.
    #[schema(value_type = String, format = DateTime)]
    pub created: Timestamp,
    /// Attempts made.
    pub attempts: usize,
    /// When it is due (waiting, retrying or held); none otherwise.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt: Option<Timestamp>,
    /// How the last attempt ended (`sent`, `busy`, `no-answer`, ...).
    pub last_outcome: Option<&'static str>,
    /// Pages in the document.
    pub pages: u32,
    /// The most pages an attempt got through.
    pub pages_sent: u32,
}

impl JobRow {
    fn of(j: &FaxJob) -> Self {
        let waiting = matches!(j.state, JobState::Queued | JobState::Held);
        JobRow {
            id: j.id,
            tenant: j.tenant.clone(),
            account: j.account,
            to: j.to.clone(),
            from: j.mail_from.clone(),
            state: JobStateName::of(j),
            created: j.created,
            attempts: j.attempts.len(),
            next_attempt: waiting.then_some(j.next_at),
            last_outcome: j.last_outcome().map(|o| o.code()),
            pages: j.pages_total,
            pages_sent: j.attempts.iter().map(|a| a.outcome.pages()).max().unwrap_or(0),
        }
    }
}

/// The call a job is in.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Call {
    /// Its SIP Call-ID.
    pub call_id: String,
    /// When it started.
    #[schema(value_type = String, format = DateTime)]
    pub since: Timestamp,
}

/// One attempt of a job, with its cause.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// Its number, from 1.
    pub attempt: usize,
    /// When it started.
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    /// When it ended.
    #[schema(value_type = String, format = DateTime)]
    pub end: Timestamp,
    /// How it ended (`sent`, `busy`, `no-answer`, ...).
    pub outcome: &'static str,
    /// Why, in words.
    pub cause: String,
    /// The SIP status, when it has one.
    pub sip_status: Option<u16>,
    /// Pages that got through.
    pub pages: u32,
    /// The remote station id, when the fax started.
    pub remote_station: Option<String>,
    /// Its CDR's id; none when no call was placed.
    pub cdr: Option<String>,
}

/// A fax job as shown: its row, and each attempt with its cause.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct JobView {
    /// The row.
    #[serde(flatten)]
    pub row: JobRow,
    /// The mail's subject.
    pub subject: String,
    /// The caller number it is sent as.
    pub caller: Option<E164>,
    /// The id that follows it through mail, job, call and report.
    pub correlation_id: String,
    /// The mail it came from.
    pub mail: JobId,
    /// Whether its report was sent.
    pub report_sent: bool,
    /// Whether the next attempt uses safer settings.
    pub next_attempt_safer: bool,
    /// The call it is in (while `calling`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<Call>,
    /// Its attempts, oldest first.
    pub history: Vec<AttemptView>,
}

impl JobView {
    fn of(j: &FaxJob) -> Self {
        let call = match &j.state {
            JobState::Calling { call_id, start, .. } => Some(Call { call_id: call_id.clone(), since: *start }),
            _ => None,
        };
        let history = j
            .attempts
            .iter()
            .enumerate()
            .map(|(i, a)| AttemptView {
                attempt: i + 1,
                start: a.start,
                end: a.end,
                outcome: a.outcome.code(),
                cause: crate::gateway::report::reason(Language::En, &a.outcome),
                sip_status: a.outcome.sip_status(),
                pages: a.outcome.pages(),
                remote_station: a.remote_station.clone(),
                cdr: (!a.cdr_id.is_empty()).then(|| a.cdr_id.clone()),
            })
            .collect();
        JobView {
            row: JobRow::of(j),
            subject: j.subject.clone(),
            caller: j.caller.clone(),
            correlation_id: j.correlation_id.clone(),
            mail: j.mail_job,
            report_sent: j.reported,
            next_attempt_safer: j.safer,
            call,
            history,
        }
    }
}

fn to_value<T: Serialize>(v: T) -> Result<Value, Error> {
    super::to_value(v)
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
    let rows: Vec<JobRow> = queue(ctx)?
        .jobs()?
        .iter()
        .filter(|j| tenant.as_ref().is_none_or(|t| *t == j.tenant))
        .filter(|j| account.is_none_or(|a| a == j.account))
        .filter(|j| state.is_none_or(|s| s.matches(j)))
        .filter(|j| !restricted_job(&restricted, j))
        .map(JobRow::of)
        .collect();
    to_value(rows)
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
    to_value(JobView::of(&j))
}

/// `queue retry|cancel|hold|release`.
pub(super) fn steer(ctx: &Context, scope: &Scope, id: &JobId, what: Steer) -> Result<Value, Error> {
    let j = queue(ctx)?.steer(id, what, &|j| visible(scope, &j.tenant))?;
    tracing::info!(job = %j.id.to_text(), action = what.verb(), by = ?scope, state = j.state_name(), "fax job steered");
    to_value(JobRow::of(&j))
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
fn erase_by(ctx: &Context, m: &OutRecord) -> Timestamp {
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

/// Where a received fax's mail stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MailState {
    /// Waiting for the mail server to take it.
    Waiting,
    /// Given up, and kept until `erase_by`.
    Failed,
}

/// A document a received fax's mail carries.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DocumentInfo {
    /// Its file name.
    pub filename: String,
    /// Its media type.
    pub content_type: String,
    /// Its size in bytes.
    pub size: usize,
}

/// A received fax as listed.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ReceivedRow {
    /// Its id.
    pub id: JobId,
    /// Its tenant.
    pub tenant: TenantId,
    /// The account whose number received it.
    pub account: Option<AccountId>,
    /// The number called.
    pub number: Option<E164>,
    /// The CDR of the call.
    pub cdr: Option<String>,
    /// Pages received.
    pub pages: Option<u32>,
    /// When it was received.
    #[schema(value_type = String, format = DateTime)]
    pub received: Timestamp,
    /// The mail's recipients.
    pub to: Vec<String>,
    /// Where its mail stands.
    pub mail: MailState,
    /// Delivery attempts of its mail.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it is erased at the latest.
    #[schema(value_type = String, format = DateTime)]
    pub erase_by: Timestamp,
    /// The documents its mail carries.
    pub documents: Vec<DocumentInfo>,
}

/// A received fax as listed.
fn received_row(ctx: &Context, m: &OutRecord) -> ReceivedRow {
    let fax = m.fax.as_ref();
    ReceivedRow {
        id: m.id,
        tenant: m.tenant.clone(),
        account: fax.map(|f| f.account),
        number: fax.map(|f| f.number.clone()),
        cdr: fax.map(|f| f.cdr.clone()),
        pages: fax.map(|f| f.pages),
        received: m.created,
        to: m.to.clone(),
        mail: if m.state == OutState::Scheduled { MailState::Waiting } else { MailState::Failed },
        attempts: m.attempts,
        last_error: m.last_error.clone(),
        erase_by: erase_by(ctx, m),
        documents: attachments(m)
            .into_iter()
            .map(|(filename, content_type, data)| DocumentInfo { filename, content_type, size: data.len() })
            .collect(),
    }
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
    let rows: Vec<ReceivedRow> = outbox(ctx)?
        .list()?
        .iter()
        .filter(|m| m.fax.as_ref().is_some_and(|f| account.is_none_or(|a| a == f.account)))
        .filter(|m| tenant.as_ref().is_none_or(|t| *t == m.tenant))
        .filter(|m| !restricted_fax(&restricted, m))
        .map(|m| received_row(ctx, m))
        .collect();
    to_value(rows)
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
    let mut v = to_value(received_row(ctx, &m))?;
    v["document"] = json!({
        "filename": doc.0,
        "content_type": doc.1,
        "data": base64::engine::general_purpose::STANDARD.encode(&doc.2),
    });
    tracing::info!(message = %m.id.to_text(), "received fax downloaded");
    Ok(v)
}
