//! Bilevel test pages written as uncompressed multi-page TIFF (TIFF 6.0
//! baseline, class B), for tests, benchmarks and fuzzing.
//!
//! The content is deterministic for a given seed: a frame, a per-page
//! "barcode" so pages cannot be confused, and lines of word-like black runs.
//! Pass the file through `tiffcp -c g4` to get a TIFF/F file.

use std::path::Path;

use crate::Error;

/// Page widths of T.4 2.2 at 8 pels/mm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// 215 mm, 1728 pels (ISO A4, US Letter and Legal).
    A4,
    /// 255 mm, 2048 pels (ISO B4).
    B4,
    /// 303 mm, 2432 pels (ISO A3).
    A3,
}

impl Width {
    /// Pels per row.
    pub fn pels(self) -> u32 {
        match self {
            Width::A4 => 1728,
            Width::B4 => 2048,
            Width::A3 => 2432,
        }
    }
}

/// Vertical resolutions of T.4 2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VRes {
    /// 3.85 lines/mm.
    Standard,
    /// 7.7 lines/mm.
    Fine,
    /// 15.4 lines/mm.
    Superfine,
}

impl VRes {
    /// Lines per 10 mm (the TIFF YResolution in pixels per cm, x10).
    fn per_10cm(self) -> u32 {
        match self {
            VRes::Standard => 385,
            VRes::Fine => 770,
            VRes::Superfine => 1540,
        }
    }

    /// Rows per metre (as spandsp reports them).
    pub fn rows_per_metre(self) -> u32 {
        self.per_10cm() * 10
    }
}

/// Page lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// ISO A4, 297 mm.
    A4,
    /// US Letter, 279 mm.
    Letter,
    /// A short page of this many millimetres (quick tests).
    Mm(u32),
}

impl Length {
    fn mm(self) -> u32 {
        match self {
            Length::A4 => 297,
            Length::Letter => 279,
            Length::Mm(n) => n,
        }
    }
}

/// What to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSpec {
    /// Page width.
    pub width: Width,
    /// Page length.
    pub length: Length,
    /// Vertical resolution.
    pub vres: VRes,
    /// Fraction of text lines filled with words, 0-100.
    pub density: u32,
    /// Seed of the content.
    pub seed: u64,
}

impl PageSpec {
    /// Rows of one page.
    pub fn rows(&self) -> u32 {
        self.length.mm() * self.vres.per_10cm() / 100
    }
}

/// The generator the pages are drawn with (xorshift64*). It is part of the
/// page definition: the same seed must give the same page in every version,
/// for the timings of the tests and the figures in BENCHMARKS.md.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Renders page `index` (0-based) as packed rows, 1 = black (min-is-white).
pub fn render(spec: &PageSpec, index: u32) -> Vec<u8> {
    let w = spec.width.pels() as usize;
    let h = spec.rows() as usize;
    let stride = w.div_ceil(8);
    let mut img = vec![0u8; stride * h];
    let set = |img: &mut [u8], x: usize, y: usize| {
        if x < w && y < h {
            img[y * stride + x / 8] |= 0x80 >> (x % 8);
        }
    };
    let mut rng = Rng(spec.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(u64::from(index) + 1) | 1);
    // Frame, 4 pels thick, 40 pels in.
    let scale = spec.vres.per_10cm() as usize; // rows per 10 mm
    let (m, my) = (40usize, (scale * 5 / 100).max(4));
    for y in my..h.saturating_sub(my) {
        for t in 0..4 {
            set(&mut img, m + t, y);
            set(&mut img, w - m - 1 - t, y);
        }
    }
    for x in m..w - m {
        for t in 0..4 {
            set(&mut img, x, my + t);
            set(&mut img, x, h.saturating_sub(my + 1 + t));
        }
    }
    // Page barcode: 16 bars encoding the page index near the top.
    let bar_h = (scale / 2).max(8);
    for bit in 0..16 {
        let x0 = 100 + bit * 24;
        let bw = if (index >> bit) & 1 == 1 { 16 } else { 6 };
        for y in my + 20..my + 20 + bar_h {
            for x in x0..x0 + bw {
                set(&mut img, x, y);
            }
        }
    }
    // Text lines: each line is ~3 mm high, gap ~2 mm.
    let line_h = (scale * 3 / 10).max(3);
    let gap = (scale * 2 / 10).max(2);
    let mut y = my + 40 + bar_h;
    while y + line_h + my + 10 < h {
        if rng.below(100) < u64::from(spec.density) {
            let mut x = m + 40;
            let end = w - m - 40 - rng.below(w as u64 / 3) as usize;
            while x < end {
                let word = 20 + rng.below(90) as usize;
                for yy in y..y + line_h {
                    // letters: vertical strokes with gaps
                    let mut xx = x;
                    while xx < (x + word).min(end) {
                        let stroke = 2 + ((xx + yy * 7 + index as usize) % 5);
                        for k in 0..stroke.min(end - xx) {
                            if (yy - y) % 5 != 4 || k < 2 {
                                set(&mut img, xx + k, yy);
                            }
                        }
                        xx += stroke + 3;
                    }
                }
                x += word + 12;
            }
        }
        y += line_h + gap;
    }
    img
}

/// Writes `pages` pages of `spec` to `path` as an uncompressed multi-page TIFF.
pub fn write_tiff(path: &Path, spec: &PageSpec, pages: u32) -> Result<(), Error> {
    if pages == 0 || pages > 1000 {
        return Err(Error::TestPage("1 to 1000 pages".into()));
    }
    if spec.rows() == 0 || spec.density > 100 {
        return Err(Error::TestPage("empty page or density above 100".into()));
    }
    let w = spec.width.pels();
    let h = spec.rows();
    let mut out: Vec<u8> = b"II*\0\0\0\0\0".to_vec();
    let mut prev_next_ptr = 4usize;
    for p in 0..pages {
        let img = render(spec, p);
        let img_off = out.len() as u32;
        out.extend_from_slice(&img);
        if out.len() % 2 == 1 {
            out.push(0);
        }
        // Rationals: XResolution 80/1 pels per cm, YResolution per_10cm/10.
        let xres_off = out.len() as u32;
        out.extend_from_slice(&80u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        let yres_off = out.len() as u32;
        out.extend_from_slice(&spec.vres.per_10cm().to_le_bytes());
        out.extend_from_slice(&10u32.to_le_bytes());
        let ifd_off = out.len();
        let entries: Vec<(u16, u16, u32, u32)> = vec![
            (254, 4, 1, 2),                   // NewSubfileType: page
            (256, 4, 1, w),                   // ImageWidth
            (257, 4, 1, h),                   // ImageLength
            (258, 3, 1, 1),                   // BitsPerSample
            (259, 3, 1, 1),                   // Compression: none
            (262, 3, 1, 0),                   // Photometric: min-is-white
            (266, 3, 1, 1),                   // FillOrder: msb first
            (273, 4, 1, img_off),             // StripOffsets
            (274, 3, 1, 1),                   // Orientation
            (277, 3, 1, 1),                   // SamplesPerPixel
            (278, 4, 1, h),                   // RowsPerStrip
            (279, 4, 1, img.len() as u32),    // StripByteCounts
            (282, 5, 1, xres_off),            // XResolution
            (283, 5, 1, yres_off),            // YResolution
            (284, 3, 1, 1),                   // PlanarConfig
            (296, 3, 1, 3),                   // ResolutionUnit: cm
            (297, 3, 2, p | ((pages) << 16)), // PageNumber: p of pages
        ];
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, typ, count, value) in entries {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&typ.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&value.to_le_bytes());
        }
        let next_ptr = out.len();
        out.extend_from_slice(&0u32.to_le_bytes());
        out[prev_next_ptr..prev_next_ptr + 4].copy_from_slice(&(ifd_off as u32).to_le_bytes());
        prev_next_ptr = next_ptr;
    }
    std::fs::write(path, out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_resolution() {
        let s = PageSpec { width: Width::A4, length: Length::A4, vres: VRes::Fine, density: 50, seed: 1 };
        assert_eq!(s.rows(), 2286);
        let s = PageSpec { length: Length::Letter, vres: VRes::Standard, ..s };
        assert_eq!(s.rows(), 1074);
    }

    #[test]
    fn pages_differ() {
        let s = PageSpec { width: Width::A4, length: Length::Mm(40), vres: VRes::Fine, density: 80, seed: 7 };
        assert_ne!(render(&s, 0), render(&s, 1));
        assert_eq!(render(&s, 2), render(&s, 2));
    }
}
