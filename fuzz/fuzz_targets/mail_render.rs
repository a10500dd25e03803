//! Untrusted mail: any bytes parsed as a message (mail-parser) and rendered
//! to fax pages as the gateway does (attachments, or the text or HTML body),
//! within tight limits. It may refuse the mail; it may not panic or hang.
#![no_main]

use std::time::Duration;

use faxgate::document::Settings;
use faxgate::gateway::render::render;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut s = Settings::default();
    s.limits.max_pages = 3;
    s.limits.max_pixels = 4_000_000;
    s.limits.max_time = Duration::from_secs(5);
    let _ = render(data, s, None);
});
