//! The page header: one line of text in the top margin of every page sent,
//! as fax machines print their "TTI" line.
//!
//! In: the pages of a job as a G4 TIFF, a [`Template`] and the job's
//! [`Values`]. Out: the same pages with the line drawn into a band
//! [`BAND_MM`] high at the top of each page. A page whose band is not blank
//! is first made room for: its content moves down when its bottom margin
//! is deep enough, else it is shrunk (keeping its proportions) to fit
//! under the band, so the line never covers what the sender wrote.
//!
//! A template is text with placeholders ([`Field`]: `{date}`, `{time}`,
//! `{zone}`, `{station}`, `{from}`, `{to}`, `{sender}`, `{tenant}`,
//! `{page}`, `{pages}`); `{{` and `}}` are braces. `|` separates fields
//! spread across the line, as HylaFAX's tagline does: the first at the left
//! margin, the last at the right, the gaps between them equal.

use jiff::Zoned;
use jiff::tz::TimeZone;

use super::binarise::TEXT_THRESHOLD;
use super::fax_page::{Bitmap, GrayImage, Resolution, WIDTH};
use super::{Error, Result, g4, tiff};

/// The header of a tenant that has not set its own (`[fax] header`'s default).
pub const DEFAULT_TEMPLATE: &str = "{date} {time} {zone}|From: {station}|To: {to}|Page {page}/{pages}";

/// The longest template accepted, in characters.
pub const MAX_TEMPLATE_CHARS: usize = 200;

/// Height of the band at the top of a page that holds the line.
pub const BAND_MM: f64 = 6.0;
/// Text size of the line, shrunk (to [`MIN_PT`]) when it does not fit.
pub const TEXT_PT: f32 = 10.0;
/// The smallest text size before the line is cut.
pub const MIN_PT: f32 = 6.0;
/// Baseline of the line below the top edge.
const BASELINE_MM: f64 = 4.2;
/// Left and right margin of the line.
const SIDE_MM: f64 = 5.0;

/// A value the header can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// `{date}`: the date of the call, `2026-03-02`, in the tenant's zone.
    Date,
    /// `{time}`: the time of the call, `14:05`.
    Time,
    /// `{zone}`: the zone's abbreviation, `CET`.
    Zone,
    /// `{station}`: the sender's station id.
    Station,
    /// `{from}`: the caller number sent.
    From,
    /// `{to}`: the number called.
    To,
    /// `{sender}`: the account's name.
    Sender,
    /// `{tenant}`: the tenant's display name.
    Tenant,
    /// `{page}`: this page's number, from 1.
    Page,
    /// `{pages}`: pages in the fax.
    Pages,
}

impl Field {
    const ALL: [(&'static str, Field); 10] = [
        ("date", Field::Date),
        ("time", Field::Time),
        ("zone", Field::Zone),
        ("station", Field::Station),
        ("from", Field::From),
        ("to", Field::To),
        ("sender", Field::Sender),
        ("tenant", Field::Tenant),
        ("page", Field::Page),
        ("pages", Field::Pages),
    ];

    fn named(name: &str) -> Option<Field> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    /// The placeholders, for messages.
    pub fn names() -> String {
        Self::ALL.iter().map(|(n, _)| format!("{{{n}}}")).collect::<Vec<_>>().join(" ")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Field),
    /// `|`: the next field of the line.
    Next,
}

/// A parsed header template; the empty template prints no header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl std::str::FromStr for Template {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.chars().count() > MAX_TEMPLATE_CHARS {
            return Err(format!("the header template is longer than {MAX_TEMPLATE_CHARS} characters"));
        }
        if s.chars().any(char::is_control) {
            return Err("the header template contains control characters".into());
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(format!("the header template has a '{{' without '}}': {{{name}")),
                        }
                    }
                    let field = Field::named(&name).ok_or_else(|| {
                        format!("the header template has an unknown placeholder {{{name}}} (known: {})", Field::names())
                    })?;
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Field(field));
                }
                '}' => return Err("the header template has a '}' without '{' (write }} for a brace)".into()),
                '|' => {
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Next);
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template { parts })
    }
}

impl Template {
    /// Whether it prints nothing (no header).
    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(t) if t.trim().is_empty()) || *p == Part::Next)
    }

    /// The line for page `page` of `pages`, as its `|`-separated fields
    /// (trimmed; empty ones dropped).
    pub fn expand(&self, v: &Values, page: u32, pages: u32) -> Vec<String> {
        let mut fields = vec![String::new()];
        for p in &self.parts {
            let cur = fields.last_mut().expect("never empty");
            match p {
                Part::Text(t) => cur.push_str(t),
                Part::Next => fields.push(String::new()),
                Part::Field(f) => match f {
                    Field::Date => cur.push_str(&v.when.strftime("%Y-%m-%d").to_string()),
                    Field::Time => cur.push_str(&v.when.strftime("%H:%M").to_string()),
                    Field::Zone => cur.push_str(&v.when.strftime("%Z").to_string()),
                    Field::Station => cur.push_str(&v.station),
                    Field::From => cur.push_str(&v.from),
                    Field::To => cur.push_str(&v.to),
                    Field::Sender => cur.push_str(&v.sender),
                    Field::Tenant => cur.push_str(&v.tenant),
                    Field::Page => cur.push_str(&page.to_string()),
                    Field::Pages => cur.push_str(&pages.to_string()),
                },
            }
        }
        fields.into_iter().map(|f| f.trim().to_owned()).filter(|f| !f.is_empty()).collect()
    }
}

/// What a job's header says, besides the page numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Values {
    /// When the call is made, in the tenant's zone.
    pub when: Zoned,
    /// The sender's station id.
    pub station: String,
    /// The caller number, or empty.
    pub from: String,
    /// The number called.
    pub to: String,
    /// The account's name.
    pub sender: String,
    /// The tenant's display name.
    pub tenant: String,
}

/// Checks a station id (T.30 5.3.6.2.4: TSI/CSI): at most 20 characters,
/// digits, `+` and spaces.
pub fn check_station_id(s: &str) -> std::result::Result<(), String> {
    if s.trim().is_empty() {
        return Err("the station id is empty".into());
    }
    if s.chars().count() > 20 {
        return Err(format!("the station id {s:?} is longer than 20 characters"));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_digit() || *c == '+' || *c == ' ')) {
        return Err(format!("the station id {s:?} contains {c:?}: only digits, '+' and spaces are allowed (T.30)"));
    }
    Ok(())
}

/// The time zone called `name` (IANA, `Europe/Copenhagen`).
pub fn time_zone(name: &str) -> std::result::Result<TimeZone, String> {
    TimeZone::get(name)
        .map_err(|_| format!("{name:?} is not a time zone (write an IANA name such as Europe/Copenhagen)"))
}

/// Rows of the header band at `resolution`.
pub fn band_rows(resolution: Resolution) -> u32 {
    (BAND_MM / 25.4 * resolution.y_dpi()).round() as u32
}

/// Draws the header on every page of the G4 TIFF `tiff`; `pages` is the
/// number the header counts to.
pub fn stamp(tiff: &[u8], template: &Template, values: &Values, max_pixels: u64) -> Result<Vec<u8>> {
    let parsed = tiff::parse(tiff, 1000)?;
    let Some(first) = parsed.first() else { return Err(Error::NoPages) };
    let resolution = Resolution::nearest(first.dpi().1);
    let total = parsed.len() as u32;
    let mut pages = Vec::with_capacity(parsed.len());
    for (i, p) in parsed.iter().enumerate() {
        let mut page = p.decode_bilevel(tiff, max_pixels)?;
        let line = template.expand(values, i as u32 + 1, total);
        if !line.is_empty() {
            make_room(&mut page, band_rows(resolution));
            draw_line(&mut page, &line, resolution);
        }
        pages.push(page);
    }
    Ok(g4::write_tiff(&pages, resolution))
}

fn blank(page: &Bitmap, y: u32) -> bool {
    page.row(y).iter().all(|b| *b == 0)
}

/// Leaves the top `band` rows of `page` white: moves its content down when
/// the page's bottom margin has room, else shrinks it under the band.
pub fn make_room(page: &mut Bitmap, band: u32) {
    let h = page.height();
    let top = (0..h).take_while(|&y| blank(page, y)).count() as u32;
    if top >= band.min(h) {
        return;
    }
    let bottom = (0..h).rev().take_while(|&y| blank(page, y)).count() as u32;
    let stride = page.stride();
    if top + bottom >= band {
        // Move the content down by what the band lacks.
        let shift = (band - top) as usize * stride;
        let data = page.data_mut();
        data.copy_within(..data.len() - shift, shift);
        data[..shift].fill(0);
        return;
    }
    // Shrink the content rows into the rows under the band, centred.
    let content = page.to_gray();
    let (w, rows) = (page.width(), h - top - bottom);
    let region = GrayImage {
        width: w,
        height: rows,
        data: content.data[(top * w) as usize..((top + rows) * w) as usize].to_vec(),
    };
    let f = (h - band) as f64 / rows as f64;
    let tw = ((w as f64 * f).round() as u32).clamp(1, w);
    let small = region.resample(tw, h - band);
    let mut out = Bitmap::new(w, h);
    let x0 = (w - tw) / 2;
    for y in 0..small.height {
        for x in 0..tw {
            if small.data[(y * tw + x) as usize] < 128 {
                out.set(x0 + x, band + y, true);
            }
        }
    }
    *page = out;
}

/// Draws `fields` into the top band of `page`: one field at the left, the
/// last at the right, the rest between them with equal gaps; the text
/// shrinks when the line is too long, and is cut at [`MIN_PT`].
pub fn draw_line(page: &mut Bitmap, fields: &[String], resolution: Resolution) {
    use super::text::Pen;
    if fields.is_empty() {
        return;
    }
    let pen = Pen::new(resolution);
    let band = band_rows(resolution).min(page.height());
    let side = (SIDE_MM / 25.4 * super::fax_page::X_DPI).round() as f32;
    let width = page.width().min(WIDTH) as f32 - 2.0 * side;
    let chars: usize = fields.iter().map(|f| f.chars().count()).sum();
    // Two spaces at least between fields.
    let cells = (chars + 2 * fields.len().saturating_sub(1)) as f32;
    let mut size = TEXT_PT;
    if cells * pen.advance(size) > width {
        size = (TEXT_PT * width / (cells * pen.advance(TEXT_PT))).max(MIN_PT);
    }
    let adv = pen.advance(size);
    let mut strip = GrayImage::white(page.width(), band);
    let baseline = (BASELINE_MM / 25.4 * resolution.y_dpi()) as f32;
    if cells * adv > width || fields.len() == 1 {
        // One run from the left, cut at the right margin.
        let fit = (width / adv).floor() as usize;
        let line: String = fields.join("  ").chars().take(fit).collect();
        pen.draw(&mut strip, &line, side, baseline, size);
    } else {
        let used: f32 = fields.iter().map(|f| f.chars().count() as f32 * adv).sum();
        let gap = (width - used) / (fields.len() - 1) as f32;
        let mut x = side;
        for f in fields {
            pen.draw(&mut strip, f, x, baseline, size);
            x += f.chars().count() as f32 * adv + gap;
        }
    }
    for y in 0..band {
        for x in 0..strip.width {
            if strip.data[(y * strip.width + x) as usize] < TEXT_THRESHOLD {
                page.set(x, y, true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        let tz = time_zone("Europe/Copenhagen").unwrap();
        Values {
            when: "2026-03-02T13:05:00Z".parse::<jiff::Timestamp>().unwrap().to_zoned(tz),
            station: "+45 70 20 30 40".into(),
            from: "+4570203040".into(),
            to: "+4533221100".into(),
            sender: "Nordisk Revision A/S".into(),
            tenant: "Nordtel Fax".into(),
        }
    }

    #[test]
    fn the_default_template_names_date_station_destination_and_page() {
        let t: Template = DEFAULT_TEMPLATE.parse().unwrap();
        assert_eq!(
            t.expand(&values(), 2, 3),
            ["2026-03-02 14:05 CET", "From: +45 70 20 30 40", "To: +4533221100", "Page 2/3"]
        );
        // Summer time in the same zone.
        let mut v = values();
        v.when = "2026-07-01T08:00:00Z".parse::<jiff::Timestamp>().unwrap().to_zoned(v.when.time_zone().clone());
        assert_eq!(t.expand(&v, 1, 1)[0], "2026-07-01 10:00 CEST");
    }

    #[test]
    fn templates_are_checked_and_braces_escaped() {
        let t: Template = "{{{sender}}} {from} -> {to} p.{page}".parse().unwrap();
        assert_eq!(t.expand(&values(), 1, 2), ["{Nordisk Revision A/S} +4570203040 -> +4533221100 p.1"]);
        let e = "{date} {nope}".parse::<Template>().unwrap_err();
        assert!(e.contains("unknown placeholder {nope}") && e.contains("{pages}"), "{e}");
        assert!("a } b".parse::<Template>().is_err());
        assert!("Page {page".parse::<Template>().unwrap_err().contains("without"));
        assert!("tab\there".parse::<Template>().is_err());
        assert!("x".repeat(201).parse::<Template>().is_err());
        assert!("".parse::<Template>().unwrap().is_empty());
        assert!(" | ".parse::<Template>().unwrap().is_empty());
        assert!(!"{page}".parse::<Template>().unwrap().is_empty());
        // Empty fields leave no gap behind.
        let t: Template = "{date}|{from}|Page {page}".parse().unwrap();
        let mut v = values();
        v.from.clear();
        assert_eq!(t.expand(&v, 1, 1), ["2026-03-02", "Page 1"]);
    }

    #[test]
    fn station_ids_and_zones_are_checked() {
        assert!(check_station_id("+45 70 20 30 40").is_ok());
        assert!(check_station_id("+45 70 20 30 40 50 60 7").unwrap_err().contains("longer than 20"));
        assert!(check_station_id("Nordtel").unwrap_err().contains("'N'"));
        assert!(check_station_id(" ").is_err());
        assert!(time_zone("Europe/Copenhagen").is_ok());
        assert!(time_zone("Mars/Olympus").unwrap_err().contains("not a time zone"));
    }

    fn ink(page: &Bitmap, rows: std::ops::Range<u32>) -> u64 {
        rows.map(|y| page.row(y).iter().map(|b| b.count_ones() as u64).sum::<u64>()).sum()
    }

    #[test]
    fn a_page_is_moved_down_or_shrunk_to_free_the_band_never_covered() {
        let band = band_rows(Resolution::Fine);
        assert_eq!(band, 46);
        // Content from the very top, a deep bottom margin: moved down.
        let mut p = Bitmap::new(WIDTH, 2292);
        for y in 0..100 {
            p.fill_black(y, 100, 200);
        }
        let before = p.black_pixels();
        make_room(&mut p, band);
        assert_eq!(ink(&p, 0..band), 0);
        assert_eq!(p.black_pixels(), before);
        assert!(p.get(150, band) && p.get(150, band + 99) && !p.get(150, band + 100));
        // A full-bleed page: shrunk under the band, proportions kept.
        let mut p = Bitmap::new(WIDTH, 2292);
        for y in 0..2292 {
            p.fill_black(y, 0, 8);
        }
        make_room(&mut p, band);
        assert_eq!(ink(&p, 0..band), 0);
        let left = (0..WIDTH).find(|&x| p.get(x, 1000)).unwrap();
        assert_eq!(left, (WIDTH - (WIDTH as f64 * (2292 - band) as f64 / 2292.0).round() as u32) / 2);
        assert!(p.get(left, band) && p.get(left, 2291));
        // A page whose band is blank is left alone.
        let mut p = Bitmap::new(WIDTH, 2292);
        p.fill_black(band, 0, WIDTH);
        let q = p.clone();
        make_room(&mut p, band);
        assert_eq!(p, q);
    }

    #[test]
    fn the_line_stays_in_the_band_and_shrinks_to_fit() {
        let band = band_rows(Resolution::Fine);
        let mut p = Bitmap::new(WIDTH, 2292);
        draw_line(&mut p, &["2026-03-02 14:05 CET".into(), "Page 1/3".into()], Resolution::Fine);
        assert!(ink(&p, 0..band) > 500);
        assert_eq!(ink(&p, band..2292), 0);
        // The last field ends near the right margin.
        let right = (0..WIDTH).rev().find(|&x| (0..band).any(|y| p.get(x, y))).unwrap();
        assert!(right > WIDTH - 60 && right < WIDTH - 30, "{right}");
        // No fields, no ink.
        let mut p = Bitmap::new(WIDTH, 100);
        draw_line(&mut p, &[], Resolution::Fine);
        assert_eq!(p.black_pixels(), 0);
        // A long line is drawn smaller, still within the page and the band.
        let mut p = Bitmap::new(WIDTH, 1146);
        draw_line(&mut p, &["x".repeat(150), "y".repeat(40)], Resolution::Standard);
        assert_eq!(ink(&p, band_rows(Resolution::Standard)..1146), 0);
        assert!(ink(&p, 0..band_rows(Resolution::Standard)) > 0);
    }
}
