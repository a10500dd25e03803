//! `faxgate render` and `faxgate topdf`: the document conversions from the
//! command line, for sysadmins checking what a customer's attachment becomes.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use faxgate::document::{CoverPage, Dither, Kind, Pages, PdfRenderer, Settings, topdf};
use faxgate::document::{Paper, Resolution};

/// Arguments of `faxgate render`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RenderArgs {
    /// Documents to render, in order: PDF, TIFF, PNG, JPEG, GIF, or text
    /// (`.txt`) and HTML (`.html`, `.htm`) bodies.
    #[arg(value_name = "INPUT", required = true)]
    pub(crate) inputs: Vec<PathBuf>,
    /// Where to write the fax pages (multi-page G4 TIFF, Class F).
    #[arg(long, value_name = "PAGES.tiff")]
    pub(crate) out: PathBuf,
    /// Vertical resolution.
    #[arg(long, value_enum, default_value_t = Resolution::Fine)]
    pub(crate) resolution: Resolution,
    /// Paper size.
    #[arg(long, value_enum, default_value_t = Paper::A4)]
    pub(crate) paper: Paper,
    /// Black-and-white conversion.
    #[arg(long, value_enum, default_value_t = Dither::Auto)]
    pub(crate) dither: Dither,
    /// PDF renderer.
    #[arg(long, value_enum, default_value_t = PdfRenderer::Hayro)]
    pub(crate) pdf_renderer: PdfRenderer,
    /// Most pages accepted.
    #[arg(long, default_value_t = 50)]
    pub(crate) max_pages: usize,
    /// Put a cover page in front, with this branding.
    #[arg(long, value_name = "BRANDING")]
    pub(crate) cover: Option<String>,
    /// Cover page: sender.
    #[arg(long, default_value = "")]
    pub(crate) from: String,
    /// Cover page: recipient.
    #[arg(long, default_value = "")]
    pub(crate) to: String,
    /// Cover page: comment text.
    #[arg(long, default_value = "")]
    pub(crate) comment: String,
}

/// Arguments of `faxgate topdf`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct TopdfArgs {
    /// A received fax (TIFF with G3/G4 pages).
    #[arg(value_name = "FAX.tiff")]
    pub(crate) input: PathBuf,
    /// Where to write the PDF.
    #[arg(long, value_name = "FAX.pdf")]
    pub(crate) out: PathBuf,
    /// Sender, for the PDF's title and metadata.
    #[arg(long, default_value = "")]
    pub(crate) from: String,
    /// Most pages accepted.
    #[arg(long, default_value_t = 1000)]
    pub(crate) max_pages: usize,
}

fn kind_of(path: &std::path::Path, data: &[u8]) -> anyhow::Result<Kind> {
    if let Some(k) = Kind::sniff(data) {
        return Ok(k);
    }
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => Ok(Kind::Html),
        "txt" | "text" | "" => Ok(Kind::Text),
        "pdf" => Ok(Kind::Pdf),
        "tif" | "tiff" => Ok(Kind::Tiff),
        _ => anyhow::bail!("{}: unknown document type", path.display()),
    }
}

/// Renders documents to a fax TIFF and prints a summary.
pub(crate) fn render(args: &RenderArgs) -> anyhow::Result<()> {
    let mut settings = Settings {
        resolution: args.resolution,
        paper: args.paper,
        dither: args.dither,
        pdf_renderer: args.pdf_renderer,
        ..Settings::default()
    };
    settings.limits.max_pages = args.max_pages;
    let started = Instant::now();
    let mut pages = Pages::new(settings);
    for input in &args.inputs {
        let data = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
        let kind = kind_of(input, &data)?;
        let t = Instant::now();
        let n = pages.add_binary(kind, &data).with_context(|| format!("{}", input.display()))?;
        println!(
            "{}: {kind:?}, {n} page{} in {} ms",
            input.display(),
            if n == 1 { "" } else { "s" },
            t.elapsed().as_millis()
        );
    }
    if let Some(branding) = &args.cover {
        let cover = CoverPage {
            branding: branding.clone(),
            from: args.from.clone(),
            to: args.to.clone(),
            date: jiff::Zoned::now().strftime("%Y-%m-%d %H:%M %Z").to_string(),
            comment: args.comment.clone(),
            ..CoverPage::default()
        };
        pages.prepend_cover(&cover)?;
    }
    faxgate::document::worker::shutdown();
    let tiff = pages.to_tiff()?;
    std::fs::write(&args.out, &tiff).with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "{}: {} pages, {:?} {:?}, {} bytes, {} ms",
        args.out.display(),
        pages.pages().len(),
        args.paper,
        args.resolution,
        tiff.len(),
        started.elapsed().as_millis()
    );
    Ok(())
}

/// Converts a received fax to PDF and prints a summary.
pub(crate) fn topdf(args: &TopdfArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let data = std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let received =
        std::fs::metadata(&args.input).and_then(|m| m.modified()).ok().and_then(|t| jiff::Timestamp::try_from(t).ok());
    let info = topdf::FaxInfo { from: args.from.clone(), received, ..topdf::FaxInfo::default() };
    let (pdf, n) =
        topdf::tiff_to_pdf(&data, &info, args.max_pages).with_context(|| format!("{}", args.input.display()))?;
    std::fs::write(&args.out, &pdf).with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "{}: {n} page{}, {} bytes, {} ms",
        args.out.display(),
        if n == 1 { "" } else { "s" },
        pdf.len(),
        started.elapsed().as_millis()
    );
    Ok(())
}
