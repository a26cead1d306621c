//! Draws a run's events: a progress bar on a terminal (plain lines every
//! [`PLAIN_PROGRESS_EVERY`] steps without one), and a line for each compile, evaluation, stage
//! and interruption. The progress shows the share of time the device waited for input
//! ("infeed") over the steps since the last plain line.

use anyhow::Result;
use effnetv2::trainer::events::{Event, EventSink};
use effnetv2::trainer::infeed::InfeedTime;
use indicatif::{ProgressBar, ProgressStyle};

/// Steps between plain progress lines when no terminal shows the progress bar.
const PLAIN_PROGRESS_EVERY: u64 = 100;

/// The terminal view of a training run.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// The time of the steps since the last plain progress line (a window of
    /// [`PLAIN_PROGRESS_EVERY`] steps).
    window: InfeedTime,
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            bar: None,
            window: InfeedTime::default(),
        }
    }

    /// The bar, created on the first step (when the total is known).
    fn bar(&mut self, position: u64, total: u64) -> &ProgressBar {
        self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(total).with_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} steps [{elapsed_precise}<{eta_precise}] {msg}",
                )
                .expect("a valid template"),
            );
            bar.set_position(position);
            bar
        })
    }

    /// Prints a line above the bar (or plainly when no terminal shows it).
    fn say(&self, line: String) {
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(line),
            _ => println!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl EventSink for Progress {
    fn emit(&mut self, event: &Event) -> Result<()> {
        match event {
            Event::Resumed { checkpoint, step } => {
                self.say(format!("resuming from {checkpoint} (step {step})"))
            }
            Event::HeadFollowsData { spec, data } => self.say(format!(
                "the data has {data} classes: the classifier has {data} outputs instead of the \
                 spec's {spec} (stored in the run's config.json)"
            )),
            Event::Initialised {
                from,
                loaded,
                new_head,
            } => self.say(match new_head {
                None => format!("starting from {from} ({loaded} variables)"),
                Some((pretrained, ours)) => format!(
                    "starting from {from} ({loaded} variables); its classifier has {pretrained} \
                     classes, this run {ours}: the classifier starts from a fresh draw"
                ),
            }),
            Event::Pipeline(pipeline) => self.say(format!("input pipeline: {pipeline}")),
            Event::LockBroken { lock, holder } => self.say(format!(
                "broke the run's lock {lock}, held by {holder} (no longer running)"
            )),
            Event::CheckpointDamaged { checkpoint, reason } => self.say(format!(
                "warning: not resuming from {checkpoint}, it is damaged ({reason}); trying the one \
                 before it"
            )),
            Event::ExecutableReady { stage, compile } => self.say(format!(
                "stage {stage}: {} ready ({:?}, {:.1} s)",
                compile.module, compile.reason, compile.seconds
            )),
            Event::CacheStoreFailed { module, error } => self.say(format!(
                "warning: could not store the executable of {module} in the cache: {error}"
            )),
            Event::Step {
                record: r,
                total_steps,
            } => {
                let step = &r.step;
                self.window += InfeedTime::of_step(r);
                let infeed = self.window.share().unwrap_or(0.0);
                let message = format!(
                    "stage {} {}px loss {:.3} acc {:.2} lr {:.4} {:.0} img/s infeed {:.0}%",
                    r.stage,
                    r.image_size,
                    r.loss,
                    r.accuracy,
                    r.lr,
                    r.images_per_sec,
                    100.0 * infeed
                );
                let bar = self.bar(*step, *total_steps);
                bar.set_position(*step);
                let hidden = bar.is_hidden();
                bar.set_message(message.clone());
                if step % PLAIN_PROGRESS_EVERY == 0 {
                    if hidden {
                        self.say(format!("step {step}/{total_steps} {message}"));
                    }
                    self.window = InfeedTime::default();
                }
            }
            Event::Skipped(s) => self.say(format!(
                "epoch {}: skipped {} unreadable images (first: {})",
                s.epoch, s.count, s.first
            )),
            Event::NonFiniteSkipped(r) => self.say(format!(
                "warning: step {} (stage {}) was not finite and was skipped",
                r.step, r.stage
            )),
            Event::Evaluated(_) => {}
            Event::StageDone(s) => self.say(format!(
                "stage {} done: {}px, {} steps, {:.0} img/s, infeed-bound {:.0}%, eval top-1 \
                 {:.2}% top-5 {:.2}%",
                s.stage,
                s.image_size,
                s.steps,
                s.images_per_sec,
                100.0 * s.infeed_bound,
                100.0 * s.top1,
                100.0 * s.top5
            )),
            Event::Stopped { step } => self.say(format!(
                "stopped at step {step} after writing a checkpoint; rerun with --resume to continue"
            )),
        }
        Ok(())
    }
}
