//! SIP message handling: any datagram goes through rsipstack's parser, and
//! any request through the checks faxgate runs on a new INVITE before
//! answering (identities, SDP offer, answer). Nothing may panic; a refusal
//! is always 400 or 488.
#![no_main]

use faxgate_t38::sdp::{Capabilities, LocalMedia};
use faxgate_t38::sip::screen_invite;
use libfuzzer_sys::fuzz_target;
use rsipstack::sip::SipMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(SipMessage::Request(req)) = SipMessage::try_from(data) else { return };
    let local = LocalMedia { addr: "192.0.2.1".parse().unwrap(), audio_port: 4000, image_port: 4002 };
    match screen_invite(&req, &Capabilities::default(), &local) {
        Ok((answer, _, call)) => {
            assert!(!answer.media.is_empty());
            let _ = call;
        }
        Err(r) => assert!(matches!(r.status(), 400 | 488)),
    }
});
