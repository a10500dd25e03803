//! PNG, JPEG and GIF attachments.
//!
//! The header's dimensions are checked against [`super::Limits::max_pixels`]
//! before any pixel is decoded (for a GIF, the logical screen and every
//! image descriptor: a frame may claim more than its screen), and the
//! decoder runs with an allocation limit.
//! Transparent pixels are laid over white. The image is scaled to the
//! printable area, a photographed document's paper made white
//! ([`super::photo`]), and the page made black and white by the configured
//! [`super::Dither`] (flat tones halftoned in the automatic mode; on a
//! photographed document only wide ones, [`binarise::photographed_document`]).

use std::io::Cursor;

use ::image::{ImageDecoder, ImageFormat, ImageReader, Limits};

use super::fax_page::Bitmap;
use super::{Error, Kind, Result, Settings, binarise};

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
    let too_large = |w: u64, h: u64| w * h > max || w > super::MAX_SIDE || h > super::MAX_SIDE;
    if too_large(w as u64, h as u64) {
        return Err(Error::ImageTooLarge { width: w as u64, height: h as u64, max_pixels: max });
    }
    if kind == Kind::Gif
        && let Some((fw, fh)) = gif_frames(data).find(|&(fw, fh)| too_large(fw as u64, fh as u64))
    {
        return Err(Error::ImageTooLarge { width: fw as u64, height: fh as u64, max_pixels: max });
    }
    let img = ::image::DynamicImage::from_decoder(decoder).map_err(|e| match e {
        ::image::ImageError::Limits(_) => {
            Error::CorruptImage("decoding it would take more memory than its size allows".into())
        }
        e => corrupt(e),
    })?;
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
    let (placed, document) = super::photo::place(&gray, settings.paper, settings.resolution);
    Ok(match settings.dither {
        super::Dither::Auto if document => binarise::photographed_document(&placed),
        mode => binarise::binarise(&placed, mode),
    })
}

/// The sizes the image descriptors of a GIF claim (GIF89a: a logical
/// screen descriptor and colour table, then extension blocks, image
/// descriptors with their data sub-blocks, and a trailer). Stops at the
/// trailer or where the data ends or cannot be read.
fn gif_frames(data: &[u8]) -> impl Iterator<Item = (u16, u16)> + '_ {
    let at = |i: usize| data.get(i).copied();
    let le = move |i: usize| Some(u16::from_le_bytes([at(i)?, at(i + 1)?]));
    let table = |flags: u8| if flags & 0x80 != 0 { 3usize << ((flags & 7) + 1) } else { 0 };
    // Past sub-blocks starting at `i` (each a length byte, 0 ends them).
    let skip_blocks = move |mut i: usize| -> Option<usize> {
        loop {
            let n = at(i)? as usize;
            i += 1 + n;
            if n == 0 {
                return Some(i);
            }
        }
    };
    let mut i = at(10).map(|f| 13 + table(f));
    std::iter::from_fn(move || {
        loop {
            let pos = i?;
            match at(pos)? {
                0x21 => i = skip_blocks(pos + 2),
                0x2c => {
                    let size = (le(pos + 5)?, le(pos + 7)?);
                    // Local colour table, LZW code size, then the data.
                    i = skip_blocks(pos + 10 + table(at(pos + 9)?) + 1);
                    return Some(size);
                }
                _ => return None,
            }
        }
    })
}
