//! Text and HTML bodies typeset onto fax pages.
//!
//! The body is set in the bundled DejaVu Sans Mono (full Latin, Greek and
//! Cyrillic coverage; Bitstream Vera licence, `fonts/DejaVu-LICENSE.txt`) at
//! 10 pt on 12 pt lines, 90 columns between 12 mm margins, so that plain-text
//! mails keep their column layout. Lines are wrapped at spaces (long words are
//! broken), a form feed starts a new page, and characters the font lacks print
//! as `?`. Glyphs are drawn anti-aliased at the fax's non-square pixel size and
//! thresholded at [`super::binarise::TEXT_THRESHOLD`].

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, GlyphId, PxScale, ScaleFont, point};

use super::fax_page::{Bitmap, GrayImage, Paper, Resolution, X_DPI};
use super::{Dither, Result, Settings, binarise};

static FONT_DATA: &[u8] = include_bytes!("fonts/DejaVuSansMono.ttf");

/// The bundled monospaced font.
pub fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| {
        // The font is part of the program and checked by a test.
        FontRef::try_from_slice(FONT_DATA).expect("the bundled font parses")
    })
}

/// Body text size in points.
pub const BODY_PT: f32 = 10.0;
/// Line pitch in points.
pub const LINE_PT: f32 = 12.0;
/// Page margin in millimetres.
pub const MARGIN_MM: f32 = 12.0;

/// Draws text on a grey page.
#[derive(Debug, Clone, Copy)]
pub struct Pen {
    /// Vertical resolution of the page.
    pub y_dpi: f32,
}

impl Pen {
    /// A pen for pages at `resolution`.
    pub fn new(resolution: Resolution) -> Pen {
        Pen { y_dpi: resolution.y_dpi() as f32 }
    }

    fn scale(&self, size_pt: f32) -> PxScale {
        let f = font();
        let em_to_height = f.height_unscaled() / f.units_per_em().unwrap_or(2048.0);
        PxScale { x: size_pt * X_DPI as f32 / 72.0 * em_to_height, y: size_pt * self.y_dpi / 72.0 * em_to_height }
    }

    /// Horizontal advance of one character cell, in pixels.
    pub fn advance(&self, size_pt: f32) -> f32 {
        let f = font().as_scaled(self.scale(size_pt));
        f.h_advance(f.glyph_id('M'))
    }

    /// Points to vertical pixels.
    pub fn y_px(&self, pt: f32) -> f32 {
        pt * self.y_dpi / 72.0
    }

    /// The glyph for a character, `?` when the font lacks it.
    pub fn glyph(c: char) -> GlyphId {
        let f = font();
        let id = f.glyph_id(c);
        if id.0 == 0 { f.glyph_id('?') } else { id }
    }

    /// Draws `text` with its baseline at `baseline` pixels, starting at `x`
    /// pixels; returns the x after the last glyph.
    pub fn draw(&self, page: &mut GrayImage, text: &str, x: f32, baseline: f32, size_pt: f32) -> f32 {
        let f = font();
        let scale = self.scale(size_pt);
        let sf = f.as_scaled(scale);
        let mut caret = x;
        for c in text.chars() {
            if c.is_control() {
                continue;
            }
            let id = Self::glyph(c);
            let glyph = id.with_scale_and_position(scale, point(caret, baseline));
            caret += sf.h_advance(id);
            if let Some(outline) = f.outline_glyph(glyph) {
                let bb = outline.px_bounds();
                let (w, h) = (page.width as i64, page.height as i64);
                outline.draw(|gx, gy, cov| {
                    let px = bb.min.x as i64 + gx as i64;
                    let py = bb.min.y as i64 + gy as i64;
                    if px >= 0 && py >= 0 && px < w && py < h {
                        let v = 255 - (cov.clamp(0.0, 1.0) * 255.0).round() as u8;
                        let t = &mut page.data[(py * w + px) as usize];
                        *t = (*t).min(v);
                    }
                });
            }
        }
        caret
    }

    /// Draws a horizontal rule `thick_pt` thick.
    pub fn rule(&self, page: &mut GrayImage, x0: u32, x1: u32, y: f32, thick_pt: f32) {
        let t = self.y_px(thick_pt).max(1.0) as u32;
        for yy in y as u32..(y as u32 + t).min(page.height) {
            for xx in x0..x1.min(page.width) {
                page.data[(yy * page.width + xx) as usize] = 0;
            }
        }
    }
}

/// Margin in horizontal pixels.
pub fn margin_x() -> u32 {
    (MARGIN_MM / 25.4 * X_DPI as f32).round() as u32
}

/// Wraps text into lines of at most `cols` characters; `\x0c` (form feed)
/// becomes `None`, a page break.
pub fn wrap(text: &str, cols: usize) -> Vec<Option<String>> {
    let cols = cols.max(1);
    let mut out = Vec::new();
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    for raw in text.split('\n') {
        for (i, part) in raw.split('\x0c').enumerate() {
            if i > 0 {
                out.push(None);
            }
            // Expand tabs, drop other control characters.
            let mut line = String::new();
            let mut n = 0;
            for c in part.chars() {
                if c == '\t' {
                    let k = 8 - n % 8;
                    line.extend(std::iter::repeat_n(' ', k));
                    n += k;
                } else if !c.is_control() {
                    line.push(c);
                    n += 1;
                }
            }
            wrap_line(line.trim_end(), cols, &mut out);
        }
    }
    while out.last().is_some_and(|l| l.as_deref() == Some("")) {
        out.pop();
    }
    out
}

fn wrap_line(line: &str, cols: usize, out: &mut Vec<Option<String>>) {
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= cols {
        out.push(Some(line.to_string()));
        return;
    }
    let mut start = 0;
    while start < chars.len() {
        let rest = chars.len() - start;
        if rest <= cols {
            out.push(Some(chars[start..].iter().collect()));
            break;
        }
        // Break at the last space within the line, else hard.
        let window = &chars[start..start + cols + 1];
        let brk = window.iter().rposition(|c| *c == ' ').filter(|&p| p > 0);
        let (end, skip) = match brk {
            Some(p) => (start + p, 1),
            None => (start + cols, 0),
        };
        out.push(Some(chars[start..end].iter().collect::<String>().trim_end().to_string()));
        start = end + skip;
        while start < chars.len() && chars[start] == ' ' {
            start += 1;
        }
    }
}

/// Layout of body text on a page.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Characters per line.
    pub cols: usize,
    /// Lines per page.
    pub rows: usize,
    /// Left edge in pixels.
    pub x: f32,
    /// First baseline in pixels.
    pub top: f32,
    /// Line pitch in pixels.
    pub pitch: f32,
}

impl Layout {
    /// The body layout for a paper and resolution.
    pub fn body(paper: Paper, resolution: Resolution) -> Layout {
        let pen = Pen::new(resolution);
        let mx = margin_x();
        let usable = (super::fax_page::WIDTH - 2 * mx) as f32;
        let cols = (usable / pen.advance(BODY_PT)).floor() as usize;
        let margin_y = pen.y_px(MARGIN_MM / 25.4 * 72.0);
        let pitch = pen.y_px(LINE_PT);
        let height = paper.lines(resolution) as f32;
        let rows = ((height - 2.0 * margin_y) / pitch).floor().max(1.0) as usize;
        Layout { cols, rows, x: mx as f32, top: margin_y + pen.y_px(BODY_PT * 0.8), pitch }
    }
}

/// Typesets wrapped lines on grey pages.
pub fn typeset(lines: &[Option<String>], layout: &Layout, paper: Paper, resolution: Resolution) -> Vec<GrayImage> {
    let pen = Pen::new(resolution);
    let mut pages = Vec::new();
    let mut page = GrayImage::page(paper, resolution);
    let mut row = 0;
    let mut dirty = false;
    for line in lines {
        match line {
            None => {
                pages.push(std::mem::replace(&mut page, GrayImage::page(paper, resolution)));
                row = 0;
                dirty = false;
            }
            Some(text) => {
                if row == layout.rows {
                    pages.push(std::mem::replace(&mut page, GrayImage::page(paper, resolution)));
                    row = 0;
                }
                pen.draw(&mut page, text, layout.x, layout.top + row as f32 * layout.pitch, BODY_PT);
                row += 1;
                dirty = true;
            }
        }
    }
    if dirty || pages.is_empty() {
        pages.push(page);
    }
    pages
}

/// Renders a text body to fax pages.
///
/// A body with nothing printable is [`super::Error::NoPages`]: a blank fax
/// page helps nobody, and the caller leaves such a body out.
pub fn render(text: &str, settings: &Settings) -> Result<Vec<Bitmap>> {
    if text.chars().all(|c| c.is_whitespace() || c.is_control()) {
        return Err(super::Error::NoPages);
    }
    let layout = Layout::body(settings.paper, settings.resolution);
    let lines = wrap(text, layout.cols);
    let pages_needed = lines
        .iter()
        .fold((1usize, 0usize), |(p, r), l| match l {
            None => (p + 1, 0),
            Some(_) if r == layout.rows => (p + 1, 1),
            Some(_) => (p, r + 1),
        })
        .0;
    if pages_needed > settings.limits.max_pages {
        return Err(super::Error::TooManyPages { pages: pages_needed, limit: settings.limits.max_pages });
    }
    Ok(typeset(&lines, &layout, settings.paper, settings.resolution)
        .iter()
        .map(|g| binarise::binarise(g, Dither::Threshold))
        .collect())
}

/// Reduces HTML to readable text laid out for `cols` columns, with
/// html2text (html5ever's HTML5 parser: every named character reference,
/// tables laid out in columns, lists, quotes, `<br>` and `<pre>` kept, links
/// as numbered references under the text, scripts and styles dropped).
pub fn html_to_text(html: &str, cols: usize) -> String {
    // No `*` or `**` around emphasis: on paper they read as noise.
    let text = html2text::config::plain_no_decorate()
        .link_footnotes(true)
        .string_from_read(html.as_bytes(), cols.max(20))
        // html2text refuses only a layout narrower than its minimum, which
        // `cols` never is; fall back to the markup's bare text.
        .unwrap_or_else(|_| html.to_owned());
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    lines.join("\n").trim_matches('\n').to_owned()
}

/// Decodes a `text/plain; format=flowed` body (RFC 3676 §4): a line ending
/// in a space is soft and joins the next line of the same quote depth (its
/// trailing space dropped too with `delsp`), a leading space is
/// space-stuffing and removed, and the signature separator `-- ` stays hard.
/// Quote marks (`>`) are kept, written `> ` once per level.
pub fn unflow(text: &str, delsp: bool) -> String {
    let mut out = String::with_capacity(text.len());
    // The paragraph being joined, and its quote depth.
    let mut para: Option<(usize, String)> = None;
    let text = text.strip_suffix("\r\n").or_else(|| text.strip_suffix('\n')).unwrap_or(text);
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let depth = raw.bytes().take_while(|&b| b == b'>').count();
        let mut line = &raw[depth..];
        // Space-stuffing (§4.4), after the quote marks (§4.5).
        line = line.strip_prefix(' ').unwrap_or(line);
        let soft = line.ends_with(' ') && line != "-- ";
        if let Some((d, _)) = &para
            && *d != depth
        {
            // A quote depth change ends a paragraph even after a soft break (§4.5).
            flush_paragraph(&mut out, para.take());
        }
        let body = if soft && delsp { &line[..line.len() - 1] } else { line };
        para.get_or_insert_with(|| (depth, String::new())).1.push_str(body);
        if !soft {
            flush_paragraph(&mut out, para.take());
        }
    }
    flush_paragraph(&mut out, para);
    out.truncate(out.trim_end_matches('\n').len());
    out
}

fn flush_paragraph(out: &mut String, para: Option<(usize, String)>) {
    let Some((depth, text)) = para else { return };
    for _ in 0..depth {
        out.push('>');
    }
    if depth > 0 && !text.is_empty() {
        out.push(' ');
    }
    out.push_str(&text);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_breaks_at_spaces_and_hard_breaks_long_words() {
        let lines = wrap("aaa bbb ccc\tX\x0cnext\n", 7);
        let want: Vec<Option<String>> =
            vec![Some("aaa bbb".into()), Some("ccc".into()), Some("X".into()), None, Some("next".into())];
        assert_eq!(lines, want);
        let long = wrap(&"x".repeat(17), 8);
        assert_eq!(long.len(), 3);
        assert_eq!(long[2].as_deref(), Some("x"));
    }

    #[test]
    fn bundled_font_covers_latin() {
        let f = font();
        for c in "æøåÆØÅäöüÄÖÜßéèêłŁśźżąęńóćčšžřůőűğşİıœŒ€„“”–—".chars()
        {
            assert_ne!(f.glyph_id(c).0, 0, "no glyph for {c}");
        }
    }

    #[test]
    fn layout_fits_ninety_columns() {
        let l = Layout::body(Paper::A4, Resolution::Fine);
        assert_eq!(l.cols, 90);
        assert!(l.rows >= 60, "{l:?}");
    }
}
