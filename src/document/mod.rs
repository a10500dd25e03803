//! Documents: mail parts to fax pages, and received faxes to PDF.
//!
//! Mail-to-fax turns what a customer mails (PDF, TIFF, PNG, JPEG, GIF, a text or
//! HTML body) into black-and-white fax pages, 1728 pixels wide, written as one
//! multi-page G4 TIFF (TIFF Class F compatible) that the fax leg sends.
//! Fax-to-mail turns the TIFF of a received fax into a PDF whose page images are
//! the received T.4/T.6 data, byte for byte.
//!
//! # Layout
//!
//! - [`fax_page`]: the fax page geometry ([`Resolution`], [`Paper`]), the grey
//!   working canvas ([`GrayImage`]), area resampling and fitting onto a page, and
//!   the 1-bit result ([`Bitmap`]).
//! - [`binarise`]: grey to black and white (threshold, ordered dither, error
//!   diffusion, and the automatic mix of the first two).
//! - [`pdf`]: PDF pages rendered by hayro.
//! - [`worker`]: hayro in a worker process bounded in memory and time, as
//!   the daemon and `faxgate render` use it.
//! - [`ghostscript`]: the optional Ghostscript subprocess for PDFs, bounded in
//!   time and memory.
//! - [`tiff`]: a small TIFF reader (IFD chain, strips, every compression a fax
//!   device or scanner sends; JBIG and JPEG are refused by name) shared by
//!   TIFF input and by [`topdf`].
//! - [`image`]: PNG, JPEG and GIF input.
//! - [`photo`]: an image scaled onto the page, a photographed document's
//!   paper evened out to white.
//! - [`text`]: text and HTML bodies (HTML through html2text, `format=flowed`
//!   decoded), typeset with the bundled DejaVu Sans Mono.
//! - [`cover`]: the cover page.
//! - [`g4`]: T.6 (G4) encoding and the TIFF Class F writer.
//! - [`header`]: the page header line (a template per tenant) drawn into the
//!   top margin of each page of a job as it is called.
//! - [`topdf`]: received fax TIFF to PDF, pages embedded as CCITTFaxDecode images.
//!
//! # Choices
//!
//! **hayro renders PDFs.** It is written in Rust with `forbid(unsafe_code)`, so a
//! hostile attachment cannot corrupt memory, and it is a library: no 40 ms
//! Ghostscript start per document. Nothing in it bounds one page's memory or
//! time, though (a 1 MB file can hold an image that decodes to gigabytes), so
//! the daemon runs it in a worker, faxgate's own executable under `prlimit`
//! ([`worker`]); a few milliseconds of process start buy a refusal instead of
//! a daemon out of memory. Measured against Ghostscript on
//! 358 pages of real-world PDFs (text, scans, photos, drawings, charts) it
//! rendered every page with no missing or extra objects, handled encrypted
//! files with an empty user password and refused those with one; on the
//! repository's corpus its fax pages agree with Ghostscript's on 98.4 to 99.7 %
//! of pixels (glyph edges). A panic inside it is caught and reported as a
//! damaged PDF. Ghostscript stays as a
//! fallback chosen by [`PdfRenderer`] (`[fax] pdf_renderer`); it runs as a subprocess with `-dSAFER`, a
//! CPU and address-space limit (`prlimit`) and a wall-clock limit, and its output
//! is checked because it exits 0 for truncated and password-protected files.
//!
//! **Binarisation** happens on an anti-aliased grey rendering. A threshold at
//! luma < 128 erodes hairlines (the crossbar of a 10 pt "e" vanishes at 196 dpi),
//! so text and line art are thresholded at luma < 192 ([`binarise::TEXT_THRESHOLD`]),
//! which keeps strokes bold and legible. Light colours and grey fills vanish
//! under any threshold, so flat mid-tone regions (a pixel and its four
//! neighbours all mid-grey, which is never true along a text edge) are
//! halftoned with a 45° clustered-dot screen, whose runs G4 codes far more
//! compactly than a dispersed dither. That per-pixel mix is [`Dither::Auto`];
//! [`Dither::Threshold`] and [`Dither::Diffuse`] (Floyd-Steinberg over the whole
//! page, for photographs) can be forced by setting (`[fax] dither`,
//! `faxgate render --dither`).
//!
//! **G4 and TIFF.** Pages are coded by a small T.6 coder ([`g4::encode`])
//! that finds each row's colour changes by skipping whole white or black
//! bytes and uses the code tables of the pure-Rust `fax` crate; taking every
//! pixel through the `fax` crate's own encoder cost 11 ms a page, the change
//! lists about a third of that. Pages are written one strip each with the
//! Class F tags (resolution in inch, FillOrder 1, PageNumber, NewSubfileType
//! page). Received and mailed TIFFs are decoded with `hayro-ccitt`, which reads
//! G3 1-D, G3 2-D and G4 and is not the coder's own code, so the round-trip
//! tests check one against the other and both against libtiff.
//!
//! **Speed** (`BENCHMARKS.md`): hayro is faster than Ghostscript's
//! `tiffg4` device on single-page and few-page documents and on vector
//! charts, and slower on long plain-text documents, where Ghostscript's start
//! is amortised. Pages of one PDF are drawn on up to four threads.
//!
//! **Threads.** Conversion is CPU-bound and synchronous; the daemon calls it
//! from a blocking thread (`tokio::task::spawn_blocking`), never on the
//! async runtime's workers.
//!
//! **Untrusted sizes** (image dimensions, page counts, IFD chains, strip sizes)
//! are checked against [`Limits`] before anything is allocated. Every refusal is
//! an [`Error`] whose message a customer can read.

pub mod binarise;
pub mod cover;
pub mod fax_page;
pub mod g4;
pub mod ghostscript;
pub mod header;
pub mod image;
pub mod pdf;
pub mod photo;
pub mod text;
pub mod tiff;
pub mod topdf;
pub mod worker;

use std::time::Duration;

pub use cover::CoverPage;
pub use fax_page::{Bitmap, GrayImage, Paper, Resolution};

/// Why a document could not be converted.
///
/// The messages are meant for the customer's report mail: they say what was
/// wrong with the document, not where the code failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The attachment's type is not one the gateway can fax.
    #[error("the attachment type {0} cannot be sent as a fax (send PDF, TIFF, PNG, JPEG, GIF or text)")]
    Unsupported(String),
    /// The PDF is damaged or not a PDF at all.
    #[error("the PDF document is damaged and cannot be read")]
    CorruptPdf,
    /// The PDF needs a password to be opened.
    #[error("the PDF document is protected by a password; send it without the password")]
    PasswordProtected,
    /// The PDF is encrypted in a way that cannot be read.
    #[error("the PDF document uses an encryption that cannot be read")]
    UnsupportedEncryption,
    /// The document has no pages.
    #[error("the document has no pages")]
    NoPages,
    /// The fax would have more pages than allowed.
    #[error("the fax would have {pages} pages or more, more than the limit of {limit} pages")]
    TooManyPages {
        /// Pages counted so far (a lower bound for very long documents).
        pages: usize,
        /// The configured limit.
        limit: usize,
    },
    /// An image (or TIFF page) declares dimensions that are too large.
    #[error(
        "the image is too large ({width} x {height} pixels; at most {max_pixels} pixels and {MAX_SIDE} per side are accepted)"
    )]
    ImageTooLarge {
        /// Declared width.
        width: u64,
        /// Declared height.
        height: u64,
        /// The limit in pixels.
        max_pixels: u64,
    },
    /// The TIFF file is damaged.
    #[error("the TIFF image is damaged: {0}")]
    CorruptTiff(String),
    /// The TIFF file uses a feature that is not supported.
    #[error("the TIFF image uses an unsupported feature: {0}")]
    UnsupportedTiff(String),
    /// A PNG, JPEG or GIF image could not be decoded.
    #[error("the image is damaged or in an unsupported variant: {0}")]
    CorruptImage(String),
    /// Converting the document took longer than allowed.
    #[error("the document took longer than {0:?} to convert and was given up")]
    TimedOut(Duration),
    /// Ghostscript (the optional PDF fallback) failed.
    #[error("the PDF document could not be rendered: {0}")]
    Ghostscript(String),
    /// Rendering the PDF needed more memory (or CPU) than allowed.
    #[error(
        "the PDF document needs more than {} MiB of memory to render (very large images?); send it with smaller images or fewer pages",
        .0 >> 20
    )]
    TooMuchMemory(u64),
    /// Reading or writing a file failed.
    #[error("input/output error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Whether trying the same document again later could succeed.
    ///
    /// Only resource and I/O failures are transient; a document that is
    /// damaged, too long or protected stays so.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Io(_) | Error::TimedOut(_))
    }
}

/// The longest side accepted for an input image or TIFF page, whatever its
/// pixel count: it bounds the resampling buffers of very thin images.
pub const MAX_SIDE: u64 = 60_000;

/// The module's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// How grey becomes black and white (`[fax] dither`, `render --dither`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dither {
    /// Threshold text and line art, halftone flat mid-tone regions (default).
    #[default]
    Auto,
    /// Plain threshold everywhere: best for pure text.
    Threshold,
    /// Floyd-Steinberg error diffusion everywhere: best for photographs.
    Diffuse,
}

/// Which engine renders PDF attachments (`[fax] pdf_renderer`,
/// `render --pdf-renderer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PdfRenderer {
    /// hayro, in process (default).
    #[default]
    Hayro,
    /// hayro, and Ghostscript for a PDF that hayro cannot open.
    HayroThenGhostscript,
    /// Ghostscript only.
    Ghostscript,
}

/// Bounds on untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most fax pages in one job (default 50).
    pub max_pages: usize,
    /// Most pixels of one decoded input image or TIFF page (default 40
    /// million: an A4 page scanned at 600 dpi is about 35 million).
    pub max_pixels: u64,
    /// Most time to convert one document (default 60 s).
    pub max_time: Duration,
    /// Most memory a PDF renderer may map: hayro's worker process or
    /// Ghostscript (default 1 GiB).
    pub max_memory: u64,
}

impl PdfRenderer {
    /// Whether it may run Ghostscript.
    pub fn uses_ghostscript(self) -> bool {
        !matches!(self, PdfRenderer::Hayro)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_pages: 50, max_pixels: 40_000_000, max_time: Duration::from_secs(60), max_memory: 1 << 30 }
    }
}

/// How pages are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settings {
    /// Vertical resolution (default fine, 204 x 196).
    pub resolution: Resolution,
    /// Paper size (default A4).
    pub paper: Paper,
    /// Black-and-white conversion (default automatic).
    pub dither: Dither,
    /// PDF renderer (default hayro).
    pub pdf_renderer: PdfRenderer,
    /// Bounds on input.
    pub limits: Limits,
}

/// What a mail part is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `application/pdf`.
    Pdf,
    /// `image/tiff`.
    Tiff,
    /// `image/png`.
    Png,
    /// `image/jpeg`.
    Jpeg,
    /// `image/gif`.
    Gif,
    /// `text/plain`.
    Text,
    /// `text/html`.
    Html,
}

impl Kind {
    /// Recognises a binary document by its first bytes.
    pub fn sniff(data: &[u8]) -> Option<Kind> {
        let head = &data[..data.len().min(1024)];
        if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
            Some(Kind::Tiff)
        } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Kind::Png)
        } else if head.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(Kind::Jpeg)
        } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
            Some(Kind::Gif)
        } else if head.windows(5).any(|w| w == b"%PDF-") {
            Some(Kind::Pdf)
        } else {
            None
        }
    }

    /// The kind for a MIME type (`type/subtype`, parameters ignored).
    pub fn from_mime(mime: &str) -> Option<Kind> {
        let essence = mime.split(';').next()?.trim().to_ascii_lowercase();
        Some(match essence.as_str() {
            "application/pdf" | "application/x-pdf" => Kind::Pdf,
            "image/tiff" | "image/tiff-fx" => Kind::Tiff,
            "image/png" => Kind::Png,
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Kind::Jpeg,
            "image/gif" => Kind::Gif,
            "text/plain" => Kind::Text,
            "text/html" => Kind::Html,
            _ => return None,
        })
    }
}

/// Collects the fax pages of one job, part after part, and keeps the page
/// limit.
#[derive(Debug)]
pub struct Pages {
    settings: Settings,
    pages: Vec<Bitmap>,
}

impl Pages {
    /// An empty job.
    pub fn new(settings: Settings) -> Self {
        Pages { settings, pages: Vec::new() }
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The pages so far.
    pub fn pages(&self) -> &[Bitmap] {
        &self.pages
    }

    /// Room left under the page limit.
    pub fn room(&self) -> usize {
        self.settings.limits.max_pages.saturating_sub(self.pages.len())
    }

    /// Fails with [`Error::TooManyPages`] unless `more` pages still fit.
    pub fn check_room(&self, more: usize) -> Result<()> {
        if more > self.room() {
            return Err(Error::TooManyPages { pages: self.pages.len() + more, limit: self.settings.limits.max_pages });
        }
        Ok(())
    }

    /// Adds finished pages, within the limit.
    pub fn push(&mut self, pages: Vec<Bitmap>) -> Result<()> {
        self.check_room(pages.len())?;
        self.pages.extend(pages);
        Ok(())
    }

    /// Renders a part; a page-limit refusal counts the part's pages only.
    fn render_part(&self, kind: Kind, data: &[u8]) -> Result<Vec<Bitmap>> {
        let room = self.room();
        let mut within = self.settings;
        within.limits.max_pages = room;
        let pages = match kind {
            Kind::Pdf => pdf::render(data, &within, room)?,
            Kind::Tiff => tiff::render(data, &within, room)?,
            Kind::Png | Kind::Jpeg | Kind::Gif => vec![image::render(kind, data, &within)?],
            Kind::Text => text::render(&String::from_utf8_lossy(data), &within)?,
            Kind::Html => {
                let cols = text::Layout::body(within.paper, within.resolution).cols;
                text::render(&text::html_to_text(&String::from_utf8_lossy(data), cols), &within)?
            }
        };
        if pages.is_empty() {
            return Err(Error::NoPages);
        }
        if pages.len() > room {
            return Err(Error::TooManyPages { pages: pages.len(), limit: room });
        }
        Ok(pages)
    }

    /// Adds a part (PDF, TIFF, PNG, JPEG, GIF, or a text or HTML part as
    /// bytes) and returns its page count. A refusal for the page limit
    /// counts the whole job's pages.
    pub fn add_binary(&mut self, kind: Kind, data: &[u8]) -> Result<usize> {
        let already = self.pages.len();
        let pages = self.render_part(kind, data).map_err(|e| match e {
            Error::TooManyPages { pages, .. } => {
                Error::TooManyPages { pages: pages + already, limit: self.settings.limits.max_pages }
            }
            e => e,
        })?;
        let n = pages.len();
        self.pages.extend(pages);
        Ok(n)
    }

    /// Adds a decoded text body.
    pub fn add_text(&mut self, body: &str) -> Result<usize> {
        self.add_binary(Kind::Text, body.as_bytes())
    }

    /// Adds a decoded HTML body, reduced to readable text.
    pub fn add_html(&mut self, body: &str) -> Result<usize> {
        self.add_binary(Kind::Html, body.as_bytes())
    }

    /// Puts a cover page in front; its page count is the job's pages plus the
    /// cover itself.
    pub fn prepend_cover(&mut self, cover: &CoverPage) -> Result<()> {
        self.check_room(1)?;
        let mut cover = cover.clone();
        cover.pages = self.pages.len() + 1;
        let page = cover::render(&cover, &self.settings)?;
        self.pages.insert(0, page);
        Ok(())
    }

    /// The pages, or [`Error::NoPages`].
    pub fn finish(self) -> Result<Vec<Bitmap>> {
        if self.pages.is_empty() {
            return Err(Error::NoPages);
        }
        Ok(self.pages)
    }

    /// The pages as a TIFF Class F file.
    pub fn to_tiff(&self) -> Result<Vec<u8>> {
        if self.pages.is_empty() {
            return Err(Error::NoPages);
        }
        Ok(g4::write_tiff(&self.pages, self.settings.resolution))
    }
}

#[cfg(test)]
mod tests;
