//! A tenant's page header template is written by the tenant's admin: any
//! text is parsed, and what parses is expanded with any values (station id,
//! numbers, names) and drawn into the header band of a page at every
//! resolution. A template may be refused; nothing may panic, and nothing is
//! drawn below the band.
#![no_main]

use faxgate::document::header::{Template, Values, band_rows, draw_line};
use faxgate::document::{Bitmap, Resolution};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (String, String, String, u16, u16, u32)| {
    let (template, station, name, page, pages, secs) = input;
    let Ok(t) = template.parse::<Template>() else { return };
    let values = Values {
        when: jiff::Timestamp::from_second(i64::from(secs)).unwrap().to_zoned(jiff::tz::TimeZone::UTC),
        station: station.chars().take(40).collect(),
        from: "+4570203040".into(),
        to: "+4533221100".into(),
        sender: name.chars().take(200).collect(),
        tenant: "Tenant".into(),
    };
    let line = t.expand(&values, u32::from(page), u32::from(pages));
    for r in [Resolution::Standard, Resolution::Fine, Resolution::Superfine] {
        let band = band_rows(r);
        let mut page = Bitmap::new(1728, band + 8);
        draw_line(&mut page, &line, r);
        assert!((band..band + 8).all(|y| page.row(y).iter().all(|b| *b == 0)), "ink below the band");
    }
});
