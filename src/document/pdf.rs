//! PDF pages rendered in process by hayro.
//!
//! Each page is drawn anti-aliased in grey straight at fax resolution (a
//! non-uniform scale of 204/72 by 196/72 for fine), fitted into the paper as
//! `gs -dPDFFitPage` does and centred; landscape pages (as displayed, after
//! `/Rotate`) are turned a quarter to fill the portrait fax page. The page
//! count is checked before anything is drawn and the time limit between pages.

use std::sync::Arc;
use std::time::Instant;

use hayro::hayro_interpret::InterpreterSettings;
use hayro::hayro_interpret::util::TransformExt;
use hayro::hayro_syntax::{DecryptionError, LoadPdfError, Pdf};
use hayro::kurbo::Affine;
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::vello_cpu::{Pixmap, RasterizerSettings, RenderContext, Resources, TargetInit};
use hayro::{RenderCache, RenderSettings};

use super::fax_page::{Bitmap, GrayImage, Paper, Resolution, WIDTH, X_DPI};
use super::{Error, PdfRenderer, Result, Settings, binarise, ghostscript, tiff::luma};

/// Opens a PDF with hayro, mapping its errors to customer-readable ones.
pub fn open(data: &[u8]) -> Result<Pdf> {
    Pdf::new(Arc::new(data.to_vec())).map_err(|e| match e {
        LoadPdfError::Decryption(DecryptionError::PasswordProtected) => Error::PasswordProtected,
        LoadPdfError::Decryption(DecryptionError::UnsupportedAlgorithm) => Error::UnsupportedEncryption,
        _ => Error::CorruptPdf,
    })
}

/// Renders a PDF with the configured renderer; refuses more than `room` pages.
pub fn render(data: &[u8], settings: &Settings, room: usize) -> Result<Vec<Bitmap>> {
    let hayro = |data: &[u8]| match super::worker::isolated() {
        Some(exe) => super::worker::render(exe, data, settings, room),
        None => render_hayro(data, settings, room),
    };
    match settings.pdf_renderer {
        PdfRenderer::Hayro => hayro(data),
        PdfRenderer::Ghostscript => ghostscript::render(data, settings, room),
        PdfRenderer::HayroThenGhostscript => match hayro(data) {
            // Only a file hayro cannot read goes to Ghostscript: a refusal for
            // a password or the page limit stands.
            Err(Error::CorruptPdf) => ghostscript::render(data, settings, room),
            other => other,
        },
    }
}

/// Renders with hayro.
///
/// hayro is memory-safe, but a panic on a malformed file inside it would end
/// the job's thread; it is caught and reported as a damaged PDF.
pub fn render_hayro(data: &[u8], settings: &Settings, room: usize) -> Result<Vec<Bitmap>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| render_hayro_inner(data, settings, room)))
        .unwrap_or(Err(Error::CorruptPdf))
}

fn render_hayro_inner(data: &[u8], settings: &Settings, room: usize) -> Result<Vec<Bitmap>> {
    let pdf = open(data)?;
    let pages = pdf.pages();
    if pages.is_empty() {
        return Err(Error::NoPages);
    }
    if pages.len() > room {
        return Err(Error::TooManyPages { pages: pages.len(), limit: settings.limits.max_pages });
    }
    // Pages are drawn in parallel, one render cache per thread (hayro's
    // `Pdf` is shared, its cache is not). The time limit is checked before
    // each page.
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 4).min(pages.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<Vec<(usize, Bitmap)>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (pdf, next) = (&pdf, &next);
                scope.spawn(move || -> Result<Vec<(usize, Bitmap)>> {
                    let cache = RenderCache::new();
                    let interpreter = InterpreterSettings::default();
                    let mut canvas = Canvas::default();
                    let pages = pdf.pages();
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(page) = pages.get(i) else { break };
                        if started.elapsed() > settings.limits.max_time {
                            return Err(Error::TimedOut(settings.limits.max_time));
                        }
                        let gray = canvas.render(page, &cache, &interpreter, settings.paper, settings.resolution);
                        done.push((i, binarise::binarise(&gray, settings.dither)));
                    }
                    Ok(done)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(Err(Error::CorruptPdf))).collect()
    });
    let mut out = Vec::with_capacity(pages.len());
    for r in results {
        out.extend(r?);
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, b)| b).collect())
}

/// A render context and its pixel buffer (16 MiB for a fine A4 page), kept
/// from one page to the next on a thread rather than allocated and cleared
/// anew for each page.
#[derive(Default)]
pub struct Canvas {
    ctx: Option<(RenderContext, Pixmap)>,
}

impl std::fmt::Debug for Canvas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Canvas").field("allocated", &self.ctx.is_some()).finish()
    }
}

impl Canvas {
    /// Draws one page in grey onto a fax page.
    pub fn render<'a>(
        &mut self,
        page: &'a hayro::hayro_syntax::page::Page<'a>,
        cache: &RenderCache<'a>,
        interpreter: &InterpreterSettings,
        paper: Paper,
        resolution: Resolution,
    ) -> GrayImage {
        let lines = paper.lines(resolution);
        let (ctx, pixmap) = match &mut self.ctx {
            Some((ctx, pixmap)) if ctx.height() == lines as u16 => {
                ctx.reset();
                (ctx, pixmap)
            }
            slot => {
                let ctx = RenderContext::new(WIDTH as u16, lines as u16);
                let pixmap = Pixmap::new(ctx.width(), ctx.height());
                let (c, p) = slot.insert((ctx, pixmap));
                (c, p)
            }
        };
        draw(page, cache, interpreter, resolution, lines, ctx, pixmap)
    }
}

/// Draws `page` with `ctx` into `pixmap` (both `lines` high) and returns it in grey.
fn draw<'a>(
    page: &'a hayro::hayro_syntax::page::Page<'a>,
    cache: &RenderCache<'a>,
    interpreter: &InterpreterSettings,
    resolution: Resolution,
    lines: u32,
    ctx: &mut RenderContext,
    pixmap: &mut Pixmap,
) -> GrayImage {
    let (w, h) = page.render_dimensions();
    let (w, h) = (w.max(1.0) as f64, h.max(1.0) as f64);
    // Turn landscape pages a quarter counter-clockwise, the top edge to the
    // left, as printers and Ghostscript do: (x, y) -> (y, w - x).
    let (rot, pw, ph) =
        if w > h { (Affine::new([0.0, -1.0, 1.0, 0.0, 0.0, w]), h, w) } else { (Affine::IDENTITY, w, h) };
    let page_w_pt = WIDTH as f64 / X_DPI * 72.0;
    let page_h_pt = lines as f64 / resolution.y_dpi() * 72.0;
    let s = (page_w_pt / pw).min(page_h_pt / ph);
    let off = ((page_w_pt - pw * s) / 2.0, (page_h_pt - ph * s) / 2.0);
    let to_px = Affine::scale_non_uniform(X_DPI / 72.0, resolution.y_dpi() / 72.0);
    let transform = to_px * Affine::translate(off) * Affine::scale(s) * rot * page.initial_transform(true).to_kurbo();

    hayro::render_into(page, cache, interpreter, &RenderSettings::default(), ctx, transform);
    ctx.flush();
    ctx.render_with(
        &mut *pixmap,
        &mut Resources::default(),
        RasterizerSettings { target_init: TargetInit::Clear(WHITE), ..Default::default() },
    );
    GrayImage { width: WIDTH, height: lines, data: to_grey(pixmap.data_as_u8_slice()) }
}

/// Premultiplied RGBA over white to luma. Paper (opaque white, most of a
/// page) is passed over eight pixels at a time: the conversion was the
/// largest single cost of a text page (30 % of the CPU of a 50-page letter
/// under `perf`).
fn to_grey(rgba: &[u8]) -> Vec<u8> {
    let mut out = vec![255u8; rgba.len() / 4];
    for (src, dst) in rgba.chunks(32).zip(out.chunks_mut(8)) {
        if src.iter().fold(255u8, |m, &v| m & v) == 255 {
            continue;
        }
        for (p, o) in src.chunks_exact(4).zip(dst.iter_mut()) {
            let inv = 255 - p[3];
            *o = luma(p[0].saturating_add(inv), p[1].saturating_add(inv), p[2].saturating_add(inv));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn grey_of_premultiplied_rgba_over_white() {
        // White, black, half-transparent black (premultiplied: 0, 0, 0, 128),
        // opaque red, then a run of white long enough to be skipped.
        let mut px = vec![255, 255, 255, 255, 0, 0, 0, 255, 0, 0, 0, 128, 255, 0, 0, 255];
        px.extend([255; 64]);
        let g = super::to_grey(&px);
        assert_eq!(&g[..4], &[255, 0, 127, 76]);
        assert!(g[4..].iter().all(|&v| v == 255));
        assert_eq!(g.len(), 20);
    }
}
