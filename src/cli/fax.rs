//! `faxgate fax loopback`: a sender and a receiver in process on simulated
//! time, printing the result as JSON.

use std::path::PathBuf;

use anyhow::Context as _;

/// Arguments of `faxgate fax loopback`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct FaxLoopbackArgs {
    /// TIFF/F file to send.
    #[arg(value_name = "FILE.tiff")]
    pub(crate) file: PathBuf,
    /// Where to write the received pages.
    #[arg(long, value_name = "RECEIVED.tiff")]
    pub(crate) out: PathBuf,
    /// Send at most this many pages.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) pages: Option<u32>,
    /// Random datagram loss in percent (0-100), applied in both directions.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub(crate) loss: f64,
    /// Use G.711 A-law audio instead of T.38.
    #[arg(long)]
    pub(crate) audio: bool,
    /// Do not offer error correction mode.
    #[arg(long)]
    pub(crate) no_ecm: bool,
}

/// Runs the loopback call and prints its JSON report on stdout; fails
/// (after printing the report) when the fax did not get through.
pub(crate) fn run_loopback(args: &FaxLoopbackArgs) -> anyhow::Result<()> {
    let mut magic = [0u8; 4];
    std::fs::File::open(&args.file)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    if magic != *b"II*\0" && magic != *b"MM\0*" {
        anyhow::bail!("{} is not a TIFF file (faxgate render turns PDFs and images into one)", args.file.display());
    }
    let opts = faxgate_t38::loopback::LoopbackOptions {
        input: args.file.clone(),
        output: args.out.clone(),
        pages: args.pages,
        loss_percent: args.loss,
        audio: args.audio,
        ecm: !args.no_ecm,
    };
    let report =
        faxgate_t38::loopback::run(&opts).with_context(|| format!("fax loopback of {}", args.file.display()))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if report.completion_code != 0 || report.sender_completion_code != 0 {
        anyhow::bail!("the fax did not get through: {}", report.completion_text);
    }
    Ok(())
}
