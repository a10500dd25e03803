//! The API's operations: each builds the admin [`Request`] the CLI would
//! send and runs it through [`crate::admin::handle`], the one
//! implementation of every operation (authorisation, isolation, audit).
//! The OpenAPI document is generated from these functions and types.

// utoipa's path macro writes the parameter types out in full.
#![allow(unused_qualifications)]

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Api;
use super::problem::Problem;
use crate::admin::StateFilter;
use crate::admin::principal::Role;
use crate::admin::send::FaxAccepted;
use crate::admin::views::{
    AccountDetail, AccountView, SenderView, TenantRemoved, TenantView, TokenMade, TokenView, WebhookMade,
};
use crate::admin::{AuditEntry, JobRow, JobView, ReceivedRow};
use crate::admin::{Caller, Request};
use crate::cdr::Cdr;
use crate::cdr::CdrFilter;
use crate::directory::{AccountChange, Paper, Route, SenderAuth, SenderChange, Tenant, TenantChange};
use crate::directory::{AttachmentFormat, EnvelopeFrom, SenderPattern};
use crate::directory::{FaxNumber, Removed, WebhookView};
use crate::gateway::Steer;
use crate::types::{AccountId, E164, EmailAddress, JobId, TenantId};

/// A JSON body; what is not one answers as a problem.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(Problem))]
pub(super) struct Body<T>(T);

/// A query string.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Problem))]
pub(super) struct Query<T>(T);

/// Path parameters.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Problem))]
pub(super) struct Path<T>(T);

/// The caller, known by the bearer token (`Authorization: Bearer fgt_…`).
pub(super) struct Auth(Caller);

impl FromRequestParts<Arc<Api>> for Auth {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<Self, Problem> {
        let peer = parts.extensions.get::<super::Peer>().map(|p| p.0.ip().to_string()).unwrap_or_default();
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned())
            .ok_or_else(|| Problem::unauthorized("an API token is needed: Authorization: Bearer fgt_…"))?;
        let ctx = api.ctx.clone();
        let (record, principal) = tokio::task::spawn_blocking(move || ctx.directory.authenticate(&token))
            .await
            .map_err(|e| Problem::internal(format!("cannot check the token: {e}")))?
            .map_err(|e| {
                // For fail2ban (contrib/fail2ban): the address, never the token.
                tracing::warn!("api auth failed from {peer}: {e}");
                Problem::unauthorized(e.to_string())
            })?;
        if principal == crate::admin::Principal::Operator && !api.ctx.operator_tokens {
            tracing::warn!("api auth failed from {peer}: an operator token while api.operator_tokens is off");
            return Err(Problem::unauthorized("operator tokens are off (api.operator_tokens)"));
        }
        api.admit(&record.id)?;
        Ok(Auth(Caller::token(principal, &record.id)))
    }
}

/// A number in the path that is not one names nothing: 404, with why.
fn named(number: &str, r: Result<Value, Problem>) -> Result<Value, Problem> {
    r.map_err(|p| match p.status {
        400 => Problem::not_found(format!("no fax number {number}: {}", p.detail)),
        _ => p,
    })
}

/// Runs `request` as `caller` on the blocking pool.
async fn run(api: &Api, caller: Caller, request: Request) -> Result<Value, Problem> {
    let ctx = api.ctx.clone();
    tokio::task::spawn_blocking(move || crate::admin::handle(&ctx, &caller, request))
        .await
        .map_err(|e| Problem::internal(format!("the request failed: {e}")))?
        .map_err(Problem::from)
}

/// One page of a list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct Page {
    /// How many items, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Where to go on: the `next` of the page before.
    #[param(pattern = "^[0-9a-f]{1,512}$")]
    cursor: Option<String>,
}

/// A page of a list, as answered; its items are of the list's type, which
/// the document names with one of the pages below.
#[derive(Debug, serde::Serialize)]
pub(super) struct Paged {
    items: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// The document's page of each list.
macro_rules! pages {
    ($($page:ident => $item:ty;)*) => {$(
        #[doc = concat!("A page of the list of ", stringify!($item), "s.")]
        #[derive(ToSchema)]
        #[allow(dead_code)]
        struct $page {
            /// The items, in the list's order.
            items: Vec<$item>,
            /// The cursor of the next page; absent on the last.
            next: Option<String>,
        }
    )*};
}

pages! {
    TenantPage => TenantView;
    AccountPage => AccountView;
    NumberPage => FaxNumber;
    SenderPage => SenderView;
    CdrPage => Cdr;
    JobPage => JobRow;
    ReceivedPage => ReceivedRow;
    TokenPage => TokenView;
    WebhookPage => WebhookView;
    AuditPage => AuditEntry;
}

/// One answer: the object, as the CLI's `--json` shows it.
#[derive(Debug, serde::Serialize, ToSchema)]
#[schema(value_type = Object)]
pub(super) struct Object(Value);

impl IntoResponse for Object {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl IntoResponse for Paged {
    fn into_response(self) -> Response {
        axum::Json(self).into_response()
    }
}

/// An object made: 201.
pub(super) struct Created(Value);

impl IntoResponse for Created {
    fn into_response(self) -> Response {
        (StatusCode::CREATED, axum::Json(self.0)).into_response()
    }
}

const MAX_PAGE: u32 = 1000;

fn paged(v: Value, page: &Page) -> Result<Paged, Problem> {
    let limit = page.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::invalid(format!("limit must be 1 to {MAX_PAGE}, not {limit}")));
    }
    let Value::Array(items) = v else { return Err(Problem::internal("the list is not a list")) };
    // Past the end (the list has shrunk since): an empty last page.
    let start = match &page.cursor {
        None => 0,
        Some(c) => {
            c.parse::<usize>().map_err(|_| Problem::invalid("cursor is not one this list gave"))?.min(items.len())
        }
    };
    let end = (start + limit as usize).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    Ok(Paged { items: items.into_iter().skip(start).take(end - start).collect(), next })
}

type Res<T> = Result<T, Problem>;
type St = State<Arc<Api>>;

// ---------------------------------------------------------------- tenants

/// The tenants the caller sees (the operator: all; a tenant admin: its own).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(Page),
    responses((status = 200, body = TenantPage), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn tenant_list(State(api): St, Auth(c): Auth, Query(p): Query<Page>) -> Res<Paged> {
    paged(run(&api, c, Request::TenantList).await?, &p)
}

/// Adds a tenant (operator).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = Tenant,
    responses((status = 201, body = TenantView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn tenant_add(State(api): St, Auth(c): Auth, Body(tenant): Body<Tenant>) -> Res<Created> {
    Ok(Created(run(&api, c, Request::TenantAdd { tenant }).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct TenantPath {
    /// The tenant's id.
    tenant: TenantId,
}

/// One tenant.
#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = "tenants", params(TenantPath),
    responses((status = 200, body = TenantView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn tenant_show(State(api): St, Auth(c): Auth, Path(p): Path<TenantPath>) -> Res<Object> {
    Ok(Object(run(&api, c, Request::TenantShow { id: p.tenant }).await?))
}

/// Changes a tenant.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}", tag = "tenants", params(TenantPath), request_body = TenantChange,
    responses((status = 200, body = TenantView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn tenant_change(
    State(api): St,
    Auth(c): Auth,
    Path(p): Path<TenantPath>,
    Body(change): Body<TenantChange>,
) -> Res<Object> {
    Ok(Object(run(&api, c, Request::TenantChange { id: p.tenant, change }).await?))
}

/// Removes a tenant with its accounts, numbers and senders (operator).
#[utoipa::path(delete, path = "/v1/tenants/{tenant}", tag = "tenants", params(TenantPath),
    responses((status = 200, body = TenantRemoved), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn tenant_remove(State(api): St, Auth(c): Auth, Path(p): Path<TenantPath>) -> Res<Object> {
    Ok(Object(run(&api, c, Request::TenantRemove { id: p.tenant }).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct ClaimPath {
    /// The tenant's id.
    tenant: TenantId,
    /// A fax domain or From: address of the tenant that waits for proof
    /// (its `pending` list).
    #[param(max_length = 320)]
    claim: String,
}

/// Checks a pending fax domain or From: address through the DNS: when the
/// TXT record `_faxgate-challenge.<domain>` holds `faxgate-verify=<token>`
/// (both in the tenant's `pending` list), it takes effect; otherwise 409,
/// saying which record to publish.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/claims/{claim}/verify", tag = "tenants", params(ClaimPath),
    responses((status = 200, body = TenantView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn claim_verify(State(api): St, Auth(c): Auth, Path(p): Path<ClaimPath>) -> Res<Object> {
    Ok(Object(run(&api, c, Request::ClaimVerify { tenant: p.tenant, claim: p.claim }).await?))
}

/// Lets a pending fax domain or From: address take effect without DNS
/// (the operator only).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/claims/{claim}/approve", tag = "tenants", params(ClaimPath),
    responses((status = 200, body = TenantView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn claim_approve(State(api): St, Auth(c): Auth, Path(p): Path<ClaimPath>) -> Res<Object> {
    Ok(Object(run(&api, c, Request::ClaimApprove { tenant: p.tenant, claim: p.claim }).await?))
}

// ---------------------------------------------------------------- accounts

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct InTenant {
    /// Only this tenant's (the operator); others see their own.
    tenant: Option<TenantId>,
}

/// The accounts the caller sees.
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", params(InTenant, Page),
    responses((status = 200, body = AccountPage), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn account_list(State(api): St, Auth(c): Auth, Query(q): Query<InTenant>, Query(p): Query<Page>) -> Res<Paged> {
    paged(run(&api, c, Request::AccountList { tenant: q.tenant }).await?, &p)
}

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    /// Its tenant.
    tenant: TenantId,
    /// The customer's name.
    name: String,
    /// The tenant's own reference for it.
    reference: Option<String>,
    /// Paper size of its faxes; unset: the tenant's.
    paper: Option<Paper>,
    /// Whether its faxes get a cover page.
    cover: Option<bool>,
    /// Its fax station id.
    station_id: Option<String>,
}

/// Adds an account to a tenant.
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", request_body = NewAccount,
    responses((status = 201, body = AccountView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn account_add(State(api): St, Auth(c): Auth, Body(a): Body<NewAccount>) -> Res<Created> {
    let r = Request::AccountAdd {
        tenant: a.tenant,
        name: a.name,
        reference: a.reference,
        paper: a.paper,
        cover: a.cover,
        station_id: a.station_id,
    };
    Ok(Created(run(&api, c, r).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct AccountPath {
    /// The account's id (`acc-` and 32 hex digits).
    account: AccountId,
}

/// One account.
#[utoipa::path(get, path = "/v1/accounts/{account}", tag = "accounts", params(AccountPath),
    responses((status = 200, body = AccountDetail), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn account_show(State(api): St, Auth(c): Auth, Path(p): Path<AccountPath>) -> Res<Object> {
    Ok(Object(run(&api, c, Request::AccountShow { id: p.account }).await?))
}

/// Changes an account.
#[utoipa::path(patch, path = "/v1/accounts/{account}", tag = "accounts", params(AccountPath),
    request_body = AccountChange, responses((status = 200, body = AccountView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn account_change(
    State(api): St,
    Auth(c): Auth,
    Path(p): Path<AccountPath>,
    Body(change): Body<AccountChange>,
) -> Res<Object> {
    Ok(Object(run(&api, c, Request::AccountChange { id: p.account, change }).await?))
}

/// Removes an account now, with its numbers and senders.
#[utoipa::path(delete, path = "/v1/accounts/{account}", tag = "accounts", params(AccountPath),
    responses((status = 200, body = Removed), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn account_remove(State(api): St, Auth(c): Auth, Path(p): Path<AccountPath>) -> Res<Object> {
    Ok(Object(run(&api, c, Request::AccountRemove { id: p.account }).await?))
}

/// When an account ends.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Terminate {
    /// When its service ends; unset: now. Its data is erased
    /// `retention.account_data` later.
    #[schema(value_type = Option<String>, format = DateTime)]
    at: Option<Timestamp>,
}

/// Terminates an account (the retention period of its data starts).
#[utoipa::path(post, path = "/v1/accounts/{account}/terminate", tag = "accounts", params(AccountPath),
    request_body = Terminate, responses((status = 200, body = AccountView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn account_terminate(
    State(api): St,
    Auth(c): Auth,
    Path(p): Path<AccountPath>,
    Body(t): Body<Terminate>,
) -> Res<Object> {
    Ok(Object(run(&api, c, Request::AccountTerminate { id: p.account, at: t.at }).await?))
}

/// Takes back a termination that has not been erased yet.
#[utoipa::path(post, path = "/v1/accounts/{account}/reactivate", tag = "accounts", params(AccountPath),
    responses((status = 200, body = AccountView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn account_reactivate(State(api): St, Auth(c): Auth, Path(p): Path<AccountPath>) -> Res<Object> {
    Ok(Object(run(&api, c, Request::AccountReactivate { id: p.account }).await?))
}

// ---------------------------------------------------------------- numbers

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct InAccount {
    /// Only this account's.
    account: Option<AccountId>,
    /// Only this tenant's (the operator).
    tenant: Option<TenantId>,
}

/// The fax numbers the caller sees.
#[utoipa::path(get, path = "/v1/numbers", tag = "numbers", params(InAccount, Page),
    responses((status = 200, body = NumberPage), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn number_list(State(api): St, Auth(c): Auth, Query(q): Query<InAccount>, Query(p): Query<Page>) -> Res<Paged> {
    paged(run(&api, c, Request::NumberList { account: q.account, tenant: q.tenant }).await?, &p)
}

/// A new fax number.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewNumber {
    /// The account it belongs to.
    account: AccountId,
    /// The number, in E.164 (`+4533221100`) or national form.
    number: String,
    /// Where its faxes are mailed.
    #[serde(default)]
    routes: Vec<Route>,
}

/// Adds a fax number to an account.
#[utoipa::path(post, path = "/v1/numbers", tag = "numbers", request_body = NewNumber,
    responses((status = 201, body = FaxNumber), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn number_add(State(api): St, Auth(c): Auth, Body(n): Body<NewNumber>) -> Res<Created> {
    Ok(Created(run(&api, c, Request::NumberAdd { account: n.account, number: n.number, routes: n.routes }).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct NumberPath {
    /// The number, in E.164.
    number: String,
}

/// One fax number with its routes.
#[utoipa::path(get, path = "/v1/numbers/{number}", tag = "numbers", params(NumberPath),
    responses((status = 200, body = FaxNumber), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn number_show(State(api): St, Auth(c): Auth, Path(p): Path<NumberPath>) -> Res<Object> {
    Ok(Object(named(&p.number.clone(), run(&api, c, Request::NumberShow { number: p.number }).await)?))
}

/// Removes a fax number.
#[utoipa::path(delete, path = "/v1/numbers/{number}", tag = "numbers", params(NumberPath),
    responses((status = 200, body = FaxNumber), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn number_remove(State(api): St, Auth(c): Auth, Path(p): Path<NumberPath>) -> Res<Object> {
    Ok(Object(named(&p.number.clone(), run(&api, c, Request::NumberRemove { number: p.number }).await)?))
}

/// Where a number goes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MoveTo {
    /// The account (of the same tenant) it moves to.
    account: AccountId,
}

/// Moves a fax number to another account of the same tenant.
#[utoipa::path(post, path = "/v1/numbers/{number}/move", tag = "numbers", params(NumberPath), request_body = MoveTo,
    responses((status = 200, body = FaxNumber), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn number_move(State(api): St, Auth(c): Auth, Path(p): Path<NumberPath>, Body(m): Body<MoveTo>) -> Res<Object> {
    Ok(Object(named(
        &p.number.clone(),
        run(&api, c, Request::NumberMove { number: p.number, account: m.account }).await,
    )?))
}

/// A route of a number: a mailbox and the attachment format.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RouteBody {
    /// The mailbox.
    email: EmailAddress,
    /// What is attached.
    #[serde(default)]
    format: AttachmentFormat,
}

/// Sets a route of a number: faxes to it are mailed to the address.
#[utoipa::path(put, path = "/v1/numbers/{number}/routes", tag = "numbers", params(NumberPath),
    request_body = RouteBody, responses((status = 200, body = FaxNumber), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn route_set(State(api): St, Auth(c): Auth, Path(p): Path<NumberPath>, Body(r): Body<RouteBody>) -> Res<Object> {
    Ok(Object(named(
        &p.number.clone(),
        run(&api, c, Request::RouteSet { number: p.number, email: r.email, format: r.format }).await,
    )?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct RoutePath {
    /// The number, in E.164.
    number: String,
    /// The route's mailbox.
    email: EmailAddress,
}

/// Removes a route of a number.
#[utoipa::path(delete, path = "/v1/numbers/{number}/routes/{email}", tag = "numbers", params(RoutePath),
    responses((status = 200, body = FaxNumber), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn route_remove(State(api): St, Auth(c): Auth, Path(p): Path<RoutePath>) -> Res<Object> {
    Ok(Object(named(&p.number.clone(), run(&api, c, Request::RouteRemove { number: p.number, email: p.email }).await)?))
}

// ---------------------------------------------------------------- senders

/// The senders (addresses and domains that may mail faxes) the caller sees.
#[utoipa::path(get, path = "/v1/senders", tag = "senders", params(InAccount, Page),
    responses((status = 200, body = SenderPage), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn sender_list(State(api): St, Auth(c): Auth, Query(q): Query<InAccount>, Query(p): Query<Page>) -> Res<Paged> {
    paged(run(&api, c, Request::SenderList { account: q.account, tenant: q.tenant }).await?, &p)
}

/// A new sender.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewSender {
    /// The account its faxes are sent for.
    account: AccountId,
    /// An address, or `@domain` for a whole domain.
    sender: SenderPattern,
    /// The number its faxes are sent from.
    caller_number: Option<String>,
    /// How it proves who it is.
    auth: SenderAuth,
    /// The envelope sender of its reports.
    #[serde(default)]
    envelope_from: EnvelopeFrom,
}

/// Adds a sender to an account.
#[utoipa::path(post, path = "/v1/senders", tag = "senders", request_body = NewSender,
    responses((status = 201, body = SenderView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn sender_add(State(api): St, Auth(c): Auth, Body(s): Body<NewSender>) -> Res<Created> {
    let r = Request::SenderAdd {
        account: s.account,
        sender: s.sender,
        caller_number: s.caller_number,
        auth: s.auth,
        envelope_from: s.envelope_from,
    };
    Ok(Created(run(&api, c, r).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct SenderPath {
    /// The address, or `@domain`.
    sender: SenderPattern,
}

/// One sender.
#[utoipa::path(get, path = "/v1/senders/{sender}", tag = "senders", params(SenderPath),
    responses((status = 200, body = SenderView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn sender_show(State(api): St, Auth(c): Auth, Path(p): Path<SenderPath>) -> Res<Object> {
    Ok(Object(run(&api, c, Request::SenderShow { sender: p.sender }).await?))
}

/// Changes a sender.
#[utoipa::path(patch, path = "/v1/senders/{sender}", tag = "senders", params(SenderPath), request_body = SenderChange,
    responses((status = 200, body = SenderView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn sender_change(
    State(api): St,
    Auth(c): Auth,
    Path(p): Path<SenderPath>,
    Body(change): Body<SenderChange>,
) -> Res<Object> {
    Ok(Object(run(&api, c, Request::SenderChange { sender: p.sender, change }).await?))
}

/// Removes a sender.
#[utoipa::path(delete, path = "/v1/senders/{sender}", tag = "senders", params(SenderPath),
    responses((status = 200, body = SenderView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn sender_remove(State(api): St, Auth(c): Auth, Path(p): Path<SenderPath>) -> Res<Object> {
    Ok(Object(run(&api, c, Request::SenderRemove { sender: p.sender }).await?))
}

// ---------------------------------------------------------------- fax history

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CdrQuery {
    /// Only this tenant's (the operator).
    tenant: Option<TenantId>,
    /// Only this account's.
    account: Option<AccountId>,
    /// Only those with this calling or called number (E.164).
    number: Option<E164>,
    /// Started at or after.
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<Timestamp>,
    /// Started before.
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<Timestamp>,
}

/// The fax history: call detail records, oldest first.
#[utoipa::path(get, path = "/v1/cdrs", tag = "history", params(CdrQuery, Page),
    responses((status = 200, body = CdrPage), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn cdr_list(State(api): St, Auth(c): Auth, Query(q): Query<CdrQuery>, Query(p): Query<Page>) -> Res<Paged> {
    let filter = CdrFilter { tenant: q.tenant, account: q.account, number: q.number, since: q.since, until: q.until };
    let limit = p.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::invalid(format!("limit must be 1 to {MAX_PAGE}, not {limit}")));
    }
    // Paged in the store: a page of a month reads that page, not the month.
    let page = crate::admin::CdrPage { after: p.cursor, limit };
    let mut v = run(&api, c, Request::CdrList { filter, page: Some(page) }).await?;
    let items = match v["items"].take() {
        Value::Array(a) => a,
        _ => return Err(Problem::internal("the list is not a list")),
    };
    Ok(Paged { items, next: v.get("next").and_then(Value::as_str).map(str::to_owned) })
}

// ---------------------------------------------------------------- queue

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct QueueQuery {
    /// Only this tenant's (the operator).
    tenant: Option<TenantId>,
    /// Only this account's.
    account: Option<AccountId>,
    /// Only jobs in this state.
    state: Option<StateFilter>,
}

/// The fax jobs: queued, being called, held, and done until swept.
#[utoipa::path(get, path = "/v1/faxes", tag = "faxes", params(QueueQuery, Page),
    responses((status = 200, body = JobPage), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn queue_list(State(api): St, Auth(c): Auth, Query(q): Query<QueueQuery>, Query(p): Query<Page>) -> Res<Paged> {
    paged(run(&api, c, Request::QueueList { tenant: q.tenant, account: q.account, state: q.state }).await?, &p)
}

/// A fax to send: the form of `POST /v1/faxes`.
#[derive(ToSchema)]
#[allow(dead_code)]
struct FaxUpload {
    /// The sender (an address sender of the account): the report goes there.
    #[schema(format = "email")]
    sender: String,
    /// Fax numbers: `+4533221100`, or as the tenant's country dials them;
    /// the field again, or commas, for more than one (at most 100).
    to: Vec<String>,
    /// The subject (of the report and the cover page); default the file name.
    subject: Option<String>,
    /// A text for the cover page (or a page of its own).
    comment: Option<String>,
    /// The document: PDF, TIFF, PNG, JPEG, text or anything mail-to-fax
    /// renders; its media type from the part's Content-Type, or its file name.
    #[schema(value_type = String, format = Binary)]
    document: Vec<u8>,
}

/// A fax accepted: 202.
pub(super) struct Accepted(Value);

impl IntoResponse for Accepted {
    fn into_response(self) -> Response {
        (StatusCode::ACCEPTED, axum::Json(self.0)).into_response()
    }
}

/// Sends a document as a fax, as mailing it to the fax numbers would: the
/// same recipient rules, rendering, queue, report to the sender, CDRs and
/// webhooks. Answered once the fax is on disk; the jobs then show under
/// `GET /v1/faxes`. The same `Idempotency-Key` again within a day is
/// answered with the first fax's id (`already_queued`), not sent twice.
#[utoipa::path(post, path = "/v1/faxes", tag = "faxes",
    request_body(content = FaxUpload, content_type = "multipart/form-data"),
    params(("Idempotency-Key" = Option<String>, Header, description = "The same key again within a day: the first answer, not a second fax.")),
    responses((status = 202, body = FaxAccepted), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn fax_send(
    State(api): St,
    Auth(c): Auth,
    headers: axum::http::HeaderMap,
    form: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Res<Accepted> {
    let mut form = form.map_err(|r| {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid",
            format!("the body must be a form (multipart/form-data): {}", r.body_text()),
        )
    })?;
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        Problem::invalid(format!("the form cannot be read: {}", e.body_text()))
    };
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            Some(v.to_str().map_err(|_| Problem::invalid("Idempotency-Key: printable ASCII only"))?.trim().to_owned())
        }
    };
    let (mut sender, mut to, mut subject, mut comment, mut document) = (None, Vec::new(), None, None, None);
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or("").to_owned();
        match name.as_str() {
            "document" => {
                if document.is_some() {
                    return Err(Problem::invalid("one document a fax: the form has two"));
                }
                let filename = field.file_name().filter(|f| !f.is_empty()).unwrap_or("document").to_owned();
                let content_type = field
                    .content_type()
                    .map(str::to_owned)
                    .filter(|t| !t.eq_ignore_ascii_case("application/octet-stream"))
                    .unwrap_or_else(|| crate::admin::send::media_type_of(&filename).to_owned());
                let data = field.bytes().await.map_err(unreadable)?.to_vec();
                document = Some(crate::admin::send::Upload { filename, content_type, data });
            }
            "sender" | "to" | "subject" | "comment" => {
                let text = field.text().await.map_err(unreadable)?;
                match name.as_str() {
                    "sender" => sender = Some(text),
                    "to" => to.extend(text.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned)),
                    "subject" => subject = Some(text),
                    _ => comment = Some(text),
                }
            }
            other => {
                return Err(Problem::invalid(format!("the form has a field {other:?} this operation does not take")));
            }
        }
    }
    let sender: EmailAddress = sender
        .ok_or_else(|| Problem::invalid("sender: the form has no sender (the address the report goes to)"))?
        .trim()
        .parse()
        .map_err(|e| Problem::invalid(format!("sender: {e}")))?;
    let document = document.ok_or_else(|| Problem::invalid("document: the form has no document"))?;
    let request = Request::FaxSend { sender, to, subject, comment, document, idempotency_key };
    Ok(Accepted(run(&api, c, request).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct JobPath {
    /// The job's id (`job-` and 32 hex digits).
    job: JobId,
}

/// One fax job with its attempts.
#[utoipa::path(get, path = "/v1/faxes/{job}", tag = "faxes", params(JobPath),
    responses((status = 200, body = JobView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn queue_show(State(api): St, Auth(c): Auth, Path(p): Path<JobPath>) -> Res<Object> {
    Ok(Object(run(&api, c, Request::QueueShow { id: p.job }).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct SteerPath {
    /// The job's id.
    job: JobId,
    /// What to do: `retry` (call now), `cancel`, `hold`, `release`.
    action: Steer,
}

/// Steers a queued job: call it now, cancel it, hold or release it.
#[utoipa::path(post, path = "/v1/faxes/{job}/{action}", tag = "faxes", params(SteerPath),
    responses((status = 200, body = JobRow), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn queue_steer(State(api): St, Auth(c): Auth, Path(p): Path<SteerPath>) -> Res<Object> {
    Ok(Object(run(&api, c, Request::QueueSteer { id: p.job, action: p.action }).await?))
}

// ---------------------------------------------------------------- received faxes

/// Received faxes whose mail is still kept: waiting for the mail server to
/// take it, or given up and kept `retention.outbox_failed` (see `erase_by`).
/// A fax whose mail was delivered is no longer kept, and not listed.
#[utoipa::path(get, path = "/v1/received", tag = "faxes", params(InAccount, Page),
    responses((status = 200, body = ReceivedPage), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn received_list(State(api): St, Auth(c): Auth, Query(q): Query<InAccount>, Query(p): Query<Page>) -> Res<Paged> {
    paged(run(&api, c, Request::ReceivedList { tenant: q.tenant, account: q.account }).await?, &p)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct ReceivedPath {
    /// The received fax's id (`job-` and 32 hex digits), from the list.
    id: JobId,
}

/// A received fax's document (its PDF, else its TIFF), while its mail is
/// kept; each download is in the audit.
#[utoipa::path(get, path = "/v1/received/{id}/document", tag = "faxes", params(ReceivedPath),
    responses(
        (status = 200, description = "The document", content((String = "application/pdf"), (String = "image/tiff"))),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn received_document(State(api): St, Auth(c): Auth, Path(p): Path<ReceivedPath>) -> Res<Response> {
    use base64::Engine;
    let v = run(&api, c, Request::ReceivedGet { id: p.id }).await?;
    let doc = &v["document"];
    let data = base64::engine::general_purpose::STANDARD
        .decode(doc["data"].as_str().unwrap_or_default())
        .map_err(|e| Problem::internal(format!("the document cannot be read: {e}")))?;
    let media = doc["content_type"].as_str().unwrap_or("application/octet-stream").to_owned();
    // The file name faxgate made (fax-<date>-<caller>.pdf): no quotes or controls in it.
    let name: String = doc["filename"]
        .as_str()
        .unwrap_or("fax")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
        .collect();
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, media),
            (axum::http::header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            (axum::http::header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        data,
    )
        .into_response())
}

// ---------------------------------------------------------------- tokens

/// The API tokens the caller sees (never their secrets).
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", params(InAccount, Page),
    responses((status = 200, body = TokenPage), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn token_list(State(api): St, Auth(c): Auth, Query(q): Query<InAccount>, Query(p): Query<Page>) -> Res<Paged> {
    paged(run(&api, c, Request::TokenList { tenant: q.tenant, account: q.account }).await?, &p)
}

/// A new API token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    /// Its tenant; none for an operator token (the operator's, with
    /// `api.operator_tokens` on).
    tenant: Option<TenantId>,
    /// Its account, for the account roles.
    account: Option<AccountId>,
    /// The role it acts with: at or below the caller's.
    role: Role,
    /// A name to tell it by.
    name: Option<String>,
    /// When it stops working.
    #[schema(value_type = Option<String>, format = DateTime)]
    expires: Option<Timestamp>,
}

/// Makes an API token; the answer holds its secret, shown this once.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = TokenMade), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn token_create(State(api): St, Auth(c): Auth, Body(t): Body<NewToken>) -> Res<Created> {
    let r =
        Request::TokenCreate { tenant: t.tenant, account: t.account, role: t.role, name: t.name, expires: t.expires };
    Ok(Created(run(&api, c, r).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct TokenPath {
    /// The token's id.
    id: String,
}

/// Revokes an API token.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens", params(TokenPath),
    responses((status = 200, body = TokenView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn token_revoke(State(api): St, Auth(c): Auth, Path(p): Path<TokenPath>) -> Res<Object> {
    Ok(Object(run(&api, c, Request::TokenRevoke { id: p.id }).await?))
}

// ---------------------------------------------------------------- webhooks

/// The webhooks the caller sees (never their secrets).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(InAccount, Page),
    responses((status = 200, body = WebhookPage), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn webhook_list(State(api): St, Auth(c): Auth, Query(q): Query<InAccount>, Query(p): Query<Page>) -> Res<Paged> {
    paged(run(&api, c, Request::WebhookList { tenant: q.tenant, account: q.account }).await?, &p)
}

/// A new webhook.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewWebhook {
    /// Its tenant.
    tenant: TenantId,
    /// Only this account's events.
    account: Option<AccountId>,
    /// Where events are POSTed: `https://…`, or `http://` to a loopback address.
    url: String,
    /// The events it gets.
    events: Vec<crate::directory::webhooks::Event>,
    /// Numbers and mail addresses in the payloads (otherwise ids and results only).
    #[serde(default)]
    personal_data: bool,
    /// Where a notice is mailed, in the tenant's branding, if the webhook is
    /// disabled after failures in a row; without it, the tenant's own From address.
    #[serde(default)]
    notify: Option<EmailAddress>,
}

/// Makes a webhook; the answer holds its signing secret, shown this once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = NewWebhook,
    responses((status = 201, body = WebhookMade), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn webhook_create(State(api): St, Auth(c): Auth, Body(w): Body<NewWebhook>) -> Res<Created> {
    let r = Request::WebhookCreate {
        tenant: w.tenant,
        account: w.account,
        url: w.url,
        events: w.events,
        personal_data: w.personal_data,
        notify: w.notify,
    };
    Ok(Created(run(&api, c, r).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct WebhookPath {
    /// The webhook's id.
    id: String,
}

/// Removes a webhook; its pending deliveries are dropped.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(WebhookPath),
    responses((status = 200, body = WebhookView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn webhook_remove(State(api): St, Auth(c): Auth, Path(p): Path<WebhookPath>) -> Res<Object> {
    Ok(Object(run(&api, c, Request::WebhookRemove { id: p.id }).await?))
}

/// Enables a webhook that failures disabled.
#[utoipa::path(post, path = "/v1/webhooks/{id}/enable", tag = "webhooks", params(WebhookPath),
    responses((status = 200, body = WebhookView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn webhook_enable(State(api): St, Auth(c): Auth, Path(p): Path<WebhookPath>) -> Res<Object> {
    Ok(Object(run(&api, c, Request::WebhookEnable { id: p.id }).await?))
}

// ---------------------------------------------------------------- audit

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Only changes in this tenant (the operator).
    tenant: Option<TenantId>,
    /// Only changes at or after.
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<Timestamp>,
}

/// The audit of changes: who, what, on which object, when, with what result.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery, Page),
    responses((status = 200, body = AuditPage), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn audit_list(State(api): St, Auth(c): Auth, Query(q): Query<AuditQuery>, Query(p): Query<Page>) -> Res<Paged> {
    paged(run(&api, c, Request::AuditList { tenant: q.tenant, since: q.since }).await?, &p)
}

// ---------------------------------------------------------------- billing

/// A tenant's rating rules, as TOML (README: Billing).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RatingBody {
    /// The rules file's text. A tenant's admin leaves out `[wholesale]`.
    rules: String,
}

/// A tenant's rating rules.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/rating", tag = "billing", params(TenantPath),
    responses((status = 200, body = crate::billing::Rating), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn rating_show(State(api): St, Auth(c): Auth, Path(p): Path<TenantPath>) -> Res<Object> {
    Ok(Object(run(&api, c, Request::RatingShow { tenant: p.tenant }).await?))
}

/// Sets a tenant's rating rules: the operator both tables, the tenant's
/// admin the retail table (the wholesale one stays).
#[utoipa::path(put, path = "/v1/tenants/{tenant}/rating", tag = "billing", params(TenantPath), request_body = RatingBody,
    responses((status = 200, body = crate::billing::Rating), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn rating_set(
    State(api): St,
    Auth(c): Auth,
    Path(p): Path<TenantPath>,
    Body(b): Body<RatingBody>,
) -> Res<Object> {
    Ok(Object(run(&api, c, Request::RatingSet { tenant: p.tenant, rules: b.rules }).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct BillingQuery {
    /// The tenant.
    tenant: TenantId,
    /// The month, `YYYY-MM` (UTC).
    #[param(pattern = "^[0-9]{4}-[0-9]{2}$")]
    month: String,
    /// `wholesale` (the operator's bill to the reseller) or `retail` (default).
    level: Option<crate::billing::Level>,
}

/// The rated export of a tenant's month: one row per billable transmission,
/// the totals per account and class, and how many numbers were withheld or
/// masked (the CLI's `billing export`).
#[utoipa::path(get, path = "/v1/billing", tag = "billing", params(BillingQuery),
    responses((status = 200, body = crate::billing::Export), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn billing_export(State(api): St, Auth(c): Auth, Query(q): Query<BillingQuery>) -> Res<Object> {
    let level = q.level.unwrap_or(crate::billing::Level::Retail);
    Ok(Object(run(&api, c, Request::BillingExport { tenant: q.tenant, month: q.month, level }).await?))
}

/// Closes a month: its export no longer changes, and its CDRs written
/// later are adjustment rows of the next month closed (wholesale: the
/// operator only).
#[utoipa::path(post, path = "/v1/billing/close", tag = "billing", params(BillingQuery),
    responses((status = 200, body = crate::billing::Closure), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn billing_close(State(api): St, Auth(c): Auth, Query(q): Query<BillingQuery>) -> Res<Object> {
    let level = q.level.unwrap_or(crate::billing::Level::Retail);
    Ok(Object(run(&api, c, Request::BillingClose { tenant: q.tenant, month: q.month, level }).await?))
}

/// The export's totals against the month's CDRs, and every difference.
#[utoipa::path(get, path = "/v1/billing/check", tag = "billing", params(BillingQuery),
    responses((status = 200, body = crate::billing::Check), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn billing_check(State(api): St, Auth(c): Auth, Query(q): Query<BillingQuery>) -> Res<Object> {
    let level = q.level.unwrap_or(crate::billing::Level::Retail);
    Ok(Object(run(&api, c, Request::BillingCheck { tenant: q.tenant, month: q.month, level }).await?))
}

// ---------------------------------------------------------------- data subjects (the operator)

/// Whom a data-subject request is about: a fax number or a mail address.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SubjectBody {
    /// A fax number, in international form (`+4533221100`).
    number: Option<String>,
    /// A mail address.
    #[schema(value_type = Option<String>, format = "email")]
    email: Option<EmailAddress>,
}

fn subject_of(number: Option<String>, email: Option<EmailAddress>) -> Res<crate::gdpr::Subject> {
    use crate::gdpr::Subject;
    match (number, email) {
        (Some(n), None) => {
            E164::parse(&n, None).map(Subject::Number).map_err(|e| Problem::invalid(format!("number: {e}")))
        }
        (None, Some(e)) => Ok(Subject::Email(e)),
        _ => Err(Problem::invalid("give one of number and email")),
    }
}

/// A restriction of processing (GDPR Art. 18), or its end.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RestrictBody {
    /// A fax number, in international form.
    number: Option<String>,
    /// A mail address.
    #[schema(value_type = Option<String>, format = "email")]
    email: Option<EmailAddress>,
    /// True: lift the restriction.
    #[serde(default)]
    lift: bool,
}

/// A wrong mail address and the right one (GDPR Art. 16).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RectifyBody {
    /// The address as held.
    #[schema(value_type = String, format = "email")]
    email: EmailAddress,
    /// What it should be.
    #[schema(value_type = String, format = "email")]
    to: EmailAddress,
}

/// A disclosure to an authority of one number's CDRs over a period.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DisclosureBody {
    /// The fax number, in international form.
    number: String,
    /// From.
    #[schema(value_type = String, format = DateTime)]
    since: Timestamp,
    /// Until.
    #[schema(value_type = String, format = DateTime)]
    until: Timestamp,
    /// The authority's case reference.
    case: String,
    /// The authority.
    authority: String,
}

/// Everything held about a data subject (GDPR Art. 15): its CDRs, its
/// directory entries, and the schema of each (the operator).
#[utoipa::path(post, path = "/v1/gdpr/export", tag = "data subjects", request_body = SubjectBody,
    responses((status = 200, body = Object), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn gdpr_export(State(api): St, Auth(c): Auth, Body(b): Body<SubjectBody>) -> Res<Object> {
    let subject = subject_of(b.number, b.email)?;
    Ok(Object(run(&api, c, Request::GdprExport { subject }).await?))
}

/// Erases a data subject where the law allows (GDPR Art. 17); CDRs under
/// their retention duty and legal holds stay, as the answer says (the operator).
#[utoipa::path(post, path = "/v1/gdpr/erase", tag = "data subjects", request_body = SubjectBody,
    responses((status = 200, body = Object), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn gdpr_erase(State(api): St, Auth(c): Auth, Body(b): Body<SubjectBody>) -> Res<Object> {
    let subject = subject_of(b.number, b.email)?;
    Ok(Object(run(&api, c, Request::GdprErase { subject }).await?))
}

/// Restricts the processing of a data subject's data, or lifts it (the operator).
#[utoipa::path(post, path = "/v1/gdpr/restrict", tag = "data subjects", request_body = RestrictBody,
    responses((status = 200, body = Object), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn gdpr_restrict(State(api): St, Auth(c): Auth, Body(b): Body<RestrictBody>) -> Res<Object> {
    let subject = subject_of(b.number, b.email)?;
    Ok(Object(run(&api, c, Request::GdprRestrict { subject, lift: b.lift }).await?))
}

/// Replaces a wrong mail address in routes and sender entries (the operator).
#[utoipa::path(post, path = "/v1/gdpr/rectify", tag = "data subjects", request_body = RectifyBody,
    responses((status = 200, body = Object), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn gdpr_rectify(State(api): St, Auth(c): Auth, Body(b): Body<RectifyBody>) -> Res<Object> {
    Ok(Object(run(&api, c, Request::GdprRectify { email: b.email, to: b.to }).await?))
}

/// One number's CDRs over a period, for an authority, recorded with its
/// case (the operator).
#[utoipa::path(post, path = "/v1/disclosures", tag = "data subjects", request_body = DisclosureBody,
    responses((status = 200, body = Object), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn disclosure(State(api): St, Auth(c): Auth, Body(b): Body<DisclosureBody>) -> Res<Object> {
    let r =
        Request::Disclosure { number: b.number, since: b.since, until: b.until, case: b.case, authority: b.authority };
    Ok(Object(run(&api, c, r).await?))
}

/// The router of every operation, with the OpenAPI document of them.
pub(super) fn router() -> OpenApiRouter<Arc<Api>> {
    OpenApiRouter::with_openapi(super::openapi::document())
        .routes(routes!(tenant_list, tenant_add))
        .routes(routes!(tenant_show, tenant_change, tenant_remove))
        .routes(routes!(claim_verify))
        .routes(routes!(claim_approve))
        .routes(routes!(account_list, account_add))
        .routes(routes!(account_show, account_change, account_remove))
        .routes(routes!(account_terminate))
        .routes(routes!(account_reactivate))
        .routes(routes!(number_list, number_add))
        .routes(routes!(number_show, number_remove))
        .routes(routes!(number_move))
        .routes(routes!(route_set))
        .routes(routes!(route_remove))
        .routes(routes!(sender_list, sender_add))
        .routes(routes!(sender_show, sender_change, sender_remove))
        .routes(routes!(cdr_list))
        .routes(routes!(queue_list, fax_send))
        .routes(routes!(queue_show))
        .routes(routes!(queue_steer))
        .routes(routes!(received_list))
        .routes(routes!(received_document))
        .routes(routes!(token_list, token_create))
        .routes(routes!(token_revoke))
        .routes(routes!(audit_list))
        .routes(routes!(rating_show, rating_set))
        .routes(routes!(billing_export))
        .routes(routes!(billing_check))
        .routes(routes!(billing_close))
        .routes(routes!(gdpr_export))
        .routes(routes!(gdpr_erase))
        .routes(routes!(gdpr_restrict))
        .routes(routes!(gdpr_rectify))
        .routes(routes!(disclosure))
        .routes(routes!(webhook_list, webhook_create))
        .routes(routes!(webhook_remove))
        .routes(routes!(webhook_enable))
}
