//! The cover page: the tenant's branding, sender, recipient, date, page count
//! and the mail's text as a comment.

use super::fax_page::{Bitmap, GrayImage, WIDTH};
use super::text::{BODY_PT, Layout, Pen, margin_x, wrap};
use super::{Dither, Result, Settings, binarise};

/// What the cover page says. Plain data: the caller fills it from the tenant
/// and the mail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoverPage {
    /// The reseller's brand, printed large at the top.
    pub branding: String,
    /// Sender (name, address or number).
    pub from: String,
    /// Recipient (name or number).
    pub to: String,
    /// Date and time, already formatted for the tenant.
    pub date: String,
    /// Pages including the cover (set by [`super::Pages::prepend_cover`]).
    pub pages: usize,
    /// Subject line, if any.
    pub subject: String,
    /// The comment: the mail's text, cut to what fits on the page.
    pub comment: String,
}

const TITLE_PT: f32 = 24.0;
const HEAD_PT: f32 = 14.0;
const FIELD_PT: f32 = 12.0;

/// Renders the cover page.
pub fn render(cover: &CoverPage, settings: &Settings) -> Result<Bitmap> {
    let (paper, resolution) = (settings.paper, settings.resolution);
    let pen = Pen::new(resolution);
    let mut page = GrayImage::page(paper, resolution);
    let x = margin_x() as f32;
    let right = WIDTH - margin_x();
    let mut y = pen.y_px(12.0 / 25.4 * 72.0);

    y += pen.y_px(TITLE_PT);
    let title = if cover.branding.is_empty() { "Fax" } else { &cover.branding };
    let title: String = title.chars().take(40).collect();
    pen.draw(&mut page, &title, x, y, TITLE_PT);
    y += pen.y_px(8.0);
    pen.rule(&mut page, x as u32, right, y, 2.0);
    y += pen.y_px(HEAD_PT + 14.0);
    pen.draw(&mut page, "FAX", x, y, HEAD_PT);
    y += pen.y_px(HEAD_PT);

    let pages = cover.pages.to_string();
    let fields: [(&str, &str); 5] = [
        ("To:", &cover.to),
        ("From:", &cover.from),
        ("Date:", &cover.date),
        ("Pages:", &pages),
        ("Subject:", &cover.subject),
    ];
    let label_w = pen.advance(FIELD_PT) * 10.0;
    let cols = ((right as f32 - x - label_w) / pen.advance(FIELD_PT)).floor() as usize;
    for (label, value) in fields {
        if value.is_empty() {
            continue;
        }
        y += pen.y_px(FIELD_PT * 1.5);
        pen.draw(&mut page, label, x, y, FIELD_PT);
        let value: String = value.chars().filter(|c| !c.is_control()).take(cols).collect();
        pen.draw(&mut page, &value, x + label_w, y, FIELD_PT);
    }
    y += pen.y_px(12.0);
    pen.rule(&mut page, x as u32, right, y, 1.0);
    y += pen.y_px(8.0);

    if !cover.comment.trim().is_empty() {
        let body = Layout::body(paper, resolution);
        let bottom = page.height as f32 - pen.y_px(12.0 / 25.4 * 72.0);
        let room = ((bottom - y) / body.pitch).floor().max(0.0) as usize;
        let lines: Vec<String> = wrap(&cover.comment, body.cols).into_iter().map(|l| l.unwrap_or_default()).collect();
        let cut = lines.len() > room;
        let shown = if cut { room.saturating_sub(1) } else { lines.len() };
        for line in &lines[..shown] {
            y += body.pitch;
            pen.draw(&mut page, line, x, y, BODY_PT);
        }
        if cut && room > 0 {
            y += body.pitch;
            pen.draw(&mut page, "[...]", x, y, BODY_PT);
        }
    }
    Ok(binarise::binarise(&page, Dither::Threshold))
}
