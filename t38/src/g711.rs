//! G.711 companding (ITU-T G.711 tables 1 and 2): 8-bit A-law and µ-law
//! to and from 16-bit linear samples.

/// The G.711 law of an audio leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Law {
    /// A-law (PCMA, RTP payload type 8): Europe and most of the world.
    Alaw,
    /// µ-law (PCMU, RTP payload type 0): North America and Japan.
    Ulaw,
}

/// G.711 A-law: even bits inverted on the line (G.711 table 1a note).
const ALAW_AMI_MASK: u8 = 0x55;
/// G.711 µ-law bias added before segment search.
const ULAW_BIAS: i32 = 0x84;

fn top_bit(x: i32) -> i32 {
    31 - (x as u32).leading_zeros() as i32
}

/// Linear sample to A-law.
pub fn linear_to_alaw(linear: i16) -> u8 {
    let (mut lin, mask) =
        if linear >= 0 { (i32::from(linear), ALAW_AMI_MASK | 0x80) } else { (-i32::from(linear) - 1, ALAW_AMI_MASK) };
    let seg = top_bit(lin | 0xFF) - 7;
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let shift = if seg > 0 { seg + 3 } else { 4 };
    lin = ((seg << 4) | ((lin >> shift) & 0x0F)) & 0x7F;
    (lin as u8) ^ mask
}

/// A-law to linear sample.
pub fn alaw_to_linear(alaw: u8) -> i16 {
    let a = alaw ^ ALAW_AMI_MASK;
    let mut i = i32::from(a & 0x0F) << 4;
    let seg = i32::from((a & 0x70) >> 4);
    if seg > 0 {
        i = (i + 0x108) << (seg - 1);
    } else {
        i += 8;
    }
    (if a & 0x80 != 0 { i } else { -i }) as i16
}

/// Linear sample to µ-law.
pub fn linear_to_ulaw(linear: i16) -> u8 {
    let (lin, mask) =
        if linear >= 0 { (ULAW_BIAS + i32::from(linear), 0xFF_i32) } else { (ULAW_BIAS - i32::from(linear), 0x7F_i32) };
    let seg = top_bit(lin | 0xFF) - 7;
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    (((seg << 4) | ((lin >> (seg + 3)) & 0x0F)) ^ mask) as u8
}

/// µ-law to linear sample.
pub fn ulaw_to_linear(ulaw: u8) -> i16 {
    let u = !ulaw;
    let t = ((i32::from(u & 0x0F) << 3) + ULAW_BIAS) << (i32::from(u & 0x70) >> 4);
    (if u & 0x80 != 0 { ULAW_BIAS - t } else { t - ULAW_BIAS }) as i16
}

impl Law {
    /// Encodes linear samples.
    pub fn encode(self, pcm: &[i16], out: &mut Vec<u8>) {
        let f = match self {
            Law::Alaw => linear_to_alaw,
            Law::Ulaw => linear_to_ulaw,
        };
        out.extend(pcm.iter().map(|&s| f(s)));
    }

    /// Decodes companded samples.
    pub fn decode(self, data: &[u8], out: &mut Vec<i16>) {
        let f = match self {
            Law::Alaw => alaw_to_linear,
            Law::Ulaw => ulaw_to_linear,
        };
        out.extend(data.iter().map(|&b| f(b)));
    }

    /// The octet that decodes to (near) silence.
    pub fn silence(self) -> u8 {
        match self {
            Law::Alaw => 0xD5,
            Law::Ulaw => 0xFF,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for b in 0..=255u8 {
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "alaw {b:#x}");
            let l = ulaw_to_linear(b);
            // 0x7F and 0xFF both decode to 0 in µ-law
            if b != 0x7F {
                assert_eq!(linear_to_ulaw(l), b, "ulaw {b:#x}");
            }
        }
    }

    #[test]
    fn known_values() {
        // G.711 table 1/2 reference points
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn quantisation_error_is_bounded() {
        for x in (-32000i32..32000).step_by(37) {
            let x16 = x as i16;
            let a = i32::from(alaw_to_linear(linear_to_alaw(x16)));
            let u = i32::from(ulaw_to_linear(linear_to_ulaw(x16)));
            let tol = (x.abs() / 16).max(16);
            assert!((a - x).abs() <= tol, "alaw {x} -> {a}");
            assert!((u - x).abs() <= tol, "ulaw {x} -> {u}");
        }
    }
}
