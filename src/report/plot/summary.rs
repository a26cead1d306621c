//! The text half of `effnetv2 report`: per-stage results read back from the metrics log.

use super::log::RunLog;
use crate::trainer::infeed::InfeedTime;

/// Per stage: image size, steps, mean images/s, the share of its training time the device
/// waited for input ("infeed", `-` for a log written before it was measured), the executables
/// it compiled (seconds and reason) and the evaluation that closed it; then what else the log
/// holds and the final accuracy.
pub fn summary(log: &RunLog) -> String {
    let spans = log.stages();
    let mut lines = vec![format!(
        "{} steps in {} stages",
        log.steps.len(),
        spans.len()
    )];
    if log.replaced > 0 {
        lines.push(format!(
            "{} records repeated by a resumed run: the later ones are used",
            log.replaced
        ));
    }
    lines.push("stage  image  steps  step range   img/s  infeed    top-1    top-5".to_string());
    for span in &spans {
        let points = log.steps_of(span);
        let images_per_sec =
            points.iter().map(|p| p.images_per_sec).sum::<f64>() / points.len() as f64;
        let infeed: InfeedTime = points.iter().map(InfeedTime::of_step).sum();
        let eval = log.evals.iter().rev().find(|e| e.stage == span.stage);
        lines.push(format!(
            "{:>5}  {:>5}  {:>5}  {:>10}  {:>6.0}  {:>6}  {:>7}  {:>7}",
            span.stage,
            format!("{}px", span.image_size),
            span.steps,
            format!("{}-{}", span.first_step, span.last_step),
            images_per_sec,
            infeed
                .share()
                .map_or_else(|| "-".to_string(), |f| format!("{:.0}%", 100.0 * f)),
            percent(eval.map(|e| e.top1)),
            percent(eval.map(|e| e.top5)),
        ));
        for c in log.compiles.iter().filter(|c| c.stage == span.stage) {
            lines.push(format!(
                "       compiled {} in {:.1} s ({})",
                c.module, c.seconds, c.reason
            ));
        }
    }
    let trained: Vec<usize> = spans.iter().map(|s| s.stage).collect();
    for c in log.compiles.iter().filter(|c| !trained.contains(&c.stage)) {
        lines.push(format!(
            "other: compiled {} in {:.1} s ({})",
            c.module, c.seconds, c.reason
        ));
    }
    for s in &log.skipped {
        lines.push(format!(
            "epoch {}: skipped {} unreadable images (first: {})",
            s.epoch, s.count, s.first
        ));
    }
    if let Some(first) = log.nonfinite.first() {
        lines.push(format!(
            "{} steps skipped as not finite (the first: step {} of stage {})",
            log.nonfinite.len(),
            first.step,
            first.stage
        ));
    }
    if let Some(bad) = log.bad_lines.first() {
        lines.push(format!(
            "{} unreadable log lines left out (line {}: {})",
            log.bad_lines.len(),
            bad.line,
            bad.error
        ));
    }
    lines.push(match log.evals.last() {
        Some(e) => {
            let last_step = log.steps.last().map_or(e.step, |p| p.step);
            let after = if e.step < last_step { format!(" ({} steps trained after it)", last_step - e.step) } else { String::new() };
            format!(
                "final accuracy (evaluation after step {} of stage {}, {} images at {}px): top-1 {}, top-5 {}{after}",
                e.step,
                e.stage,
                e.images,
                e.image_size,
                percent(Some(e.top1)),
                percent(Some(e.top5))
            )
        }
        None => "no evaluation logged yet".to_string(),
    });
    lines.join("\n")
}

fn percent(fraction: Option<f64>) -> String {
    fraction.map_or_else(|| "-".to_string(), |f| format!("{:.2}%", 100.0 * f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::plot::log::{CompileRecord, EvalRecord, StepRecord};

    fn step(step: u64, stage: usize, images_per_sec: f64) -> StepRecord {
        StepRecord {
            step,
            stage,
            image_size: 10 * (stage + 1),
            loss: 1.0,
            accuracy: 0.5,
            lr: 0.1,
            images_per_sec,
            infeed_bound: 0.0,
            wall_seconds: 0.0,
        }
    }

    /// A step whose call waited `infeed_bound` of `wall_seconds` for input.
    fn waited(record: StepRecord, infeed_bound: f64, wall_seconds: f64) -> StepRecord {
        StepRecord {
            infeed_bound,
            wall_seconds,
            ..record
        }
    }

    #[test]
    fn rows_hold_each_stage_and_the_last_evaluation() {
        let log = RunLog {
            steps: vec![
                waited(step(1, 0, 100.0), 0.9, 0.1),
                waited(step(2, 0, 200.0), 0.1, 0.3),
                step(3, 1, 50.0),
                step(4, 1, 70.0),
                step(5, 1, 90.0),
            ],
            evals: vec![
                EvalRecord {
                    step: 2,
                    stage: 0,
                    image_size: 30,
                    top1: 0.5,
                    top5: 0.75,
                    images: 100,
                },
                EvalRecord {
                    step: 4,
                    stage: 1,
                    image_size: 30,
                    top1: 0.625,
                    top5: 0.875,
                    images: 100,
                },
            ],
            compiles: vec![
                CompileRecord {
                    stage: 2,
                    module: "eval".into(),
                    reason: "CacheMiss".into(),
                    seconds: 4.0,
                    instructions: 1,
                },
                CompileRecord {
                    stage: 1,
                    module: "train_20".into(),
                    reason: "CacheHit".into(),
                    seconds: 0.3,
                    instructions: 1,
                },
            ],
            replaced: 3,
            ..RunLog::default()
        };
        let text = summary(&log);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "5 steps in 2 stages");
        assert!(lines[1].starts_with("3 records repeated"), "{text}");
        // Mean images/s of stage 0: (100 + 200) / 2; of stage 1: (50 + 70 + 90) / 3. Stage 0
        // waited 0.09 + 0.03 of 0.4 s for input; stage 1's records have no time (an old log).
        assert_eq!(
            lines[3].split_whitespace().collect::<Vec<_>>(),
            ["0", "10px", "2", "1-2", "150", "30%", "50.00%", "75.00%"]
        );
        assert_eq!(
            lines[4].split_whitespace().collect::<Vec<_>>(),
            ["1", "20px", "3", "3-5", "70", "-", "62.50%", "87.50%"]
        );
        assert_eq!(lines[5].trim(), "compiled train_20 in 0.3 s (CacheHit)");
        assert_eq!(lines[6], "other: compiled eval in 4.0 s (CacheMiss)");
        assert_eq!(
            lines[7],
            "final accuracy (evaluation after step 4 of stage 1, 100 images at 30px): top-1 62.50%, top-5 87.50% (1 steps trained after it)"
        );
    }
}
