//! Photos (PNG, JPEG, GIF attachments) onto a fax page.
//!
//! In: a decoded grey image. Out: a grey fax page ready for [`super::binarise`].
//! The image is scaled to the printable area (aspect kept, turned when that
//! makes it larger; never enlarged beyond [`MIN_DPI`] image pixels per
//! inch). A photographed document (most of the picture is paper, lit
//! unevenly, tinted, noisy) has its paper evened out to white first
//! ([`flatten_paper`]): the paper's brightness is estimated block by block,
//! each pixel divided by it, and what is then within the paper's noise made
//! white. Only real grey areas are left to be halftoned, instead of a dot
//! screen over the whole sheet, which cost 5 to 8 minutes a page on the line.
//! A picture that is not mostly paper (a photograph) only has its levels
//! stretched.

use super::fax_page::{GrayImage, Paper, Resolution, WIDTH, X_DPI};

/// The fewest image pixels per inch an image is enlarged to: a small image
/// (a logo, a screenshot) is not blown up into blocks.
pub const MIN_DPI: f64 = 100.0;
/// The unprinted margin around an image, in millimetres.
pub const MARGIN_MM: f64 = 5.0;

/// Places `img` on a blank page: scaled to the printable area, centred
/// horizontally, at the top margin; a document photo's paper made white.
/// Returns the page and whether the image was a photographed document.
pub fn place(img: &GrayImage, paper: Paper, resolution: Resolution) -> (GrayImage, bool) {
    let y_dpi = resolution.y_dpi();
    let mut page = GrayImage::page(paper, resolution);
    let (mx, my) = ((MARGIN_MM / 25.4 * X_DPI).round() as u32, (MARGIN_MM / 25.4 * y_dpi).round() as u32);
    let (area_w, area_h) = ((WIDTH - 2 * mx) as f64 / X_DPI, (page.height - 2 * my) as f64 / y_dpi);
    // Scale (inches per image pixel) for an upright or a turned image.
    let fit = |w: u32, h: u32| (area_w / w as f64).min(area_h / h as f64).min(1.0 / MIN_DPI);
    let turned = img.width > img.height && fit(img.height, img.width) > fit(img.width, img.height) * 1.01;
    let src = if turned { std::borrow::Cow::Owned(img.rotate_ccw()) } else { std::borrow::Cow::Borrowed(img) };
    let s = fit(src.width, src.height);
    let tw = ((src.width as f64 * s * X_DPI).round() as u32).clamp(1, WIDTH);
    let th = ((src.height as f64 * s * y_dpi).round() as u32).clamp(1, page.height);
    let mut scaled = src.resample(tw, th);
    let document = flatten_paper(&mut scaled);
    if !document {
        stretch_levels(&mut scaled);
    }
    page.draw(&scaled, ((WIDTH - tw) / 2) as i64, my as i64);
    (page, document)
}

/// Block size (pixels) over which the paper's brightness is estimated.
const BLOCK: usize = 32;
/// Blocks that must look like paper for the image to count as a document.
const PAPER_SHARE: f64 = 0.5;
/// Blocks around one within which the paper's lighting barely changes.
const LOCAL: i64 = 3;

/// Evens out the paper of a photographed document to white; returns false
/// (and changes nothing) when the image is not mostly paper.
///
/// A block is paper when its bright end (95th percentile) is light and most
/// of it (the median) is close to that. The paper's brightness is that
/// bright end, filled in from neighbouring blocks where a block is not paper
/// (a picture, a dark heading) and smoothed; each pixel is divided by it.
/// What is then within the paper's noise of white becomes white, and the rest
/// is stretched so that ink stays dark.
pub fn flatten_paper(img: &mut GrayImage) -> bool {
    let (w, h) = (img.width as usize, img.height as usize);
    let (bw, bh) = (w.div_ceil(BLOCK), h.div_ceil(BLOCK));
    if bw < 3 || bh < 3 {
        return false;
    }
    let mut bg: Vec<Option<f32>> = Vec::with_capacity(bw * bh);
    for by in 0..bh {
        for bx in 0..bw {
            let mut hist = [0u32; 256];
            let mut n = 0u32;
            for y in by * BLOCK..((by + 1) * BLOCK).min(h) {
                for &v in &img.data[y * w + bx * BLOCK..y * w + ((bx + 1) * BLOCK).min(w)] {
                    hist[v as usize] += 1;
                    n += 1;
                }
            }
            let pct = |p: f64| {
                let want = (n as f64 * p).ceil() as u32;
                let mut acc = 0;
                hist.iter()
                    .position(|&c| {
                        acc += c;
                        acc >= want.max(1)
                    })
                    .unwrap_or(255) as f32
            };
            let (median, bright) = (pct(0.5), pct(0.95));
            bg.push((bright >= 96.0 && median >= bright * 0.85).then_some(bright));
        }
    }
    // Lighting changes slowly: a block much darker than the paper around it,
    // or than the page's paper, is a grey area, not paper in shadow.
    let mut lit: Vec<f32> = bg.iter().flatten().copied().collect();
    lit.sort_by(f32::total_cmp);
    let page_paper = lit.get(lit.len() * 9 / 10).copied().unwrap_or(0.0);
    let bg: Vec<Option<f32>> = (0..bh * bw)
        .map(|i| {
            let v = bg[i]?;
            let (bx, by) = ((i % bw) as i64, (i / bw) as i64);
            let mut near = 0f32;
            for y in (by - LOCAL).max(0)..(by + LOCAL + 1).min(bh as i64) {
                for x in (bx - LOCAL).max(0)..(bx + LOCAL + 1).min(bw as i64) {
                    near = near.max(bg[y as usize * bw + x as usize].unwrap_or(0.0));
                }
            }
            (v >= 0.55 * page_paper && v >= 0.8 * near).then_some(v)
        })
        .collect();
    let paper = bg.iter().filter(|b| b.is_some()).count();
    if (paper as f64) < PAPER_SHARE * (bw * bh) as f64 {
        return false;
    }
    // Fill the blocks that are not paper from their neighbours, ring by ring.
    let mut grid: Vec<Option<f32>> = bg;
    while grid.iter().any(Option::is_none) {
        let prev = grid.clone();
        for by in 0..bh {
            for bx in 0..bw {
                if prev[by * bw + bx].is_some() {
                    continue;
                }
                let (mut sum, mut k) = (0.0, 0);
                for (dx, dy) in [(-1i64, 0i64), (1, 0), (0, -1), (0, 1), (-1, -1), (1, 1), (-1, 1), (1, -1)] {
                    let (x, y) = (bx as i64 + dx, by as i64 + dy);
                    if x >= 0
                        && y >= 0
                        && (x as usize) < bw
                        && (y as usize) < bh
                        && let Some(v) = prev[y as usize * bw + x as usize]
                    {
                        sum += v;
                        k += 1;
                    }
                }
                if k > 0 {
                    grid[by * bw + bx] = Some(sum / k as f32);
                }
            }
        }
    }
    let mut grid: Vec<f32> = grid.into_iter().map(|v| v.unwrap_or(255.0)).collect();
    for _ in 0..2 {
        let prev = grid.clone();
        for by in 0..bh {
            for bx in 0..bw {
                let (mut sum, mut k) = (0.0, 0.0);
                for y in by.saturating_sub(1)..(by + 2).min(bh) {
                    for x in bx.saturating_sub(1)..(bx + 2).min(bw) {
                        sum += prev[y * bw + x];
                        k += 1.0;
                    }
                }
                grid[by * bw + bx] = sum / k;
            }
        }
    }
    // Divide by the paper, interpolated bilinearly between block centres.
    let at = |x: usize, n: usize| {
        let f = ((x as f32 + 0.5) / BLOCK as f32 - 0.5).clamp(0.0, (n - 1) as f32);
        let i = (f as usize).min(n - 2);
        (i, f - i as f32)
    };
    let mut hist = [0u64; 256];
    for y in 0..h {
        let (iy, fy) = at(y, bh);
        for x in 0..w {
            let (ix, fx) = at(x, bw);
            let g = |xx: usize, yy: usize| grid[yy * bw + xx];
            let paper = (g(ix, iy) * (1.0 - fx) + g(ix + 1, iy) * fx) * (1.0 - fy)
                + (g(ix, iy + 1) * (1.0 - fx) + g(ix + 1, iy + 1) * fx) * fy;
            let v = &mut img.data[y * w + x];
            *v = (*v as f32 / paper.max(1.0) * 255.0).round().min(255.0) as u8;
            hist[*v as usize] += 1;
        }
    }
    // Then white from WHITE up (the paper's noise), and the ink stretched so
    // that its darkest per cent is black: ink on a photo is a dark grey.
    const WHITE: i32 = 224;
    let want = (img.data.len() as u64 / 100).max(1);
    let mut acc = 0;
    let black = hist.iter().position(|&c| {
        acc += c;
        acc >= want
    });
    let black = (black.unwrap_or(0) as i32).min(WHITE - 64);
    for v in &mut img.data {
        *v = ((*v as i32 - black) * 255 / (WHITE - black)).clamp(0, 255) as u8;
    }
    true
}

/// Stretches the levels of a photograph so that its darkest and lightest
/// half per cent become black and white.
pub fn stretch_levels(img: &mut GrayImage) {
    let mut hist = [0u64; 256];
    for &v in &img.data {
        hist[v as usize] += 1;
    }
    let n = img.data.len() as u64;
    let pct = |p: f64| {
        let want = ((n as f64 * p).ceil() as u64).max(1);
        let mut acc = 0;
        hist.iter()
            .position(|&c| {
                acc += c;
                acc >= want
            })
            .unwrap_or(255) as i32
    };
    let (lo, hi) = (pct(0.005), pct(0.995));
    if hi - lo < 32 {
        return;
    }
    for v in &mut img.data {
        *v = ((*v as i32 - lo) * 255 / (hi - lo)).clamp(0, 255) as u8;
    }
}
