//! UDPTL decode-encode-decode round trip: any datagram that parses must
//! re-encode to one that parses to the same thing, and the stateful decoder
//! must never panic on it.
#![no_main]

use faxgate_t38::udptl::{Datagram, ErrorCorrection, Recovery, Udptl};
use libfuzzer_sys::fuzz_target;

/// An empty open type is sent as one zero octet (X.691), so it comes back as [0].
fn norm(p: &[u8]) -> Vec<u8> {
    if p.is_empty() { vec![0] } else { p.to_vec() }
}

fn norm_rec(r: &Recovery<'_>) -> (u8, Option<u8>, Vec<Vec<u8>>) {
    match r {
        Recovery::Redundancy(s) => (0, None, s.iter().map(|p| norm(p)).collect()),
        Recovery::Fec { span, parity } => (1, Some(*span), parity.iter().map(|p| norm(p)).collect()),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = Datagram::parse(data) {
        let bytes = d.encode();
        let again = Datagram::parse(&bytes).expect("re-encoded datagram parses");
        assert_eq!(again.seq, d.seq);
        assert_eq!(norm(again.primary), norm(d.primary));
        assert_eq!(norm_rec(&again.recovery), norm_rec(&d.recovery));
        // Canonical encoding is a fixed point.
        assert_eq!(again.encode(), bytes);
    }
    let mut u = Udptl::new(ErrorCorrection::default(), 400);
    let _ = u.decode(data);
    let _ = u.decode(data);
});
