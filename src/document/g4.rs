//! T.6 (G4) encoding and the TIFF Class F writer.
//!
//! Each page is one IFD with one strip, the tags TIFF Class F (TIFF 6.0
//! appendix, RFC 2306 profile F) asks for: NewSubfileType page, 1728 columns,
//! BitsPerSample 1, Compression 4, Photometric WhiteIsZero, FillOrder 1,
//! XResolution 204 / YResolution 98|196|391 per inch, PageNumber n/total.

use fax::{Color, VecWriter, encoder::Encoder};

use super::fax_page::{Bitmap, Resolution, X_DPI};

/// Encodes a page as T.6 (G4) data, ending with EOFB.
pub fn encode(page: &Bitmap) -> Vec<u8> {
    let mut enc = Encoder::new(VecWriter::with_capacity(page.data().len() + 128));
    let width = page.width();
    for y in 0..page.height() {
        let row = page.row(y);
        let pels = (0..width).map(|x| {
            if row[x as usize / 8] & (0x80 >> (x % 8)) != 0 {
                Color::Black
            } else {
                Color::White
            }
        });
        // Writing into a Vec cannot fail.
        let Ok(()) = enc.encode_line(pels, width);
    }
    let Ok(w) = enc.finish();
    w.finish()
}

// TIFF tag numbers (TIFF 6.0 §8 and appendix A).
const NEW_SUBFILE_TYPE: u16 = 254;
const IMAGE_WIDTH: u16 = 256;
const IMAGE_LENGTH: u16 = 257;
const BITS_PER_SAMPLE: u16 = 258;
const COMPRESSION: u16 = 259;
const PHOTOMETRIC: u16 = 262;
const FILL_ORDER: u16 = 266;
const STRIP_OFFSETS: u16 = 273;
const ORIENTATION: u16 = 274;
const SAMPLES_PER_PIXEL: u16 = 277;
const ROWS_PER_STRIP: u16 = 278;
const STRIP_BYTE_COUNTS: u16 = 279;
const X_RESOLUTION: u16 = 282;
const Y_RESOLUTION: u16 = 283;
const RESOLUTION_UNIT: u16 = 296;
const PAGE_NUMBER: u16 = 297;
const SOFTWARE: u16 = 305;
const T6_OPTIONS: u16 = 293;

const SHORT: u16 = 3;
const LONG: u16 = 4;
const RATIONAL: u16 = 5;
const ASCII: u16 = 2;

/// Writes pages as a little-endian multi-page G4 TIFF.
pub fn write_tiff(pages: &[Bitmap], resolution: Resolution) -> Vec<u8> {
    let strips: Vec<Vec<u8>> = pages.iter().map(encode).collect();
    write_tiff_encoded(pages, &strips, resolution)
}

/// Writes already encoded G4 strips, one per page.
pub fn write_tiff_encoded(pages: &[Bitmap], strips: &[Vec<u8>], resolution: Resolution) -> Vec<u8> {
    let software = b"faxgate\0";
    let mut out = Vec::new();
    out.extend_from_slice(b"II*\0");
    out.extend_from_slice(&0u32.to_le_bytes()); // first IFD, patched below
    let mut next_ifd_ptr = 4usize;
    let total = pages.len();
    for (n, (page, strip)) in pages.iter().zip(strips).enumerate() {
        let strip_off = out.len() as u32;
        out.extend_from_slice(strip);
        if out.len() % 2 == 1 {
            out.push(0);
        }
        // Out-of-line values: two rationals and the software string.
        let xres_off = out.len() as u32;
        out.extend_from_slice(&(X_DPI as u32).to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        let yres_off = out.len() as u32;
        out.extend_from_slice(&(resolution.y_dpi() as u32).to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        let sw_off = out.len() as u32;
        out.extend_from_slice(software);
        let ifd_off = out.len() as u32;
        out[next_ifd_ptr..next_ifd_ptr + 4].copy_from_slice(&ifd_off.to_le_bytes());
        let entries: [(u16, u16, u32, u32); 18] = [
            (NEW_SUBFILE_TYPE, LONG, 1, 2),
            (IMAGE_WIDTH, LONG, 1, page.width()),
            (IMAGE_LENGTH, LONG, 1, page.height()),
            (BITS_PER_SAMPLE, SHORT, 1, 1),
            (COMPRESSION, SHORT, 1, 4),
            (PHOTOMETRIC, SHORT, 1, 0),
            (FILL_ORDER, SHORT, 1, 1),
            (STRIP_OFFSETS, LONG, 1, strip_off),
            (ORIENTATION, SHORT, 1, 1),
            (SAMPLES_PER_PIXEL, SHORT, 1, 1),
            (ROWS_PER_STRIP, LONG, 1, page.height()),
            (STRIP_BYTE_COUNTS, LONG, 1, strip.len() as u32),
            (X_RESOLUTION, RATIONAL, 1, xres_off),
            (Y_RESOLUTION, RATIONAL, 1, yres_off),
            (T6_OPTIONS, LONG, 1, 0),
            (RESOLUTION_UNIT, SHORT, 1, 2),
            // PageNumber: two SHORTs packed into the value field.
            (
                PAGE_NUMBER,
                SHORT,
                2,
                (n as u32 & 0xffff) | ((total as u32 & 0xffff) << 16),
            ),
            (SOFTWARE, ASCII, software.len() as u32, sw_off),
        ];
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, typ, count, value) in entries {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&typ.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&value.to_le_bytes());
        }
        next_ifd_ptr = out.len();
        out.extend_from_slice(&0u32.to_le_bytes());
    }
    out
}
