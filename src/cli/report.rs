//! `effnetv2 report`: plots and a text summary of a run directory.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use effnetv2::report::plot::write_report;

/// Reads RUN_DIR/metrics.jsonl, writes a PNG and an SVG of the curves and prints the summary.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run directory (the `--out` of `effnetv2 train`), local or `gs://bucket/run`.
    run_dir: PathBuf,
    /// Write FILE_STEM.png and FILE_STEM.svg, local or `gs://` [default: RUN_DIR/report].
    #[arg(long, value_name = "FILE_STEM")]
    out: Option<PathBuf>,
}

impl ReportArgs {
    pub fn run(self) -> Result<()> {
        let report = write_report(&self.run_dir, self.out.as_deref())?;
        println!("{}", report.summary);
        println!("wrote {} and {}", report.png, report.svg);
        Ok(())
    }
}
