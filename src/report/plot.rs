//! `effnetv2 report`: a run directory's `metrics.jsonl` drawn as a PNG and an SVG (training
//! loss, train accuracy, eval accuracy and learning rate against the step, with the progressive
//! stages marked) and summarised as text.

mod chart;
pub mod figure;
pub mod log;
mod summary;

use std::path::Path;

use anyhow::{Context, Result};

pub use chart::PLOT_SIZE;
pub use log::RunLog;
pub use summary::summary;

use crate::storage::{Location, Store};

/// What [`write_report`] produced.
#[derive(Clone, Debug)]
pub struct Report {
    /// The text summary (per stage, then the final accuracy).
    pub summary: String,
    /// Where the PNG and the SVG were written (a local path or a `gs://` URL).
    pub png: String,
    pub svg: String,
}

/// Reads the `metrics.jsonl` of the run folder `run_dir` (local or `gs://bucket/run`) and writes
/// `stem.png` and `stem.svg` (`stem` defaults to `run_dir/report`, and may be a `gs://` URL too;
/// a `.png` or `.svg` extension on it is dropped).
pub fn write_report(run_dir: &Path, stem: Option<&Path>) -> Result<Report> {
    let run = Location::parse_path(run_dir)?;
    let log = RunLog::read(&run)?;
    let (folder, name) = match stem {
        None => (run.clone(), "report".to_string()),
        Some(stem) => {
            let text = stem
                .to_str()
                .with_context(|| format!("{} is not a UTF-8 path", stem.display()))?;
            Location::parse_file(text)?
        }
    };
    let name = without_image_extension(&name);
    let title = title(&run, &log);
    let chart = chart::RunChart {
        log: &log,
        title: &title,
    };
    let store = Store::open(&folder)?;
    let write = |extension: &str, bytes: &[u8]| -> Result<String> {
        let file = format!("{name}.{extension}");
        store.write(&file, &mut &bytes[..])?;
        Ok(folder.file(&file))
    };
    let png = write("png", &figure::render_png(&chart)?)?;
    let svg = write("svg", figure::render_svg(&chart)?.as_bytes())?;
    Ok(Report {
        summary: summary(&log),
        png,
        svg,
    })
}

fn title(run: &Location, log: &RunLog) -> String {
    let stages = log.stages().len();
    let mut title = format!(
        "{run}: {} steps in {stages} progressive stages",
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

/// A file stem without a `.png` or `.svg` extension ("run.v2" stays "run.v2").
fn without_image_extension(stem: &str) -> &str {
    stem.strip_suffix(".png")
        .or_else(|| stem.strip_suffix(".svg"))
        .unwrap_or(stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_extension_on_the_stem_is_dropped() {
        assert_eq!(without_image_extension("run.v2"), "run.v2");
        assert_eq!(without_image_extension("curves.svg"), "curves");
        assert_eq!(without_image_extension("curves.png"), "curves");
        assert_eq!(without_image_extension("report"), "report");
    }
}
