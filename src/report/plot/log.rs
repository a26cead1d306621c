//! Reading a run's `metrics.jsonl` into step-ordered series.
//!
//! A resumed run restarts from its newest checkpoint, so the steps between that checkpoint and
//! the interruption are logged twice; the later record is the one the final weights descend
//! from, so it replaces the earlier one. Events without a step (compiles, skipped images) are
//! kept in file order.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{bail, Context, Result};

use crate::storage::{Location, Store};
pub use crate::trainer::events::{
    CompileRecord, EvalRecord, NonFiniteRecord, SkippedRecord, StepRecord,
};
use crate::trainer::events::{Metric, METRICS_FILE};

/// A line that is not a metric: a write cut short by a crash, or an event this version does
/// not know. Such lines are left out of the report rather than failing it.
#[derive(Clone, Debug, PartialEq)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    pub error: String,
}

/// A run of consecutive steps trained at one progressive stage.
#[derive(Clone, Debug, PartialEq)]
pub struct StageSpan {
    pub stage: usize,
    pub image_size: usize,
    pub first_step: u64,
    pub last_step: u64,
    /// Steps logged in the span (equals `last_step - first_step + 1` unless steps are missing).
    pub steps: usize,
}

impl StageSpan {
    /// The step count when the stage began: its band on a step axis is `start()..=last_step`.
    pub fn start(&self) -> u64 {
        self.first_step.saturating_sub(1)
    }
}

/// The metrics of a run with resumed step ranges resolved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunLog {
    /// One point per step, in step order.
    pub steps: Vec<StepRecord>,
    /// One point per evaluated step, in step order.
    pub evals: Vec<EvalRecord>,
    /// In file order.
    pub compiles: Vec<CompileRecord>,
    /// In file order.
    pub skipped: Vec<SkippedRecord>,
    /// Steps skipped as not finite, in file order.
    pub nonfinite: Vec<NonFiniteRecord>,
    /// Step and eval records replaced by a later record of the same step.
    pub replaced: usize,
    pub bad_lines: Vec<BadLine>,
}

impl RunLog {
    /// Reads the `metrics.jsonl` of the run folder `run` (local or `gs://`); fails when it
    /// cannot be read or holds no training step.
    pub fn read(run: &Location) -> Result<RunLog> {
        let place = run.file(METRICS_FILE);
        let mut text = String::new();
        Store::open(run)
            .and_then(|store| store.read(METRICS_FILE))
            .map_err(anyhow::Error::from)
            .and_then(|mut reader| Ok(reader.read_to_string(&mut text)?))
            .with_context(|| format!("reading the metrics log {place}"))?;
        let log = RunLog::parse(&text);
        if log.steps.is_empty() {
            bail!(
                "{place} holds no training step ({} unreadable lines): nothing to report yet",
                log.bad_lines.len()
            );
        }
        Ok(log)
    }

    /// Parses the lines of a metrics log (blank lines are ignored).
    pub fn parse(text: &str) -> RunLog {
        let mut steps = BTreeMap::new();
        let mut evals = BTreeMap::new();
        let mut log = RunLog::default();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let metric = match serde_json::from_str::<Metric>(line) {
                Ok(m) => m,
                Err(e) => {
                    log.bad_lines.push(BadLine {
                        line: index + 1,
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            match metric {
                Metric::Step(point) => {
                    log.replaced += usize::from(steps.insert(point.step, point).is_some());
                }
                Metric::Eval(point) => {
                    log.replaced += usize::from(evals.insert(point.step, point).is_some());
                }
                Metric::Compile(record) => log.compiles.push(record),
                Metric::Skipped(record) => log.skipped.push(record),
                Metric::Nonfinite(record) => log.nonfinite.push(record),
                // Its counts cover only the part of a stage after a resumption; the step
                // records give the whole stage.
                Metric::Stage(_) => {}
            }
        }
        log.steps = steps.into_values().collect();
        log.evals = evals.into_values().collect();
        log
    }

    /// The stages in step order, as runs of consecutive steps with the same stage index.
    pub fn stages(&self) -> Vec<StageSpan> {
        let mut spans: Vec<StageSpan> = Vec::new();
        for p in &self.steps {
            match spans.last_mut() {
                Some(span) if span.stage == p.stage => {
                    span.last_step = p.step;
                    span.steps += 1;
                }
                _ => spans.push(StageSpan {
                    stage: p.stage,
                    image_size: p.image_size,
                    first_step: p.step,
                    last_step: p.step,
                    steps: 1,
                }),
            }
        }
        spans
    }

    /// The steps of one span.
    pub fn steps_of(&self, span: &StageSpan) -> &[StepRecord] {
        let first = self.steps.partition_point(|p| p.step < span.first_step);
        let end = self.steps.partition_point(|p| p.step <= span.last_step);
        &self.steps[first..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(step: u64, stage: usize, loss: f32) -> String {
        serde_json::to_string(&Metric::Step(StepRecord {
            step,
            stage,
            image_size: 8 + 4 * stage,
            loss,
            accuracy: 0.5,
            lr: 0.1,
            images_per_sec: 10.0,
            infeed_bound: 0.0,
            wall_seconds: 0.0,
        }))
        .unwrap()
    }

    #[test]
    fn a_resumed_step_range_keeps_the_later_records() {
        let compile = r#"{"event":"compile","stage":0,"module":"m","reason":"CacheMiss","seconds":1.5,"instructions":3}"#;
        let lines = [
            compile.to_string(),
            step(1, 0, 3.0),
            step(2, 0, 2.9),
            step(3, 1, 2.8),
            // Interrupted after step 3, resumed from the checkpoint at step 1.
            compile.replace("CacheMiss", "CacheHit"),
            step(2, 0, 2.5),
            step(3, 1, 2.4),
            step(4, 1, 2.3),
        ];
        let log = RunLog::parse(&lines.join("\n"));
        let losses: Vec<(u64, f32)> = log.steps.iter().map(|p| (p.step, p.loss)).collect();
        assert_eq!(losses, [(1, 3.0), (2, 2.5), (3, 2.4), (4, 2.3)]);
        assert_eq!(log.replaced, 2);
        let reasons: Vec<&str> = log.compiles.iter().map(|c| c.reason.as_str()).collect();
        assert_eq!(reasons, ["CacheMiss", "CacheHit"]);
        assert_eq!(
            log.stages(),
            [
                StageSpan {
                    stage: 0,
                    image_size: 8,
                    first_step: 1,
                    last_step: 2,
                    steps: 2
                },
                StageSpan {
                    stage: 1,
                    image_size: 12,
                    first_step: 3,
                    last_step: 4,
                    steps: 2
                },
            ]
        );
        assert_eq!(log.stages()[1].start(), 2);
    }

    #[test]
    fn unreadable_lines_are_reported_and_skipped() {
        let text = format!(
            "{}\n{{\"event\":\"step\",\"st\n\n{}\n",
            step(1, 0, 1.0),
            step(2, 0, 0.5)
        );
        let log = RunLog::parse(&text);
        assert_eq!(log.steps.len(), 2);
        assert_eq!(log.bad_lines.len(), 1);
        assert_eq!(log.bad_lines[0].line, 2);
    }

    #[test]
    fn a_log_without_steps_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(METRICS_FILE), "").unwrap();
        let err = RunLog::read(&dir.path().into()).unwrap_err().to_string();
        assert!(
            err.contains("metrics.jsonl") && err.contains("no training step"),
            "{err}"
        );
        let absent = dir.path().join("absent");
        let missing = format!("{:#}", RunLog::read(&absent.as_path().into()).unwrap_err());
        assert!(missing.contains("absent"), "{missing}");
    }
}
