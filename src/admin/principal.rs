//! Who is asking, and whether they may: the one place that decides.
//!
//! In: a [`Principal`] (from the socket peer's credentials or an API
//! token), the request's [`Op`] and the [`Target`] it names, resolved by
//! the server from the store ([`target_of`]), never from what the caller
//! claims. Out: the directory [`Scope`] the request runs in, or why not
//! ([`authorize`]). Another tenant's or account's object answers exactly as
//! one that does not exist. Lists asked by an account's principal are
//! narrowed to that account first ([`narrow_request`]).

use serde::{Deserialize, Serialize};

use super::{Context, Request};
use crate::Error;
use crate::directory::{Scope, SenderPattern};
use crate::types::{AccountId, TenantId};

/// A role, lowest rank first.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads its account's faxes and CDRs, and sends faxes.
    AccountUser,
    /// Manages one account's routes and senders, and reads its numbers.
    AccountAdmin,
    /// Manages one tenant (a reseller) and its accounts.
    TenantAdmin,
    /// Runs the installation.
    Operator,
}

impl Role {
    /// Its name as the CLI and the audit write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::AccountUser => "account-user",
            Role::AccountAdmin => "account-admin",
            Role::TenantAdmin => "tenant-admin",
            Role::Operator => "operator",
        }
    }
}

/// Who a request acts for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "kebab-case")]
pub enum Principal {
    /// The operator: everything.
    Operator,
    /// One tenant's admin.
    TenantAdmin {
        /// The tenant.
        tenant: TenantId,
    },
    /// One account's admin.
    AccountAdmin {
        /// The account's tenant.
        tenant: TenantId,
        /// The account.
        account: AccountId,
    },
    /// One account's user.
    AccountUser {
        /// The account's tenant.
        tenant: TenantId,
        /// The account.
        account: AccountId,
    },
}

impl Principal {
    /// The principal of `role` in `tenant` and `account` (which the roles
    /// below the tenant's admin need), or why that is not one.
    pub fn new(role: Role, tenant: Option<TenantId>, account: Option<AccountId>) -> Result<Principal, Error> {
        match (role, tenant, account) {
            (Role::Operator, None, None) => Ok(Principal::Operator),
            (Role::TenantAdmin, Some(tenant), None) => Ok(Principal::TenantAdmin { tenant }),
            (Role::AccountAdmin, Some(tenant), Some(account)) => Ok(Principal::AccountAdmin { tenant, account }),
            (Role::AccountUser, Some(tenant), Some(account)) => Ok(Principal::AccountUser { tenant, account }),
            (Role::Operator, ..) => Err(Error::Invalid("the operator belongs to no tenant or account".into())),
            (Role::TenantAdmin, ..) => Err(Error::Invalid("a tenant admin needs a tenant and no account".into())),
            (r, ..) => Err(Error::Invalid(format!("{} needs a tenant and an account", r.as_str()))),
        }
    }

    /// Its role.
    pub fn role(&self) -> Role {
        match self {
            Principal::Operator => Role::Operator,
            Principal::TenantAdmin { .. } => Role::TenantAdmin,
            Principal::AccountAdmin { .. } => Role::AccountAdmin,
            Principal::AccountUser { .. } => Role::AccountUser,
        }
    }

    /// Its tenant; `None` for the operator.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Principal::Operator => None,
            Principal::TenantAdmin { tenant }
            | Principal::AccountAdmin { tenant, .. }
            | Principal::AccountUser { tenant, .. } => Some(tenant),
        }
    }

    /// Its account, for the account's roles.
    pub fn account(&self) -> Option<&AccountId> {
        match self {
            Principal::AccountAdmin { account, .. } | Principal::AccountUser { account, .. } => Some(account),
            _ => None,
        }
    }

    /// The directory's view for it: the operator's, or its tenant's.
    pub fn scope(&self) -> Scope {
        self.tenant().map_or(Scope::Operator, |t| Scope::Tenant(t.clone()))
    }

    /// Whether it may act for `other`: `other` is at or below its rank,
    /// within its tenant and account.
    pub fn covers(&self, other: &Principal) -> bool {
        other.role() <= self.role()
            && match self {
                Principal::Operator => true,
                Principal::TenantAdmin { tenant } => other.tenant() == Some(tenant),
                Principal::AccountAdmin { tenant, account } | Principal::AccountUser { tenant, account } => {
                    other.tenant() == Some(tenant) && other.account() == Some(account)
                }
            }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::Operator => f.write_str("operator"),
            Principal::TenantAdmin { tenant } => write!(f, "tenant-admin {tenant}"),
            Principal::AccountAdmin { tenant, account } => write!(f, "account-admin {tenant}/{account}"),
            Principal::AccountUser { tenant, account } => write!(f, "account-user {tenant}/{account}"),
        }
    }
}

/// The lowest role an operation is open to; below the tenant's admin, only
/// on the principal's own account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Anyone the server accepted (the daemon's status).
    Anyone,
    /// The role named, or above.
    Role(Role),
}

macro_rules! ops {
    ($($(#[$doc:meta])* $name:ident: $need:expr, $changes:expr;)*) => {
        /// What a request does, without its arguments.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        #[allow(missing_docs)]
        pub enum Op { $($name),* }

        impl Op {
            /// Every operation.
            pub const ALL: &[Op] = &[$(Op::$name),*];

            /// Its name, as the audit writes it (`number_add`).
            pub fn name(self) -> String {
                serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
            }

            /// Who may do it.
            pub fn need(self) -> Need {
                match self { $(Op::$name => $need),* }
            }

            /// Whether it changes something (and so is audited).
            pub fn changes(self) -> bool {
                match self { $(Op::$name => $changes),* }
            }
        }
    };
}

const ANYONE: Need = Need::Anyone;
const OPERATOR: Need = Need::Role(Role::Operator);
const TENANT: Need = Need::Role(Role::TenantAdmin);
const ACCOUNT: Need = Need::Role(Role::AccountAdmin);
const USER: Need = Need::Role(Role::AccountUser);

ops! {
    Status: ANYONE, false;
    StoreVerify: OPERATOR, false;
    LogHash: OPERATOR, false;
    Backup: OPERATOR, true;
    RetentionConfirmClock: OPERATOR, true;
    TenantAdd: OPERATOR, true;
    TenantList: TENANT, false;
    TenantShow: TENANT, false;
    TenantChange: TENANT, true;
    TenantRemove: OPERATOR, true;
    ClaimVerify: TENANT, true;
    ClaimApprove: OPERATOR, true;
    AccountAdd: TENANT, true;
    AccountList: TENANT, false;
    AccountShow: ACCOUNT, false;
    AccountChange: TENANT, true;
    AccountTerminate: TENANT, true;
    AccountReactivate: TENANT, true;
    AccountRemove: TENANT, true;
    NumberAdd: TENANT, true;
    NumberList: ACCOUNT, false;
    NumberShow: ACCOUNT, false;
    NumberMove: TENANT, true;
    NumberRemove: TENANT, true;
    RouteSet: ACCOUNT, true;
    RouteRemove: ACCOUNT, true;
    SenderAdd: ACCOUNT, true;
    SenderList: ACCOUNT, false;
    SenderShow: ACCOUNT, false;
    SenderChange: ACCOUNT, true;
    SenderRemove: ACCOUNT, true;
    DirectoryApply: TENANT, true;
    CdrList: USER, false;
    RetentionStatus: OPERATOR, false;
    RetentionAudit: OPERATOR, false;
    RetentionSweep: OPERATOR, true;
    HoldAdd: OPERATOR, true;
    HoldList: OPERATOR, false;
    HoldRemove: OPERATOR, true;
    GdprExport: OPERATOR, true;
    GdprRectify: OPERATOR, true;
    GdprErase: OPERATOR, true;
    GdprRestrict: OPERATOR, true;
    Disclosure: OPERATOR, true;
    QueueList: USER, false;
    QueueShow: USER, false;
    QueueSteer: ACCOUNT, true;
    OutboxList: TENANT, false;
    OutboxShow: TENANT, false;
    OutboxFlush: TENANT, true;
    OutboxDrop: TENANT, true;
    LearnedList: TENANT, false;
    LearnedForget: TENANT, true;
    TokenCreate: USER, true;
    TokenList: USER, false;
    TokenRevoke: USER, true;
    WebhookCreate: ACCOUNT, true;
    WebhookList: ACCOUNT, false;
    WebhookRemove: ACCOUNT, true;
    WebhookEnable: ACCOUNT, true;
    AuditList: TENANT, false;
    FaxSend: USER, true;
    ReceivedList: USER, false;
    RatingSet: TENANT, true;
    RatingShow: TENANT, false;
    BillingExport: TENANT, false;
    BillingCheck: TENANT, false;
    BillingClose: TENANT, true;
    /// A download of a received fax: audited, as access to a fax's content.
    ReceivedGet: USER, true;
}

/// Whose object a request names, as the store says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// No one's: the installation, or a listing of what the principal sees.
    Install,
    /// A tenant's (the tenant itself, or something of it but of no account).
    Tenant(TenantId),
    /// An account's.
    Account(TenantId, AccountId),
    /// Nothing by that name exists.
    Missing,
}

/// The object a request names: its owner, and how it is called in a
/// "not found" answer (the same whether it is foreign or missing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Its owner.
    pub owner: Owner,
    /// What it is called.
    pub name: String,
}

impl Target {
    /// A target owned by `owner`, called `name`.
    pub fn new(owner: Owner, name: impl Into<String>) -> Target {
        Target { owner, name: name.into() }
    }

    /// No object.
    pub fn install() -> Target {
        Target::new(Owner::Install, "")
    }

    fn not_found(&self) -> Error {
        Error::NotFound(format!("no {}", self.name))
    }
}

/// The decision: whether `p` may do `op` on `target`, and in which scope
/// it runs. Too low a rank is `Forbidden`; an object of another tenant or
/// account is `NotFound`, worded as for an object that does not exist.
pub fn authorize(p: &Principal, op: Op, target: &Target) -> Result<Scope, Error> {
    let forbidden = |role: Role| {
        let who = match role {
            Role::Operator => "only the operator",
            Role::TenantAdmin => "only a tenant's admin or the operator",
            Role::AccountAdmin | Role::AccountUser => "only an account's admin or above",
        };
        Error::Forbidden(format!("{who} may do {} (this caller is {})", op.name(), p.role().as_str()))
    };
    let need = match op.need() {
        Need::Anyone => return Ok(p.scope()),
        Need::Role(r) => r,
    };
    if p.role() < need {
        // Below its rank: a foreign object is still just not found.
        return Err(match &target.owner {
            Owner::Tenant(t) | Owner::Account(t, _) if Some(t) != p.tenant() => target.not_found(),
            Owner::Account(_, a) if p.account().is_some_and(|own| own != a) => target.not_found(),
            // A missing one too, or the two answers would tell them apart.
            Owner::Missing => target.not_found(),
            _ => forbidden(need),
        });
    }
    match p {
        Principal::Operator => Ok(Scope::Operator),
        Principal::TenantAdmin { tenant } => match &target.owner {
            Owner::Install | Owner::Missing => Ok(Scope::Tenant(tenant.clone())),
            Owner::Tenant(t) | Owner::Account(t, _) if t == tenant => Ok(Scope::Tenant(tenant.clone())),
            Owner::Tenant(_) | Owner::Account(..) => Err(target.not_found()),
        },
        Principal::AccountAdmin { tenant, account } | Principal::AccountUser { tenant, account } => {
            match &target.owner {
                Owner::Account(t, a) if t == tenant && a == account => Ok(Scope::Tenant(tenant.clone())),
                Owner::Install => Err(forbidden(Role::TenantAdmin)),
                Owner::Tenant(t) if t == tenant => Err(forbidden(Role::TenantAdmin)),
                Owner::Tenant(_) | Owner::Account(..) | Owner::Missing => Err(target.not_found()),
            }
        }
    }
}

/// The request as an account's principal may ask it: listings limited to
/// its account. Other principals' requests are unchanged.
pub fn narrow_request(p: &Principal, request: Request) -> Request {
    let (Some(tenant), Some(own)) = (p.tenant(), p.account()) else { return request };
    let own = Some(*own);
    let tenant = Some(tenant.clone());
    use Request as R;
    match request {
        R::NumberList { account: None, tenant: _ } => R::NumberList { account: own, tenant },
        R::SenderList { account: None, tenant: _ } => R::SenderList { account: own, tenant },
        R::CdrList { mut filter, page } if filter.account.is_none() => {
            filter.account = own;
            filter.tenant = filter.tenant.or(tenant);
            R::CdrList { filter, page }
        }
        R::QueueList { account: None, tenant: t, state } => R::QueueList { account: own, tenant: t.or(tenant), state },
        R::TokenList { account: None, tenant: t } => R::TokenList { account: own, tenant: t.or(tenant) },
        R::WebhookList { account: None, tenant: t } => R::WebhookList { account: own, tenant: t.or(tenant) },
        R::ReceivedList { account: None, tenant: t } => R::ReceivedList { account: own, tenant: t.or(tenant) },
        r => r,
    }
}

/// Whose object `request` names, looked up in the store with `p`'s view
/// (so that a national number reads as `p`'s tenant reads it).
pub fn target_of(ctx: &Context, p: &Principal, request: &Request) -> Result<Target, Error> {
    use Request as R;
    let dir = &ctx.directory;
    let op = Scope::Operator;
    let tenant = |t: &TenantId| -> Result<Target, Error> {
        let name = format!("tenant {t}");
        Ok(match dir.tenant_get(&op, t) {
            Ok(_) => Target::new(Owner::Tenant(t.clone()), name),
            Err(Error::NotFound(_)) => Target::new(Owner::Missing, name),
            Err(e) => return Err(e),
        })
    };
    let account = |a: &AccountId| -> Result<Target, Error> {
        let name = format!("account {a}");
        Ok(match dir.account_get(&op, a) {
            Ok(acc) => Target::new(Owner::Account(acc.tenant, acc.id), name),
            Err(Error::NotFound(_)) => Target::new(Owner::Missing, name),
            Err(e) => return Err(e),
        })
    };
    // The narrower of an account and a tenant a listing names.
    let listing = |a: Option<&AccountId>, t: Option<&TenantId>| -> Result<Target, Error> {
        match (a, t) {
            (Some(a), Some(t)) => {
                let found = account(a)?;
                Ok(match &found.owner {
                    Owner::Account(at, _) if at != t => Target::new(Owner::Missing, found.name),
                    _ => found,
                })
            }
            (Some(a), None) => account(a),
            (None, Some(t)) => tenant(t),
            (None, None) => Ok(Target::install()),
        }
    };
    let number = |n: &str| -> Result<Target, Error> {
        let name = format!("fax number {n}");
        Ok(match dir.number_get(&p.scope(), n) {
            Ok(f) => Target::new(Owner::Account(f.tenant, f.account), name),
            Err(Error::NotFound(_)) => Target::new(Owner::Missing, name),
            Err(e) => return Err(e),
        })
    };
    match request {
        R::TenantShow { id } | R::TenantChange { id, .. } | R::TenantRemove { id } => tenant(id),
        R::ClaimVerify { tenant: t, .. } | R::ClaimApprove { tenant: t, .. } => tenant(t),
        R::AccountAdd { tenant: t, .. } => tenant(t),
        R::AccountList { tenant: t } | R::OutboxList { tenant: t } | R::LearnedList { tenant: t } => {
            listing(None, t.as_ref())
        }
        R::LearnedForget { tenant: t, .. } => listing(None, t.as_ref()),
        R::AuditList { tenant: t, .. } => listing(None, t.as_ref()),
        R::AccountShow { id }
        | R::AccountChange { id, .. }
        | R::AccountTerminate { id, .. }
        | R::AccountReactivate { id }
        | R::AccountRemove { id } => account(id),
        R::NumberAdd { account: a, .. } | R::SenderAdd { account: a, .. } => account(a),
        R::NumberList { account: a, tenant: t } | R::SenderList { account: a, tenant: t } => {
            listing(a.as_ref(), t.as_ref())
        }
        R::NumberShow { number: n }
        | R::NumberRemove { number: n }
        | R::RouteSet { number: n, .. }
        | R::RouteRemove { number: n, .. } => number(n),
        R::NumberMove { number: n, account: to } => {
            // Both the number and the account it moves to must be in view.
            let to = account(to)?;
            match (&to.owner, p.tenant()) {
                (Owner::Missing, _) => Ok(to),
                (Owner::Account(t, _), Some(own)) if t != own => Ok(Target::new(Owner::Missing, to.name)),
                _ => number(n),
            }
        }
        R::FaxSend { sender, .. } => {
            let name = format!("sender {sender}");
            Ok(match dir.sender_get(&op, &SenderPattern::Address(sender.clone())) {
                Ok(s) => Target::new(Owner::Account(s.tenant, s.account), name),
                Err(Error::NotFound(_)) => Target::new(Owner::Missing, name),
                Err(e) => return Err(e),
            })
        }
        R::SenderShow { sender } | R::SenderChange { sender, .. } | R::SenderRemove { sender } => {
            let name = format!("sender {sender}");
            Ok(match dir.sender_get(&op, sender) {
                Ok(s) => Target::new(Owner::Account(s.tenant, s.account), name),
                Err(Error::NotFound(_)) => Target::new(Owner::Missing, name),
                Err(e) => return Err(e),
            })
        }
        R::CdrList { filter, .. } => listing(filter.account.as_ref(), filter.tenant.as_ref()),
        R::QueueList { account: a, tenant: t, .. } => listing(a.as_ref(), t.as_ref()),
        R::ReceivedList { account: a, tenant: t } => listing(a.as_ref(), t.as_ref()),
        R::RatingSet { tenant: t, .. }
        | R::RatingShow { tenant: t }
        | R::BillingExport { tenant: t, .. }
        | R::BillingCheck { tenant: t, .. }
        | R::BillingClose { tenant: t, .. } => tenant(t),
        R::ReceivedGet { id } => {
            let name = format!("received fax {}", id.to_text());
            Ok(match super::queue::received_owner(ctx, id)? {
                Some((t, a)) => Target::new(Owner::Account(t, a), name),
                None => Target::new(Owner::Missing, name),
            })
        }
        R::QueueShow { id } | R::QueueSteer { id, .. } => {
            let name = format!("fax job {}", id.to_text());
            Ok(match super::queue::job(ctx, id)? {
                Some(j) => Target::new(Owner::Account(j.tenant, j.account), name),
                None => Target::new(Owner::Missing, name),
            })
        }
        R::TokenCreate { tenant: t, account: a, .. } => listing(a.as_ref(), t.as_ref()),
        R::TokenList { tenant: t, account: a } => listing(a.as_ref(), t.as_ref()),
        R::WebhookCreate { tenant: t, account: a, .. } => listing(a.as_ref(), Some(t)),
        R::WebhookList { tenant: t, account: a } => listing(a.as_ref(), t.as_ref()),
        R::WebhookRemove { id } | R::WebhookEnable { id } => {
            let name = format!("webhook {id}");
            Ok(match dir.webhook_get(id)? {
                Some(w) => match w.account {
                    Some(a) => Target::new(Owner::Account(w.tenant, a), name),
                    None => Target::new(Owner::Tenant(w.tenant), name),
                },
                None => Target::new(Owner::Missing, name),
            })
        }
        R::TokenRevoke { id } => {
            let name = format!("token {id}");
            Ok(match dir.token_get(id)? {
                Some(tok) => match (tok.tenant, tok.account) {
                    (Some(t), Some(a)) => Target::new(Owner::Account(t, a), name),
                    (Some(t), None) => Target::new(Owner::Tenant(t), name),
                    // An operator token is the installation's; to anyone
                    // else it is not there.
                    (None, _) if *p == Principal::Operator => Target::install(),
                    (None, _) => Target::new(Owner::Missing, name),
                },
                None => Target::new(Owner::Missing, name),
            })
        }
        R::Status
        | R::StoreVerify
        | R::LogHash { .. }
        | R::Backup { .. }
        | R::RetentionConfirmClock
        | R::TenantAdd { .. }
        | R::TenantList
        | R::DirectoryApply { .. }
        | R::RetentionStatus
        | R::RetentionAudit
        | R::RetentionSweep
        | R::HoldAdd { .. }
        | R::HoldList
        | R::HoldRemove { .. }
        | R::GdprExport { .. }
        | R::GdprRectify { .. }
        | R::GdprErase { .. }
        | R::GdprRestrict { .. }
        | R::Disclosure { .. }
        | R::OutboxShow { .. }
        | R::OutboxFlush
        | R::OutboxDrop { .. } => Ok(Target::install()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TenantId {
        s.parse().unwrap()
    }

    #[test]
    fn every_principal_every_operation_own_and_foreign_objects() {
        let (acme, beta) = (t("acme"), t("beta"));
        let (mine, other, beta_acc) = (AccountId::generate(), AccountId::generate(), AccountId::generate());
        let principals = [
            Principal::Operator,
            Principal::TenantAdmin { tenant: acme.clone() },
            Principal::AccountAdmin { tenant: acme.clone(), account: mine },
            Principal::AccountUser { tenant: acme.clone(), account: mine },
        ];
        let targets = [
            ("install", Target::install()),
            ("own tenant", Target::new(Owner::Tenant(acme.clone()), "tenant acme")),
            ("foreign tenant", Target::new(Owner::Tenant(beta.clone()), "tenant beta")),
            ("own account", Target::new(Owner::Account(acme.clone(), mine), "account a")),
            ("sibling account", Target::new(Owner::Account(acme.clone(), other), "account a")),
            ("foreign account", Target::new(Owner::Account(beta.clone(), beta_acc), "account a")),
            ("missing", Target::new(Owner::Missing, "account a")),
        ];
        let mut checked = 0;
        for p in &principals {
            for &op in Op::ALL {
                for (what, target) in &targets {
                    let got = authorize(p, op, target);
                    let need = match op.need() {
                        Need::Anyone => Role::AccountUser,
                        Need::Role(r) => r,
                    };
                    let tenant_ok = match &target.owner {
                        Owner::Install | Owner::Missing => true,
                        Owner::Tenant(x) | Owner::Account(x, _) => p.tenant().is_none_or(|own| own == x),
                    };
                    let account_ok = match (&target.owner, p.account()) {
                        (_, None) => true,
                        (Owner::Account(_, a), Some(own)) => a == own,
                        _ => false,
                    };
                    let expect_ok = op.need() == Need::Anyone || (p.role() >= need && tenant_ok && account_ok);
                    match &got {
                        Ok(scope) => {
                            assert!(expect_ok, "{p} {op:?} on {what}: allowed");
                            assert_eq!(*scope, p.scope(), "{p} {op:?} on {what}");
                        }
                        Err(e) => {
                            assert!(!expect_ok, "{p} {op:?} on {what}: refused: {e}");
                            // A foreign object is never told apart from a missing one.
                            if !tenant_ok || (matches!(target.owner, Owner::Account(..)) && !account_ok) {
                                assert_eq!(e.kind(), "not_found", "{p} {op:?} on {what}: {e}");
                                assert_eq!(e.to_string(), target.not_found().to_string());
                            }
                        }
                    }
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 4 * Op::ALL.len() * targets.len());
    }

    #[test]
    fn an_account_user_reads_its_faxes_and_manages_nothing() {
        let acme = t("acme");
        let mine = AccountId::generate();
        let u = Principal::AccountUser { tenant: acme.clone(), account: mine };
        let own = Target::new(Owner::Account(acme.clone(), mine), "x");
        for op in [Op::CdrList, Op::QueueList, Op::QueueShow, Op::TokenList] {
            assert!(authorize(&u, op, &own).is_ok(), "{op:?}");
        }
        for op in [Op::RouteSet, Op::SenderAdd, Op::AccountShow, Op::QueueSteer, Op::TenantList, Op::AuditList] {
            assert_eq!(authorize(&u, op, &own).unwrap_err().kind(), "forbidden", "{op:?}");
        }
    }

    #[test]
    fn above_its_rank_a_foreign_object_and_a_missing_one_answer_alike() {
        let ta = Principal::TenantAdmin { tenant: t("acme") };
        for op in [Op::TenantRemove, Op::ClaimApprove] {
            let foreign = authorize(&ta, op, &Target::new(Owner::Tenant(t("beta")), "tenant x")).unwrap_err();
            let missing = authorize(&ta, op, &Target::new(Owner::Missing, "tenant x")).unwrap_err();
            assert_eq!((foreign.kind(), foreign.to_string()), (missing.kind(), missing.to_string()), "{op:?}");
            assert_eq!(missing.to_string(), "no tenant x");
            // Its own tenant: refused for its rank.
            let own = authorize(&ta, op, &Target::new(Owner::Tenant(t("acme")), "tenant acme")).unwrap_err();
            assert_eq!(own.kind(), "forbidden", "{op:?}");
        }
    }

    #[test]
    fn rank_and_reach_of_principals() {
        let acme = t("acme");
        let (a, b) = (AccountId::generate(), AccountId::generate());
        let ta = Principal::TenantAdmin { tenant: acme.clone() };
        let aa = Principal::AccountAdmin { tenant: acme.clone(), account: a };
        let au = Principal::AccountUser { tenant: acme.clone(), account: a };
        let other = Principal::AccountUser { tenant: acme.clone(), account: b };
        let beta = Principal::TenantAdmin { tenant: t("beta") };
        assert!(Principal::Operator.covers(&ta) && ta.covers(&aa) && ta.covers(&other) && aa.covers(&au));
        assert!(!aa.covers(&ta) && !au.covers(&aa) && !aa.covers(&other) && !ta.covers(&beta));
        assert!(!ta.covers(&Principal::Operator));
        assert!(Principal::new(Role::AccountUser, Some(acme.clone()), None).is_err());
        assert!(Principal::new(Role::Operator, Some(acme), None).is_err());
    }

    #[test]
    fn an_account_principal_lists_only_its_account() {
        let acme = t("acme");
        let mine = AccountId::generate();
        let u = Principal::AccountUser { tenant: acme.clone(), account: mine };
        match narrow_request(&u, Request::CdrList { filter: Default::default(), page: None }) {
            Request::CdrList { filter, .. } => {
                assert_eq!(filter.account, Some(mine));
                assert_eq!(filter.tenant, Some(acme.clone()));
            }
            r => panic!("{r:?}"),
        }
        match narrow_request(&u, Request::NumberList { account: None, tenant: None }) {
            Request::NumberList { account, .. } => assert_eq!(account, Some(mine)),
            r => panic!("{r:?}"),
        }
        // Another account asked for stays asked for, and is then not found.
        let other = AccountId::generate();
        match narrow_request(&u, Request::NumberList { account: Some(other), tenant: None }) {
            Request::NumberList { account, .. } => assert_eq!(account, Some(other)),
            r => panic!("{r:?}"),
        }
    }
}
