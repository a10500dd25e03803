//! Grey to black and white.
//!
//! Measured against Ghostscript on text, scans and charts rendered at 204 x 196
//! dpi: a threshold at luma < 128 loses anti-aliased hairlines (the crossbar of
//! a 10 pt "e"), luma < 192 keeps text bold and legible; light colours and grey
//! fills disappear under any threshold and need halftoning, which in turn makes
//! text fuzzy. [`Dither::Auto`] therefore decides per pixel: a pixel whose
//! four neighbours and itself are all mid-grey lies inside a flat tone (a
//! photo, a fill, a light line wider than two pixels) and is halftoned with a
//! clustered-dot screen; every other pixel is thresholded. Along a text edge a
//! mid-grey pixel always has a black or white neighbour, so text is never
//! dithered.

use super::Dither;
use super::fax_page::{Bitmap, GrayImage};

/// Pixels darker than this are black when thresholded.
pub const TEXT_THRESHOLD: u8 = 192;
/// The mid-tone band in which flat regions are halftoned.
const MID_LOW: u8 = 40;
const MID_HIGH: u8 = 232;

/// The halftone screen's cell: 8 x 8 pixels holding two dots on a 45°
/// lattice 5.7 pixels apart (about 36 lines per inch at 204 dpi).
const CELL: usize = 8;

/// The screen's thresholds, from the spot function
/// `cos(2π(x+y)/8) + cos(2π(x-y)/8)`: pixels nearest a dot's centre turn
/// black first, so that grey becomes round dots that grow and merge, as
/// Ghostscript's and printers' clustered-dot screens do. Clustered dots make
/// long runs, which G4 codes in a few bits; a dispersed (Bayer) dither of the
/// same grey changes colour at nearly every pixel: the corpus's chart took
/// 215 KB of T.6 a page with it, 67 KB with this screen (Ghostscript 94 KB).
fn screen() -> &'static [[u8; CELL]; CELL] {
    static SCREEN: std::sync::OnceLock<[[u8; CELL]; CELL]> = std::sync::OnceLock::new();
    SCREEN.get_or_init(|| {
        let spot = |x: usize, y: usize| {
            let t = std::f64::consts::TAU / CELL as f64;
            let (x, y) = (x as f64, y as f64);
            (t * (x + y)).cos() + (t * (x - y)).cos()
        };
        let mut order: Vec<(usize, usize)> = (0..CELL * CELL).map(|i| (i % CELL, i / CELL)).collect();
        // Highest spot value first; ties alternate between the two dots.
        order.sort_by(|&(ax, ay), &(bx, by)| {
            spot(bx, by).total_cmp(&spot(ax, ay)).then(((ax + ay) / CELL).cmp(&((bx + by) / CELL))).then(ay.cmp(&by))
        });
        let mut m = [[0u8; CELL]; CELL];
        for (rank, (x, y)) in order.into_iter().enumerate() {
            // Thresholds 2, 6, ..., 254: a luma of v turns (256 - v) / 256 black.
            m[y][x] = (rank * 4 + 2) as u8;
        }
        m
    })
}

fn halftone(x: u32, y: u32) -> u8 {
    screen()[y as usize % CELL][x as usize % CELL]
}

/// Converts a grey page to black and white.
pub fn binarise(img: &GrayImage, mode: Dither) -> Bitmap {
    match mode {
        Dither::Threshold => threshold(img),
        Dither::Auto => auto(img),
        Dither::Diffuse => diffuse(img),
    }
}

fn threshold(img: &GrayImage) -> Bitmap {
    pack(img, |_, _, v| v < TEXT_THRESHOLD)
}

/// Builds a bitmap row by row from a per-pixel decision.
fn pack(img: &GrayImage, mut black: impl FnMut(usize, usize, u8) -> bool) -> Bitmap {
    let w = img.width as usize;
    let mut out = Bitmap::new(img.width, img.height);
    let stride = out.stride();
    let data = out.data_mut();
    for (y, (src, dst)) in img.data.chunks(w).zip(data.chunks_mut(stride)).enumerate() {
        for (k, group) in src.chunks(8).enumerate() {
            // Paper (the most common case) decides nothing: a pixel lighter
            // than the mid-tone band is white under every mode that packs.
            if group.iter().fold(255u8, |m, &v| m & v) == 255 || group.iter().all(|&v| v > MID_HIGH) {
                continue;
            }
            for (j, &v) in group.iter().enumerate() {
                if black(k * 8 + j, y, v) {
                    dst[k] |= 0x80 >> j;
                }
            }
        }
    }
    out
}

fn is_mid(v: u8) -> bool {
    (MID_LOW..=MID_HIGH).contains(&v)
}

fn auto(img: &GrayImage) -> Bitmap {
    mixed(img, 1, TEXT_THRESHOLD)
}

/// Threshold below which a photographed document's ink is black (its paper
/// evened out to white first, [`super::photo`]). Measured on a phone photo of
/// a letter: tesseract read 92 % of its words at 160, 90 % at 192 and 89 % at
/// 128 (the PDF drawn directly: 93 %).
pub const PHOTO_THRESHOLD: u8 = 160;

/// The automatic mix for a photographed document: its text is softer and
/// wider than a rendered one (the camera's blur, the enlargement), so a
/// region counts as a flat tone only when the pixels three away on every
/// side are mid-grey too; the rest is thresholded at [`PHOTO_THRESHOLD`].
pub fn photographed_document(img: &GrayImage) -> Bitmap {
    mixed(img, 3, PHOTO_THRESHOLD)
}

/// Halftones pixels that are mid-grey together with the pixels `reach`
/// away on each side, thresholds the rest at `threshold`.
fn mixed(img: &GrayImage, reach: usize, threshold: u8) -> Bitmap {
    let (w, h) = (img.width as usize, img.height as usize);
    let d = &img.data;
    pack(img, |x, y, v| {
        if is_mid(v)
            && x >= reach
            && y >= reach
            && x + reach < w
            && y + reach < h
            && is_mid(d[y * w + x - reach])
            && is_mid(d[y * w + x + reach])
            && is_mid(d[(y - reach) * w + x])
            && is_mid(d[(y + reach) * w + x])
        {
            v < halftone(x as u32, y as u32)
        } else {
            v < threshold
        }
    })
}

/// Floyd-Steinberg error diffusion, serpentine.
fn diffuse(img: &GrayImage) -> Bitmap {
    let (w, h) = (img.width as usize, img.height as usize);
    let mut out = Bitmap::new(img.width, img.height);
    let mut cur = vec![0i32; w + 2];
    let mut next = vec![0i32; w + 2];
    for y in 0..h {
        let ltr = y % 2 == 0;
        for i in 0..w {
            let x = if ltr { i } else { w - 1 - i };
            let v = img.data[y * w + x] as i32 + cur[x + 1] / 16;
            let black = v < 128;
            let err = if black { v } else { v - 255 };
            if black {
                out.set(x as u32, y as u32, true);
            }
            let (fwd, back) = if ltr { (x + 2, x) } else { (x, x + 2) };
            cur[fwd] += err * 7;
            next[back] += err * 3;
            next[x + 1] += err * 5;
            next[fwd] += err;
        }
        std::mem::swap(&mut cur, &mut next);
        next.iter_mut().for_each(|e| *e = 0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(w: u32, h: u32, v: u8) -> GrayImage {
        GrayImage { width: w, height: h, data: vec![v; (w * h) as usize] }
    }

    fn share(b: &Bitmap) -> f64 {
        b.black_pixels() as f64 / (b.width() as f64 * b.height() as f64)
    }

    #[test]
    fn grey_fill_keeps_its_tone_in_auto_and_diffuse_but_not_threshold() {
        let g = fill(64, 64, 160);
        assert_eq!(share(&binarise(&g, Dither::Threshold)), 1.0);
        let a = share(&binarise(&g, Dither::Auto));
        let d = share(&binarise(&g, Dither::Diffuse));
        let want = 1.0 - 160.0 / 255.0;
        assert!((a - want).abs() < 0.05, "auto {a}");
        assert!((d - want).abs() < 0.05, "diffuse {d}");
        // A light grey vanishes under a threshold but not in auto.
        let light = fill(64, 64, 215);
        assert_eq!(share(&binarise(&light, Dither::Threshold)), 0.0);
        assert!(share(&binarise(&light, Dither::Auto)) > 0.1);
    }

    #[test]
    fn anti_aliased_stroke_is_thresholded_solid_in_auto() {
        // A vertical stroke: white, 150 (edge), 0, 0, 150 (edge), white.
        let mut g = fill(6, 8, 255);
        for y in 0..8 {
            for (x, v) in [(1, 150), (2, 0), (3, 0), (4, 150)] {
                g.data[y * 6 + x] = v;
            }
        }
        let b = binarise(&g, Dither::Auto);
        for y in 0..8 {
            let row: Vec<bool> = (0..6).map(|x| b.get(x, y)).collect();
            assert_eq!(row, [false, true, true, true, true, false]);
        }
    }
}
