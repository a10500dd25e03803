//! A small TIFF reader for fax and scanner TIFFs.
//!
//! Reads classic TIFF (both byte orders), follows the IFD chain with a page
//! bound and loop detection, and decodes the strips of bilevel (CCITT G3 1-D,
//! G3 2-D, G4, modified Huffman, PackBits, LZW, Deflate, uncompressed), 8-bit
//! grey, RGB and palette images. Every offset, count and dimension comes from
//! the file and is checked before use. [`super::topdf`] uses the same parser to
//! reach the raw CCITT strips of a received fax.

use hayro_ccitt::{DecodeSettings, Decoder, DecoderContext, EncodingMode};

use super::fax_page::{Bitmap, GrayImage, Resolution, WIDTH, X_DPI};
use super::{Error, Result, Settings, binarise};

/// Compression schemes (TIFF tag 259).
pub mod compression {
    /// No compression.
    pub const NONE: u16 = 1;
    /// CCITT modified Huffman run length (rows byte-aligned, no EOL).
    pub const CCITT_RLE: u16 = 2;
    /// CCITT T.4 (G3), 1-D or 2-D per T4Options.
    pub const T4: u16 = 3;
    /// CCITT T.6 (G4).
    pub const T6: u16 = 4;
    /// LZW.
    pub const LZW: u16 = 5;
    /// Deflate (Adobe).
    pub const DEFLATE: u16 = 8;
    /// Deflate (old code).
    pub const DEFLATE_OLD: u16 = 32946;
    /// PackBits.
    pub const PACKBITS: u16 = 32773;
}

/// The most IFD entries read from one directory.
const MAX_ENTRIES: usize = 4096;
/// The most strips one page may have.
const MAX_STRIPS: usize = 1 << 20;

/// One page (IFD) of a TIFF file.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Bits per sample (first sample).
    pub bits_per_sample: u16,
    /// Samples per pixel.
    pub samples_per_pixel: u16,
    /// Compression (tag 259).
    pub compression: u16,
    /// Photometric interpretation (0 WhiteIsZero, 1 BlackIsZero, 2 RGB, 3 palette).
    pub photometric: u16,
    /// 1: most significant bit first, 2: least significant bit first.
    pub fill_order: u16,
    /// Strip offsets and byte counts.
    pub strips: Vec<(u64, u64)>,
    /// Rows per strip.
    pub rows_per_strip: u32,
    /// Horizontal resolution, if given.
    pub x_resolution: Option<f64>,
    /// Vertical resolution, if given.
    pub y_resolution: Option<f64>,
    /// 1 none, 2 inch, 3 centimetre.
    pub resolution_unit: u16,
    /// T4Options (tag 292).
    pub t4_options: u32,
    /// Predictor (tag 317).
    pub predictor: u16,
    /// Planar configuration (tag 284).
    pub planar: u16,
    /// Colour map (tag 320).
    pub colormap: Vec<u16>,
}

struct Reader<'a> {
    data: &'a [u8],
    le: bool,
}

impl Reader<'_> {
    fn bytes(&self, off: u64, len: u64) -> Result<&[u8]> {
        let end = off
            .checked_add(len)
            .filter(|&e| e <= self.data.len() as u64)
            .ok_or_else(|| Error::CorruptTiff("a field points past the end of the file".into()))?;
        Ok(&self.data[off as usize..end as usize])
    }
    fn u16(&self, off: u64) -> Result<u16> {
        let b = self.bytes(off, 2)?;
        Ok(if self.le { u16::from_le_bytes([b[0], b[1]]) } else { u16::from_be_bytes([b[0], b[1]]) })
    }
    fn u32(&self, off: u64) -> Result<u32> {
        let b = self.bytes(off, 4)?;
        let a = [b[0], b[1], b[2], b[3]];
        Ok(if self.le { u32::from_le_bytes(a) } else { u32::from_be_bytes(a) })
    }

    /// The values of one IFD entry as integers (BYTE, SHORT, LONG) or
    /// rationals turned to f64 (RATIONAL).
    fn values(&self, entry: u64, max: usize) -> Result<Vec<f64>> {
        let typ = self.u16(entry + 2)?;
        let count = self.u32(entry + 4)? as u64;
        let size: u64 = match typ {
            1 | 2 | 6 | 7 => 1,
            3 | 8 => 2,
            4 | 9 | 11 => 4,
            5 | 10 | 12 => 8,
            _ => return Ok(Vec::new()),
        };
        if count as usize > max {
            return Err(Error::CorruptTiff(format!("a field holds {count} values")));
        }
        let total = size * count;
        let base = if total <= 4 { entry + 8 } else { self.u32(entry + 8)? as u64 };
        self.bytes(base, total)?;
        (0..count)
            .map(|i| {
                let at = base + i * size;
                Ok(match typ {
                    1 | 2 | 6 | 7 => self.data[at as usize] as f64,
                    3 | 8 => self.u16(at)? as f64,
                    4 | 9 => self.u32(at)? as f64,
                    5 => {
                        let d = self.u32(at + 4)?;
                        if d == 0 { 0.0 } else { self.u32(at)? as f64 / d as f64 }
                    }
                    _ => 0.0,
                })
            })
            .collect()
    }
}

/// Parses the IFD chain. Fails with [`Error::TooManyPages`] past `max_pages`.
pub fn parse(data: &[u8], max_pages: usize) -> Result<Vec<Page>> {
    let le = match data.get(..4) {
        Some(b"II*\0") => true,
        Some(b"MM\0*") => false,
        Some([b'I', b'I', 43, 0]) | Some([b'M', b'M', 0, 43]) => {
            return Err(Error::UnsupportedTiff("BigTIFF".into()));
        }
        _ => return Err(Error::CorruptTiff("not a TIFF file".into())),
    };
    let r = Reader { data, le };
    let mut pages = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut ifd = r.u32(4)? as u64;
    while ifd != 0 {
        if !seen.insert(ifd) {
            return Err(Error::CorruptTiff("the page directory loops".into()));
        }
        if pages.len() >= max_pages {
            return Err(Error::TooManyPages { pages: pages.len() + 1, limit: max_pages });
        }
        let n = r.u16(ifd)? as usize;
        if n > MAX_ENTRIES {
            return Err(Error::CorruptTiff(format!("a page directory has {n} entries")));
        }
        let mut p = Page {
            bits_per_sample: 1,
            samples_per_pixel: 1,
            compression: 1,
            fill_order: 1,
            resolution_unit: 2,
            predictor: 1,
            planar: 1,
            photometric: u16::MAX,
            rows_per_strip: u32::MAX,
            ..Page::default()
        };
        let mut offsets = Vec::new();
        let mut counts = Vec::new();
        for i in 0..n as u64 {
            let e = ifd + 2 + i * 12;
            let tag = r.u16(e)?;
            let one = |r: &Reader<'_>| -> Result<f64> {
                r.values(e, 16)?.first().copied().ok_or_else(|| Error::CorruptTiff(format!("tag {tag} has no value")))
            };
            match tag {
                256 => p.width = one(&r)? as u32,
                257 => p.height = one(&r)? as u32,
                258 => p.bits_per_sample = one(&r)? as u16,
                259 => p.compression = one(&r)? as u16,
                262 => p.photometric = one(&r)? as u16,
                266 => p.fill_order = one(&r)? as u16,
                273 => offsets = r.values(e, MAX_STRIPS)?,
                277 => p.samples_per_pixel = one(&r)? as u16,
                278 => p.rows_per_strip = one(&r)? as u32,
                279 => counts = r.values(e, MAX_STRIPS)?,
                282 => p.x_resolution = Some(one(&r)?),
                283 => p.y_resolution = Some(one(&r)?),
                284 => p.planar = one(&r)? as u16,
                292 => p.t4_options = one(&r)? as u32,
                296 => p.resolution_unit = one(&r)? as u16,
                317 => p.predictor = one(&r)? as u16,
                320 => p.colormap = r.values(e, 3 * 256)?.into_iter().map(|v| v as u16).collect(),
                _ => {}
            }
        }
        if p.width == 0 || p.height == 0 {
            return Err(Error::CorruptTiff("a page has no width or height".into()));
        }
        if offsets.is_empty() || offsets.len() != counts.len() {
            return Err(Error::CorruptTiff("a page's image data is missing".into()));
        }
        p.strips = offsets.into_iter().zip(counts).map(|(o, c)| (o as u64, c as u64)).collect();
        p.rows_per_strip = p.rows_per_strip.clamp(1, p.height);
        if p.photometric == u16::MAX {
            p.photometric = if p.bits_per_sample == 1 { 0 } else { 1 };
        }
        pages.push(p);
        ifd = r.u32(ifd + 2 + n as u64 * 12)? as u64;
    }
    if pages.is_empty() {
        return Err(Error::NoPages);
    }
    Ok(pages)
}

impl Page {
    /// The page's resolution in dots per inch (x, y), with the fax defaults
    /// when the file gives none.
    pub fn dpi(&self) -> (f64, f64) {
        let unit = match self.resolution_unit {
            3 => 2.54,
            _ => 1.0,
        };
        let fax_like = self.bits_per_sample == 1 && self.width == WIDTH;
        let default_y = if fax_like { if self.height <= 1300 { 98.0 } else { 196.0 } } else { 200.0 };
        let default_x = if fax_like { X_DPI } else { 200.0 };
        let ok = |v: Option<f64>| v.map(|v| v * unit).filter(|v| v.is_finite() && *v >= 10.0 && *v <= 10_000.0);
        if self.resolution_unit == 1 {
            return (
                default_x,
                default_x * self.x_resolution.unwrap_or(1.0) / self.y_resolution.unwrap_or(1.0).max(1e-6),
            );
        }
        (ok(self.x_resolution).unwrap_or(default_x), ok(self.y_resolution).unwrap_or(default_y))
    }

    /// Whether the page is CCITT-coded bilevel data.
    pub fn is_ccitt(&self) -> bool {
        matches!(self.compression, compression::CCITT_RLE | compression::T4 | compression::T6)
    }

    /// Rows in strip `i`.
    pub fn strip_rows(&self, i: usize) -> u32 {
        let start = i as u64 * self.rows_per_strip as u64;
        (self.height as u64).saturating_sub(start).min(self.rows_per_strip as u64) as u32
    }

    /// The bytes of strip `i`, checked against the file.
    pub fn strip<'a>(&self, data: &'a [u8], i: usize) -> Result<&'a [u8]> {
        let (off, len) = self.strips[i];
        let end = off
            .checked_add(len)
            .filter(|&e| e <= data.len() as u64)
            .ok_or_else(|| Error::CorruptTiff("image data runs past the end of the file".into()))?;
        Ok(&data[off as usize..end as usize])
    }

    fn check_size(&self, max_pixels: u64) -> Result<()> {
        let px = self.width as u64 * self.height as u64;
        if px > max_pixels || self.width as u64 > super::MAX_SIDE || self.height as u64 > super::MAX_SIDE {
            return Err(Error::ImageTooLarge { width: self.width as u64, height: self.height as u64, max_pixels });
        }
        let strips_needed = (self.height as u64).div_ceil(self.rows_per_strip as u64);
        if self.planar == 1 && (self.strips.len() as u64) < strips_needed {
            return Err(Error::CorruptTiff("image data is missing strips".into()));
        }
        Ok(())
    }

    /// CCITT decoder settings for strip data of `rows` rows.
    pub fn ccitt_settings(&self, rows: u32) -> DecodeSettings {
        let (encoding, eol, aligned) = match self.compression {
            compression::CCITT_RLE => (EncodingMode::Group3_1D, false, true),
            compression::T4 => (
                if self.t4_options & 1 != 0 { EncodingMode::Group3_2D } else { EncodingMode::Group3_1D },
                true,
                self.t4_options & 4 != 0,
            ),
            _ => (EncodingMode::Group4, false, false),
        };
        DecodeSettings {
            columns: self.width,
            rows,
            end_of_block: true,
            end_of_line: eol,
            rows_are_byte_aligned: aligned,
            encoding,
            strict: false,
        }
    }

    /// Decodes a bilevel page (CCITT, or 1 bit per pixel) to black = 1.
    pub fn decode_bilevel(&self, data: &[u8], max_pixels: u64) -> Result<Bitmap> {
        self.check_size(max_pixels)?;
        if self.bits_per_sample != 1 || self.samples_per_pixel != 1 {
            return Err(Error::UnsupportedTiff("not a black-and-white page".into()));
        }
        let mut bm = Bitmap::new(self.width, self.height);
        let mut y0 = 0u32;
        let invert = self.photometric == 1;
        for i in 0..self.strips.len() {
            if y0 >= self.height {
                break;
            }
            let rows = self.strip_rows(i);
            let raw = self.strip(data, i)?;
            let raw: std::borrow::Cow<'_, [u8]> = if self.fill_order == 2 {
                raw.iter().map(|b| b.reverse_bits()).collect::<Vec<u8>>().into()
            } else {
                raw.into()
            };
            if self.is_ccitt() {
                let mut sink = Sink { bm: &mut bm, y: y0, end: y0 + rows };
                let mut ctx = DecoderContext::new(self.ccitt_settings(rows));
                let res = hayro_ccitt::decode(&raw, &mut sink, &mut ctx);
                if let Err(e) = res {
                    if sink.y == y0 {
                        return Err(Error::CorruptTiff(format!("fax data: {e}")));
                    }
                    // Some rows decoded: keep them, like a fax machine prints a
                    // page with a damaged tail.
                    tracing::debug!("fax data damaged after row {}: {e}", sink.y);
                }
            } else {
                let stride = self.width.div_ceil(8) as usize;
                let bytes = decompress(self, &raw, stride * rows as usize)?;
                for r in 0..rows {
                    let src = &bytes[r as usize * stride..(r as usize + 1) * stride];
                    for x in 0..self.width {
                        let bit = src[x as usize / 8] & (0x80 >> (x % 8)) != 0;
                        // WhiteIsZero: 1 is black.
                        if bit != invert {
                            bm.set(x, y0 + r, true);
                        }
                    }
                }
            }
            y0 += rows;
        }
        if invert && self.is_ccitt() {
            // CCITT "black" runs are the 1 bits, which BlackIsZero shows white.
            let mut inv = Bitmap::new(bm.width(), bm.height());
            for y in 0..bm.height() {
                inv.fill_black(y, 0, bm.width());
                for x in 0..bm.width() {
                    if bm.get(x, y) {
                        inv.set(x, y, false);
                    }
                }
            }
            bm = inv;
        }
        Ok(bm)
    }

    /// Decodes any supported page to grey.
    pub fn decode_gray(&self, data: &[u8], max_pixels: u64) -> Result<GrayImage> {
        if self.bits_per_sample == 1 {
            return Ok(self.decode_bilevel(data, max_pixels)?.to_gray());
        }
        self.check_size(max_pixels)?;
        if self.bits_per_sample != 8 {
            return Err(Error::UnsupportedTiff(format!("{} bits per sample", self.bits_per_sample)));
        }
        if self.planar != 1 {
            return Err(Error::UnsupportedTiff("separate colour planes".into()));
        }
        let spp = self.samples_per_pixel as usize;
        if spp == 0 || spp > 4 {
            return Err(Error::UnsupportedTiff(format!("{spp} samples per pixel")));
        }
        let stride = self.width as usize * spp;
        let mut out = GrayImage::white(self.width, self.height);
        let mut y0 = 0u32;
        for i in 0..self.strips.len() {
            if y0 >= self.height {
                break;
            }
            let rows = self.strip_rows(i);
            let raw = self.strip(data, i)?;
            let mut bytes = decompress(self, raw, stride * rows as usize)?;
            if self.predictor == 2 {
                for row in bytes.chunks_mut(stride) {
                    for x in spp..row.len() {
                        row[x] = row[x].wrapping_add(row[x - spp]);
                    }
                }
            }
            for r in 0..rows as usize {
                let src = &bytes[r * stride..(r + 1) * stride];
                let dst =
                    &mut out.data[(y0 as usize + r) * self.width as usize..(y0 as usize + r + 1) * self.width as usize];
                for (x, d) in dst.iter_mut().enumerate() {
                    let px = &src[x * spp..(x + 1) * spp];
                    *d = match (self.photometric, spp) {
                        (0, _) => 255 - px[0],
                        (1, _) => px[0],
                        (2, 3..) => luma(px[0], px[1], px[2]),
                        (3, _) => {
                            let n = self.colormap.len() / 3;
                            let i = px[0] as usize;
                            if i >= n {
                                return Err(Error::CorruptTiff("colour index outside the palette".into()));
                            }
                            luma(
                                (self.colormap[i] >> 8) as u8,
                                (self.colormap[n + i] >> 8) as u8,
                                (self.colormap[2 * n + i] >> 8) as u8,
                            )
                        }
                        (p, _) => {
                            return Err(Error::UnsupportedTiff(format!("photometric interpretation {p}")));
                        }
                    };
                }
            }
            y0 += rows;
        }
        Ok(out)
    }
}

/// Luma of sRGB values (ITU-R BT.601 weights).
pub(crate) fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 77 + g as u32 * 150 + b as u32 * 29) >> 8) as u8
}

struct Sink<'a> {
    bm: &'a mut Bitmap,
    y: u32,
    end: u32,
}

impl Decoder for Sink<'_> {
    fn push_row(&mut self, changes: &[u32]) {
        if self.y < self.end {
            self.bm.set_row_from_changes(self.y, changes);
            self.y += 1;
        }
    }
}

/// Decompresses one non-CCITT strip to exactly `want` bytes (short data is
/// padded white-ish with zeros; long data is cut).
fn decompress(page: &Page, raw: &[u8], want: usize) -> Result<Vec<u8>> {
    let mut out = match page.compression {
        compression::NONE => raw[..raw.len().min(want)].to_vec(),
        compression::PACKBITS => unpackbits(raw, want),
        compression::LZW => {
            let mut buf = vec![0u8; want];
            let mut dec = weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
            let mut inp = raw;
            let mut filled = 0;
            while filled < want && !inp.is_empty() {
                let res = dec.decode_bytes(inp, &mut buf[filled..]);
                inp = &inp[res.consumed_in..];
                filled += res.consumed_out;
                match res.status {
                    Ok(weezl::LzwStatus::Ok) if res.consumed_in + res.consumed_out > 0 => {}
                    Ok(_) => break,
                    Err(e) => {
                        if filled == 0 {
                            return Err(Error::CorruptTiff(format!("LZW data: {e}")));
                        }
                        break;
                    }
                }
            }
            buf.truncate(filled);
            buf
        }
        compression::DEFLATE | compression::DEFLATE_OLD => {
            use std::io::Read;
            let mut buf = Vec::with_capacity(want);
            let res = flate2::read::ZlibDecoder::new(raw).take(want as u64).read_to_end(&mut buf);
            if let Err(e) = res
                && buf.is_empty()
            {
                return Err(Error::CorruptTiff(format!("Deflate data: {e}")));
            }
            buf
        }
        c => return Err(Error::UnsupportedTiff(unsupported_compression(c))),
    };
    out.resize(want, 0);
    Ok(out)
}

/// A compression that is refused, in words, with what to send instead. The
/// JBIG and JPEG codings of TIFF-FX (RFC 3949 profiles J, L and C) are named.
fn unsupported_compression(c: u16) -> String {
    let what = match c {
        6 | 7 => " (JPEG)",
        9 => " (JBIG, TIFF-FX profile J)",
        10 => " (JBIG colour, TIFF-FX profile L)",
        34661 => " (JBIG)",
        34712 => " (JPEG 2000)",
        _ => "",
    };
    format!("compression {c}{what}; send the pages as a G3 or G4 TIFF, or as a PDF")
}

/// PackBits (TIFF 6.0 §9), bounded to `want` bytes.
fn unpackbits(mut raw: &[u8], want: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(want);
    while out.len() < want {
        let Some((&n, rest)) = raw.split_first() else {
            break;
        };
        raw = rest;
        let n = n as i8;
        if n >= 0 {
            let k = (n as usize + 1).min(raw.len());
            out.extend_from_slice(&raw[..k]);
            raw = &raw[k..];
        } else if n != -128 {
            let Some((&b, rest)) = raw.split_first() else {
                break;
            };
            raw = rest;
            out.extend(std::iter::repeat_n(b, (1 - n as isize) as usize));
        }
    }
    out.truncate(want);
    out
}

/// Renders every page of a TIFF to fax pages; refuses more than `room` pages.
pub fn render(data: &[u8], settings: &Settings, room: usize) -> Result<Vec<Bitmap>> {
    let pages = parse(data, room)?;
    let started = std::time::Instant::now();
    let max = settings.limits.max_pixels;
    let target_lines = settings.paper.lines(settings.resolution);
    let mut out = Vec::with_capacity(pages.len());
    for p in &pages {
        if started.elapsed() > settings.limits.max_time {
            return Err(Error::TimedOut(settings.limits.max_time));
        }
        let dpi = p.dpi();
        // A fax page at the target resolution that fits the paper passes
        // through untouched.
        if p.bits_per_sample == 1
            && p.width == WIDTH
            && Resolution::nearest(dpi.1) == settings.resolution
            && p.height <= target_lines
        {
            let bm = p.decode_bilevel(data, max)?;
            let mut page = Bitmap::new(WIDTH, target_lines);
            let n = bm.data().len();
            page.data_mut()[..n].copy_from_slice(bm.data());
            out.push(page);
            continue;
        }
        let gray = p.decode_gray(data, max)?;
        let placed = gray.fit_onto_page(dpi, settings.paper, settings.resolution);
        let mode = if p.bits_per_sample == 1 { super::Dither::Threshold } else { settings.dither };
        out.push(binarise::binarise(&placed, mode));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packbits_round_trip_of_the_spec_example() {
        // TIFF 6.0 §9 example.
        let packed = [0xFE, 0xAA, 0x02, 0x80, 0x00, 0x2A, 0xFD, 0xAA, 0x03, 0x80, 0x00, 0x2A, 0x22, 0xF7, 0xAA];
        let want = [
            0xAA, 0xAA, 0xAA, 0x80, 0x00, 0x2A, 0xAA, 0xAA, 0xAA, 0xAA, 0x80, 0x00, 0x2A, 0x22, 0xAA, 0xAA, 0xAA, 0xAA,
            0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA,
        ];
        assert_eq!(unpackbits(&packed, want.len()), want);
    }

    #[test]
    fn garbage_and_loops_are_refused() {
        assert!(matches!(parse(b"hello world", 50), Err(Error::CorruptTiff(_))));
        assert!(matches!(parse(b"II*\0\xff\xff\xff\x00", 50), Err(Error::CorruptTiff(_))));
        // An IFD with no entries whose next pointer is itself.
        let mut f = b"II*\0\x08\0\0\0".to_vec();
        f.extend_from_slice(&0u16.to_le_bytes());
        f.extend_from_slice(&8u32.to_le_bytes());
        assert!(matches!(parse(&f, 50), Err(Error::CorruptTiff(_))));
    }
}
