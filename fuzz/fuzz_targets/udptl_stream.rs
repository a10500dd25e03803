//! A UDPTL flow through a hostile network: IFPs encoded with redundancy or
//! FEC, then dropped, duplicated and reordered. Whatever the decoder
//! delivers must be what was sent under that sequence number, in order.
#![no_main]

use arbitrary::Arbitrary;
use faxgate_t38::udptl::{ErrorCorrection, Udptl};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Net {
    Deliver,
    Drop,
    Duplicate,
    SwapWithNext,
}

#[derive(Debug, Arbitrary)]
struct Input {
    ec: u8,
    max_datagram: u16,
    start_seq_hint: u8,
    packets: Vec<(Vec<u8>, Net)>,
}

fuzz_target!(|input: Input| {
    let ec = match input.ec % 3 {
        0 => ErrorCorrection::None,
        1 => ErrorCorrection::Redundancy { depth: input.ec / 3 % 8 },
        _ => ErrorCorrection::Fec { span: 1 + input.ec / 3 % 4, entries: 1 + input.ec / 12 % 4 },
    };
    let fec = matches!(ec, ErrorCorrection::Fec { .. });
    let max = faxgate_t38::udptl::effective_max_datagram(u32::from(input.max_datagram));
    // Start near 0xFFFF now and then so the flow wraps.
    let first = if input.start_seq_hint > 128 { 0xFFF0u16.wrapping_add(u16::from(input.start_seq_hint)) } else { 0 };
    let mut tx = Udptl::new(ec, max).with_first_seq(first);
    let mut rx = Udptl::new(ec, max);
    let mut sent: Vec<(u16, Vec<u8>)> = Vec::new();
    let mut wire: Vec<Vec<u8>> = Vec::new();
    for (ifp, net) in &input.packets {
        if ifp.is_empty() {
            continue;
        }
        let seq = first.wrapping_add(sent.len() as u16);
        let Ok(d) = tx.encode(ifp) else { continue };
        sent.push((seq, ifp.clone()));
        match net {
            Net::Deliver => wire.push(d),
            Net::Drop => {}
            Net::Duplicate => {
                wire.push(d.clone());
                wire.push(d);
            }
            Net::SwapWithNext => {
                let n = wire.len();
                wire.push(d);
                if n > 0 {
                    wire.swap(n - 1, n);
                }
            }
        }
    }
    let mut last: Option<u16> = None;
    for d in &wire {
        let got = rx.decode(d).expect("our own datagrams parse");
        for r in got {
            if let Some(l) = last {
                let ahead = r.seq.wrapping_sub(l);
                assert!(ahead != 0 && ahead < 0x8000, "out of order: {l} then {}", r.seq);
            }
            last = Some(r.seq);
            let want = &sent.iter().rev().find(|(s, _)| *s == r.seq).expect("sent").1;
            if fec && r.recovered {
                // Parity entries are as long as the longest packet of their group.
                assert!(r.ifp.len() >= want.len());
                assert_eq!(&r.ifp[..want.len()], &want[..]);
            } else {
                assert_eq!(&r.ifp, want);
            }
        }
    }
});
