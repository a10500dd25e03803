use std::sync::Arc;

use super::*;
use crate::clock::FakeClock;

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: Directory,
    clock: FakeClock,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let store = Store::open(&data, &data.join("keys")).unwrap();
    let clock = FakeClock::new("2026-01-15T10:00:00Z".parse().unwrap());
    let dir = Directory::open(&store, Arc::new(clock.clone())).unwrap();
    Fixture { _tmp: tmp, dir, clock }
}

fn tenant(id: &str, domain: &str) -> Tenant {
    Tenant {
        id: id.parse().unwrap(),
        name: format!("{id} telecom"),
        branding: Branding {
            display_name: format!("{id} Fax"),
            from_address: format!("fax@{domain}").parse().unwrap(),
            language: Language::Da,
        },
        default_country: "DK".parse().unwrap(),
        fax_domains: vec![domain.parse().unwrap()],
        paper: Paper::A4,
        time_zone: None,
        header_template: None,
        station_id: None,
    }
}

fn tid(s: &str) -> TenantId {
    s.parse().unwrap()
}

#[test]
fn tenants_cannot_see_or_change_each_other() {
    let f = fixture();
    let op = Scope::Operator;
    f.dir.tenant_add(&op, tenant("alpha", "fax.alpha.dk")).unwrap();
    f.dir.tenant_add(&op, tenant("beta", "fax.beta.dk")).unwrap();
    let a = f.dir.account_add(&op, &tid("alpha"), "Hansen ApS", Some("c-1"), None).unwrap();
    let b = f.dir.account_add(&op, &tid("beta"), "Jensen A/S", Some("c-1"), None).unwrap();
    f.dir.number_add(&op, &a.id, "33 22 11 00", vec![]).unwrap();
    f.dir.number_add(&op, &b.id, "44 55 66 77", vec![]).unwrap();
    f.dir.sender_add(&op, &b.id, "@jensen.dk".parse().unwrap(), None, SenderAuth::Dmarc, Default::default()).unwrap();

    let alpha = Scope::Tenant(tid("alpha"));
    // Listing shows only its own.
    assert_eq!(f.dir.tenant_list(&alpha).unwrap().len(), 1);
    let accounts = f.dir.account_list(&alpha, None).unwrap();
    assert_eq!(accounts.iter().map(|a| a.id).collect::<Vec<_>>(), vec![a.id]);
    assert_eq!(f.dir.number_list(&alpha, None, None).unwrap().len(), 1);
    assert!(f.dir.sender_list(&alpha, None, None).unwrap().is_empty());
    // Another tenant's data is "not found", for reading and for changing.
    assert!(matches!(f.dir.tenant_get(&alpha, &tid("beta")), Err(Error::NotFound(_))));
    assert!(matches!(f.dir.account_list(&alpha, Some(&tid("beta"))), Err(Error::NotFound(_))));
    assert!(matches!(f.dir.account_get(&alpha, &b.id), Err(Error::NotFound(_))));
    assert!(matches!(
        f.dir.account_change(&alpha, &b.id, AccountChange { name: Some("x".into()), ..Default::default() }),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(f.dir.account_terminate(&alpha, &b.id, None), Err(Error::NotFound(_))));
    assert!(matches!(f.dir.account_remove(&alpha, &b.id), Err(Error::NotFound(_))));
    assert!(matches!(f.dir.number_get(&alpha, "+4544556677"), Err(Error::NotFound(_))));
    assert!(matches!(f.dir.number_remove(&alpha, "+4544556677"), Err(Error::NotFound(_))));
    assert!(matches!(
        f.dir.route_set(&alpha, "+4544556677", "x@alpha.dk".parse().unwrap(), AttachmentFormat::Pdf),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(f.dir.number_add(&alpha, &b.id, "22 22 22 22", vec![]), Err(Error::NotFound(_))));
    assert!(matches!(f.dir.sender_get(&alpha, &"@jensen.dk".parse().unwrap()), Err(Error::NotFound(_))));
    assert!(matches!(f.dir.sender_remove(&alpha, &"@jensen.dk".parse().unwrap()), Err(Error::NotFound(_))));
    assert!(matches!(f.dir.account_add(&alpha, &tid("beta"), "Sneaky", None, None), Err(Error::NotFound(_))));
    assert!(matches!(f.dir.tenant_add(&alpha, tenant("gamma", "fax.gamma.dk")), Err(Error::Forbidden(_))));
    assert!(matches!(f.dir.tenant_remove(&alpha, &tid("beta")), Err(Error::Forbidden(_))));
    // Beta's data is untouched.
    let beta = Scope::Tenant(tid("beta"));
    assert_eq!(f.dir.account_get(&beta, &b.id).unwrap().name, "Jensen A/S");
    assert!(f.dir.number_get(&beta, "44556677").is_ok());
    // A national number in a tenant scope is read with its default country.
    assert_eq!(f.dir.number_get(&alpha, "33 22 11 00").unwrap().account, a.id);
}

#[test]
fn a_number_belongs_to_one_account() {
    let f = fixture();
    let op = Scope::Operator;
    f.dir.tenant_add(&op, tenant("alpha", "fax.alpha.dk")).unwrap();
    let a = f.dir.account_add(&op, &tid("alpha"), "A", None, None).unwrap();
    let b = f.dir.account_add(&op, &tid("alpha"), "B", None, None).unwrap();
    f.dir.number_add(&op, &a.id, "+45 33 22 11 00", vec![]).unwrap();
    let err = f.dir.number_add(&op, &b.id, "33221100", vec![]).unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    assert!(err.to_string().contains(&format!("already belongs to account {}", a.id)), "{err}");
    // In a tenant's scope, another account's number is not named: the
    // answer is the same whether it is there or not.
    let err = f.dir.number_add(&Scope::Tenant(tid("alpha")), &b.id, "33221100", vec![]).unwrap_err();
    assert_eq!(err.to_string(), "fax number +4533221100 cannot be added");
    assert_eq!(f.dir.number_get(&op, "+4533221100").unwrap().account, a.id);
    let err = f.dir.number_add(&op, &b.id, "not a number", vec![]).unwrap_err();
    assert!(err.to_string().contains("letters"), "{err}");
    // Fax domains and references are unique too.
    let err = f.dir.tenant_add(&op, tenant("beta", "fax.alpha.dk")).unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    assert!(f.dir.tenant_get(&op, &tid("beta")).is_err());
    f.dir
        .account_change(&op, &a.id, AccountChange { reference: Patch::Set("r1".into()), ..Default::default() })
        .unwrap();
    assert!(matches!(f.dir.account_add(&op, &tid("alpha"), "C", Some("r1"), None), Err(Error::Conflict(_))));
}

#[test]
fn routes_senders_termination_and_removal() {
    let f = fixture();
    let op = Scope::Operator;
    f.dir.tenant_add(&op, tenant("alpha", "fax.alpha.dk")).unwrap();
    let a = f.dir.account_add(&op, &tid("alpha"), "A", None, None).unwrap();
    f.dir.number_add(&op, &a.id, "33221100", vec![]).unwrap();
    f.dir.route_set(&op, "+4533221100", "jens@hansen.dk".parse().unwrap(), AttachmentFormat::Pdf).unwrap();
    let n = f.dir.route_set(&op, "+4533221100", "ole@hansen.dk".parse().unwrap(), AttachmentFormat::Both).unwrap();
    assert_eq!(n.routes.len(), 2);
    let n = f.dir.route_remove(&op, "+4533221100", &"jens@hansen.dk".parse().unwrap()).unwrap();
    assert_eq!(n.routes.len(), 1);
    assert!(f.dir.route_remove(&op, "+4533221100", &"jens@hansen.dk".parse().unwrap()).is_err());

    f.dir
        .sender_add(&op, &a.id, "@hansen.dk".parse().unwrap(), Some("33221100"), SenderAuth::Dmarc, Default::default())
        .unwrap();
    f.dir
        .sender_add(&op, &a.id, "boss@hansen.dk".parse().unwrap(), None, SenderAuth::SmtpAuth, Default::default())
        .unwrap();
    let s = f.dir.lookup_sender(&"Boss@Hansen.DK".parse().unwrap()).unwrap().unwrap();
    assert_eq!(s.auth, SenderAuth::SmtpAuth);
    let s = f.dir.lookup_sender(&"anyone@hansen.dk".parse().unwrap()).unwrap().unwrap();
    assert_eq!(s.caller_number.unwrap().as_str(), "+4533221100");
    assert!(f.dir.lookup_sender(&"x@other.dk".parse().unwrap()).unwrap().is_none());

    let t = f.dir.account_terminate(&op, &a.id, Some("2026-02-01T00:00:00Z".parse().unwrap())).unwrap();
    assert_eq!(t.status(f.dir.now()), AccountStatus::Active);
    f.clock.advance(jiff::SignedDuration::from_hours(24 * 30));
    assert_eq!(f.dir.account_get(&op, &a.id).unwrap().status(f.dir.now()), AccountStatus::Terminated);

    let removed = f.dir.account_remove(&op, &a.id).unwrap();
    assert_eq!((removed.numbers, removed.senders), (1, 2));
    assert!(f.dir.lookup_number(&"+4533221100".parse().unwrap()).unwrap().is_none());
    assert!(f.dir.lookup_sender(&"anyone@hansen.dk".parse().unwrap()).unwrap().is_none());
    assert!(f.dir.tree().keys_with_prefix(b"an\0").unwrap().is_empty());
    f.dir.tenant_remove(&op, &tid("alpha")).unwrap();
    assert!(f.dir.tenant_for_domain(&"fax.alpha.dk".parse().unwrap()).unwrap().is_none());
}

const FILE: &str = r#"
[[tenant]]
id = "alpha"
name = "Alpha Telecom"
display_name = "Alpha Fax"
from_address = "fax@alpha.dk"
language = "da"
default_country = "DK"
fax_domains = ["fax.alpha.dk"]

[[tenant.account]]
reference = "c-1001"
name = "Hansen ApS"

[[tenant.account.number]]
number = "33 22 11 00"
route = [{ email = "jens@hansen.dk", format = "pdf" }]

[[tenant.account.sender]]
sender = "@hansen.dk"
caller_number = "33 22 11 00"
auth = "dmarc"

[[tenant.account]]
reference = "c-1002"
name = "Jensen A/S"
"#;

#[test]
fn apply_is_idempotent_and_all_or_nothing() {
    let f = fixture();
    let op = Scope::Operator;
    let file: DirectoryFile = toml::from_str(FILE).unwrap();
    let r = f.dir.apply(&op, &file, false, false, None).unwrap();
    assert_eq!(r.changes.len(), 5, "{:#?}", r.changes);
    let again = f.dir.apply(&op, &file, false, false, None).unwrap();
    assert!(again.changes.is_empty(), "{:#?}", again.changes);

    // A changed route is one change; a dry run changes nothing.
    let changed = FILE.replace("format = \"pdf\"", "format = \"both\"");
    let file2: DirectoryFile = toml::from_str(&changed).unwrap();
    let dry = f.dir.apply(&op, &file2, false, true, None).unwrap();
    assert_eq!(dry.changes.len(), 1, "{:#?}", dry.changes);
    assert_eq!(f.dir.number_get(&op, "+4533221100").unwrap().routes[0].format, AttachmentFormat::Pdf);
    f.dir.apply(&op, &file2, false, false, None).unwrap();
    assert_eq!(f.dir.number_get(&op, "+4533221100").unwrap().routes[0].format, AttachmentFormat::Both);

    // A bad number anywhere: nothing at all changes.
    let bad =
        changed.replace("name = \"Jensen A/S\"", "name = \"Jensen\"\n[[tenant.account.number]]\nnumber = \"12ab\"");
    let file3: DirectoryFile = toml::from_str(&bad).unwrap();
    let r = f.dir.apply(&op, &file3, false, false, Some(&bad)).unwrap();
    assert!(!r.applied, "{r:#?}");
    assert_eq!(r.problems.len(), 1, "{r:#?}");
    assert!(r.problems[0].message.contains("letters"), "{r:#?}");
    let last_number = bad.lines().enumerate().filter(|(_, t)| t.contains("[[tenant.account.number]]")).last();
    assert_eq!(r.problems[0].line, last_number.map(|(i, _)| i + 1), "{r:#?}");
    let jensen = f.dir.account_by_reference(&op, &tid("alpha"), "c-1002").unwrap().unwrap();
    assert_eq!(jensen.name, "Jensen A/S");

    // One bad value (control characters in a name) in a file that also adds
    // a number: nothing at all is applied, and a dry run says the same.
    let ctl = changed.replace(
        "name = \"Jensen A/S\"",
        "name = \"Jensen\\u0007A/S\"\n[[tenant.account.number]]\nnumber = \"44 55 66 78\"",
    );
    let file4: DirectoryFile = toml::from_str(&ctl).unwrap();
    let header = ctl.lines().position(|l| l.contains("reference = \"c-1002\"")).unwrap();
    for dry_run in [true, false] {
        let r = f.dir.apply(&op, &file4, false, dry_run, Some(&ctl)).unwrap();
        assert!(!r.applied, "{r:#?}");
        assert_eq!(r.problems.len(), 1, "{r:#?}");
        assert!(r.problems[0].message.contains("control characters"), "{r:#?}");
        assert_eq!(r.problems[0].path, "tenant.0.account.1", "{r:#?}");
        assert_eq!(r.problems[0].line, Some(header), "the [[tenant.account]] line: {r:#?}");
        assert!(f.dir.number_get(&op, "+4544556678").is_err(), "the file's new number was not added");
    }

    // Prune: a number and an account left out of the file.
    f.dir.number_add(&op, &jensen.id, "44 55 66 77", vec![]).unwrap();
    let lone = f.dir.account_add(&op, &tid("alpha"), "Lone", None, None).unwrap();
    let r = f.dir.apply(&op, &file2, true, false, None).unwrap();
    assert_eq!(r.changes.len(), 2, "{:#?}", r.changes);
    assert!(f.dir.number_get(&op, "+4544556677").is_err());
    assert_eq!(f.dir.account_get(&op, &lone.id).unwrap().status(f.dir.now()), AccountStatus::Terminated);
    assert!(f.dir.apply(&op, &file2, true, false, None).unwrap().changes.is_empty());

    // A tenant may apply only its own part.
    let other = Scope::Tenant(tid("beta"));
    let r = f.dir.apply(&other, &file2, false, false, None).unwrap();
    assert!(!r.applied && r.problems.iter().any(|p| p.message.contains("not yours")), "{r:#?}");
}

#[test]
fn an_accounts_cover_page_is_set_changed_and_cleared_by_file_and_by_change() {
    let f = fixture();
    let op = Scope::Operator;
    let on = FILE.replace("name = \"Hansen ApS\"", "name = \"Hansen ApS\"\ncover_page = true");
    let file: DirectoryFile = toml::from_str(&on).unwrap();
    f.dir.apply(&op, &file, false, false, None).unwrap();
    let hansen = || f.dir.account_by_reference(&op, &tid("alpha"), "c-1001").unwrap().unwrap();
    let jensen = f.dir.account_by_reference(&op, &tid("alpha"), "c-1002").unwrap().unwrap();
    assert_eq!((hansen().cover_page, jensen.cover_page), (Some(true), None));
    assert!(f.dir.apply(&op, &file, false, false, None).unwrap().changes.is_empty());
    // Turned off in the file: one change, named.
    let off: DirectoryFile = toml::from_str(&on.replace("cover_page = true", "cover_page = false")).unwrap();
    let r = f.dir.apply(&op, &off, false, false, None).unwrap();
    assert_eq!(r.changes.len(), 1, "{:#?}", r.changes);
    assert!(r.changes[0].contains("cover page"), "{:#?}", r.changes);
    assert_eq!(hansen().cover_page, Some(false));
    // Left out of the file: back to the gateway's setting.
    let plain: DirectoryFile = toml::from_str(FILE).unwrap();
    assert_eq!(f.dir.apply(&op, &plain, false, false, None).unwrap().changes.len(), 1);
    assert_eq!(hansen().cover_page, None);
    // A change keeps it unless it says otherwise.
    let id = hansen().id;
    f.dir.account_change(&op, &id, AccountChange { cover_page: Patch::Set(true), ..Default::default() }).unwrap();
    f.dir.account_change(&op, &id, AccountChange { name: Some("Hansen & Co".into()), ..Default::default() }).unwrap();
    assert_eq!(hansen().cover_page, Some(true));
    f.dir.account_change(&op, &id, AccountChange { cover_page: Patch::Clear, ..Default::default() }).unwrap();
    assert_eq!(hansen().cover_page, None);
}

#[test]
fn a_senders_envelope_rule_is_set_by_file_and_by_change() {
    let f = fixture();
    let op = Scope::Operator;
    let file: DirectoryFile = toml::from_str(FILE).unwrap();
    f.dir.apply(&op, &file, false, false, None).unwrap();
    let pattern: SenderPattern = "@hansen.dk".parse().unwrap();
    assert_eq!(f.dir.sender_get(&op, &pattern).unwrap().envelope_from, EnvelopeFrom::Own, "the default");
    let account = FILE.replace("sender = \"@hansen.dk\"", "sender = \"@hansen.dk\"\nenvelope_from = \"account\"");
    let r = f.dir.apply(&op, &toml::from_str(&account).unwrap(), false, false, None).unwrap();
    assert_eq!(r.changes.len(), 1, "{:#?}", r.changes);
    assert!(r.changes[0].contains("envelope_from Account"), "{:#?}", r.changes);
    assert_eq!(f.dir.sender_get(&op, &pattern).unwrap().envelope_from, EnvelopeFrom::Account);
    let ch = SenderChange { envelope_from: Some(EnvelopeFrom::Own), ..Default::default() };
    assert_eq!(f.dir.sender_change(&op, &pattern, ch).unwrap().envelope_from, EnvelopeFrom::Own);
    let bad = FILE.replace("sender = \"@hansen.dk\"", "sender = \"@hansen.dk\"\nenvelope_from = \"anyone\"");
    assert!(toml::from_str::<DirectoryFile>(&bad).is_err());
}

#[test]
fn page_header_time_zone_and_station_ids_are_set_by_file_and_checked() {
    let f = fixture();
    let op = Scope::Operator;
    let set = FILE
        .replace(
            "fax_domains = [\"fax.alpha.dk\"]",
            "fax_domains = [\"fax.alpha.dk\"]\ntime_zone = \"Europe/Copenhagen\"\nheader_template = \"{date} {time}|{station}|Side {page}/{pages}\"\nstation_id = \"+45 70 20 30 40\"",
        )
        .replace("name = \"Hansen ApS\"", "name = \"Hansen ApS\"\nstation_id = \"+45 33 22 11 00\"");
    assert_ne!(set, FILE);
    let file: DirectoryFile = toml::from_str(&set).unwrap();
    f.dir.apply(&op, &file, false, false, None).unwrap();
    let t = f.dir.tenant_get(&op, &tid("alpha")).unwrap();
    assert_eq!(t.time_zone.as_deref(), Some("Europe/Copenhagen"));
    assert_eq!(t.header_template.as_deref(), Some("{date} {time}|{station}|Side {page}/{pages}"));
    assert_eq!(t.station_id.as_deref(), Some("+45 70 20 30 40"));
    let hansen = || f.dir.account_by_reference(&op, &tid("alpha"), "c-1001").unwrap().unwrap();
    assert_eq!(hansen().station_id.as_deref(), Some("+45 33 22 11 00"));
    assert!(f.dir.apply(&op, &file, false, false, None).unwrap().changes.is_empty());
    // Left out of the file: unset again, each change named.
    let plain: DirectoryFile = toml::from_str(FILE).unwrap();
    let r = f.dir.apply(&op, &plain, false, false, None).unwrap();
    assert_eq!(r.changes.len(), 2, "{:#?}", r.changes);
    assert!(r.changes[0].contains("time zone unset") && r.changes[0].contains("station id unset"), "{:#?}", r.changes);
    assert!(r.changes[1].contains("station id"), "{:#?}", r.changes);
    assert_eq!(f.dir.tenant_get(&op, &tid("alpha")).unwrap().header_template, None);
    assert_eq!(hansen().station_id, None);

    // Wrong values are refused with what is wrong, the whole file unapplied.
    for (wrong, says) in [
        ("time_zone = \"Europe/Kastrup\"", "not a time zone"),
        ("header_template = \"{date} {sender_name}\"", "unknown placeholder {sender_name}"),
        ("station_id = \"Nordtel Fax\"", "only digits, '+' and spaces"),
        ("station_id = \"+45 70 20 30 40 50 60 70\"", "longer than 20"),
    ] {
        let bad: DirectoryFile = toml::from_str(
            &FILE.replace("fax_domains = [\"fax.alpha.dk\"]", &format!("fax_domains = [\"fax.alpha.dk\"]\n{wrong}")),
        )
        .unwrap();
        let r = f.dir.apply(&op, &bad, false, false, None).unwrap();
        assert!(!r.applied && r.problems.iter().any(|p| p.message.contains(says)), "{wrong}: {r:#?}");
    }
    let e = f
        .dir
        .tenant_change(
            &op,
            &tid("alpha"),
            TenantChange { time_zone: Patch::Set("CEST+2".into()), ..Default::default() },
        )
        .unwrap_err();
    assert!(e.to_string().contains("not a time zone"), "{e}");
    let id = hansen().id;
    let e = f
        .dir
        .account_change(&op, &id, AccountChange { station_id: Patch::Set("fax-1".into()), ..Default::default() })
        .unwrap_err();
    assert!(e.to_string().contains("only digits"), "{e}");
    // An empty template (no header) is a template.
    let t = f
        .dir
        .tenant_change(
            &op,
            &tid("alpha"),
            TenantChange { header_template: Patch::Set(String::new()), ..Default::default() },
        )
        .unwrap();
    assert_eq!(t.header_template.as_deref(), Some(""));
}
