//! UDPTL (ITU-T T.38 Annex D, clause 9.1): IFP packets carried in UDP with
//! redundancy or parity FEC.
//!
//! Sans-IO: [`Udptl::encode`] turns one IFP packet into one datagram,
//! [`Udptl::decode`] turns one received datagram into the IFP packets it
//! delivers, in sequence order, including those recovered from redundancy or
//! FEC. Datagram layout (ASN.1 PER, aligned):
//!
//! ```text
//! seq-number        INTEGER (0..65535)           2 octets, big endian
//! primary-ifp-packet OPEN TYPE                   length + octets
//! error-recovery    CHOICE (top bit of 1 octet)  0x00 secondary-ifp-packets
//!                                                0x80 fec-info
//!   secondary-ifp-packets SEQUENCE OF OPEN TYPE  count, newest first
//!   fec-info          fec-npackets INTEGER, fec-data SEQUENCE OF OCTET STRING
//! ```

use std::collections::VecDeque;

use crate::Error;

/// `T38FaxMaxDatagram` used when the far end announces 0 or more than
/// [`MAX_DATAGRAM_LIMIT`] (many peers announce nonsense here).
pub const DEFAULT_MAX_DATAGRAM: usize = 400;
/// Largest `T38FaxMaxDatagram` believed; anything larger means
/// [`DEFAULT_MAX_DATAGRAM`] (an Ethernet MTU minus headers).
pub const MAX_DATAGRAM_LIMIT: usize = 1400;
/// Default redundancy depth (secondary IFPs per datagram).
pub const DEFAULT_REDUNDANCY: u8 = 3;
/// Most secondary IFPs or FEC entries accepted in one datagram; more is
/// refused as malformed.
pub const MAX_RECOVERY_ENTRIES: usize = 16;
/// Largest open type accepted: PER lengths of 16384 and over are fragmented,
/// which no UDPTL implementation sends.
pub const MAX_OPEN_TYPE: usize = 0x3FFF;
/// How many sent IFPs are kept for redundancy and FEC.
const TX_HISTORY: usize = 32;
/// How many received IFPs are kept for FEC repair.
const RX_HISTORY: usize = 32;
/// Missing packets further back than this are not looked for in recovery data.
const RECOVERY_WINDOW: usize = 64;

/// Applies the `T38FaxMaxDatagram` rules: 0 or over 1400 means 400.
pub fn effective_max_datagram(announced: u32) -> usize {
    match announced as usize {
        0 => DEFAULT_MAX_DATAGRAM,
        n if n > MAX_DATAGRAM_LIMIT => DEFAULT_MAX_DATAGRAM,
        n => n,
    }
}

/// The error recovery scheme used for sending (T.38 Annex D `T38FaxUdpEC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCorrection {
    /// Only the primary IFP.
    None,
    /// `t38UDPRedundancy`: each datagram repeats the `depth` previous IFPs.
    Redundancy {
        /// Secondary IFPs per datagram (at most [`MAX_RECOVERY_ENTRIES`]).
        depth: u8,
    },
    /// `t38UDPFEC`: XOR parity over `span` earlier packets in `entries`
    /// interleaved groups.
    Fec {
        /// Packets covered by each parity entry.
        span: u8,
        /// Parity entries per datagram.
        entries: u8,
    },
}

impl Default for ErrorCorrection {
    fn default() -> Self {
        Self::Redundancy { depth: DEFAULT_REDUNDANCY }
    }
}

/// A received IFP packet, in order, with its UDPTL sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// UDPTL sequence number of the packet.
    pub seq: u16,
    /// The IFP packet.
    pub ifp: Vec<u8>,
    /// Recovered from redundancy or FEC rather than received as primary.
    /// An IFP recovered from FEC parity may end in zero octets (a parity
    /// entry is as long as the longest packet of its group); spandsp's T.38
    /// core processes such a packet and then logs the extra length.
    pub recovered: bool,
}

/// Counters kept by a [`Udptl`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct UdptlStats {
    /// Datagrams encoded.
    pub sent: u64,
    /// Datagrams decoded.
    pub received: u64,
    /// Datagrams refused as malformed.
    pub malformed: u64,
    /// Datagrams dropped as duplicates or too old.
    pub duplicates: u64,
    /// IFPs recovered from redundancy or FEC.
    pub recovered: u64,
    /// IFPs never received nor recovered.
    pub lost: u64,
}

/// One side of a UDPTL flow: sequence numbers, history and statistics.
#[derive(Debug, Clone)]
pub struct Udptl {
    ec: ErrorCorrection,
    max_datagram: usize,
    tx_seq: u16,
    tx_history: VecDeque<Vec<u8>>,
    /// Next sequence number expected; None before the first datagram.
    rx_next: Option<u16>,
    /// Recently received or recovered IFPs, by sequence number.
    rx_history: VecDeque<(u16, Vec<u8>)>,
    /// FEC parity of recent datagrams (seq, span, entries, parity).
    rx_fec: VecDeque<(u16, u8, u8, Vec<Vec<u8>>)>,
    stats: UdptlStats,
}

impl Udptl {
    /// A flow sending with `ec` in datagrams of at most `max_datagram` bytes
    /// (already passed through [`effective_max_datagram`]).
    pub fn new(ec: ErrorCorrection, max_datagram: usize) -> Self {
        Self {
            ec,
            max_datagram: max_datagram.clamp(16, 65507),
            tx_seq: 0,
            tx_history: VecDeque::new(),
            rx_next: None,
            rx_history: VecDeque::new(),
            rx_fec: VecDeque::new(),
            stats: UdptlStats::default(),
        }
    }

    /// Starts sending at sequence number `seq` instead of 0.
    pub fn with_first_seq(mut self, seq: u16) -> Self {
        self.tx_seq = seq;
        self
    }

    /// The largest IFP that fits in a datagram without redundancy.
    pub fn max_ifp(&self) -> usize {
        // 2 octets sequence, up to 2 octets length, 1 octet recovery choice and
        // 1 octet of empty secondary count.
        self.max_datagram.saturating_sub(6)
    }

    /// Counters so far.
    pub fn stats(&self) -> UdptlStats {
        self.stats
    }

    /// Encodes the next datagram carrying `ifp`.
    ///
    /// Redundancy is shrunk (oldest secondaries dropped first) until the
    /// datagram fits the maximum; an IFP that does not fit on its own is an
    /// error.
    pub fn encode(&mut self, ifp: &[u8]) -> Result<Vec<u8>, Error> {
        if ifp.len() > MAX_OPEN_TYPE || ifp.len() + 5 > self.max_datagram {
            return Err(Error::IfpTooLarge { len: ifp.len(), max: self.max_ifp() });
        }
        let seq = self.tx_seq;
        let mut out = Vec::with_capacity(self.max_datagram.min(512));
        out.extend_from_slice(&seq.to_be_bytes());
        put_open_type(&mut out, ifp);
        match self.ec {
            ErrorCorrection::None => {
                out.push(0x00);
                put_length(&mut out, 0);
            }
            ErrorCorrection::Redundancy { depth } => {
                let mut depth = usize::from(depth).min(MAX_RECOVERY_ENTRIES).min(self.tx_history.len());
                loop {
                    let extra: usize = self.tx_history.iter().take(depth).map(|p| open_type_len(p.len())).sum();
                    if out.len() + 1 + 1 + extra <= self.max_datagram || depth == 0 {
                        break;
                    }
                    depth -= 1;
                }
                out.push(0x00);
                put_length(&mut out, depth);
                for p in self.tx_history.iter().take(depth) {
                    put_open_type(&mut out, p);
                }
            }
            ErrorCorrection::Fec { span, entries } => {
                let parity = self.fec_parity(span, entries);
                let extra: usize = 4 + parity.iter().map(|p| open_type_len(p.len())).sum::<usize>();
                out.push(0x80);
                if out.len() + extra <= self.max_datagram && !parity.is_empty() {
                    out.push(1);
                    out.push(span);
                    put_length(&mut out, parity.len());
                    for p in &parity {
                        put_open_type(&mut out, p);
                    }
                } else {
                    out.extend_from_slice(&[1, 0]);
                    put_length(&mut out, 0);
                }
            }
        }
        self.tx_history.push_front(ifp.to_vec());
        self.tx_history.truncate(TX_HISTORY);
        self.tx_seq = seq.wrapping_add(1);
        self.stats.sent += 1;
        Ok(out)
    }

    /// Parity entries for the packet about to be sent (`seq`): entry `m` is
    /// the XOR of packets
    /// `seq + m - span*entries + i*entries` for `i` in `0..span`.
    fn fec_parity(&self, span: u8, entries: u8) -> Vec<Vec<u8>> {
        let (span, entries) = (usize::from(span), usize::from(entries).min(MAX_RECOVERY_ENTRIES));
        if span == 0 || entries == 0 || span * entries > TX_HISTORY {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(entries);
        for m in 0..entries {
            let mut parity: Vec<u8> = Vec::new();
            for i in 0..span {
                let back = span * entries - m - i * entries; // packets before `seq`
                if back == 0 || back > self.tx_history.len() {
                    continue;
                }
                let p = &self.tx_history[back - 1];
                if parity.len() < p.len() {
                    parity.resize(p.len(), 0);
                }
                for (d, s) in parity.iter_mut().zip(p) {
                    *d ^= s;
                }
            }
            out.push(parity);
        }
        out
    }

    /// Decodes one received datagram, returning the IFP packets it delivers
    /// in sequence order (recovered ones first). Duplicates and packets older
    /// than those already delivered give an empty list.
    pub fn decode(&mut self, datagram: &[u8]) -> Result<Vec<Received>, Error> {
        let parsed = match parse(datagram) {
            Ok(p) => p,
            Err(e) => {
                self.stats.malformed += 1;
                return Err(e);
            }
        };
        self.stats.received += 1;
        let seq = parsed.seq;
        let mut out = Vec::new();
        let Some(next) = self.rx_next else {
            self.rx_next = Some(seq.wrapping_add(1));
            self.remember(seq, parsed.primary.to_vec(), &parsed.recovery);
            out.push(Received { seq, ifp: parsed.primary.to_vec(), recovered: false });
            return Ok(out);
        };
        let ahead = seq.wrapping_sub(next);
        if ahead >= 0x8000 {
            // Behind what was delivered: a duplicate or a late packet.
            self.stats.duplicates += 1;
            return Ok(out);
        }
        let gap = usize::from(ahead);
        if gap > 0 {
            // Packets next..seq are missing: recover what we can, oldest first.
            // Only the last RECOVERY_WINDOW of them can be in any recovery data.
            let window = gap.min(RECOVERY_WINDOW);
            self.stats.lost += (gap - window) as u64;
            let first = seq.wrapping_sub(window as u16);
            let mut recovered: Vec<Option<Vec<u8>>> = vec![None; window];
            if let Recovery::Redundancy(secs) = &parsed.recovery {
                // secs[i] is packet seq - 1 - i
                for (i, sec) in secs.iter().enumerate().take(window) {
                    recovered[window - 1 - i] = Some(sec.to_vec());
                }
            }
            if let Recovery::Fec { span, parity } = &parsed.recovery {
                self.push_fec(seq, *span, parity);
            }
            self.fec_repair(first, &mut recovered);
            for (i, r) in recovered.into_iter().enumerate() {
                let s = first.wrapping_add(i as u16);
                match r {
                    Some(ifp) => {
                        self.stats.recovered += 1;
                        self.push_rx(s, ifp.clone());
                        out.push(Received { seq: s, ifp, recovered: true });
                    }
                    None => self.stats.lost += 1,
                }
            }
            self.push_rx(seq, parsed.primary.to_vec());
        } else {
            self.remember(seq, parsed.primary.to_vec(), &parsed.recovery);
        }
        out.push(Received { seq, ifp: parsed.primary.to_vec(), recovered: false });
        self.rx_next = Some(seq.wrapping_add(1));
        Ok(out)
    }

    fn remember(&mut self, seq: u16, ifp: Vec<u8>, rec: &Recovery<'_>) {
        if let Recovery::Fec { span, parity } = rec {
            self.push_fec(seq, *span, parity);
        }
        self.push_rx(seq, ifp);
    }

    fn push_rx(&mut self, seq: u16, ifp: Vec<u8>) {
        self.rx_history.push_front((seq, ifp));
        self.rx_history.truncate(RX_HISTORY);
    }

    fn push_fec(&mut self, seq: u16, span: u8, parity: &[&[u8]]) {
        if parity.is_empty() || span == 0 {
            return;
        }
        let entries = parity.len().min(usize::from(u8::MAX)) as u8;
        self.rx_fec.push_front((seq, span, entries, parity.iter().map(|p| p.to_vec()).collect()));
        self.rx_fec.truncate(RX_HISTORY);
    }

    fn rx_lookup(&self, seq: u16) -> Option<&[u8]> {
        self.rx_history.iter().find(|(s, _)| *s == seq).map(|(_, p)| p.as_slice())
    }

    /// Fills missing slots `first..first+missing.len()` from stored parity
    /// where exactly one packet of a parity group is missing. Repeats while
    /// repairs make further repairs possible.
    fn fec_repair(&self, first: u16, missing: &mut [Option<Vec<u8>>]) {
        if self.rx_fec.is_empty() || missing.is_empty() {
            return;
        }
        let n = missing.len();
        let slot = |s: u16| -> Option<usize> {
            let d = usize::from(s.wrapping_sub(first));
            (d < n).then_some(d)
        };
        loop {
            let mut progress = false;
            for (fseq, span, entries, parity) in &self.rx_fec {
                let (span_u, entries_u) = (usize::from(*span), usize::from(*entries));
                for (m, par) in parity.iter().enumerate() {
                    let mut hole = None;
                    let mut holes = 0;
                    let mut acc = par.clone();
                    for i in 0..span_u {
                        let back = span_u * entries_u - m - i * entries_u;
                        if back == 0 {
                            continue;
                        }
                        let s = fseq.wrapping_sub(back as u16);
                        let have: Option<Vec<u8>> = match slot(s) {
                            Some(d) => missing[d].clone(),
                            None => self.rx_lookup(s).map(<[u8]>::to_vec),
                        };
                        match have {
                            Some(p) => {
                                for (d, b) in acc.iter_mut().zip(&p) {
                                    *d ^= b;
                                }
                            }
                            None => {
                                holes += 1;
                                hole = slot(s);
                                if hole.is_none() {
                                    holes += 1; // missing and not ours to fill
                                }
                            }
                        }
                    }
                    if holes == 1
                        && let Some(d) = hole
                    {
                        // Parity is as long as the longest packet; strip the
                        // zero padding an IFP never ends with a zero length.
                        missing[d] = Some(acc);
                        progress = true;
                    }
                }
            }
            if !progress {
                break;
            }
        }
    }
}

/// The error recovery part of a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery<'a> {
    /// Secondary IFP packets, newest first.
    Redundancy(Vec<&'a [u8]>),
    /// Parity entries over `span` packets each.
    Fec {
        /// Packets covered by each entry.
        span: u8,
        /// The parity entries.
        parity: Vec<&'a [u8]>,
    },
}

/// One UDPTL datagram, borrowed from its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// Sequence number.
    pub seq: u16,
    /// The primary IFP packet.
    pub primary: &'a [u8],
    /// Redundancy or FEC.
    pub recovery: Recovery<'a>,
}

impl<'a> Datagram<'a> {
    /// Parses a datagram, checking every length against what is left.
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        parse(buf)
    }

    /// Encodes it (canonical PER lengths).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.seq.to_be_bytes());
        put_open_type(&mut out, self.primary);
        match &self.recovery {
            Recovery::Redundancy(secs) => {
                out.push(0x00);
                put_length(&mut out, secs.len());
                for s in secs {
                    put_open_type(&mut out, s);
                }
            }
            Recovery::Fec { span, parity } => {
                out.extend_from_slice(&[0x80, 1, *span]);
                put_length(&mut out, parity.len());
                for p in parity {
                    put_open_type(&mut out, p);
                }
            }
        }
        out
    }
}

type Parsed<'a> = Datagram<'a>;

/// Parses a datagram, checking every length against what is left.
fn parse(buf: &[u8]) -> Result<Parsed<'_>, Error> {
    let mut r = Reader { buf, pos: 0 };
    let hi = r.byte()?;
    let lo = r.byte()?;
    let seq = u16::from_be_bytes([hi, lo]);
    let primary = r.open_type()?;
    if primary.is_empty() {
        return Err(Error::Malformed("UDPTL: empty primary IFP"));
    }
    let choice = r.byte()?;
    let recovery = if choice & 0x80 == 0 {
        let count = r.length()?;
        if count > MAX_RECOVERY_ENTRIES {
            return Err(Error::Malformed("UDPTL: too many secondary IFPs"));
        }
        let mut secs = Vec::with_capacity(count);
        for _ in 0..count {
            secs.push(r.open_type()?);
        }
        Recovery::Redundancy(secs)
    } else {
        // fec-npackets: a constrained whole number in a one-octet length form.
        if r.byte()? != 1 {
            return Err(Error::Malformed("UDPTL: bad FEC span length"));
        }
        let span = r.byte()?;
        let entries = r.length()?;
        if entries > MAX_RECOVERY_ENTRIES {
            return Err(Error::Malformed("UDPTL: too many FEC entries"));
        }
        let mut parity = Vec::with_capacity(entries);
        for _ in 0..entries {
            parity.push(r.open_type()?);
        }
        Recovery::Fec { span, parity }
    };
    if r.pos != buf.len() {
        return Err(Error::Malformed("UDPTL: trailing octets"));
    }
    Ok(Parsed { seq, primary, recovery })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, Error> {
        let b = *self.buf.get(self.pos).ok_or(Error::Malformed("UDPTL: truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    /// ASN.1 PER (X.691 10.9) length determinant; fragmented forms refused.
    fn length(&mut self) -> Result<usize, Error> {
        let b = self.byte()?;
        if b & 0x80 == 0 {
            return Ok(usize::from(b));
        }
        if b & 0x40 == 0 {
            let lo = self.byte()?;
            return Ok((usize::from(b & 0x3F) << 8) | usize::from(lo));
        }
        Err(Error::Malformed("UDPTL: fragmented length"))
    }

    fn open_type(&mut self) -> Result<&'a [u8], Error> {
        let len = self.length()?;
        let end = self.pos.checked_add(len).ok_or(Error::Malformed("UDPTL: length overflow"))?;
        let s = self.buf.get(self.pos..end).ok_or(Error::Malformed("UDPTL: length beyond datagram"))?;
        self.pos = end;
        Ok(s)
    }
}

fn put_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        out.push(0x80 | ((len >> 8) as u8 & 0x3F));
        out.push(len as u8);
    }
}

fn put_open_type(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        // X.691: an empty open type is encoded as one zero octet.
        out.extend_from_slice(&[1, 0]);
        return;
    }
    put_length(out, data.len());
    out.extend_from_slice(data);
}

fn open_type_len(n: usize) -> usize {
    match n {
        0 => 2,
        n if n < 0x80 => 1 + n,
        n => 2 + n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ifp(i: u16, len: usize) -> Vec<u8> {
        (0..len).map(|k| (i as usize * 31 + k * 7) as u8 | 1).collect()
    }

    #[test]
    fn max_datagram_rules() {
        assert_eq!(effective_max_datagram(0), 400);
        assert_eq!(effective_max_datagram(1401), 400);
        assert_eq!(effective_max_datagram(72), 72);
        assert_eq!(effective_max_datagram(1400), 1400);
    }

    #[test]
    fn round_trip_in_order() {
        let mut tx = Udptl::new(ErrorCorrection::default(), 400);
        let mut rx = Udptl::new(ErrorCorrection::default(), 400);
        for i in 0..10 {
            let d = tx.encode(&ifp(i, 20)).unwrap();
            let got = rx.decode(&d).unwrap();
            assert_eq!(got, vec![Received { seq: i, ifp: ifp(i, 20), recovered: false }]);
        }
    }

    #[test]
    fn redundancy_recovers_lost_packets_oldest_first() {
        let mut tx = Udptl::new(ErrorCorrection::Redundancy { depth: 3 }, 400);
        let mut rx = Udptl::new(ErrorCorrection::default(), 400);
        let ds: Vec<_> = (0..6).map(|i| tx.encode(&ifp(i, 10)).unwrap()).collect();
        rx.decode(&ds[0]).unwrap();
        // lose 1, 2, 3; 4 carries 3, 2, 1
        let got = rx.decode(&ds[4]).unwrap();
        let seqs: Vec<u16> = got.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4]);
        assert!(got[..3].iter().all(|r| r.recovered));
        for r in &got {
            assert_eq!(r.ifp, ifp(r.seq, 10));
        }
        assert_eq!(rx.stats().recovered, 3);
        // a late copy of 2 is dropped, so is a duplicate of 4
        assert!(rx.decode(&ds[2]).unwrap().is_empty());
        assert!(rx.decode(&ds[4]).unwrap().is_empty());
        assert_eq!(rx.stats().duplicates, 2);
    }

    #[test]
    fn loss_beyond_depth_is_counted() {
        let mut tx = Udptl::new(ErrorCorrection::Redundancy { depth: 1 }, 400);
        let mut rx = Udptl::new(ErrorCorrection::default(), 400);
        let ds: Vec<_> = (0..5).map(|i| tx.encode(&ifp(i, 10)).unwrap()).collect();
        rx.decode(&ds[0]).unwrap();
        let got = rx.decode(&ds[4]).unwrap();
        assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(rx.stats().lost, 2);
    }

    #[test]
    fn sequence_wraps() {
        let mut tx = Udptl::new(ErrorCorrection::Redundancy { depth: 2 }, 400);
        tx.tx_seq = 0xFFFE;
        let mut rx = Udptl::new(ErrorCorrection::default(), 400);
        let ds: Vec<_> = (0..5).map(|i| tx.encode(&ifp(i, 8)).unwrap()).collect();
        rx.decode(&ds[0]).unwrap(); // 0xFFFE
        let got = rx.decode(&ds[2]).unwrap(); // 0x0000, recovers 0xFFFF
        assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![0xFFFF, 0]);
        assert_eq!(got[0].ifp, ifp(1, 8));
        assert!(rx.decode(&ds[1]).unwrap().is_empty());
        assert_eq!(rx.decode(&ds[3]).unwrap()[0].seq, 1);
    }

    #[test]
    fn redundancy_shrinks_to_fit_max_datagram() {
        let mut tx = Udptl::new(ErrorCorrection::Redundancy { depth: 3 }, 100);
        for i in 0..3 {
            tx.encode(&ifp(i, 40)).unwrap();
        }
        let d = tx.encode(&ifp(3, 40)).unwrap();
        assert!(d.len() <= 100, "{}", d.len());
        // primary + one secondary fits, two would not
        let p = parse(&d).unwrap();
        match p.recovery {
            Recovery::Redundancy(s) => assert_eq!(s.len(), 1),
            Recovery::Fec { .. } => panic!("expected redundancy"),
        }
        // an IFP that cannot fit alone is refused
        assert!(matches!(tx.encode(&ifp(9, 99)), Err(Error::IfpTooLarge { .. })));
    }

    #[test]
    fn two_octet_lengths() {
        let mut tx = Udptl::new(ErrorCorrection::Redundancy { depth: 1 }, 1400);
        let mut rx = Udptl::new(ErrorCorrection::default(), 1400);
        let a = ifp(0, 300);
        let b = ifp(1, 200);
        let d0 = tx.encode(&a).unwrap();
        assert_eq!(&d0[2..4], &[0x81, 0x2C]);
        let d1 = tx.encode(&b).unwrap();
        rx.decode(&d0).unwrap();
        assert_eq!(rx.decode(&d1).unwrap()[0].ifp, b);
    }

    #[test]
    fn fec_recovers_single_loss_per_group() {
        let ec = ErrorCorrection::Fec { span: 3, entries: 1 };
        let mut tx = Udptl::new(ec, 400);
        let mut rx = Udptl::new(ec, 400);
        let pkts: Vec<_> = (0..8).map(|i| ifp(i, 12)).collect();
        let ds: Vec<_> = pkts.iter().map(|p| tx.encode(p).unwrap()).collect();
        // packet 6 carries parity of 3, 4, 5; lose 5
        for d in &ds[..5] {
            rx.decode(d).unwrap();
        }
        let got = rx.decode(&ds[6]).unwrap();
        assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![5, 6]);
        assert_eq!(got[0].ifp, pkts[5]);
        assert!(got[0].recovered);
    }

    #[test]
    fn fec_interleaved_entries() {
        let ec = ErrorCorrection::Fec { span: 2, entries: 2 };
        let mut tx = Udptl::new(ec, 400);
        let mut rx = Udptl::new(ec, 400);
        let pkts: Vec<_> = (0..10).map(|i| ifp(i, 5 + i as usize)).collect();
        let ds: Vec<_> = pkts.iter().map(|p| tx.encode(p).unwrap()).collect();
        for d in &ds[..6] {
            rx.decode(d).unwrap();
        }
        // lose 6 and 7; packet 8's entries cover {4,6} and {5,7}
        let got = rx.decode(&ds[8]).unwrap();
        assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![6, 7, 8]);
        // parity entries are as long as the longest packet of their group
        assert_eq!(&got[0].ifp[..pkts[6].len()], &pkts[6][..]);
        assert_eq!(&got[1].ifp[..pkts[7].len()], &pkts[7][..]);
    }

    #[test]
    fn malformed_input_is_refused_not_panicking() {
        let mut rx = Udptl::new(ErrorCorrection::default(), 400);
        for bad in [
            &[][..],
            &[0x00],
            &[0x00, 0x01],
            &[0x00, 0x01, 0x05, 0x01],
            &[0x00, 0x01, 0xC0, 0x01],
            &[0x00, 0x01, 0x01, 0xAA],
            &[0x00, 0x01, 0x01, 0xAA, 0x00, 0x7F],
            &[0x00, 0x01, 0x01, 0xAA, 0x80, 0x02],
            &[0x00, 0x01, 0x01, 0xAA, 0x00, 0x00, 0x00],
            &[0x00, 0x01, 0x00, 0x00, 0x00],
            &[0x00, 0x01, 0xBF, 0xFF, 0x00],
        ] {
            assert!(rx.decode(bad).is_err(), "{bad:02x?}");
        }
        assert_eq!(rx.stats().malformed, 11);
        assert_eq!(rx.stats().received, 0);
    }

    #[test]
    fn empty_open_type_encoding() {
        let mut v = Vec::new();
        put_open_type(&mut v, &[]);
        assert_eq!(v, [1, 0]);
    }
}
