//! What a run reports as it goes. The trainer emits [`Event`]s to an [`EventSink`] and prints
//! nothing; the CLI draws them as progress bars and lines, and [`MetricsLog`] appends the
//! measurements among them to the run's `metrics.jsonl` (what `report` plots).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::input::InputPipeline;
use crate::program::executables::CompileEvent;
use crate::storage::Location;

/// Something that happened in a run.
#[derive(Clone, Debug)]
pub enum Event {
    /// The run continues from a checkpoint.
    Resumed { checkpoint: Location, step: u64 },
    /// The data has another number of classes than the model spec: the head has the data's.
    HeadFollowsData { spec: usize, data: usize },
    /// A new run starts from pretrained weights (`--init`): `loaded` variables came from
    /// `from`; `new_head` holds the pretrained and the run's class counts when they differ and
    /// the classifier was drawn afresh.
    Initialised {
        from: Location,
        loaded: usize,
        new_head: Option<(usize, usize)>,
    },
    /// The input pipeline the loaders were built with (from the model's spec).
    Pipeline(InputPipeline),
    /// The run's lock was left by a trainer that is gone (or `--break-lock` broke it): `holder`
    /// names who held it.
    LockBroken { lock: Location, holder: String },
    /// A checkpoint is damaged; resuming tries the one before it.
    CheckpointDamaged {
        checkpoint: Location,
        reason: String,
    },
    /// An executable is ready: compiled, or loaded from the cache.
    ExecutableReady { stage: usize, compile: CompileEvent },
    /// A compiled executable could not be stored in the cache (the run goes on).
    CacheStoreFailed { module: String, error: String },
    /// One train step, of `total_steps` in the run.
    Step {
        record: StepRecord,
        total_steps: u64,
    },
    /// An epoch skipped images it could not read.
    Skipped(SkippedRecord),
    /// A step was not finite and left the state as it was (`skip_nonfinite`).
    NonFiniteSkipped(NonFiniteRecord),
    /// The EMA weights were evaluated after a stage.
    Evaluated(EvalRecord),
    /// A stage finished (after its evaluation).
    StageDone(StageSummary),
    /// The run stopped early (interrupted, or `stop_after`) after writing a checkpoint.
    Stopped { step: u64 },
}

/// Per-stage results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageSummary {
    pub stage: usize,
    pub image_size: usize,
    pub steps: u64,
    pub seconds: f64,
    pub images_per_sec: f64,
    /// The share of the wall time of the stage's training loop (its compile and evaluation
    /// left out) the device waited for input, in [0, 1] (see [`super::infeed`]).
    #[serde(default)]
    pub infeed_bound: f64,
    pub compile_seconds: f64,
    pub top1: f64,
    pub top5: f64,
    pub randaug: f64,
    pub mixup: f64,
    pub cutmix: f64,
    pub dropout: f64,
}

/// Receives a run's events in order.
pub trait EventSink {
    fn emit(&mut self, event: &Event) -> Result<()>;
}

/// Ignores every event.
pub struct Discard;

impl EventSink for Discard {
    fn emit(&mut self, _: &Event) -> Result<()> {
        Ok(())
    }
}

/// One training step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: u64,
    pub stage: usize,
    pub image_size: usize,
    pub loss: f32,
    /// Top-1 accuracy on the (augmented) training batch.
    pub accuracy: f32,
    pub lr: f64,
    pub images_per_sec: f64,
    /// The share of its call's wall time the device waited for input (the call's batches from
    /// the loader and their copy to the device), in [0, 1]; every step of a call carries the
    /// call's figure (see [`super::infeed`]). 0 in logs written before it existed.
    #[serde(default)]
    pub infeed_bound: f64,
    /// This step's part of its call's wall time (the call's over its steps), the weight of
    /// `infeed_bound` when averaging over a window: [`super::infeed::InfeedTime::of_step`].
    #[serde(default)]
    pub wall_seconds: f64,
}

/// One evaluation of the EMA weights, after the step it follows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    pub step: u64,
    pub stage: usize,
    pub image_size: usize,
    pub top1: f64,
    pub top5: f64,
    pub images: usize,
}

/// One executable obtained for the run (compiled, or loaded from the executable cache).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompileRecord {
    /// The stage it was obtained for (the eval step is logged with the stage count).
    pub stage: usize,
    pub module: String,
    pub reason: String,
    pub seconds: f64,
    pub instructions: usize,
}

/// Unreadable training images left out of one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SkippedRecord {
    pub epoch: u64,
    pub count: usize,
    pub first: String,
}

/// A train step skipped because its loss or update was not finite.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NonFiniteRecord {
    pub step: u64,
    pub stage: usize,
}

/// One line of `metrics.jsonl`: `{"event": "step", ...the record's fields}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Metric {
    Step(StepRecord),
    Compile(CompileRecord),
    Eval(EvalRecord),
    Stage(StageSummary),
    Skipped(SkippedRecord),
    Nonfinite(NonFiniteRecord),
}

impl Metric {
    /// The record an event leaves in the metrics log, if any.
    pub fn of(event: &Event) -> Option<Metric> {
        Some(match event {
            Event::Step { record, .. } => Metric::Step(record.clone()),
            Event::ExecutableReady { stage, compile } => Metric::Compile(CompileRecord {
                stage: *stage,
                module: compile.module.clone(),
                reason: format!("{:?}", compile.reason),
                seconds: compile.seconds,
                instructions: compile.instructions,
            }),
            Event::Evaluated(record) => Metric::Eval(record.clone()),
            Event::StageDone(summary) => Metric::Stage(summary.clone()),
            Event::Skipped(record) => Metric::Skipped(record.clone()),
            Event::NonFiniteSkipped(record) => Metric::Nonfinite(record.clone()),
            Event::Resumed { .. }
            | Event::CheckpointDamaged { .. }
            | Event::LockBroken { .. }
            | Event::HeadFollowsData { .. }
            | Event::Initialised { .. }
            | Event::Pipeline(_)
            | Event::CacheStoreFailed { .. }
            | Event::Stopped { .. } => return None,
        })
    }
}

/// The metrics log's name in a run directory.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// The run's `metrics.jsonl`, appended to as the run goes (and across resumptions).
pub struct MetricsLog(File);

impl MetricsLog {
    /// Opens the log for appending. A line a killed run left unfinished is ended first, so that
    /// it stays one bad line instead of swallowing the next record.
    pub fn open(path: &Path) -> Result<MetricsLog> {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        if !ends_with_newline_or_is_empty(&mut f)? {
            writeln!(f).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(MetricsLog(f))
    }
}

fn ends_with_newline_or_is_empty(f: &mut File) -> Result<bool> {
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut last = [0u8];
    f.seek(SeekFrom::Start(len - 1))?;
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

impl EventSink for MetricsLog {
    fn emit(&mut self, event: &Event) -> Result<()> {
        if let Some(metric) = Metric::of(event) {
            writeln!(self.0, "{}", serde_json::to_string(&metric)?)?;
        }
        Ok(())
    }
}

/// Sends every event to each sink in turn.
pub struct FanOut<'a>(pub Vec<&'a mut dyn EventSink>);

impl EventSink for FanOut<'_> {
    fn emit(&mut self, event: &Event) -> Result<()> {
        self.0.iter_mut().try_for_each(|sink| sink.emit(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_cut_short_by_a_kill_does_not_swallow_the_next_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, "{\"event\": \"step\", \"st").unwrap();
        let record = SkippedRecord {
            epoch: 1,
            count: 2,
            first: "x".into(),
        };
        MetricsLog::open(&path)
            .unwrap()
            .emit(&Event::Skipped(record.clone()))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let metric: Metric = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(metric, Metric::Skipped(record));
    }
}
