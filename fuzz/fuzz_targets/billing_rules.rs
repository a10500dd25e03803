//! A tenant's rating rules as `faxgate billing rules set` reads them (a
//! tenant's admin writes them): any text parsed and checked; rules that
//! pass rate a fixed set of CDRs at both levels. Never a panic or an
//! overflow; no negative amount; the rows sum to the total; the same CDRs
//! in another order give the same export.
#![no_main]

use faxgate::billing::{Level, Rating, export};
use faxgate::cdr::{Cdr, example};
use libfuzzer_sys::fuzz_target;

fn cdrs() -> Vec<Cdr> {
    let start: jiff::Timestamp = "2026-11-02T09:00:00Z".parse().unwrap();
    (0..24u64)
        .map(|i| {
            let mut c = example(i, start + jiff::SignedDuration::from_secs(3600 * i as i64));
            c.tenant = "alpha".parse().unwrap();
            // Numbers of every class, unanswered and long calls.
            c.called = ["+4533221100", "+4590123456", "+4580201234", "+4930123456", "+442071234567", "+4915123456789"]
                [i as usize % 6]
                .parse()
                .ok();
            if i % 5 == 0 {
                c.answer = None;
                c.pages = 0;
            }
            c.end = c.start + jiff::SignedDuration::from_secs(30 + 700 * (i as i64 % 4));
            c
        })
        .collect()
}

fuzz_target!(|text: &str| {
    let Ok(rating) = Rating::from_toml(text) else { return };
    let tenant = "alpha".parse().unwrap();
    let home = "DK".parse().unwrap();
    for level in [Level::Wholesale, Level::Retail] {
        if rating.table(level).is_none() {
            continue;
        }
        let run = |list: Vec<Cdr>| {
            export(&tenant, "2026-11", home, &rating, level, list, Vec::new(), &|c| c.pages == 1, &|_| None).unwrap()
        };
        let list = cdrs();
        let e = run(list.clone());
        let mut reversed = list;
        reversed.reverse();
        assert_eq!(run(reversed).to_csv().unwrap(), e.to_csv().unwrap(), "the order of the CDRs changed the export");
        let sum: rust_decimal::Decimal = e.rows.iter().map(|r| r.amount).sum();
        assert_eq!(sum, e.total.amount);
        assert!(e.rows.iter().all(|r| !r.amount.is_sign_negative()));
        e.to_jsonl().unwrap();
    }
});
