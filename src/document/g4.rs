//! T.6 (G4) encoding and the TIFF Class F writer.
//!
//! Each page is one IFD with one strip, the tags TIFF Class F (TIFF 6.0
//! appendix, RFC 2306 profile F) asks for: NewSubfileType page, 1728 columns,
//! BitsPerSample 1, Compression 4, Photometric WhiteIsZero, FillOrder 1,
//! XResolution 204 / YResolution 98|196|391 per inch, PageNumber n/total.

use fax::maps::{black, white};
use fax::{BitWriter, Bits, VecWriter};

use super::fax_page::{Bitmap, Resolution, X_DPI};

/// Encodes a page as T.6 (G4) data, ending with EOFB.
///
/// The coder works on each row's colour changes, found by skipping whole
/// white or black bytes, and codes them against the previous row's changes
/// with the pass, vertical and horizontal modes of ITU-T T.6 §2.2; the code
/// words are the tables of the `fax` crate.
pub fn encode(page: &Bitmap) -> Vec<u8> {
    let width = page.width();
    let mut w = VecWriter::with_capacity(page.data().len() + 128);
    let mut reference: Vec<u32> = Vec::new();
    let mut current: Vec<u32> = Vec::new();
    for y in 0..page.height() {
        changes(page.row(y), width, &mut current);
        code_row(&mut w, &reference, &current, width);
        std::mem::swap(&mut reference, &mut current);
    }
    // EOFB: two EOLs (T.6 §2.4).
    put(&mut w, Bits { data: 1, len: 12 });
    put(&mut w, Bits { data: 1, len: 12 });
    w.finish()
}

fn put(w: &mut VecWriter, bits: Bits) {
    // Writing into a Vec cannot fail.
    let Ok(()) = w.write(bits);
}

/// The positions where a packed row changes colour (starting white).
fn changes(row: &[u8], width: u32, out: &mut Vec<u32>) {
    out.clear();
    let mut black = false;
    let mut i = 0;
    while i < row.len() {
        // White paper: eight bytes at a time.
        if !black && i + 8 <= row.len() && row[i..i + 8].iter().all(|&b| b == 0) {
            i += 8;
            continue;
        }
        let byte = row[i];
        i += 1;
        let base = (i - 1) as u32 * 8;
        if base >= width {
            break;
        }
        if (byte == 0 && !black) || (byte == 0xff && black) {
            continue;
        }
        for bit in 0..8u32 {
            let x = base + bit;
            if x >= width {
                break;
            }
            let b = byte & (0x80 >> bit) != 0;
            if b != black {
                out.push(x);
                black = b;
            }
        }
    }
}

// Mode code words (T.6 table 1).
const PASS: Bits = Bits { data: 0b0001, len: 4 };
const HORIZONTAL: Bits = Bits { data: 0b001, len: 3 };
/// Vertical modes VL3..VR3, indexed by a1 - b1 + 3.
const VERTICAL: [Bits; 7] = [
    Bits { data: 0b0000010, len: 7 },
    Bits { data: 0b000010, len: 6 },
    Bits { data: 0b010, len: 3 },
    Bits { data: 0b1, len: 1 },
    Bits { data: 0b011, len: 3 },
    Bits { data: 0b000011, len: 6 },
    Bits { data: 0b0000011, len: 7 },
];

fn run(w: &mut VecWriter, black_run: bool, mut n: u32) {
    let table = if black_run { &black::ENTRIES } else { &white::ENTRIES };
    let mut code = |n: u32| {
        let idx = if n >= 64 { 63 + n / 64 } else { n } as usize;
        put(w, table[idx].1);
    };
    while n >= 2560 {
        code(2560);
        n -= 2560;
    }
    if n >= 64 {
        code(n & !63);
        n &= 63;
    }
    code(n);
}

/// Codes one row (T.6 §2.2.3). `a0` starts on the imaginary white pixel
/// before the row; changes of even index turn black, odd ones turn white.
fn code_row(w: &mut VecWriter, reference: &[u32], current: &[u32], width: u32) {
    let mut a0: i64 = -1;
    let mut black = false;
    let mut ci = 0usize; // first change of the coding line right of a0
    let mut ri = 0usize; // search start in the reference line
    loop {
        while ci < current.len() && (current[ci] as i64) <= a0 {
            ci += 1;
        }
        let a1 = current.get(ci).copied().unwrap_or(width);
        // b1: first change right of a0 on the reference line whose colour is
        // opposite to a0's, i.e. turning black when a0 is white.
        while ri > 0 && (reference[ri - 1] as i64) > a0 {
            ri -= 1;
        }
        while ri < reference.len() && ((reference[ri] as i64) <= a0 || (ri % 2 == 1) != black) {
            ri += 1;
        }
        let b1 = reference.get(ri).copied().unwrap_or(width);
        let b2 = reference.get(ri + 1).copied().unwrap_or(width);
        if b2 < a1 {
            put(w, PASS);
            a0 = b2 as i64;
        } else if a1.abs_diff(b1) <= 3 {
            put(w, VERTICAL[(a1 as i64 - b1 as i64 + 3) as usize]);
            a0 = a1 as i64;
            black = !black;
        } else {
            let a2 = current.get(ci + 1).copied().unwrap_or(width);
            put(w, HORIZONTAL);
            run(w, black, a1 - a0.max(0) as u32);
            run(w, !black, a2 - a1);
            a0 = a2 as i64;
        }
        if a0 >= width as i64 {
            break;
        }
    }
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
            (PAGE_NUMBER, SHORT, 2, (n as u32 & 0xffff) | ((total as u32 & 0xffff) << 16)),
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
