//! PNG, JPEG and GIF attachments.
//!
//! The header's dimensions are checked against [`super::Limits::max_pixels`]
//! before any pixel is decoded, and the decoder runs with an allocation limit.
//! Transparent pixels are laid over white. Photos are made black and white by
//! the configured [`super::Dither`] (flat tones halftoned in the automatic
//! mode), fitted onto the page at their physical size (150 dpi assumed, as
//! few images carry a usable resolution) and shrunk when larger.

use std::io::Cursor;

use ::image::{ImageDecoder, ImageFormat, ImageReader, Limits};

use super::fax_page::Bitmap;
use super::{Error, Kind, Result, Settings, binarise};

/// Resolution assumed for images: a screenshot or photo at 150 dpi fills
/// most of the fax width without being blown up.
pub const ASSUMED_DPI: f64 = 150.0;

/// Renders one image to one fax page.
pub fn render(kind: Kind, data: &[u8], settings: &Settings) -> Result<Bitmap> {
    let format = match kind {
        Kind::Png => ImageFormat::Png,
        Kind::Jpeg => ImageFormat::Jpeg,
        Kind::Gif => ImageFormat::Gif,
        other => return Err(Error::Unsupported(format!("{other:?}"))),
    };
    let corrupt = |e: ::image::ImageError| Error::CorruptImage(e.to_string());
    let mut reader = ImageReader::with_format(Cursor::new(data), format);
    let max = settings.limits.max_pixels;
    let mut limits = Limits::default();
    limits.max_alloc = Some(max.saturating_mul(8).saturating_add(1 << 20));
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(corrupt)?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(Error::CorruptImage("the image has no pixels".into()));
    }
    if w as u64 * h as u64 > max || w as u64 > super::MAX_SIDE || h as u64 > super::MAX_SIDE {
        return Err(Error::ImageTooLarge { width: w as u64, height: h as u64, max_pixels: max });
    }
    let img = ::image::DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    // Grey with alpha (two bytes a pixel) keeps the peak memory low.
    let la = img.to_luma_alpha8();
    drop(img);
    let data = la
        .pixels()
        .map(|p| {
            let [l, a] = p.0;
            ((l as u32 * a as u32 + 255 * (255 - a as u32)) / 255) as u8
        })
        .collect();
    let gray = super::GrayImage { width: w, height: h, data };
    let placed = gray.fit_onto_page((ASSUMED_DPI, ASSUMED_DPI), settings.paper, settings.resolution);
    Ok(binarise::binarise(&placed, settings.dither))
}
