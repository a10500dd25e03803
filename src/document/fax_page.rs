//! Fax page geometry, the grey working canvas and the 1-bit page.
//!
//! A fax line is 1728 pixels at 204 dpi (ITU-T T.4 §2.2, 215 mm); the number of
//! lines follows from the paper length and the vertical resolution.

use super::{Error, Result};

/// Pixels per fax line (ITU-T T.4, A4/Letter width).
pub const WIDTH: u32 = 1728;
/// Horizontal resolution in dots per inch (8 pels/mm).
pub const X_DPI: f64 = 204.0;

/// Vertical resolution of the fax pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    /// 204 x 98 dpi (3.85 lines/mm).
    Standard,
    /// 204 x 196 dpi (7.7 lines/mm), the default.
    #[default]
    Fine,
    /// 204 x 391 dpi (15.4 lines/mm).
    Superfine,
}

impl Resolution {
    /// Lines per inch.
    pub fn y_dpi(self) -> f64 {
        match self {
            Resolution::Standard => 98.0,
            Resolution::Fine => 196.0,
            Resolution::Superfine => 391.0,
        }
    }

    /// The resolution closest to `y_dpi` lines per inch.
    pub fn nearest(y_dpi: f64) -> Resolution {
        if y_dpi < 147.0 {
            Resolution::Standard
        } else if y_dpi < 293.0 {
            Resolution::Fine
        } else {
            Resolution::Superfine
        }
    }
}

/// Paper size of the fax pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Paper {
    /// ISO A4, 210 x 297 mm.
    #[default]
    A4,
    /// US Letter, 8.5 x 11 in.
    Letter,
}

impl Paper {
    /// Paper length in inches.
    pub fn height_in(self) -> f64 {
        match self {
            Paper::A4 => 297.0 / 25.4,
            Paper::Letter => 11.0,
        }
    }

    /// Lines on one page at `resolution` (A4 fine: 2292, Letter fine: 2156).
    pub fn lines(self, resolution: Resolution) -> u32 {
        (self.height_in() * resolution.y_dpi()).round() as u32
    }
}

/// An 8-bit grey image, 0 black, 255 white, row-major without padding.
#[derive(Clone, PartialEq, Eq)]
pub struct GrayImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height` luma values.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for GrayImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GrayImage({}x{})", self.width, self.height)
    }
}

impl GrayImage {
    /// A white image.
    pub fn white(width: u32, height: u32) -> GrayImage {
        GrayImage { width, height, data: vec![255; width as usize * height as usize] }
    }

    /// A blank fax page.
    pub fn page(paper: Paper, resolution: Resolution) -> GrayImage {
        GrayImage::white(WIDTH, paper.lines(resolution))
    }

    /// Copies `src` with its top-left corner at (`x`, `y`), clipped, darkest wins.
    pub fn draw(&mut self, src: &GrayImage, x: i64, y: i64) {
        for sy in 0..src.height as i64 {
            let ty = y + sy;
            if ty < 0 || ty >= self.height as i64 {
                continue;
            }
            for sx in 0..src.width as i64 {
                let tx = x + sx;
                if tx < 0 || tx >= self.width as i64 {
                    continue;
                }
                let v = src.data[(sy * src.width as i64 + sx) as usize];
                let t = &mut self.data[(ty * self.width as i64 + tx) as usize];
                *t = (*t).min(v);
            }
        }
    }

    /// Resamples to `width` x `height` by area averaging (box filter), which
    /// both shrinks without aliasing and enlarges by pixel replication with
    /// blended edges.
    pub fn resample(&self, width: u32, height: u32) -> GrayImage {
        if width == self.width && height == self.height {
            return self.clone();
        }
        let width = width.max(1);
        let height = height.max(1);
        // Horizontal pass into f32 rows, then vertical pass.
        let xw = weights(self.width, width);
        let yw = weights(self.height, height);
        let mut tmp = vec![0f32; width as usize * self.height as usize];
        for y in 0..self.height as usize {
            let row = &self.data[y * self.width as usize..(y + 1) * self.width as usize];
            let out = &mut tmp[y * width as usize..(y + 1) * width as usize];
            for (o, taps) in out.iter_mut().zip(&xw) {
                *o = taps.iter().map(|&(i, w)| row[i as usize] as f32 * w).sum();
            }
        }
        let mut data = vec![0u8; width as usize * height as usize];
        for (ty, taps) in yw.iter().enumerate() {
            let out = &mut data[ty * width as usize..(ty + 1) * width as usize];
            for (x, o) in out.iter_mut().enumerate() {
                let v: f32 = taps.iter().map(|&(i, w)| tmp[i as usize * width as usize + x] * w).sum();
                *o = v.round().clamp(0.0, 255.0) as u8;
            }
        }
        GrayImage { width, height, data }
    }

    /// Rotates a quarter turn counter-clockwise (the top edge to the left).
    pub fn rotate_ccw(&self) -> GrayImage {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut data = vec![255u8; w * h];
        for y in 0..h {
            for x in 0..w {
                // (x, y) -> (y, w - 1 - x) in an h-wide image.
                data[(w - 1 - x) * h + y] = self.data[y * w + x];
            }
        }
        GrayImage { width: self.height, height: self.width, data }
    }

    /// Places an image whose pixels measure `dpi` onto a fax page: landscape
    /// images are turned, images larger than the page are shrunk to fit
    /// (keeping proportions), smaller ones keep their physical size; the
    /// result is centred horizontally and starts at the top.
    pub fn fit_onto_page(&self, dpi: (f64, f64), paper: Paper, resolution: Resolution) -> GrayImage {
        let mut src = std::borrow::Cow::Borrowed(self);
        let mut dpi = dpi;
        let (w_in, h_in) = (self.width as f64 / dpi.0, self.height as f64 / dpi.1);
        if w_in > h_in && w_in > WIDTH as f64 / X_DPI {
            src = std::borrow::Cow::Owned(self.rotate_ccw());
            dpi = (dpi.1, dpi.0);
        }
        let mut page = GrayImage::page(paper, resolution);
        let (w_in, h_in) = (src.width as f64 / dpi.0, src.height as f64 / dpi.1);
        let page_w_in = WIDTH as f64 / X_DPI;
        let page_h_in = page.height as f64 / resolution.y_dpi();
        let scale = (page_w_in / w_in).min(page_h_in / h_in).min(1.0);
        let tw = ((w_in * scale * X_DPI).round() as u32).clamp(1, WIDTH);
        let th = ((h_in * scale * resolution.y_dpi()).round() as u32).clamp(1, page.height);
        let scaled = src.resample(tw, th);
        let x = (WIDTH - tw) / 2;
        page.draw(&scaled, x as i64, 0);
        page
    }
}

/// For each target index, the source indices and weights covering it.
fn weights(src: u32, dst: u32) -> Vec<Vec<(u32, f32)>> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|t| {
            let a = t as f64 * scale;
            let b = (t as f64 + 1.0) * scale;
            let mut taps = Vec::new();
            let mut i = a.floor() as u32;
            while (i as f64) < b && i < src {
                let lo = a.max(i as f64);
                let hi = b.min(i as f64 + 1.0);
                if hi > lo {
                    taps.push((i, ((hi - lo) / scale) as f32));
                }
                i += 1;
            }
            if taps.is_empty() {
                taps.push((src.saturating_sub(1).min(a as u32), 1.0));
            }
            taps
        })
        .collect()
}

/// A black-and-white page: 1 bit per pixel, 1 is black, rows start on a byte,
/// most significant bit first.
#[derive(Clone, PartialEq, Eq)]
pub struct Bitmap {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl std::fmt::Debug for Bitmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bitmap({}x{})", self.width, self.height)
    }
}

impl Bitmap {
    /// A white bitmap.
    pub fn new(width: u32, height: u32) -> Bitmap {
        Bitmap { width, height, data: vec![0; Self::stride_for(width) * height as usize] }
    }

    /// Wraps packed rows; fails if `data` does not hold `height` rows.
    pub fn from_packed(width: u32, height: u32, data: Vec<u8>) -> Result<Bitmap> {
        if data.len() != Self::stride_for(width) * height as usize {
            return Err(Error::CorruptImage(format!("{} bytes do not make {width} x {height} pixels", data.len())));
        }
        Ok(Bitmap { width, height, data })
    }

    fn stride_for(width: u32) -> usize {
        width.div_ceil(8) as usize
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Bytes per row.
    pub fn stride(&self) -> usize {
        Self::stride_for(self.width)
    }

    /// The packed rows.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// One packed row.
    pub fn row(&self, y: u32) -> &[u8] {
        let s = self.stride();
        &self.data[y as usize * s..(y as usize + 1) * s]
    }

    /// Whether the pixel is black.
    pub fn get(&self, x: u32, y: u32) -> bool {
        self.data[y as usize * self.stride() + x as usize / 8] & (0x80 >> (x % 8)) != 0
    }

    /// Sets a pixel.
    pub fn set(&mut self, x: u32, y: u32, black: bool) {
        let i = y as usize * self.stride() + x as usize / 8;
        let m = 0x80 >> (x % 8);
        if black {
            self.data[i] |= m;
        } else {
            self.data[i] &= !m;
        }
    }

    /// Fills a row from colour changes (as CCITT decoders report them: the row
    /// starts white, each listed position flips the colour).
    pub fn set_row_from_changes(&mut self, y: u32, changes: &[u32]) {
        let width = self.width;
        let mut pairs = changes.chunks(2);
        for pair in &mut pairs {
            let start = pair[0].min(width);
            let end = pair.get(1).copied().unwrap_or(width).min(width);
            self.fill_black(y, start, end);
        }
    }

    /// Blackens pixels `x0..x1` of row `y`.
    pub fn fill_black(&mut self, y: u32, x0: u32, x1: u32) {
        if x0 >= x1 {
            return;
        }
        let stride = self.stride();
        let row = &mut self.data[y as usize * stride..(y as usize + 1) * stride];
        let (b0, b1) = (x0 as usize / 8, (x1 as usize - 1) / 8);
        let first = 0xffu8 >> (x0 % 8);
        let last = 0xffu8 << (7 - (x1 - 1) % 8);
        if b0 == b1 {
            row[b0] |= first & last;
        } else {
            row[b0] |= first;
            row[b0 + 1..b1].fill(0xff);
            row[b1] |= last;
        }
    }

    /// Mutable packed rows.
    pub(crate) fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// As grey, for resampling (black 0, white 255).
    pub fn to_gray(&self) -> GrayImage {
        let mut g = GrayImage::white(self.width, self.height);
        let w = self.width as usize;
        for (y, out) in g.data.chunks_mut(w).enumerate() {
            let row = self.row(y as u32);
            for (x, o) in out.iter_mut().enumerate() {
                if row[x / 8] & (0x80 >> (x % 8)) != 0 {
                    *o = 0;
                }
            }
        }
        g
    }

    /// Number of black pixels.
    pub fn black_pixels(&self) -> u64 {
        let w = self.width as usize;
        let full = w / 8;
        let mask = if w.is_multiple_of(8) { 0 } else { 0xffu8 << (8 - w % 8) };
        (0..self.height)
            .map(|y| {
                let r = self.row(y);
                let mut n: u64 = r[..full].iter().map(|b| b.count_ones() as u64).sum();
                if mask != 0 {
                    n += (r[full] & mask).count_ones() as u64;
                }
                n
            })
            .sum()
    }
}
