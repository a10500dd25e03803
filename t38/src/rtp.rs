//! RTP (RFC 3550) for G.711 fax audio: the packet codec, a sender, and a
//! small jitter buffer that puts reordered packets back in order.

use std::collections::BTreeMap;

use crate::Error;

/// RTP header length without CSRCs.
pub const HEADER_LEN: usize = 12;
/// Samples (and octets of G.711) in a 20 ms packet.
pub const FRAME: usize = 160;

/// A parsed RTP packet, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// Payload type.
    pub pt: u8,
    /// Marker bit.
    pub marker: bool,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Payload (padding removed).
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// Parses a datagram; CSRCs, extensions and padding are skipped with
    /// their lengths checked.
    pub fn parse(d: &'a [u8]) -> Result<Self, Error> {
        if d.len() < HEADER_LEN {
            return Err(Error::Malformed("RTP packet shorter than its header"));
        }
        if d[0] >> 6 != 2 {
            return Err(Error::Malformed("RTP version is not 2"));
        }
        let padding = d[0] & 0x20 != 0;
        let ext = d[0] & 0x10 != 0;
        let cc = usize::from(d[0] & 0x0F);
        let mut off = HEADER_LEN + 4 * cc;
        if ext {
            if d.len() < off + 4 {
                return Err(Error::Malformed("RTP extension header truncated"));
            }
            let words = usize::from(u16::from_be_bytes([d[off + 2], d[off + 3]]));
            off += 4 + 4 * words;
        }
        let mut end = d.len();
        if padding {
            let pad = usize::from(*d.last().unwrap_or(&0));
            if pad == 0 || pad > end {
                return Err(Error::Malformed("RTP padding length"));
            }
            end -= pad;
        }
        if off > end {
            return Err(Error::Malformed("RTP header longer than the packet"));
        }
        Ok(Self {
            pt: d[1] & 0x7F,
            marker: d[1] & 0x80 != 0,
            seq: u16::from_be_bytes([d[2], d[3]]),
            timestamp: u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
            ssrc: u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
            payload: &d[off..end],
        })
    }
}

/// Numbers outgoing packets of one stream.
#[derive(Debug, Clone)]
pub struct RtpSender {
    pt: u8,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    first: bool,
}

impl RtpSender {
    /// A stream with payload type `pt`; `seed` picks SSRC, first sequence
    /// number and timestamp (RFC 3550 5.1 wants them random).
    pub fn new(pt: u8, seed: u64) -> Self {
        let mix = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (seed >> 29);
        Self { pt, ssrc: mix as u32, seq: (mix >> 32) as u16, timestamp: (mix >> 16) as u32, first: true }
    }

    /// Builds the next packet carrying `payload` (G.711: one octet per sample).
    pub fn packet(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut p = Vec::with_capacity(HEADER_LEN + payload.len());
        p.push(0x80);
        p.push(self.pt | if self.first { 0x80 } else { 0 });
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&self.timestamp.to_be_bytes());
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        self.first = false;
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(payload.len() as u32);
        p
    }
}

/// A jitter buffer of `depth` frames: packets are held until `depth` are
/// queued, then played one per tick in sequence order. Late packets (behind
/// the play-out point) and duplicates are dropped; a gap plays as `None`.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    depth: usize,
    next: Option<u16>,
    primed: bool,
    frames: BTreeMap<i64, Vec<u8>>,
    base: i64,
    /// Packets dropped as late or duplicate.
    pub dropped: u64,
    /// Ticks that had no packet to play.
    pub missing: u64,
}

impl JitterBuffer {
    /// A buffer holding up to `depth` frames of delay (at least 1).
    pub fn new(depth: usize) -> Self {
        Self {
            depth: depth.max(1),
            next: None,
            primed: false,
            frames: BTreeMap::new(),
            base: 0,
            dropped: 0,
            missing: 0,
        }
    }

    /// Extended index of `seq` relative to the play-out point.
    fn index(&self, seq: u16) -> i64 {
        match self.next {
            Some(n) => self.base + i64::from(seq.wrapping_sub(n) as i16),
            None => 0,
        }
    }

    /// A received packet.
    pub fn push(&mut self, seq: u16, payload: &[u8]) {
        if self.next.is_none() {
            self.next = Some(seq);
            self.base = 0;
        }
        let i = self.index(seq);
        if i < self.base || self.frames.contains_key(&i) {
            self.dropped += 1;
            return;
        }
        // A jump far ahead (a new stream, a long outage): restart there.
        if i - self.base > 4 * self.depth as i64 + 50 {
            self.frames.clear();
            self.next = Some(seq);
            self.base = 0;
            self.primed = false;
            self.frames.insert(0, payload.to_vec());
            return;
        }
        self.frames.insert(i, payload.to_vec());
        if self.frames.len() >= self.depth {
            self.primed = true;
        }
    }

    /// The frame to play this tick: `None` before priming or for a lost packet.
    pub fn pop(&mut self) -> Option<Vec<u8>> {
        if !self.primed {
            return None;
        }
        let i = self.base;
        self.base += 1;
        if let Some(n) = self.next.as_mut() {
            *n = n.wrapping_add(1);
        }
        // Keep indices relative: shift so the play-out point stays at `base`.
        match self.frames.remove(&i) {
            Some(f) => Some(f),
            None => {
                self.missing += 1;
                if self.frames.is_empty() {
                    // Ran dry: wait to fill again.
                    self.primed = false;
                }
                None
            }
        }
    }

    /// Frames queued.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut s = RtpSender::new(8, 42);
        let a = s.packet(&[1; 160]);
        let b = s.packet(&[2; 160]);
        let pa = RtpPacket::parse(&a).unwrap();
        let pb = RtpPacket::parse(&b).unwrap();
        assert_eq!(pa.pt, 8);
        assert!(pa.marker && !pb.marker);
        assert_eq!(pb.seq, pa.seq.wrapping_add(1));
        assert_eq!(pb.timestamp, pa.timestamp.wrapping_add(160));
        assert_eq!(pb.payload, &[2; 160]);
    }

    #[test]
    fn refuses_garbage() {
        assert!(RtpPacket::parse(&[0x80; 5]).is_err());
        assert!(RtpPacket::parse(&[0x40; 20]).is_err());
        // 15 CSRCs announced in a 20-byte packet.
        let mut p = vec![0x8F, 8];
        p.resize(20, 0);
        assert!(RtpPacket::parse(&p).is_err());
        // Padding longer than the packet.
        let mut p = vec![0xA0, 8];
        p.resize(13, 0);
        p[12] = 200;
        assert!(RtpPacket::parse(&p).is_err());
    }

    #[test]
    fn jitter_buffer_reorders_and_drops_late() {
        let mut jb = JitterBuffer::new(3);
        // 65534, 65535, 0, 1, 2 arrive as 65535, 65534, 1, 0, 2 (wrap included).
        let order = [65534u16, 65535, 0, 1, 2];
        jb.push(order[0], &[0]);
        jb.push(order[2], &[2]);
        jb.push(order[1], &[1]);
        assert_eq!(jb.pop(), Some(vec![0]));
        jb.push(order[4], &[4]);
        jb.push(order[3], &[3]);
        assert_eq!(jb.pop(), Some(vec![1]));
        assert_eq!(jb.pop(), Some(vec![2]));
        jb.push(order[1], &[9]); // late duplicate
        assert_eq!(jb.dropped, 1);
        assert_eq!(jb.pop(), Some(vec![3]));
        assert_eq!(jb.pop(), Some(vec![4]));
        assert_eq!(jb.pop(), None);
        assert_eq!(jb.missing, 1);
    }

    #[test]
    fn gap_plays_as_none() {
        let mut jb = JitterBuffer::new(2);
        jb.push(10, &[10]);
        jb.push(12, &[12]);
        assert_eq!(jb.pop(), Some(vec![10]));
        assert_eq!(jb.pop(), None);
        assert_eq!(jb.pop(), Some(vec![12]));
    }
}
