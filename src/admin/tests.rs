//! Requests through [`handle`]: principals, tokens and the audit together.

use std::sync::Arc;

use super::*;
use crate::clock::{Clock, FakeClock};
use crate::directory::{Branding, Language, Paper};

struct World {
    _tmp: tempfile::TempDir,
    ctx: Context,
}

fn tenant(id: &str) -> Tenant {
    Tenant {
        id: id.parse().unwrap(),
        name: format!("{id} telecom"),
        branding: Branding {
            display_name: format!("{id} Fax"),
            from_address: format!("fax@{id}.dk").parse().unwrap(),
            language: Language::Da,
        },
        default_country: "DK".parse().unwrap(),
        fax_domains: vec![format!("fax.{id}.dk").parse().unwrap()],
        paper: Paper::A4,
        time_zone: None,
        header_template: None,
        station_id: None,
    }
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let policy = crate::retention::Policy::default();
    let store = Store::open_with(&data, &data.join("keys"), crate::retention::key_names(&policy)).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(FakeClock::new("2026-03-01T10:00:00Z".parse().unwrap()));
    let directory = Directory::open(&store, clock.clone()).unwrap();
    let retention = Retention::new(&store, &directory, policy, clock.clone()).unwrap();
    let sweeper = retention.sweeper(clock);
    let status = Status {
        version: "test".into(),
        pid: 0,
        config: "embedded".into(),
        data_dir: data.display().to_string(),
        daemon: false,
        started: None,
        damage: Vec::new(),
        key_faults: Vec::new(),
        clock_suspended: None,
        restart_needed: Vec::new(),
    };
    World { ctx: Context::new(&store, directory, retention, sweeper, status).unwrap(), _tmp: tmp }
}

fn op() -> Caller {
    Caller { principal: Principal::Operator, by: "uid 0 (root)".into() }
}

fn as_(p: Principal) -> Caller {
    Caller { by: format!("test {p}"), principal: p }
}

#[test]
fn principals_tokens_and_the_audit_through_handle() {
    let w = world();
    let ctx = &w.ctx;
    for t in ["acme", "beta"] {
        handle(ctx, &op(), Request::TenantAdd { tenant: tenant(t) }).unwrap();
    }
    let add = |t: &str| {
        let v = handle(
            ctx,
            &op(),
            Request::AccountAdd {
                tenant: t.parse().unwrap(),
                name: "Hansen".into(),
                reference: None,
                paper: None,
                cover: None,
                station_id: None,
            },
        )
        .unwrap();
        v["id"].as_str().unwrap().parse::<AccountId>().unwrap()
    };
    let (mine, sibling, foreign) = (add("acme"), add("acme"), add("beta"));
    let number = |account: AccountId, n: &str| Request::NumberAdd { account, number: n.into(), routes: Vec::new() };
    handle(ctx, &op(), number(mine, "+4533221100")).unwrap();
    handle(ctx, &op(), number(sibling, "+4533221101")).unwrap();
    handle(ctx, &op(), number(foreign, "+4533221102")).unwrap();

    let acme: TenantId = "acme".parse().unwrap();
    let user = as_(Principal::AccountUser { tenant: acme.clone(), account: mine });
    let admin = as_(Principal::AccountAdmin { tenant: acme.clone(), account: mine });
    let tadmin = as_(Principal::TenantAdmin { tenant: acme.clone() });

    // An account's admin sees its own number; a sibling's or another
    // tenant's answers exactly as one that does not exist.
    let shown = handle(ctx, &admin, Request::NumberShow { number: "+4533221100".into() }).unwrap();
    assert_eq!(shown["number"], "+4533221100");
    let missing = handle(ctx, &admin, Request::NumberShow { number: "+4533221199".into() }).unwrap_err();
    for n in ["+4533221101", "+4533221102"] {
        let e = handle(ctx, &admin, Request::NumberShow { number: n.into() }).unwrap_err();
        assert_eq!(e.kind(), missing.kind());
        assert_eq!(e.to_string().replace(n, "N"), missing.to_string().replace("+4533221199", "N"));
    }
    let listed = handle(ctx, &admin, Request::NumberList { account: None, tenant: None }).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    // An account's user manages nothing.
    let e = handle(ctx, &user, Request::NumberShow { number: "+4533221100".into() }).unwrap_err();
    assert_eq!(e.kind(), "forbidden", "{e}");
    handle(ctx, &user, Request::CdrList { filter: Default::default(), page: None }).unwrap();

    // Tokens: at or below one's own rank, in one's own tenant and account.
    let create = |caller: &Caller, account: Option<AccountId>, role: Role| {
        handle(
            ctx,
            caller,
            Request::TokenCreate { tenant: Some(acme.clone()), account, role, name: None, expires: None },
        )
    };
    let e = create(&admin, None, Role::TenantAdmin).unwrap_err();
    assert_eq!(e.kind(), "forbidden", "{e}");
    let e = create(&admin, Some(sibling), Role::AccountUser).unwrap_err();
    assert_eq!(e.kind(), "not_found", "{e}");
    let made = create(&admin, Some(mine), Role::AccountUser).unwrap();
    let token = made["token"].as_str().unwrap();
    assert!(made["record"].get("secret_sha256").is_none(), "{made}");
    let (_, p) = ctx.directory.authenticate(token).unwrap();
    assert_eq!(p, user.principal);
    let id = made["record"]["id"].as_str().unwrap().to_owned();
    let tenant_token = create(&tadmin, None, Role::TenantAdmin).unwrap();
    let tid = tenant_token["record"]["id"].as_str().unwrap().to_owned();
    // The user sees its account's tokens only, and cannot revoke the tenant admin's.
    let seen = handle(ctx, &user, Request::TokenList { tenant: None, account: None }).unwrap();
    assert_eq!(seen.as_array().unwrap().len(), 1, "{seen}");
    let e = handle(ctx, &user, Request::TokenRevoke { id: tid.clone() }).unwrap_err();
    assert_eq!(e.kind(), "forbidden", "{e}");
    handle(ctx, &user, Request::TokenRevoke { id: id.clone() }).unwrap();
    assert!(ctx.directory.authenticate(token).is_err());
    let beta_admin = as_(Principal::TenantAdmin { tenant: "beta".parse().unwrap() });
    let e = handle(ctx, &beta_admin, Request::TokenRevoke { id: tid }).unwrap_err();
    assert_eq!(e.kind(), "not_found", "{e}");

    // The audit: every change, with its principal; numbers only hashed;
    // a tenant's admin sees its own tenant's entries only.
    let all: Vec<AuditEntry> =
        serde_json::from_value(handle(ctx, &op(), Request::AuditList { tenant: None, since: None }).unwrap()).unwrap();
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains("33221100"), "{text}");
    let hash = log_hash(&ctx.store, "+4533221100", None);
    assert!(text.contains(&format!("number:{hash}")), "{text}");
    assert!(all.iter().any(|e| e.op == Op::TokenRevoke && e.by == user.by && e.result == "ok"));
    assert!(all.iter().any(|e| e.op == Op::TokenCreate && e.result == "forbidden"));
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    let own: Vec<AuditEntry> =
        serde_json::from_value(handle(ctx, &tadmin, Request::AuditList { tenant: None, since: None }).unwrap())
            .unwrap();
    assert!(!own.is_empty() && own.iter().all(|e| e.tenant.as_ref() == Some(&acme)), "{own:?}");
    let e = handle(ctx, &tadmin, Request::AuditList { tenant: Some("beta".parse().unwrap()), since: None });
    assert_eq!(e.unwrap_err().kind(), "not_found");
    // beta's admin's refused attempt on acme's token is in beta's audit, not acme's.
    assert!(!own.iter().any(|e| e.by == beta_admin.by));
    let e = handle(ctx, &user, Request::AuditList { tenant: None, since: None }).unwrap_err();
    assert_eq!(e.kind(), "forbidden");
}
