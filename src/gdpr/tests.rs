use std::sync::Arc;

use super::*;
use crate::cdr::tests::sample;
use crate::clock::FakeClock;
use crate::directory::{AccountChange, AttachmentFormat, Branding, Language, Paper, Patch, Route, SenderAuth, Tenant};

struct World {
    _tmp: tempfile::TempDir,
    dir: Directory,
    cdrs: CdrStore,
    privacy: Privacy,
    audit: faxgate_retention::audit::AuditLog,
    store: Store,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let store = Store::open(&data, &data.join("keys")).unwrap();
    let clock = FakeClock::new("2026-03-10T12:00:00Z".parse().unwrap());
    let dir = Directory::open(&store, Arc::new(clock)).unwrap();
    let op = Scope::Operator;
    dir.tenant_add(
        &op,
        Tenant {
            id: "alpha".parse().unwrap(),
            name: "Alpha".into(),
            branding: Branding {
                display_name: "Alpha".into(),
                from_address: "fax@alpha.dk".parse().unwrap(),
                language: Language::Da,
            },
            default_country: "DK".parse().unwrap(),
            fax_domains: vec![],
            paper: Paper::A4,
            time_zone: None,
            header_template: None,
            station_id: None,
        },
    )
    .unwrap();
    let a = dir.account_add(&op, &"alpha".parse().unwrap(), "Karen Blixen", Some("k-1"), None).unwrap();
    let cover = AccountChange { cover_page: Patch::Set(true), ..Default::default() };
    let a = dir.account_change(&op, &a.id, cover).unwrap();
    let route = |e: &str| Route { email: e.parse().unwrap(), format: AttachmentFormat::Pdf };
    dir.number_add(&op, &a.id, "+4533990101", vec![route("karen@rungstedlund.dk"), route("kontor@rungstedlund.dk")])
        .unwrap();
    dir.number_add(&op, &a.id, "+4533990102", vec![route("kontor@rungstedlund.dk")]).unwrap();
    dir.sender_add(
        &op,
        &a.id,
        "karen@rungstedlund.dk".parse().unwrap(),
        Some("+4533990101"),
        SenderAuth::Dmarc,
        Default::default(),
    )
    .unwrap();
    let cdrs = CdrStore::open(&store).unwrap();
    let mut c1 = sample("2026-01-05T09:00:00Z", "alpha", "+4533990101");
    c1.emails = vec!["karen@rungstedlund.dk".parse().unwrap()];
    cdrs.write(&c1).unwrap();
    let mut c2 = sample("2026-02-05T09:00:00Z", "alpha", "+4587654321");
    c2.emails = vec!["someone@else.dk".parse().unwrap()];
    cdrs.write(&c2).unwrap();
    let audit = faxgate_retention::audit::AuditLog::new(data.join("retention-audit.jsonl"));
    let privacy = Privacy::new(&store, &dir, Policy::default(), audit.clone()).unwrap();
    World { _tmp: tmp, dir, cdrs, privacy, audit, store }
}

fn validate(v: &serde_json::Value) {
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(v).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{v:#}");
}

#[test]
fn export_by_email_and_by_number_match_the_schema() {
    let w = world();
    let e = w.privacy.export(&Subject::Email("karen@rungstedlund.dk".parse().unwrap())).unwrap();
    assert_eq!(e.numbers.len(), 1);
    assert_eq!(e.senders.len(), 1);
    assert_eq!(e.accounts[0].name, "Karen Blixen");
    assert_eq!(e.accounts[0].cover_page, Some(true));
    assert_eq!(e.cdrs.len(), 1);
    assert_eq!(e.cdr_erase_on[0].to_string(), "2027-01-05T09:00:00Z");
    validate(&serde_json::to_value(&e).unwrap());
    let n = w.privacy.export(&Subject::Number("+4533990101".parse().unwrap())).unwrap();
    assert_eq!((n.numbers.len(), n.senders.len(), n.cdrs.len()), (1, 1, 1));
    validate(&serde_json::to_value(&n).unwrap());
    // The schema is not a rubber stamp.
    let mut bad = serde_json::to_value(&n).unwrap();
    bad["cdrs"][0]["called"] = "33990101".into();
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    assert!(!jsonschema::validator_for(&schema).unwrap().is_valid(&bad));
}

/// A number's export holds what calls to it needed; erasing the number
/// erases that, in every tenant.
#[test]
fn erasing_a_number_forgets_its_learned_fallbacks() {
    let w = world();
    let learning = crate::learned::Learning::open(&w.store).unwrap();
    let (alpha, n): (crate::types::TenantId, E164) = ("alpha".parse().unwrap(), "+4533990102".parse().unwrap());
    let audio = faxgate_t38::sip::Needed { audio: true, ..Default::default() };
    let now: Timestamp = "2026-03-10T12:00:00Z".parse().unwrap();
    learning.record(&alpha, &n, audio, None, now, 30).unwrap();
    let e = w.privacy.export(&Subject::Number(n.clone())).unwrap();
    assert_eq!(e.learned.len(), 1);
    assert!(e.learned[0].audio);
    validate(&serde_json::to_value(&e).unwrap());
    let r = w.privacy.erase(&Subject::Number(n.clone())).unwrap();
    assert!(r.erased.iter().any(|e| e.starts_with("learned fallbacks")), "{r:?}");
    assert_eq!(learning.get(&alpha, &n, now, 30).unwrap(), None);
}

#[test]
fn erase_removes_directory_data_now_and_keeps_cdrs_with_their_dates() {
    let w = world();
    let r = w.privacy.erase(&Subject::Email("karen@rungstedlund.dk".parse().unwrap())).unwrap();
    assert_eq!(r.erased.len(), 2, "{r:?}");
    assert_eq!(r.cdrs_kept.len(), 1);
    assert_eq!(r.cdrs_kept[0].erase_on.to_string(), "2027-01-05T09:00:00Z");
    assert!(r.note.contains("legal duty"));
    let n = w.dir.number_get(&Scope::Operator, "+4533990101").unwrap();
    assert_eq!(n.routes.len(), 1);
    assert_eq!(n.routes[0].email.as_str(), "kontor@rungstedlund.dk");
    assert!(w.dir.lookup_sender(&"karen@rungstedlund.dk".parse().unwrap()).unwrap().is_none());
    let r = w.privacy.erase(&Subject::Number("+4533990102".parse().unwrap())).unwrap();
    assert_eq!(r.erased.len(), 1);
    assert!(w.dir.lookup_number(&"+4533990102".parse().unwrap()).unwrap().is_none());
    let trail = w.audit.entries().unwrap();
    assert_eq!(trail.len(), 2);
    assert_eq!(trail[0].request.as_ref().unwrap().kind, "gdpr-erase");
    let text = serde_json::to_string(&trail).unwrap();
    assert!(!text.contains("rungstedlund") && !text.contains("3399"), "{text}");
}

#[test]
fn rectify_restrict_and_disclose() {
    let w = world();
    let changed = w
        .privacy
        .rectify_email(&"karen@rungstedlund.dk".parse().unwrap(), &"karen.blixen@rungstedlund.dk".parse().unwrap())
        .unwrap();
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert!(w.dir.lookup_sender(&"karen.blixen@rungstedlund.dk".parse().unwrap()).unwrap().is_some());
    assert!(w.privacy.rectify_email(&"nobody@x.dk".parse().unwrap(), &"a@b.dk".parse().unwrap()).is_err());

    let s = Subject::Number("+4533990101".parse().unwrap());
    assert!(w.privacy.restrict(&s, false).unwrap());
    assert_eq!(w.privacy.restricted().unwrap(), vec![s.clone()]);
    assert!(w.privacy.export(&s).unwrap().restricted);
    w.privacy.restrict(&s, true).unwrap();
    assert!(w.privacy.restricted().unwrap().is_empty());
    assert!(w.privacy.restrict(&s, true).is_err());

    let d = w
        .privacy
        .disclose(
            &"+4533990101".parse().unwrap(),
            "2026-01-01T00:00:00Z".parse().unwrap(),
            "2026-02-01T00:00:00Z".parse().unwrap(),
            "SA-2026-0311",
            "Københavns Politi",
        )
        .unwrap();
    assert_eq!(d.cdrs.len(), 1);
    let rec = w.audit.entries().unwrap().pop().unwrap().request.unwrap();
    assert_eq!((rec.kind.as_str(), rec.case.as_deref(), rec.records), ("disclosure", Some("SA-2026-0311"), 1));
    assert_eq!(rec.authority.as_deref(), Some("Københavns Politi"));
    assert!(
        w.privacy
            .disclose(
                &"+4533990101".parse().unwrap(),
                "2026-02-01T00:00:00Z".parse().unwrap(),
                "2026-01-01T00:00:00Z".parse().unwrap(),
                "x",
                "y"
            )
            .is_err()
    );
    let _ = &w.cdrs;
}

/// A webhook that mails its notices to the subject is in the subject's
/// export (and directory.csv), follows a rectification, and loses the
/// address on erasure.
#[test]
fn a_webhook_notice_address_is_exported_rectified_and_erased() {
    use crate::directory::webhooks::Event;
    let w = world();
    let alpha: crate::types::TenantId = "alpha".parse().unwrap();
    let acc = w.dir.account_list(&Scope::Operator, Some(&alpha)).unwrap()[0].id;
    let karen: EmailAddress = "karen@rungstedlund.dk".parse().unwrap();
    let hook = w
        .dir
        .webhook_create(
            &alpha,
            Some(&acc),
            "https://hooks.example/fax",
            vec![Event::FaxSent],
            false,
            Some(karen.clone()),
        )
        .unwrap();
    let other = w
        .dir
        .webhook_create(
            &alpha,
            None,
            "https://hooks.example/t",
            vec![Event::FaxSent],
            false,
            Some("it@alpha.dk".parse().unwrap()),
        )
        .unwrap();

    let e = w.privacy.export(&Subject::Email(karen.clone())).unwrap();
    assert_eq!(e.webhooks.len(), 1, "{:?}", e.webhooks);
    assert_eq!((e.webhooks[0].id.as_str(), e.webhooks[0].account), (hook.id.as_str(), Some(acc)));
    validate(&serde_json::to_value(&e).unwrap());
    let csv = directory_csv(&e).unwrap();
    assert!(csv.lines().any(|l| l.starts_with("webhook,alpha,") && l.contains("karen@rungstedlund.dk")), "{csv}");
    assert!(w.privacy.export(&Subject::Number("+4533990101".parse().unwrap())).unwrap().webhooks.is_empty());

    let new: EmailAddress = "karen.blixen@rungstedlund.dk".parse().unwrap();
    let changed = w.privacy.rectify_email(&karen, &new).unwrap();
    assert!(changed.iter().any(|c| c.contains(&hook.id)), "{changed:?}");
    assert_eq!(w.dir.webhook_get(&hook.id).unwrap().unwrap().notify, Some(new.clone()));

    let r = w.privacy.erase(&Subject::Email(new)).unwrap();
    assert!(r.erased.iter().any(|x| x.contains(&hook.id)), "{:?}", r.erased);
    assert_eq!(w.dir.webhook_get(&hook.id).unwrap().unwrap().notify, None);
    // Another's address is left as it was.
    assert_eq!(w.dir.webhook_get(&other.id).unwrap().unwrap().notify, Some("it@alpha.dk".parse().unwrap()));
}
