//! SDP parser: never panics; what parses writes back to text that parses to
//! the same media; answering any parsed offer never panics and answers
//! every offered section.
#![no_main]

use faxgate_t38::sdp::{self, Capabilities, LocalMedia, SessionDescription};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sd) = SessionDescription::parse(data) else { return };
    let text = sd.write();
    let again = SessionDescription::parse(text.as_bytes()).expect("written SDP parses");
    assert_eq!(again.media.len(), sd.media.len());
    for (a, b) in again.media.iter().zip(&sd.media) {
        assert_eq!(a.port, b.port);
        assert_eq!(a.is_t38(), b.is_t38());
        if a.is_t38() {
            assert_eq!(a.t38, b.t38);
        }
    }
    let local = LocalMedia { addr: "192.0.2.1".parse().unwrap(), audio_port: 4000, image_port: 4002 };
    for caps in [Capabilities::default(), Capabilities { t38: false, ..Capabilities::default() }] {
        if let Ok((answer, n)) = sdp::answer(&caps, &sd, &local, 1, 1) {
            assert_eq!(answer.media.len(), sd.media.len());
            assert!(caps.t38 || !n.is_t38());
            let _ = SessionDescription::parse(answer.write().as_bytes()).expect("answer parses");
        }
        let _ = sdp::accept_answer(&caps, &sd);
    }
});
