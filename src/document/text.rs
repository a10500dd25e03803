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

/// Reduces HTML to readable text: scripts, styles and comments dropped,
/// block elements on their own lines, list items bulleted, link targets
/// shown after the link text, entities decoded, white space collapsed
/// outside `<pre>`.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::new();
    let mut chars = html.char_indices().peekable();
    let mut pre = 0usize;
    let mut href: Vec<Option<String>> = Vec::new();
    let lower = html.to_ascii_lowercase();
    while let Some((i, c)) = chars.next() {
        if c == '<' {
            // Comments.
            if lower[i..].starts_with("<!--") {
                let end = lower[i..].find("-->").map(|e| i + e + 3).unwrap_or(html.len());
                while chars.peek().is_some_and(|(j, _)| *j < end) {
                    chars.next();
                }
                continue;
            }
            let end = match html[i..].find('>') {
                Some(e) => i + e,
                None => break,
            };
            let tag = &lower[i + 1..end];
            while chars.peek().is_some_and(|(j, _)| *j <= end) {
                chars.next();
            }
            let closing = tag.starts_with('/');
            let name: String = tag.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            match name.as_str() {
                "script" | "style" | "head" | "title" if !closing => {
                    let close = format!("</{name}");
                    let stop = lower[end..].find(&close).map(|e| end + e).unwrap_or(html.len());
                    let stop = lower[stop..].find('>').map(|e| stop + e).unwrap_or(html.len());
                    while chars.peek().is_some_and(|(j, _)| *j <= stop) {
                        chars.next();
                    }
                }
                "br" => out.push('\n'),
                "p" | "div" | "tr" | "table" | "ul" | "ol" | "blockquote" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6"
                | "section" | "article" | "header" | "footer" | "dl" | "dt" | "dd" => {
                    newline(&mut out);
                    if !closing && matches!(name.as_str(), "p" | "h1" | "h2" | "h3" | "table") {
                        blank_line(&mut out);
                    }
                }
                "pre" => {
                    newline(&mut out);
                    pre = if closing { pre.saturating_sub(1) } else { pre + 1 };
                }
                "hr" => {
                    newline(&mut out);
                    out.push_str(&"-".repeat(40));
                    out.push('\n');
                }
                "li" if !closing => {
                    newline(&mut out);
                    out.push_str("  * ");
                }
                "td" | "th" if !closing && !out.ends_with('\n') && !out.is_empty() => {
                    out.push_str("  ");
                }
                "img" => {
                    if let Some(alt) = attr(&html[i + 1..end], "alt").filter(|a| !a.is_empty()) {
                        out.push_str(&format!("[{alt}]"));
                    }
                }
                "a" => {
                    if closing {
                        if let Some(Some(h)) = href.pop() {
                            out.push_str(&format!(" <{h}>"));
                        }
                    } else {
                        let h = attr(&html[i + 1..end], "href")
                            .map(|h| decode_entities(&h))
                            .filter(|h| h.starts_with("http") || h.starts_with("mailto:"));
                        href.push(h);
                    }
                }
                _ => {}
            }
            continue;
        }
        if c == '&' {
            let rest = &html[i..];
            if let Some(semi) = rest.bytes().take(12).position(|b| b == b';') {
                let decoded = decode_entities(&rest[..=semi]);
                if decoded != rest[..=semi] {
                    push_text(&mut out, &decoded, pre > 0);
                    while chars.peek().is_some_and(|(j, _)| *j < i + semi + 1) {
                        chars.next();
                    }
                    continue;
                }
            }
        }
        push_text(&mut out, c.encode_utf8(&mut [0; 4]), pre > 0);
    }
    let mut text: String = out.lines().map(|l| l.trim_end()).collect::<Vec<_>>().join("\n");
    while text.contains("\n\n\n") {
        text = text.replace("\n\n\n", "\n\n");
    }
    text.trim().to_string()
}

fn newline(out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

fn blank_line(out: &mut String) {
    if !out.is_empty() && !out.ends_with("\n\n") {
        newline(out);
        out.push('\n');
    }
}

fn push_text(out: &mut String, s: &str, pre: bool) {
    for c in s.chars() {
        if pre {
            out.push(c);
        } else if c.is_whitespace() && c != '\u{a0}' {
            if !out.is_empty() && !out.ends_with([' ', '\n']) {
                out.push(' ');
            }
        } else if c == '\u{a0}' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
}

/// The value of attribute `name` in a tag's inside.
fn attr(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(p) = lower[from..].find(name) {
        let at = from + p;
        from = at + name.len();
        let before_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = lower[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let vstart = tag.len() - rest.len() + 1;
        let v = tag[vstart..].trim_start();
        return Some(match v.chars().next() {
            Some(q @ ('"' | '\'')) => v[1..].split(q).next().unwrap_or("").to_string(),
            _ => v.split_whitespace().next().unwrap_or("").to_string(),
        });
    }
    None
}

/// Decodes HTML character references (numeric and the common named ones).
pub fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let Some(semi) = rest.bytes().take(12).position(|b| b == b';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let name = &rest[1..semi];
        let c = if let Some(num) = name.strip_prefix('#') {
            let v = if let Some(h) = num.strip_prefix(['x', 'X']) {
                u32::from_str_radix(h, 16).ok()
            } else {
                num.parse().ok()
            };
            v.and_then(char::from_u32)
        } else {
            named_entity(name)
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn named_entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "auml" => 'ä',
        "ouml" => 'ö',
        "uuml" => 'ü',
        "Auml" => 'Ä',
        "Ouml" => 'Ö',
        "Uuml" => 'Ü',
        "szlig" => 'ß',
        "aelig" => 'æ',
        "AElig" => 'Æ',
        "oslash" => 'ø',
        "Oslash" => 'Ø',
        "aring" => 'å',
        "Aring" => 'Å',
        "eacute" => 'é',
        "Eacute" => 'É',
        "egrave" => 'è',
        "ecirc" => 'ê',
        "agrave" => 'à',
        "aacute" => 'á',
        "ccedil" => 'ç',
        "ntilde" => 'ñ',
        "oacute" => 'ó',
        "iacute" => 'í',
        "uacute" => 'ú',
        "euro" => '€',
        "copy" => '©',
        "reg" => '®',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "laquo" => '«',
        "raquo" => '»',
        "bdquo" => '„',
        "ldquo" => '“',
        "rdquo" => '”',
        "lsquo" => '‘',
        "rsquo" => '’',
        "bull" => '•',
        "middot" => '·',
        "deg" => '°',
        "sect" => '§',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_reduced_to_readable_text() {
        let html = "<html><head><title>x</title><style>p{color:red}</style></head><body>\
            <h1>Faktura</h1><p>K&aelig;re kunde,<br>tak for&nbsp;din ordre.</p>\
            <!-- hidden --><script>alert(1)</script>\
            <ul><li>Gr&#248;d</li><li>Br&#xF8;d</li></ul>\
            <p>Se <a href=\"https://example.net/f?a=1&amp;b=2\">fakturaen</a>.</p></body></html>";
        let t = html_to_text(html);
        assert_eq!(
            t,
            "Faktura\n\nKære kunde,\ntak for din ordre.\n  * Grød\n  * Brød\n\nSe fakturaen <https://example.net/f?a=1&b=2>."
        );
    }

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
