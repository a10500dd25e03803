//! Untrusted documents: any bytes, taken as whatever they look like (PDF,
//! TIFF, PNG, JPEG, GIF), rendered to fax pages within tight limits; and the
//! same bytes taken as a received fax TIFF and turned into a PDF. Either may
//! refuse the input; neither may panic, hang or run out of memory.
#![no_main]

use std::time::Duration;

use faxgate::document::topdf::{FaxInfo, tiff_to_pdf};
use faxgate::document::{Kind, Pages, Settings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut s = Settings::default();
    s.limits.max_pages = 3;
    s.limits.max_pixels = 4_000_000;
    s.limits.max_time = Duration::from_secs(5);
    let mut pages = Pages::new(s);
    if let Some(kind) = Kind::sniff(data) {
        let _ = pages.add_binary(kind, data);
    }
    let info = FaxInfo { title: String::new(), from: "fuzz".into(), to: "fuzz".into(), received: None };
    let _ = tiff_to_pdf(data, &info, 3);
});
