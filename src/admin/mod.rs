//! The admin API: what the CLI (and later the portal) asks of the daemon.
//!
//! A request is one JSON object on one line, `{"scope": ..., "request":
//! {"op": ...}}`; the answer is one line, `{"ok": ...}` or `{"error":
//! {"kind": ..., "message": ...}}`. The same [`Request`]s run in process
//! when no daemon holds the store ([`execute`]), so the CLI behaves the same
//! either way.
//!
//! # Layout
//! - this file: the requests, [`handle`] (authorise, execute, audit) and
//!   their execution against the directory;
//! - [`principal`]: who may do what, decided in one place;
//! - [`audit`]: the sealed audit of every change;
//! - [`server`]: the Unix socket listener in the daemon;
//! - [`client`]: the CLI's side of the socket;
//! - `queue`: the fax queue and the outbox, listed and steered;
//! - [`send`]: a document sent as a fax (the API's upload, `faxgate fax send`);
//! - [`views`]: the directory's records as shown.

pub mod access;
pub mod audit;
pub mod client;
pub mod principal;
mod queue;
pub mod send;
pub mod server;
pub mod views;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use std::sync::Arc;

use faxgate_retention::Sweeper;
use tokio::sync::Notify;

use crate::Error;
use crate::cdr::{Cdr, CdrFilter, CdrStore};
use crate::directory::{
    AccountChange, AttachmentFormat, Directory, DirectoryFile, EnvelopeFrom, Paper, Route, Scope, SenderAuth,
    SenderChange, SenderPattern, Tenant, TenantChange,
};
use crate::gdpr::{Privacy, Subject};
use crate::retention::{HoldTarget, Retention};
use crate::store::Store;
use crate::types::{AccountId, EmailAddress, JobId, TenantId};

pub use audit::{AdminAudit, AuditEntry};
pub use principal::{Op, Principal, Role};
pub use queue::{AttemptView, Call, DocumentInfo, JobRow, JobStateName, JobView, MailState, ReceivedRow, StateFilter};
use views::{AccountView, SenderView, TenantView, TokenView};

/// One admin request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
#[allow(missing_docs)]
pub enum Request {
    Status,
    StoreVerify,
    /// The hash a log line shows for a value (operator only).
    LogHash {
        value: String,
        kind: Option<LogKind>,
    },
    Backup {
        out: std::path::PathBuf,
    },
    RetentionConfirmClock,
    TenantAdd {
        tenant: Tenant,
    },
    TenantList,
    TenantShow {
        id: TenantId,
    },
    TenantChange {
        id: TenantId,
        change: TenantChange,
    },
    TenantRemove {
        id: TenantId,
    },
    /// Look up a claim's TXT record through the configured resolvers; the
    /// claim takes effect when it holds the claim's token.
    ClaimVerify {
        tenant: TenantId,
        claim: String,
    },
    /// A claim takes effect without DNS (operator only).
    ClaimApprove {
        tenant: TenantId,
        claim: String,
    },
    AccountAdd {
        tenant: TenantId,
        name: String,
        reference: Option<String>,
        paper: Option<Paper>,
        cover: Option<bool>,
        #[serde(default)]
        station_id: Option<String>,
    },
    AccountList {
        tenant: Option<TenantId>,
    },
    AccountShow {
        id: AccountId,
    },
    AccountChange {
        id: AccountId,
        change: AccountChange,
    },
    AccountTerminate {
        id: AccountId,
        at: Option<Timestamp>,
    },
    AccountReactivate {
        id: AccountId,
    },
    AccountRemove {
        id: AccountId,
    },
    NumberAdd {
        account: AccountId,
        number: String,
        routes: Vec<Route>,
    },
    NumberList {
        account: Option<AccountId>,
        tenant: Option<TenantId>,
    },
    NumberShow {
        number: String,
    },
    NumberMove {
        number: String,
        account: AccountId,
    },
    NumberRemove {
        number: String,
    },
    RouteSet {
        number: String,
        email: EmailAddress,
        format: AttachmentFormat,
    },
    RouteRemove {
        number: String,
        email: EmailAddress,
    },
    SenderAdd {
        account: AccountId,
        sender: SenderPattern,
        caller_number: Option<String>,
        auth: SenderAuth,
        #[serde(default)]
        envelope_from: EnvelopeFrom,
    },
    SenderList {
        account: Option<AccountId>,
        tenant: Option<TenantId>,
    },
    SenderShow {
        sender: SenderPattern,
    },
    SenderChange {
        sender: SenderPattern,
        change: SenderChange,
    },
    SenderRemove {
        sender: SenderPattern,
    },
    DirectoryApply {
        file: DirectoryFile,
        prune: bool,
        dry_run: bool,
        #[serde(default)]
        source: Option<String>,
    },
    CdrList {
        filter: CdrFilter,
        /// One page of the list (the API's), instead of the whole list.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page: Option<CdrPage>,
    },
    RetentionStatus,
    RetentionAudit,
    RetentionSweep,
    HoldAdd {
        number: Option<String>,
        account: Option<AccountId>,
        case: String,
        until: Timestamp,
    },
    HoldList,
    HoldRemove {
        id: String,
    },
    GdprExport {
        subject: Subject,
    },
    GdprRectify {
        email: EmailAddress,
        to: EmailAddress,
    },
    GdprErase {
        subject: Subject,
    },
    GdprRestrict {
        subject: Subject,
        lift: bool,
    },
    Disclosure {
        number: String,
        since: Timestamp,
        until: Timestamp,
        case: String,
        authority: String,
    },
    QueueList {
        tenant: Option<TenantId>,
        #[serde(default)]
        account: Option<AccountId>,
        state: Option<StateFilter>,
    },
    QueueShow {
        id: JobId,
    },
    QueueSteer {
        id: JobId,
        action: crate::gateway::Steer,
    },
    OutboxList {
        tenant: Option<TenantId>,
    },
    OutboxShow {
        id: JobId,
    },
    OutboxFlush,
    OutboxDrop {
        id: JobId,
    },
    /// What calls to destinations needed (`fax.learn_days`).
    LearnedList {
        tenant: Option<TenantId>,
    },
    /// Forget a destination, in one tenant or (the operator) in every one.
    LearnedForget {
        number: String,
        tenant: Option<TenantId>,
    },
    /// Make an API token for a role in a tenant (and account); its secret
    /// is in the answer, once.
    TokenCreate {
        /// None: an operator token.
        tenant: Option<TenantId>,
        account: Option<AccountId>,
        role: Role,
        name: Option<String>,
        expires: Option<Timestamp>,
    },
    /// The API tokens (never their secrets).
    TokenList {
        tenant: Option<TenantId>,
        account: Option<AccountId>,
    },
    /// Revoke an API token by its id.
    TokenRevoke {
        id: String,
    },
    /// Make a webhook for a tenant (and account); its secret is in the
    /// answer, once.
    WebhookCreate {
        tenant: TenantId,
        account: Option<AccountId>,
        url: String,
        events: Vec<crate::directory::webhooks::Event>,
        #[serde(default)]
        personal_data: bool,
        /// Where the notice is mailed if failures disable it (the
        /// tenant's From address without one).
        #[serde(default)]
        notify: Option<EmailAddress>,
    },
    /// The webhooks (never their secrets).
    WebhookList {
        tenant: Option<TenantId>,
        account: Option<AccountId>,
    },
    /// Remove a webhook.
    WebhookRemove {
        id: String,
    },
    /// Enable a webhook disabled after failures.
    WebhookEnable {
        id: String,
    },
    /// The audit of admin changes.
    AuditList {
        tenant: Option<TenantId>,
        since: Option<Timestamp>,
    },
    /// Set a tenant's rating rules (TOML, see [`crate::billing::Rating`]).
    RatingSet {
        tenant: TenantId,
        rules: String,
    },
    /// A tenant's rating rules.
    RatingShow {
        tenant: TenantId,
    },
    /// The rated export of a tenant's month.
    BillingExport {
        tenant: TenantId,
        month: String,
        level: crate::billing::Level,
    },
    /// Close a month: its export no longer changes; CDRs of it written
    /// later are adjustments in the next month closed.
    BillingClose {
        tenant: TenantId,
        month: String,
        level: crate::billing::Level,
    },
    /// The export's totals against the month's CDRs, and any difference.
    BillingCheck {
        tenant: TenantId,
        month: String,
        level: crate::billing::Level,
    },
    /// Received faxes whose mail is still kept (waiting for the relay, or
    /// given up and kept for `retention.outbox_failed`).
    ReceivedList {
        tenant: Option<TenantId>,
        #[serde(default)]
        account: Option<AccountId>,
    },
    /// A received fax's document (base64), while its mail is kept.
    ReceivedGet {
        id: JobId,
    },
    /// Send a document as a fax to `to`, as `sender` would by mail.
    FaxSend {
        sender: EmailAddress,
        to: Vec<String>,
        #[serde(default)]
        subject: Option<String>,
        #[serde(default)]
        comment: Option<String>,
        document: send::Upload,
        /// The same key again within a day: the first fax's answer, not a second fax.
        #[serde(default)]
        idempotency_key: Option<String>,
    },
}

impl Request {
    /// What it does, without its arguments.
    pub fn op(&self) -> Op {
        use Request as R;
        match self {
            R::Status => Op::Status,
            R::StoreVerify => Op::StoreVerify,
            R::LogHash { .. } => Op::LogHash,
            R::Backup { .. } => Op::Backup,
            R::RetentionConfirmClock => Op::RetentionConfirmClock,
            R::TenantAdd { .. } => Op::TenantAdd,
            R::TenantList => Op::TenantList,
            R::TenantShow { .. } => Op::TenantShow,
            R::TenantChange { .. } => Op::TenantChange,
            R::TenantRemove { .. } => Op::TenantRemove,
            R::ClaimVerify { .. } => Op::ClaimVerify,
            R::ClaimApprove { .. } => Op::ClaimApprove,
            R::AccountAdd { .. } => Op::AccountAdd,
            R::AccountList { .. } => Op::AccountList,
            R::AccountShow { .. } => Op::AccountShow,
            R::AccountChange { .. } => Op::AccountChange,
            R::AccountTerminate { .. } => Op::AccountTerminate,
            R::AccountReactivate { .. } => Op::AccountReactivate,
            R::AccountRemove { .. } => Op::AccountRemove,
            R::NumberAdd { .. } => Op::NumberAdd,
            R::NumberList { .. } => Op::NumberList,
            R::NumberShow { .. } => Op::NumberShow,
            R::NumberMove { .. } => Op::NumberMove,
            R::NumberRemove { .. } => Op::NumberRemove,
            R::RouteSet { .. } => Op::RouteSet,
            R::RouteRemove { .. } => Op::RouteRemove,
            R::SenderAdd { .. } => Op::SenderAdd,
            R::SenderList { .. } => Op::SenderList,
            R::SenderShow { .. } => Op::SenderShow,
            R::SenderChange { .. } => Op::SenderChange,
            R::SenderRemove { .. } => Op::SenderRemove,
            R::DirectoryApply { .. } => Op::DirectoryApply,
            R::CdrList { .. } => Op::CdrList,
            R::RetentionStatus => Op::RetentionStatus,
            R::RetentionAudit => Op::RetentionAudit,
            R::RetentionSweep => Op::RetentionSweep,
            R::HoldAdd { .. } => Op::HoldAdd,
            R::HoldList => Op::HoldList,
            R::HoldRemove { .. } => Op::HoldRemove,
            R::GdprExport { .. } => Op::GdprExport,
            R::GdprRectify { .. } => Op::GdprRectify,
            R::GdprErase { .. } => Op::GdprErase,
            R::GdprRestrict { .. } => Op::GdprRestrict,
            R::Disclosure { .. } => Op::Disclosure,
            R::QueueList { .. } => Op::QueueList,
            R::QueueShow { .. } => Op::QueueShow,
            R::QueueSteer { .. } => Op::QueueSteer,
            R::OutboxList { .. } => Op::OutboxList,
            R::OutboxShow { .. } => Op::OutboxShow,
            R::OutboxFlush => Op::OutboxFlush,
            R::OutboxDrop { .. } => Op::OutboxDrop,
            R::LearnedList { .. } => Op::LearnedList,
            R::LearnedForget { .. } => Op::LearnedForget,
            R::TokenCreate { .. } => Op::TokenCreate,
            R::TokenList { .. } => Op::TokenList,
            R::TokenRevoke { .. } => Op::TokenRevoke,
            R::WebhookCreate { .. } => Op::WebhookCreate,
            R::WebhookList { .. } => Op::WebhookList,
            R::WebhookRemove { .. } => Op::WebhookRemove,
            R::WebhookEnable { .. } => Op::WebhookEnable,
            R::FaxSend { .. } => Op::FaxSend,
            R::ReceivedList { .. } => Op::ReceivedList,
            R::RatingSet { .. } => Op::RatingSet,
            R::RatingShow { .. } => Op::RatingShow,
            R::BillingExport { .. } => Op::BillingExport,
            R::BillingCheck { .. } => Op::BillingCheck,
            R::BillingClose { .. } => Op::BillingClose,
            R::ReceivedGet { .. } => Op::ReceivedGet,
            R::AuditList { .. } => Op::AuditList,
        }
    }
}

/// A page of CDRs: at most `limit`, after the place `after` (hex, the
/// `next` of the page before).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdrPage {
    /// Where the page before ended.
    pub after: Option<String>,
    /// How many at most.
    pub limit: u32,
}

/// Bytes from hex digits (a page's cursor).
fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 512 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Who sent a request: the principal it acts as, and how it was known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The principal.
    pub principal: Principal,
    /// How it was known, for the audit: `uid 1000 (alice)`, `token <id>`.
    pub by: String,
}

impl Caller {
    /// A user of the admin socket (or of the CLI on the store itself).
    pub fn user(principal: Principal, uid: u32) -> Caller {
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten().map(|u| u.name);
        let by = match name {
            Some(n) => format!("uid {uid} ({n})"),
            None => format!("uid {uid}"),
        };
        Caller { principal, by }
    }

    /// The holder of an API token.
    pub fn token(principal: Principal, id: &str) -> Caller {
        Caller { principal, by: format!("token {id}") }
    }
}

/// What a value is, for `faxgate log hash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogKind {
    /// A fax or phone number (`n:`), written in E.164 when it parses.
    Number,
    /// A mail address or a login name (`a:`).
    Address,
    /// A person's or a company's name, a fax station id (`p:`).
    Name,
}

/// The hash the log shows for `value` under the store's log key; without
/// a `kind`, a value that parses as an E.164 number is a number, one with
/// an `@` an address, anything else a name.
fn log_hash(store: &Store, value: &str, kind: Option<LogKind>) -> String {
    use faxgate_retention::logid::{Kind, hash_with};
    let number = value.parse::<crate::types::E164>().ok();
    let kind = kind.unwrap_or(if number.is_some() {
        LogKind::Number
    } else if value.contains('@') {
        LogKind::Address
    } else {
        LogKind::Name
    });
    let key = crate::store::layout::log_key(store);
    match kind {
        LogKind::Number => hash_with(&key, Kind::Number, number.as_ref().map_or(value, |n| n.as_str())),
        LogKind::Address => hash_with(&key, Kind::Address, value),
        LogKind::Name => hash_with(&key, Kind::Name, value),
    }
}

/// A request with the scope it runs in.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Whose view.
    pub scope: Scope,
    /// What.
    pub request: Request,
}

/// An answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// It worked; the result.
    Ok(Value),
    /// It did not.
    Error {
        /// [`Error::kind`].
        kind: String,
        /// What went wrong.
        message: String,
    },
}

impl Response {
    /// The response for a result.
    pub fn from_result(r: Result<Value, Error>) -> Self {
        match r {
            Ok(v) => Response::Ok(v),
            Err(e) => Response::Error { kind: e.kind().to_owned(), message: e.to_string() },
        }
    }
}

/// What the daemon says of itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    /// faxgate's version.
    pub version: String,
    /// The daemon's pid, or this process's when run in process.
    pub pid: u32,
    /// Where the configuration came from.
    pub config: String,
    /// The data directory.
    pub data_dir: String,
    /// Whether a daemon answered (false: the CLI opened the store itself).
    pub daemon: bool,
    /// When the daemon started.
    pub started: Option<Timestamp>,
    /// Damage verification found at start (the daemon then runs only with
    /// `--allow-damaged`, without its sweeper).
    #[serde(default)]
    pub damage: Vec<String>,
    /// Damaged keys found at start: their owners' data cannot be opened.
    #[serde(default)]
    pub key_faults: Vec<String>,
    /// Erasure of CDRs and accounts suspended: the clock jumped.
    #[serde(default)]
    pub clock_suspended: Option<crate::retention::Suspension>,
    /// Settings changed in the configuration file that the running daemon
    /// applies only after a restart (named by the last reload).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_needed: Vec<String>,
}

fn to_value<T: Serialize>(v: T) -> Result<Value, Error> {
    serde_json::to_value(v).map_err(|source| Error::Codec { what: "answer".into(), source })
}

/// What admin requests work on.
#[derive(Clone, Debug)]
pub struct Context {
    /// The store.
    pub store: Store,
    /// The directory.
    pub directory: Directory,
    /// The CDRs.
    pub cdrs: CdrStore,
    /// Retention: holds, audit, status.
    pub retention: Retention,
    /// Data-subject requests and disclosure.
    pub privacy: Privacy,
    /// The sweeper.
    pub sweeper: Sweeper,
    /// Wakes the running sweeper (when a deadline may have come closer).
    pub wake: Arc<Notify>,
    /// What the process says of itself.
    pub status: Status,
    /// Settings the last reload could not apply (see [`Status::restart_needed`]).
    pub restart_needed: Arc<std::sync::Mutex<Vec<String>>>,
    /// The fax queue of the running gateway; unset: the store's, opened
    /// when a request needs it.
    pub queue: Option<crate::gateway::Queue>,
    /// The outbox the daemon delivers from; unset: the store's, opened when
    /// a request needs it.
    pub outbox: Option<crate::mail::outbox::Outbox>,
    /// The audit of admin changes.
    pub audit: AdminAudit,
    /// The webhooks' queue the daemon delivers from; unset: the store's,
    /// opened when an event is queued (the daemon delivers it later).
    pub webhooks: Option<crate::webhook::Webhooks>,
    /// The DNS resolvers claims are verified through (`[smtp]
    /// dns_servers`); empty: the system's.
    pub dns_servers: Vec<std::net::SocketAddr>,
    /// The spool of the running daemon, which a fax sent by upload enters;
    /// unset: no fax can be sent (the CLI sends through the daemon).
    pub spool: Option<crate::mail::Spool>,
    /// Whether operator tokens may be made (`api.operator_tokens`).
    pub operator_tokens: bool,
}

impl Context {
    /// The context over `store`: `sweeper` is the one the daemon runs (or,
    /// in the CLI without a daemon, one made for a `retention sweep`).
    pub fn new(
        store: &Store,
        directory: Directory,
        retention: Retention,
        sweeper: Sweeper,
        status: Status,
    ) -> Result<Self, Error> {
        let privacy = Privacy::new(store, &directory, retention.policy().clone(), retention.audit_log())?;
        Ok(Context {
            audit: AdminAudit::open(store, retention.policy().admin_audit)?,
            webhooks: None,
            queue: None,
            outbox: None,
            store: store.clone(),
            privacy,
            directory,
            cdrs: CdrStore::open(store)?,
            retention,
            sweeper,
            wake: Arc::new(Notify::new()),
            status,
            restart_needed: Default::default(),
            dns_servers: Vec::new(),
            spool: None,
            operator_tokens: false,
        })
    }
}

/// Tells the tenant's webhooks that a number was added, moved or removed
/// (queued durably; the daemon delivers).
/// The change is made whatever becomes of this: a failure is logged.
fn number_changed(ctx: &Context, n: &crate::directory::FaxNumber, change: &str) -> Result<(), Error> {
    use crate::directory::webhooks::Event;
    let queued = match &ctx.webhooks {
        Some(w) => Ok(w.clone()),
        // Without the daemon no delivery runs here (only `emit`), so no
        // notice is queued; the store's outbox is there because `Webhooks` takes one.
        None => queue::outbox(ctx).and_then(|outbox| {
            crate::webhook::Webhooks::open(
                &ctx.store,
                ctx.directory.clone(),
                ctx.directory.clock(),
                Default::default(),
                outbox,
            )
        }),
    }
    .and_then(|hooks| {
        let about = format!("{} {change} {}", n.number, ctx.directory.now());
        hooks.emit(
            &n.tenant,
            None,
            Event::NumberChanged,
            &about,
            json!({ "change": change, "number_account": n.account }),
            json!({ "number": n.number }),
        )
    });
    if let Err(e) = queued {
        tracing::error!(error = %e, tenant = %n.tenant, "number.changed not queued for the tenant's webhooks");
    }
    Ok(())
}

/// After a change that moves deadlines (a termination, a hold): the keys
/// carry the new ones at once.
fn moved_deadlines(ctx: &Context) -> Result<(), Error> {
    for fault in ctx.retention.move_deadlines(ctx.directory.now())? {
        tracing::error!(fault = %fault, "a deadline could not be moved");
    }
    Ok(())
}

fn operator_only(scope: &Scope) -> Result<(), Error> {
    match scope {
        Scope::Operator => Ok(()),
        Scope::Tenant(_) => Err(Error::Forbidden("only the operator manages retention and legal holds".into())),
    }
}

/// The tenant a tenant-scoped request is about: a tenant's admin sees its
/// own only (another tenant is not found); the operator the one named, or
/// every tenant (`None`).
fn own_tenant(scope: &Scope, tenant: Option<TenantId>) -> Result<Option<TenantId>, Error> {
    match (scope, tenant) {
        (Scope::Tenant(own), Some(t)) if *own != t => Err(Error::NotFound(format!("no tenant {t}"))),
        (Scope::Tenant(own), _) => Ok(Some(own.clone())),
        (Scope::Operator, t) => Ok(t),
    }
}

/// Runs one request for `caller`: authorised ([`principal::authorize`]),
/// executed, and, when it changes something, audited whatever its result.
pub fn handle(ctx: &Context, caller: &Caller, request: Request) -> Result<Value, Error> {
    let op = request.op();
    let request = principal::narrow_request(&caller.principal, request);
    let objects = if op.changes() { audit_objects(&ctx.store, &request) } else { Vec::new() };
    let named_tenant = match &request {
        Request::TenantAdd { tenant } => Some(tenant.id.clone()),
        _ => None,
    };
    let mut target_tenant = None;
    let result = principal::target_of(ctx, &caller.principal, &request).and_then(|target| {
        if let principal::Owner::Tenant(t) | principal::Owner::Account(t, _) = &target.owner {
            target_tenant = Some(t.clone());
        }
        let scope = principal::authorize(&caller.principal, op, &target)?;
        execute(ctx, caller, &scope, request)
    });
    if op.changes() {
        let mut objects = objects;
        // What the change made: its id.
        if let Ok(v) = &result {
            match op {
                Op::AccountAdd => objects.extend(v["id"].as_str().map(|id| format!("account:{id}"))),
                Op::TokenCreate => objects.extend(v["record"]["id"].as_str().map(|id| format!("token:{id}"))),
                _ => {}
            }
        }
        let entry = AuditEntry {
            seq: 0,
            at: ctx.directory.now(),
            by: caller.by.clone(),
            principal: caller.principal.to_string(),
            op,
            // A principal of a tenant is audited in its own tenant, even
            // when it asked about another's (so that the other never sees it).
            tenant: caller.principal.tenant().cloned().or(target_tenant).or(named_tenant),
            objects,
            result: match &result {
                Ok(_) => "ok".into(),
                Err(e) => e.kind().into(),
            },
        };
        if let Err(e) = ctx.audit.append(entry) {
            tracing::error!(error = %e, op = ?op, "a change could not be written to the admin audit");
        }
    }
    result
}

/// The objects a change names, for the audit: ids as they are, numbers
/// and addresses as the keyed hash the log shows.
fn audit_objects(store: &Store, r: &Request) -> Vec<String> {
    use Request as R;
    use faxgate_retention::logid::{Kind, hash_with};
    let key = crate::store::layout::log_key(store);
    let number = |n: &str| {
        let parsed = n.parse::<crate::types::E164>().ok();
        format!("number:{}", hash_with(&key, Kind::Number, parsed.as_ref().map_or(n, |p| p.as_str())))
    };
    let address = |a: &str| format!("address:{}", hash_with(&key, Kind::Address, &a.to_lowercase()));
    let subject = |s: &Subject| match s {
        Subject::Number(n) => number(n.as_str()),
        Subject::Email(e) => address(e.as_str()),
    };
    let tenant = |t: &TenantId| format!("tenant:{t}");
    let account = |a: &AccountId| format!("account:{a}");
    match r {
        R::TenantAdd { tenant: t } => vec![tenant(&t.id)],
        R::TenantChange { id, .. } | R::TenantRemove { id } => vec![tenant(id)],
        R::ClaimVerify { tenant: t, claim } | R::ClaimApprove { tenant: t, claim } => {
            vec![tenant(t), format!("claim:{}", address(claim.trim()))]
        }
        R::AccountAdd { tenant: t, .. } => vec![tenant(t)],
        R::AccountChange { id, .. }
        | R::AccountTerminate { id, .. }
        | R::AccountReactivate { id }
        | R::AccountRemove { id } => vec![account(id)],
        R::NumberAdd { account: a, number: n, routes } => {
            let mut v = vec![account(a), number(n)];
            v.extend(routes.iter().map(|r| address(r.email.as_str())));
            v
        }
        R::NumberMove { number: n, account: a } => vec![number(n), account(a)],
        R::NumberRemove { number: n } => vec![number(n)],
        R::RouteSet { number: n, email, .. } | R::RouteRemove { number: n, email } => {
            vec![number(n), address(email.as_str())]
        }
        R::SenderAdd { account: a, sender, .. } => vec![account(a), format!("sender:{}", address(&sender.to_string()))],
        R::SenderChange { sender, .. } | R::SenderRemove { sender } => {
            vec![format!("sender:{}", address(&sender.to_string()))]
        }
        R::HoldAdd { number: n, account: a, .. } => n.iter().map(|n| number(n)).chain(a.iter().map(account)).collect(),
        R::HoldRemove { id } => vec![format!("hold:{id}")],
        R::GdprExport { subject: s } | R::GdprErase { subject: s } | R::GdprRestrict { subject: s, .. } => {
            vec![subject(s)]
        }
        R::GdprRectify { email, to } => vec![address(email.as_str()), address(to.as_str())],
        R::Disclosure { number: n, .. } => vec![number(n)],
        R::QueueSteer { id, action } => vec![format!("job:{}", id.to_text()), format!("action:{}", action.verb())],
        R::OutboxDrop { id } | R::ReceivedGet { id } => vec![format!("message:{}", id.to_text())],
        R::RatingSet { tenant: t, .. } => vec![tenant(t)],
        R::BillingClose { tenant: t, month, level } => vec![tenant(t), format!("{}:{month}", level.as_str())],
        R::LearnedForget { number: n, tenant: t } => t.iter().map(tenant).chain([number(n)]).collect(),
        R::TokenCreate { tenant: t, account: a, role, .. } => {
            let mut v: Vec<String> = t.iter().map(tenant).collect();
            v.extend(a.iter().map(account));
            v.push(format!("role:{}", role.as_str()));
            v
        }
        R::TokenRevoke { id } => vec![format!("token:{id}")],
        R::WebhookCreate { tenant: t, account: a, .. } => {
            let mut v = vec![tenant(t)];
            v.extend(a.iter().map(account));
            v
        }
        R::WebhookRemove { id } | R::WebhookEnable { id } => vec![format!("webhook:{id}")],
        R::FaxSend { sender, to, .. } => std::iter::once(format!("sender:{}", address(sender.as_str())))
            .chain(to.iter().map(|n| number(n)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The rated export of `tenant`'s `month` at `level`; restricted subjects'
/// rows kept with their numbers withheld. A closed month's export is the
/// one it was closed with (its CDRs written before the closing, and the
/// adjustments billed with it); an open month's has the month's CDRs and,
/// as provisional adjustments, the late CDRs of closed months not yet billed.
fn billing_export(
    ctx: &Context,
    scope: &Scope,
    tenant: &TenantId,
    month: &str,
    level: crate::billing::Level,
) -> Result<crate::billing::Export, Error> {
    crate::billing::month_bounds(month)?;
    let dir = &ctx.directory;
    dir.tenant_get(scope, tenant)?;
    let closures = dir.closures(tenant, level)?;
    match closures.iter().find(|c| c.month == month) {
        Some(c) => {
            let mut e = billing_rows(ctx, scope, tenant, month, level, Some((c.since.as_deref(), &c.watermark)))?;
            e.closed_at = Some(c.closed_at);
            Ok(e)
        }
        None => {
            let last = closures.last().map(|c| c.watermark.clone());
            billing_rows(ctx, scope, tenant, month, level, last.as_deref().map(|l| (Some(l), "")))
        }
    }
}

/// The export of `month` with its adjustments: with `window` = (since,
/// until), the month's CDRs written before `until` (all, for an empty
/// `until`) and the CDRs of the other closed months written from `since`
/// to `until` (to now, for an empty `until`).
fn billing_rows(
    ctx: &Context,
    scope: &Scope,
    tenant: &TenantId,
    month: &str,
    level: crate::billing::Level,
    window: Option<(Option<&str>, &str)>,
) -> Result<crate::billing::Export, Error> {
    let dir = &ctx.directory;
    let t = dir.tenant_get(scope, tenant)?;
    let rating = dir
        .rating_get(scope, tenant)?
        .ok_or_else(|| Error::NotFound(format!("tenant {tenant} has no rating rules (faxgate billing rules set)")))?;
    let (since, until) = crate::billing::month_bounds(month)?;
    let filter =
        CdrFilter { tenant: Some(tenant.clone()), since: Some(since), until: Some(until), ..Default::default() };
    let mut cdrs = ctx.cdrs.list(&filter)?;
    let mut late = Vec::new();
    if let Some((since, until)) = window {
        let until = (!until.is_empty()).then_some(until);
        if let Some(u) = until {
            cdrs.retain(|c| c.id.as_str() < u);
        }
        if let Some(since) = since {
            for k in dir.closures(tenant, level)? {
                // Months closed before this window's end, other than this one.
                if k.month == month || until.is_some_and(|u| k.watermark.as_str() >= u) {
                    continue;
                }
                let (from, _) = crate::billing::month_bounds(&k.month)?;
                let from_id = since.max(k.watermark.as_str());
                let found = ctx.cdrs.written_between(crate::store::layout::cdr::month_of(from), from_id, until)?;
                late.extend(found.into_iter().filter(|c| c.tenant == *tenant));
            }
        }
    }
    let restricted = Restricted::load(ctx)?;
    let concerns = |c: &Cdr| {
        c.called.as_ref().is_some_and(|n| restricted.number(n))
            || c.calling.as_ref().is_some_and(|n| restricted.number(n))
            || c.emails.iter().any(|e| restricted.email(e.as_str()))
    };
    let references = std::cell::RefCell::new(std::collections::HashMap::new());
    let reference = |a: &AccountId| {
        references
            .borrow_mut()
            .entry(*a)
            .or_insert_with(|| dir.account_get(&Scope::Operator, a).ok().and_then(|acc| acc.reference))
            .clone()
    };
    crate::billing::export(tenant, month, t.default_country, &rating, level, cdrs, late, &concerns, &reference)
}

/// `billing check`: the export's totals against the month's CDRs counted
/// apart, and every difference.
fn billing_check(
    ctx: &Context,
    scope: &Scope,
    tenant: &TenantId,
    month: &str,
    level: crate::billing::Level,
) -> Result<Value, Error> {
    let e = billing_export(ctx, scope, tenant, month, level)?;
    let (since, until) = crate::billing::month_bounds(month)?;
    let filter =
        CdrFilter { tenant: Some(tenant.clone()), since: Some(since), until: Some(until), ..Default::default() };
    let mut all = ctx.cdrs.list(&filter)?;
    // A closed month: the CDRs written before its closing; the rest are
    // billed as adjustments later.
    let mut late = 0;
    if let Some(c) = ctx.directory.closure_get(tenant, level, month)? {
        let before = all.len();
        all.retain(|x| x.id < c.watermark);
        late = (before - all.len()) as u64;
    }
    let rating = ctx.directory.rating_get(scope, tenant)?.unwrap_or_else(|| unreachable!("the export had rules"));
    let table = rating.table(level).ok_or_else(|| Error::NotFound("no such table".into()))?;
    // Counted from the CDRs themselves, not from the export's rows.
    let billable: Vec<&Cdr> = all.iter().filter(|c| table.bills(c)).collect();
    let pages: u64 = billable.iter().map(|c| c.pages as u64).sum();
    let rows_sum: rust_decimal::Decimal = e.rows.iter().map(|r| r.amount).sum();
    let own: Vec<&crate::billing::Row> = e.rows.iter().filter(|r| r.adjustment_for.is_none()).collect();
    let accounts_sum: rust_decimal::Decimal = e.accounts.values().map(|t| t.amount).sum();
    let row_pages: u64 = own.iter().map(|r| r.pages as u64).sum();
    let mut differences = Vec::new();
    if all.len() as u64 != e.cdrs {
        differences.push(format!("the month has {} CDRs, the export looked at {}", all.len(), e.cdrs));
    }
    if billable.len() != own.len() {
        differences.push(format!(
            "{} CDRs are billable, the export has {} rows of the month",
            billable.len(),
            own.len()
        ));
    }
    if pages != row_pages {
        differences.push(format!("the billable CDRs have {pages} pages, the rows {row_pages}"));
    }
    if rows_sum != e.total.amount || accounts_sum != e.total.amount {
        differences.push(format!(
            "the rows come to {rows_sum}, the accounts to {accounts_sum}, the total says {}",
            e.total.amount
        ));
    }
    to_value(crate::billing::Check {
        tenant: tenant.clone(),
        month: month.to_owned(),
        level,
        cdrs: all.len() as u64,
        billable: billable.len() as u64,
        billable_pages: pages,
        rows: own.len() as u64,
        row_pages,
        adjustments: e.adjustments,
        late,
        amount: e.total.amount,
        currency: e.currency,
        withheld: e.withheld,
        differences,
    })
}

/// Runs one request in `scope`, which [`handle`] decided.
fn execute(ctx: &Context, caller: &Caller, scope: &Scope, request: Request) -> Result<Value, Error> {
    use Request as R;
    let dir = &ctx.directory;
    let status = &ctx.status;
    match request {
        R::Status => {
            let mut s = status.clone();
            s.clock_suspended = ctx.retention.clock_watch().suspended();
            s.restart_needed = ctx.restart_needed.lock().unwrap_or_else(|p| p.into_inner()).clone();
            to_value(s)
        }
        R::LogHash { value, kind } => {
            if *scope != Scope::Operator {
                return Err(Error::Forbidden("only the operator may ask for the log hash of a value".into()));
            }
            to_value(log_hash(&ctx.store, &value, kind))
        }
        R::StoreVerify => {
            operator_only(scope)?;
            let destroyed = crate::retention::destroyed_keys(&ctx.store)?;
            to_value(crate::store::verify::verify(&ctx.store, &destroyed)?)
        }
        R::Backup { out } => {
            operator_only(scope)?;
            // No sweep while the copy is made: it holds the keys it names.
            let _no_sweep = ctx.retention.pause_sweeps();
            to_value(crate::store::backup::backup(&ctx.store, &out, dir.now())?)
        }
        R::RetentionConfirmClock => {
            operator_only(scope)?;
            let was = ctx.retention.confirm_clock(dir.now())?;
            ctx.wake.notify_one();
            Ok(json!({ "confirmed": dir.now(), "was_suspended": was }))
        }
        R::TenantAdd { tenant } => to_value(tenant_view(dir, scope, dir.tenant_add(scope, tenant)?)?),
        R::TenantList => {
            let list = dir.tenant_list(scope)?;
            to_value(list.into_iter().map(|t| tenant_view(dir, scope, t)).collect::<Result<Vec<_>, _>>()?)
        }
        R::TenantShow { id } => to_value(tenant_view(dir, scope, dir.tenant_get(scope, &id)?)?),
        R::TenantChange { id, change } => to_value(tenant_view(dir, scope, dir.tenant_change(scope, &id, change)?)?),
        R::ClaimVerify { tenant, claim } => {
            let c = dir.claim_get(scope, &tenant, &claim)?;
            // Asked on this thread (the blocking pool, or the CLI's own),
            // outside the directory's lock; the claim is judged under it.
            let found = crate::dns::txt_records(&ctx.dns_servers, &c.record(), CLAIM_LOOKUP_DEADLINE)?;
            to_value(tenant_view(dir, scope, dir.claim_verified(scope, &tenant, &claim, &found)?)?)
        }
        R::ClaimApprove { tenant, claim } => {
            to_value(tenant_view(dir, scope, dir.claim_approve(scope, &tenant, &claim)?)?)
        }
        R::TenantRemove { id } => {
            dir.tenant_remove(scope, &id)?;
            to_value(views::TenantRemoved { removed: id })
        }
        R::AccountAdd { tenant, name, reference, paper, cover, station_id } => {
            crate::directory::check_fax_settings(None, None, station_id.as_deref())?;
            let a = dir.account_add(scope, &tenant, &name, reference.as_deref(), paper)?;
            if cover.is_none() && station_id.is_none() {
                return account_view(a, dir.now());
            }
            // The cover page and the station id are a change right after the
            // add, as `directory apply` sets an account's destinations.
            let ch = AccountChange {
                cover_page: crate::directory::Patch::set_if(cover),
                station_id: crate::directory::Patch::set_if(station_id),
                ..Default::default()
            };
            account_view(dir.account_change(scope, &a.id, ch)?, dir.now())
        }
        R::AccountList { tenant } => {
            let now = dir.now();
            let list = dir.account_list(scope, tenant.as_ref())?;
            to_value(list.into_iter().map(|a| AccountView::of(a, now)).collect::<Vec<_>>())
        }
        R::AccountShow { id } => {
            let a = dir.account_get(scope, &id)?;
            let restricted = Restricted::load(ctx)?;
            let numbers = restricted.numbers(dir.number_list(scope, Some(&id), None)?);
            let senders = restricted.senders(dir.sender_list(scope, Some(&id), None)?);
            // Its senders as every sender is shown: never a password's hash.
            let senders = senders.into_iter().map(SenderView::from).collect();
            to_value(views::AccountDetail { account: AccountView::of(a, dir.now()), numbers, senders })
        }
        R::AccountChange { id, change } => account_view(dir.account_change(scope, &id, change)?, dir.now()),
        R::AccountTerminate { id, at } => {
            let a = dir.account_terminate(scope, &id, at)?;
            moved_deadlines(ctx)?;
            ctx.wake.notify_one();
            account_view(a, dir.now())
        }
        R::AccountReactivate { id } => {
            let a = dir.account_reactivate(scope, &id)?;
            moved_deadlines(ctx)?;
            account_view(a, dir.now())
        }
        R::AccountRemove { id } => to_value(dir.account_remove(scope, &id)?),
        R::NumberAdd { account, number, routes } => {
            let n = dir.number_add(scope, &account, &number, routes)?;
            number_changed(ctx, &n, "added")?;
            to_value(n)
        }
        R::NumberList { account, tenant } => {
            to_value(Restricted::load(ctx)?.numbers(dir.number_list(scope, account.as_ref(), tenant.as_ref())?))
        }
        R::NumberShow { number } => {
            let n = dir.number_get(scope, &number)?;
            let r = Restricted::load(ctx)?;
            if r.number(&n.number) {
                return Err(Error::Forbidden(RESTRICTED.into()));
            }
            to_value(r.routes(n))
        }
        R::NumberMove { number, account } => {
            let n = dir.number_move(scope, &number, &account)?;
            number_changed(ctx, &n, "moved")?;
            to_value(n)
        }
        R::NumberRemove { number } => {
            let n = dir.number_remove(scope, &number)?;
            number_changed(ctx, &n, "removed")?;
            to_value(n)
        }
        R::RouteSet { number, email, format } => to_value(dir.route_set(scope, &number, email, format)?),
        R::RouteRemove { number, email } => to_value(dir.route_remove(scope, &number, &email)?),
        R::SenderAdd { account, sender, caller_number, auth, envelope_from } => to_value(SenderView::from(
            dir.sender_add(scope, &account, sender, caller_number.as_deref(), auth, envelope_from)?,
        )),
        R::SenderList { account, tenant } => {
            let list = Restricted::load(ctx)?.senders(dir.sender_list(scope, account.as_ref(), tenant.as_ref())?);
            to_value(list.into_iter().map(SenderView::from).collect::<Vec<_>>())
        }
        R::SenderShow { sender } => {
            let found = dir.sender_get(scope, &sender)?;
            if Restricted::load(ctx)?.senders(vec![found.clone()]).is_empty() {
                return Err(Error::Forbidden(RESTRICTED.into()));
            }
            to_value(SenderView::from(found))
        }
        R::SenderChange { sender, change } => to_value(SenderView::from(dir.sender_change(scope, &sender, change)?)),
        R::SenderRemove { sender } => to_value(SenderView::from(dir.sender_remove(scope, &sender)?)),
        R::DirectoryApply { file, prune, dry_run, source } => {
            to_value(dir.apply(scope, &file, prune, dry_run, source.as_deref())?)
        }
        R::CdrList { mut filter, page } => {
            match (scope, &filter.tenant) {
                (Scope::Tenant(own), Some(t)) if own != t => return Err(Error::NotFound(format!("no tenant {t}"))),
                (Scope::Tenant(own), _) => filter.tenant = Some(own.clone()),
                (Scope::Operator, _) => {}
            }
            // Restricted subjects are left out of everything but legal exports.
            let restricted = Restricted::load(ctx)?;
            let keep = |c: &Cdr| !restricted.subjects.iter().any(|s| s.in_cdr(c));
            match page {
                None => {
                    let mut list = ctx.cdrs.list(&filter)?;
                    list.retain(keep);
                    to_value(list)
                }
                Some(p) => {
                    let bad = || Error::Invalid("cursor is not one this list gave".into());
                    let after = p.after.as_deref().map(|a| unhex(a).ok_or_else(bad)).transpose()?;
                    if after.as_ref().is_some_and(|a| crate::cdr::parse_place(a).is_none()) {
                        return Err(bad());
                    }
                    let (items, next) = ctx.cdrs.page(&filter, after.as_deref(), p.limit as usize, keep)?;
                    let mut v = json!({ "items": items });
                    if let Some(n) = next {
                        v["next"] = Value::String(n.iter().map(|b| format!("{b:02x}")).collect());
                    }
                    Ok(v)
                }
            }
        }
        R::GdprExport { subject } => {
            operator_only(scope)?;
            to_value(ctx.privacy.export(&subject)?)
        }
        R::GdprRectify { email, to } => {
            operator_only(scope)?;
            to_value(ctx.privacy.rectify_email(&email, &to)?)
        }
        R::GdprErase { subject } => {
            operator_only(scope)?;
            to_value(ctx.privacy.erase(&subject)?)
        }
        R::GdprRestrict { subject, lift } => {
            operator_only(scope)?;
            let restricted = ctx.privacy.restrict(&subject, lift)?;
            Ok(json!({ "subject": subject, "restricted": restricted }))
        }
        R::Disclosure { number, since, until, case, authority } => {
            operator_only(scope)?;
            let n = crate::types::E164::parse(&number, None).map_err(|e| Error::Invalid(e.to_string()))?;
            to_value(ctx.privacy.disclose(&n, since, until, &case, &authority)?)
        }
        R::RetentionStatus => {
            operator_only(scope)?;
            to_value(ctx.retention.status(dir.now())?)
        }
        R::RetentionAudit => {
            operator_only(scope)?;
            to_value(ctx.retention.audit_with(dir.now(), ctx.sweeper.is_running())?)
        }
        R::RetentionSweep => {
            operator_only(scope)?;
            if !status.damage.is_empty() {
                return Err(Error::Damaged {
                    what: "the store was found damaged at start; nothing is erased on it (faxgate store verify)".into(),
                });
            }
            let entry = ctx.sweeper.sweep()?;
            ctx.wake.notify_one();
            to_value(entry)
        }
        R::HoldAdd { number, account, case, until } => {
            operator_only(scope)?;
            let target = match (number, account) {
                (Some(n), None) => {
                    HoldTarget::Number(crate::types::E164::parse(&n, None).map_err(|e| Error::Invalid(e.to_string()))?)
                }
                (None, Some(a)) => HoldTarget::Account(dir.account_get(scope, &a)?.id),
                _ => return Err(Error::Invalid("a hold is on one number or one account".into())),
            };
            let h = ctx.retention.holds().add(target, &case, until, dir.now())?;
            moved_deadlines(ctx)?;
            to_value(h)
        }
        R::QueueList { tenant, account, state } => queue::list(ctx, scope, tenant, account, state),
        R::QueueShow { id } => queue::show(ctx, scope, &id),
        R::QueueSteer { id, action } => queue::steer(ctx, scope, &id, action),
        R::OutboxList { tenant } => queue::outbox_list(ctx, scope, tenant),
        R::OutboxShow { id } => queue::outbox_show(ctx, scope, &id),
        R::OutboxFlush => queue::outbox_flush(ctx, scope),
        R::OutboxDrop { id } => queue::outbox_drop(ctx, scope, &id),
        R::LearnedList { tenant } => {
            let tenant = own_tenant(scope, tenant)?;
            let restricted = Restricted::load(ctx)?;
            let mut list = crate::learned::Learning::open(&ctx.store)?.list(tenant.as_ref(), dir.now())?;
            list.retain(|l| !restricted.number(&l.number));
            to_value(list)
        }
        R::LearnedForget { number, tenant } => {
            let tenants = match own_tenant(scope, tenant)? {
                Some(t) => vec![dir.tenant_get(scope, &t)?],
                None => dir.tenant_list(scope)?,
            };
            // Each tenant reads the number with its own default country.
            let learning = crate::learned::Learning::open(&ctx.store)?;
            let (mut forgotten, mut parsed) = (Vec::new(), None);
            for t in tenants {
                let n = match crate::types::E164::parse(&number, Some(t.default_country)) {
                    Ok(n) => n,
                    Err(e) => {
                        parsed.get_or_insert(Err(e));
                        continue;
                    }
                };
                if learning.forget(&t.id, &n)? {
                    forgotten.push(t.id);
                }
                parsed = Some(Ok(n));
            }
            let n = match parsed {
                Some(Ok(n)) => n.to_string(),
                Some(Err(e)) => return Err(Error::Invalid(e.to_string())),
                None => number,
            };
            Ok(json!({ "number": n, "forgotten_in": forgotten }))
        }
        R::TokenCreate { tenant, account, role, name, expires } => {
            let wanted = Principal::new(role, tenant.clone(), account)?;
            // A tenant or account the caller cannot see is not there, as
            // one that does not exist, before its rank is looked at.
            if let Some(tenant) = &tenant {
                dir.tenant_get(scope, tenant)?;
                if let Some(a) = &account
                    && dir.account_get(scope, a)?.tenant != *tenant
                {
                    return Err(Error::NotFound(format!("no account {a}")));
                }
            }
            if wanted == Principal::Operator && !ctx.operator_tokens {
                return Err(Error::Invalid(
                    "operator tokens are off: set api.operator_tokens = true to make one (the operator otherwise uses the admin socket)"
                        .into(),
                ));
            }
            if !caller.principal.covers(&wanted) {
                return Err(Error::Forbidden(format!(
                    "a {} may make tokens only at or below its own role, in its own tenant and account",
                    caller.principal.role().as_str()
                )));
            }
            let made = dir.token_create(tenant.as_ref(), account.as_ref(), role, name, expires)?;
            to_value(views::TokenMade { token: made.token, record: TokenView::of(&made.record, dir.now()) })
        }
        R::TokenList { tenant, account } => {
            let tenant = own_tenant(scope, tenant)?;
            let now = dir.now();
            let list = dir.token_list(tenant.as_ref(), account.as_ref())?;
            to_value(list.iter().map(|t| TokenView::of(t, now)).collect::<Vec<_>>())
        }
        R::TokenRevoke { id } => {
            // One outside the caller's tenant (an operator token, to a
            // tenant's admin) is not there.
            let t = dir
                .token_get(&id)?
                .filter(|t| match scope {
                    Scope::Operator => true,
                    Scope::Tenant(own) => t.tenant.as_ref() == Some(own),
                })
                .ok_or_else(|| Error::NotFound(format!("no token {id}")))?;
            if !caller.principal.covers(&t.principal()?) {
                return Err(Error::Forbidden(format!(
                    "a {} may revoke tokens only at or below its own role",
                    caller.principal.role().as_str()
                )));
            }
            to_value(TokenView::of(&dir.token_revoke(&id)?, dir.now()))
        }
        R::WebhookCreate { tenant, account, url, events, personal_data, notify } => {
            dir.tenant_get(scope, &tenant)?;
            if let Some(a) = &account
                && dir.account_get(scope, a)?.tenant != tenant
            {
                return Err(Error::NotFound(format!("no account {a}")));
            }
            // The notice is mail in the tenant's name: only its admin (or
            // the operator) chooses where it goes; an account's webhook
            // otherwise reports to the tenant's own address.
            if notify.is_some() && caller.principal.role() < Role::TenantAdmin {
                return Err(Error::Forbidden(
                    "only a tenant's admin may set notify; without it the notice goes to the tenant's From: address"
                        .into(),
                ));
            }
            let w = dir.webhook_create(&tenant, account.as_ref(), &url, events, personal_data, notify)?;
            to_value(views::WebhookMade::from(&w))
        }
        R::WebhookList { tenant, account } => {
            let tenant = own_tenant(scope, tenant)?;
            let list = dir.webhook_list(tenant.as_ref(), account.as_ref())?;
            // An account's principal sees its account's webhooks, not the tenant's.
            let own = caller.principal.account();
            to_value(
                list.iter()
                    .filter(|w| own.is_none() || w.account.as_ref() == own)
                    .map(|w| w.view())
                    .collect::<Vec<_>>(),
            )
        }
        R::WebhookRemove { id } => to_value(dir.webhook_remove(&id)?.view()),
        R::WebhookEnable { id } => {
            let mut w = dir.webhook_get(&id)?.ok_or_else(|| Error::NotFound(format!("no webhook {id}")))?;
            w.disabled = None;
            w.failures = 0;
            dir.webhook_save(&w)?;
            to_value(w.view())
        }
        R::AuditList { tenant, since } => {
            let tenant = own_tenant(scope, tenant)?;
            let mut list = ctx.audit.list(tenant.as_ref(), since)?;
            // A tenant's admin sees that the operator acted, not which of its staff.
            if *scope != Scope::Operator {
                let operator = Principal::Operator.to_string();
                for e in list.iter_mut().filter(|e| e.principal == operator) {
                    e.by = operator.clone();
                }
            }
            to_value(list)
        }
        R::HoldList => {
            operator_only(scope)?;
            to_value(ctx.retention.holds().list()?)
        }
        R::HoldRemove { id } => {
            operator_only(scope)?;
            let h = ctx.retention.holds().remove(&id)?;
            moved_deadlines(ctx)?;
            ctx.wake.notify_one();
            to_value(h)
        }
        R::ReceivedList { tenant, account } => queue::received_list(ctx, scope, tenant, account),
        R::RatingSet { tenant, rules } => {
            // A tenant not in view is not there, before what is asked is looked at.
            dir.tenant_get(scope, &tenant)?;
            let rules = crate::billing::Rating::from_toml(&rules)?;
            to_value(dir.rating_set(scope, &tenant, rules)?)
        }
        R::RatingShow { tenant } => to_value(
            dir.rating_get(scope, &tenant)?
                .ok_or_else(|| Error::NotFound(format!("tenant {tenant} has no rating rules")))?,
        ),
        R::BillingExport { tenant, month, level } => to_value(billing_export(ctx, scope, &tenant, &month, level)?),
        R::BillingCheck { tenant, month, level } => billing_check(ctx, scope, &tenant, &month, level),
        R::BillingClose { tenant, month, level } => {
            dir.tenant_get(scope, &tenant)?;
            if level == crate::billing::Level::Wholesale && *scope != Scope::Operator {
                return Err(Error::Forbidden("only the operator closes a wholesale month".into()));
            }
            let (_, until) = crate::billing::month_bounds(&month)?;
            let now = dir.now();
            if until > now {
                return Err(Error::Invalid(format!("{month} has not ended: it can be closed from {until}")));
            }
            if dir.closure_get(&tenant, level, &month)?.is_some() {
                return Err(Error::Conflict(format!("{} {month} of {tenant} is closed already", level.as_str())));
            }
            let since = dir.closures(&tenant, level)?.last().map(|c| c.watermark.clone());
            let watermark = CdrStore::new_id();
            let e = billing_rows(ctx, scope, &tenant, &month, level, Some((since.as_deref(), &watermark)))?;
            let closure = crate::billing::Closure {
                tenant: tenant.clone(),
                level,
                month: month.clone(),
                closed_at: now,
                watermark,
                since,
                rows: e.rows.len() as u64,
                amount: e.total.amount,
                currency: e.currency.clone(),
            };
            dir.closure_add(&closure)?;
            to_value(closure)
        }
        R::ReceivedGet { id } => queue::received_get(ctx, scope, &id),
        R::FaxSend { sender, to, subject, comment, document, idempotency_key } => {
            send::send(ctx, caller, send::Fax { sender, to, subject, comment, document, idempotency_key })
        }
    }
}

const RESTRICTED: &str = "processing of this data is restricted (GDPR Art. 18): it is kept, and shown only \
     in legal exports (gdpr export, disclosure export) until the restriction is lifted";

/// The subjects whose processing is restricted (GDPR Art. 18): their data
/// is kept, but left out of listings, shows and billing; the subject's own
/// export and lawful disclosure still include it.
struct Restricted {
    subjects: Vec<Subject>,
}

impl Restricted {
    fn load(ctx: &Context) -> Result<Self, Error> {
        Ok(Restricted { subjects: ctx.privacy.restricted()? })
    }

    fn number(&self, n: &crate::types::E164) -> bool {
        self.subjects.iter().any(|s| matches!(s, Subject::Number(x) if x == n))
    }

    fn email(&self, e: &str) -> bool {
        self.subjects.iter().any(|s| matches!(s, Subject::Email(x) if x.as_str().eq_ignore_ascii_case(e)))
    }

    /// A number without the routes to restricted addresses.
    fn routes(&self, mut n: crate::directory::FaxNumber) -> crate::directory::FaxNumber {
        n.routes.retain(|r| !self.email(r.email.as_str()));
        n
    }

    fn numbers(&self, list: Vec<crate::directory::FaxNumber>) -> Vec<crate::directory::FaxNumber> {
        list.into_iter().filter(|n| !self.number(&n.number)).map(|n| self.routes(n)).collect()
    }

    fn senders(&self, list: Vec<crate::directory::Sender>) -> Vec<crate::directory::Sender> {
        list.into_iter()
            .filter(|s| {
                let pattern = s.pattern.to_string();
                !self.email(&pattern) && !s.caller_number.as_ref().is_some_and(|c| self.number(c))
            })
            .collect()
    }
}

/// How long a claim's DNS lookup may take.
const CLAIM_LOOKUP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// A tenant as shown: with its claims waiting for proof (`pending`), each
/// with the TXT record that proves it.
fn tenant_view(dir: &Directory, scope: &Scope, t: Tenant) -> Result<TenantView, Error> {
    let pending = dir.claim_list(scope, &t.id)?.iter().map(|c| c.view()).collect();
    Ok(TenantView { tenant: t, pending })
}

fn account_view(a: crate::directory::Account, now: Timestamp) -> Result<Value, Error> {
    to_value(AccountView::of(a, now))
}

#[cfg(test)]
mod tests;
