use super::*;
use crate::cdr::tests::sample;

const RULES: &str = r#"
currency = "DKK"

[wholesale]
unit = "page"
incoming = "page"
price = { national = 0.10, mobile = 0.12, toll_free = 0, premium = 2.5, international = 0.45, incoming = 0.05 }

[retail]
unit = "minute"
minimum = 1
increment = 1
show_digits = 4
zones = { eu = ["DE", "SE"] }
price = { national = 0.25, mobile = "0.35", toll_free = 0, premium = 5, international = 1.25, international-eu = 0.75 }
"#;

fn home() -> Country {
    "DK".parse().unwrap()
}

fn rules() -> Rating {
    Rating::from_toml(RULES).unwrap()
}

#[test]
fn destination_classes_come_from_the_numbering_plan() {
    let r = rules();
    let t = r.retail.as_ref().unwrap();
    let class = |n: &str| class_of(&n.parse().unwrap(), home(), t);
    assert_eq!(class("+4533221100"), "national");
    // Denmark's plan does not tell mobile numbers from fixed ones; Germany's does.
    assert_eq!(class("+4520123456"), "national");
    assert_eq!(class_of(&"+4915123456789".parse().unwrap(), "DE".parse().unwrap(), t), "mobile");
    assert_eq!(class_of(&"+4930123456".parse().unwrap(), "DE".parse().unwrap(), t), "national");
    assert_eq!(class("+4580201234"), "toll_free");
    assert_eq!(class("+4590123456"), "premium");
    assert_eq!(class("+4930123456"), "international-eu");
    assert_eq!(class("+442071234567"), "international");
    // The wholesale table has no zones: every foreign number is international.
    assert_eq!(class_of(&"+4930123456".parse().unwrap(), home(), r.wholesale.as_ref().unwrap()), "international");
}

#[test]
fn units_have_a_minimum_and_an_increment() {
    assert_eq!(units(0, 1, 1), 1);
    assert_eq!(units(3, 1, 1), 3);
    // 60/6 billing of 67 s, 59 s and 5 s.
    assert_eq!(units(67, 60, 6), 72);
    assert_eq!(units(59, 60, 6), 60);
    assert_eq!(units(5, 60, 6), 60);
    assert_eq!(units(61, 30, 10), 70);
}

#[test]
fn golden_cdrs_are_rated_per_page_and_per_started_minute_with_rounding() {
    let r = rules();
    // 2 pages, answered 67 s.
    let c = sample("2026-11-03T10:00:00Z", "acme", "+4533221100");
    let w = rate(&c, r.wholesale.as_ref().unwrap(), home(), 2, false).unwrap();
    assert_eq!(
        (w.class.as_str(), w.units, w.unit_price.to_string(), w.amount.to_string()),
        ("national", 2, "0.1".into(), "0.20".into())
    );
    let t = rate(&c, r.retail.as_ref().unwrap(), home(), 2, false).unwrap();
    // 67 s: two started minutes at 0.25.
    assert_eq!((t.units, t.amount.to_string(), t.duration_s), (2, "0.50".into(), 67));
    assert_eq!(t.number.as_deref(), Some("+45****1100"), "masked to the last 4 digits");
    assert_eq!(w.number.as_deref(), Some("+4533221100"));
    // A price with more decimals than the currency: rounded half away from zero.
    let mut odd = rules();
    odd.wholesale.as_mut().unwrap().price.insert("national".into(), "0.1225".parse().unwrap());
    let w = rate(&c, odd.wholesale.as_ref().unwrap(), home(), 2, false).unwrap();
    assert_eq!(w.amount.to_string(), "0.25", "2 x 0.1225 = 0.245 -> 0.25");
    // Not answered, or no page: not billable by default; every attempt when asked.
    let mut unanswered = sample("2026-11-03T10:05:00Z", "acme", "+4533221100");
    unanswered.answer = None;
    unanswered.pages = 0;
    assert!(rate(&unanswered, r.wholesale.as_ref().unwrap(), home(), 2, false).is_none());
    let mut every = r.wholesale.clone().unwrap();
    every.billable = Billable::Attempts;
    let a = rate(&unanswered, &every, home(), 2, false).unwrap();
    assert_eq!((a.units, a.amount.to_string()), (1, "0.10".into()), "the minimum of one unit");
    // Incoming: per page at wholesale, free at retail.
    let mut inc = sample("2026-11-03T11:00:00Z", "acme", "+4533221100");
    inc.direction = Direction::FaxToMail;
    inc.pages = 3;
    let i = rate(&inc, r.wholesale.as_ref().unwrap(), home(), 2, false).unwrap();
    assert_eq!((i.class.as_str(), i.units, i.amount.to_string()), ("incoming", 3, "0.15".into()));
    assert!(rate(&inc, r.retail.as_ref().unwrap(), home(), 2, false).is_none());
    // A restricted subject: the row stays, the number is withheld.
    let x = rate(&c, r.retail.as_ref().unwrap(), home(), 2, true).unwrap();
    assert_eq!((x.number, x.restricted, x.amount.to_string()), (None, true, "0.50".into()));
}

#[test]
fn an_export_sums_per_account_and_is_the_same_every_time() {
    let r = rules();
    let acc = AccountId::generate();
    let other = AccountId::generate();
    let mut cdrs = Vec::new();
    for (i, n) in ["+4533221100", "+4520123456", "+4930123456", "+4590123456"].iter().enumerate() {
        let mut c = sample(&format!("2026-11-0{}T10:00:00Z", i + 1), "acme", n);
        c.account = Some(if i == 3 { other } else { acc });
        cdrs.push(c);
    }
    let restricted = |c: &Cdr| c.called.as_ref().is_some_and(|n| n.as_str() == "+4520123456");
    let reference = |a: &AccountId| (*a == acc).then(|| "K-1001".to_owned());
    let tenant: TenantId = "acme".parse().unwrap();
    let e = export(&tenant, "2026-11", home(), &r, Level::Retail, cdrs.clone(), Vec::new(), &restricted, &reference)
        .unwrap();
    assert_eq!((e.cdrs, e.rows.len(), e.withheld, e.masked), (4, 4, 1, 3));
    // 2 minutes each: 0.50 + 0.50 + 1.50 (the EU zone) + 10.00.
    assert_eq!(e.total.amount.to_string(), "12.50");
    assert_eq!(e.accounts[&acc.to_text()].amount.to_string(), "2.50");
    assert_eq!(e.accounts[&other.to_text()].by_class["premium"].amount.to_string(), "10.00");
    assert_eq!(e.rows[0].reference.as_deref(), Some("K-1001"));
    // The same CDRs in another order: the same export, to the byte.
    let mut shuffled = cdrs.clone();
    shuffled.reverse();
    let again =
        export(&tenant, "2026-11", home(), &r, Level::Retail, shuffled, Vec::new(), &restricted, &reference).unwrap();
    assert_eq!(again.to_csv().unwrap(), e.to_csv().unwrap());
    assert_eq!(again.to_jsonl().unwrap(), e.to_jsonl().unwrap());
    let csv = e.to_csv().unwrap();
    assert!(csv.starts_with(&CSV_COLUMNS.join(",")), "{csv}");
    assert_eq!(csv.lines().count(), 1 + 4, "a header and the rows: {csv}");
    assert!(e.summary_line().contains("numbers withheld (restricted): 1, masked: 3"), "{}", e.summary_line());
    assert_eq!(e.summary()["accounts"][acc.to_text()]["amount"], "2.50");
    // Rows plus summary lines; the sum of the rows' amounts is the total.
    let sum: Decimal = e.rows.iter().map(|r| r.amount).sum();
    assert_eq!(sum, e.total.amount);
}

#[test]
fn rules_are_checked_and_name_what_is_wrong() {
    let cases = [
        (RULES.replace("\"DKK\"", "\"kroner\""), "currency"),
        (RULES.replace("national = 0.10, ", ""), "wholesale.price.national is missing"),
        (RULES.replace("international-eu = 0.75", "international-asia = 0.75"), "international-asia: no such class"),
        (RULES.replace("premium = 2.5", "premium = -2.5"), "negative"),
        (RULES.replace("mobile = \"0.35\"", "mobile = \"cheap\""), "is not a decimal number"),
        (RULES.replace("show_digits = 4", "show_digits = 1"), "show_digits"),
        (RULES.replace("unit = \"minute\"", "unit = \"hour\""), "unit"),
    ];
    for (text, want) in cases {
        let e = Rating::from_toml(&text).unwrap_err().to_string();
        assert!(e.contains(want), "{want}: {e}");
    }
}

#[test]
fn months_and_masks() {
    let (a, b) = month_bounds("2026-02").unwrap();
    assert_eq!((a.to_string(), b.to_string()), ("2026-02-01T00:00:00Z".into(), "2026-03-01T00:00:00Z".into()));
    assert_eq!(month_bounds("2026-12").unwrap().1.to_string(), "2027-01-01T00:00:00Z");
    assert!(month_bounds("2026-13").is_err() && month_bounds("26-1x").is_err());
    assert_eq!(masked("+4533221100", 4), "+45****1100");
    assert_eq!(masked("+4533221100", 8), "+4533221100");
}

#[test]
fn the_example_rating_file_is_valid() {
    let r = Rating::from_toml(include_str!("../../rating.example.toml")).unwrap();
    assert_eq!(r.currency, "DKK");
    assert_eq!(r.retail.unwrap().zones["eu"].len(), 6);
}
