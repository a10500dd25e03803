//! Received fax (TIFF) to PDF.
//!
//! Each page's T.4/T.6 strips go into the PDF byte for byte as
//! `/CCITTFaxDecode` images (ISO 32000-1 §7.4.6), the way `tiff2pdf` passes
//! G4 through: no decoding, no re-encoding, so nothing is lost and a page
//! costs a few microseconds. The decode parameters follow the TIFF tags:
//! `K` -1 for T.6, 0 for T.4 1-D, 1 for T.4 2-D (T4Options bit 0);
//! `EncodedByteAlign` for modified Huffman and for T.4 with fill bits
//! (T4Options bit 2); `EndOfLine` for T.4; `Columns` and `Rows` from the page
//! and page. Strips of T.4 pages are joined (each line resynchronises); a
//! multi-strip T.6 page is decoded and encoded as one G4 image. Data in
//! FillOrder 2 has each byte's bits reversed (PDF reads the most significant
//! bit first); BlackIsZero pages get `/Decode [1 0]`.
//!
//! Fax pixels are not square: the page is `columns / x-dpi` by
//! `rows / y-dpi` inches, so a fine A4 page of 1728 x 2292 pixels shows at
//! 215 x 297 mm, and short, long and narrow pages keep their own size.
//! Bilevel pages in another compression are decoded and encoded as G4.

use pdf_writer::{Content, Date, Filter, Finish, Name, Pdf, Rect, Ref, TextStr};

use super::fax_page::Resolution;
use super::tiff::{self, compression};
use super::{Error, Result, g4};

/// What the PDF's document information says about the fax.
#[derive(Debug, Clone, Default)]
pub struct FaxInfo {
    /// Title; "Fax" followed by the sender when empty.
    pub title: String,
    /// The sender: calling number and remote station id.
    pub from: String,
    /// The recipient number.
    pub to: String,
    /// When the fax was received.
    pub received: Option<jiff::Timestamp>,
}

/// The PDF's largest page side in default units (ISO 32000-1 annex C);
/// longer pages are scaled with `/UserUnit`.
const MAX_SIDE_PT: f64 = 14_400.0;

/// Converts a received fax TIFF into a PDF. Returns the PDF and its page count.
pub fn tiff_to_pdf(data: &[u8], info: &FaxInfo, max_pages: usize) -> Result<(Vec<u8>, usize)> {
    let pages = tiff::parse(data, max_pages)?;
    let n = pages.len();
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let info_id = Ref::new(3);
    let mut next = 4;
    let mut alloc = || {
        let r = Ref::new(next);
        next += 1;
        r
    };
    let mut page_ids = Vec::with_capacity(n);
    for p in &pages {
        if p.bits_per_sample != 1 || p.samples_per_pixel != 1 {
            return Err(Error::UnsupportedTiff("a received page is not black and white".into()));
        }
        let (xdpi, ydpi) = p.dpi();
        let w_pt = p.width as f64 / xdpi * 72.0;
        let h_pt = p.height as f64 / ydpi * 72.0;
        let unit = (w_pt.max(h_pt) / MAX_SIDE_PT).max(1.0);
        // Rounded down to a thousandth of a point so that a renderer's
        // ceil(size x dpi) gives back the page's own pixel count.
        let trim = |v: f64| ((v / unit * 1000.0).floor() / 1000.0) as f32;
        let (w, h) = (trim(w_pt), trim(h_pt));

        // The page's image data and decode parameters. T.4 and modified
        // Huffman strips end on a byte boundary and resynchronise at each
        // line, so a multi-strip page's strips are joined into one stream
        // unchanged; T.6 strips each restart the coding and cannot be
        // joined, so such a page (which fax devices do not send) is decoded
        // and encoded again as one G4 image.
        let raw = p.is_ccitt() && (p.strips.len() == 1 || p.compression != compression::T6);
        let (bytes, parms): (Vec<u8>, Parms) = if raw {
            let mut joined = Vec::new();
            for i in 0..p.strips.len() {
                if p.strip_rows(i) == 0 {
                    break;
                }
                joined.extend_from_slice(p.strip(data, i)?);
            }
            if p.fill_order == 2 {
                joined.iter_mut().for_each(|b| *b = b.reverse_bits());
            }
            (joined, Parms::for_page(p))
        } else {
            // Decoding applies BlackIsZero, so the new data is plain.
            let bm = p.decode_bilevel(data, 1 << 28)?;
            (g4::encode(&bm), Parms::g4())
        };
        if bytes.len() >= i32::MAX as usize {
            return Err(Error::CorruptTiff("a page is too large".into()));
        }

        let page_id = alloc();
        let content_id = alloc();
        let image_id = alloc();
        let mut content = Content::new();
        content.save_state();
        content.transform([w, 0.0, 0.0, h, 0.0, 0.0]);
        content.x_object(Name(b"Im0"));
        content.restore_state();
        pdf.stream(content_id, &content.finish());

        let mut img = pdf.image_xobject(image_id, &bytes);
        img.filter(Filter::CcittFaxDecode);
        img.width(p.width as i32);
        img.height(p.height as i32);
        img.color_space().device_gray();
        img.bits_per_component(1);
        if raw && p.photometric == 1 {
            // BlackIsZero: the coded "black" runs are the white pixels.
            img.decode([1.0, 0.0]);
        }
        let mut dp = img.decode_parms();
        dp.k(parms.k).columns(p.width as i32).rows(p.height as i32);
        if parms.byte_align {
            dp.encoded_byte_align(true);
        }
        if parms.eol {
            dp.end_of_line(true);
        }
        dp.finish();
        img.finish();

        let mut page = pdf.page(page_id);
        page.media_box(Rect::new(0.0, 0.0, w, h)).parent(tree);
        if unit > 1.0 {
            page.user_unit(unit as f32);
        }
        page.contents(content_id);
        page.resources().x_objects().pair(Name(b"Im0"), image_id);
        page.finish();
        page_ids.push(page_id);
    }
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids(page_ids.iter().copied()).count(n as i32);
    let title = if info.title.is_empty() {
        if info.from.is_empty() { "Fax".to_string() } else { format!("Fax from {}", info.from) }
    } else {
        info.title.clone()
    };
    let subject = format!(
        "{n} page{} received{}{}",
        if n == 1 { "" } else { "s" },
        if info.from.is_empty() { String::new() } else { format!(" from {}", info.from) },
        if info.to.is_empty() { String::new() } else { format!(" for {}", info.to) },
    );
    let mut di = pdf.document_info(info_id);
    di.title(TextStr(&title));
    if !info.from.is_empty() {
        di.author(TextStr(&info.from));
    }
    di.subject(TextStr(&subject));
    di.creator(TextStr("faxgate"));
    di.producer(TextStr("faxgate"));
    if let Some(ts) = info.received {
        let t = ts.to_zoned(jiff::tz::TimeZone::UTC);
        let d = Date::new(t.year() as u16)
            .month(t.month() as u8)
            .day(t.day() as u8)
            .hour(t.hour() as u8)
            .minute(t.minute() as u8)
            .second(t.second() as u8)
            .utc_offset_hour(0)
            .utc_offset_minute(0);
        di.creation_date(d);
    }
    di.finish();
    Ok((pdf.finish(), n))
}

/// CCITTFaxDecode parameters of a page.
#[derive(Debug, Clone, Copy)]
struct Parms {
    k: i32,
    byte_align: bool,
    eol: bool,
}

impl Parms {
    fn g4() -> Parms {
        Parms { k: -1, byte_align: false, eol: false }
    }

    fn for_page(p: &tiff::Page) -> Parms {
        match p.compression {
            compression::CCITT_RLE => Parms { k: 0, byte_align: true, eol: false },
            compression::T4 => {
                Parms { k: if p.t4_options & 1 != 0 { 1 } else { 0 }, byte_align: p.t4_options & 4 != 0, eol: true }
            }
            _ => Parms::g4(),
        }
    }
}

/// The resolution class of a received page, for reports.
pub fn resolution_of(p: &tiff::Page) -> Resolution {
    Resolution::nearest(p.dpi().1)
}
