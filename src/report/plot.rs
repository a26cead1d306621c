//! `effnetv2 report`: a run directory's `metrics.jsonl` drawn as a PNG and an SVG (training
//! loss, train accuracy, eval accuracy and learning rate against the step, with the progressive
//! stages marked) and summarised as text.

mod chart;
pub mod figure;
pub mod log;
mod summary;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Result;

pub use chart::PLOT_SIZE;
pub use log::RunLog;
pub use summary::summary;

/// What [`write_report`] produced.
#[derive(Clone, Debug)]
pub struct Report {
    /// The text summary (per stage, then the final accuracy).
    pub summary: String,
    pub png: PathBuf,
    pub svg: PathBuf,
}

/// Reads `run_dir/metrics.jsonl` and writes `stem.png` and `stem.svg` (`stem` defaults to
/// `run_dir/report`; a `.png` or `.svg` extension on it is dropped).
pub fn write_report(run_dir: &Path, stem: Option<&Path>) -> Result<Report> {
    let log = RunLog::read(&run_dir.join("metrics.jsonl"))?;
    let stem = stem.map_or_else(|| run_dir.join("report"), Path::to_path_buf);
    let (png, svg) = (with_suffix(&stem, "png"), with_suffix(&stem, "svg"));
    let title = title(run_dir, &log);
    let chart = chart::RunChart {
        log: &log,
        title: &title,
    };
    figure::write_png(&chart, &png)?;
    figure::write_svg(&chart, &svg)?;
    Ok(Report {
        summary: summary(&log),
        png,
        svg,
    })
}

fn title(run_dir: &Path, log: &RunLog) -> String {
    let stages = log.stages().len();
    let mut title = format!(
        "{}: {} steps in {stages} progressive stages",
        run_dir.display(),
        log.steps.len()
    );
    if let Some(e) = log.evals.last() {
        title.push_str(&format!(
            ", eval top-1 {:.1}%, top-5 {:.1}%",
            100.0 * e.top1,
            100.0 * e.top5
        ));
    }
    title
}

/// `stem` + `.extension`, keeping any dots in the stem ("run.v2" -> "run.v2.png").
fn with_suffix(stem: &Path, extension: &str) -> PathBuf {
    let stem = match stem.extension().and_then(|e| e.to_str()) {
        Some("png" | "svg") => stem.with_extension(""),
        _ => stem.to_path_buf(),
    };
    let mut name = OsString::from(stem);
    name.push(".");
    name.push(extension);
    name.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_append_the_extension() {
        assert_eq!(
            with_suffix(Path::new("out/run.v2"), "png"),
            Path::new("out/run.v2.png")
        );
        assert_eq!(
            with_suffix(Path::new("out/curves.svg"), "png"),
            Path::new("out/curves.png")
        );
        assert_eq!(
            with_suffix(Path::new("report"), "svg"),
            Path::new("report.svg")
        );
    }
}
