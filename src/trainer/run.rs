//! The progressive-learning training run: stages in order, one compiled train step per
//! distinct image size (the next one compiled in the background while the current stage
//! trains), state kept on the device across stages, evaluation after each stage, checkpoints
//! and exact resumption. Everything it reports goes to an [`EventSink`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use super::agreement_check::{check_agreement, extremes, Shared};
use super::checkpoint;
use super::config::{CheckpointMeta, RunConfig};
use super::evaluate::{evaluate, EvalSet};
use super::events::{
    EvalRecord, Event, EventSink, FanOut, NonFiniteRecord, SkippedRecord, StageSummary, StepRecord,
};
use super::infeed::InfeedTime;
use super::init::{check_host_memory, initial_state};
use super::input::{loader_stage, train_feeds, Call, InputPipeline};
use super::plan::RunPlan;
use super::pretrained::{initialise_from, WeightSource};
use super::recipe::Recipe;
use super::run_dir::{self, RunDir};
use crate::data::{Cursor, FileShare, Loader, LoaderConfig, Shard, Source};
use crate::hlo::Literal;
use crate::model::{Model, ProgressiveStage};
use crate::program::context::{Context, StepExecutable};
use crate::program::device_state::DeviceState;
use crate::program::executables::CompileEvent;
use crate::runtime::RuntimeError;
use crate::step::state::StateLayout;
use crate::storage::Location;

/// The outcome of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSummary {
    pub stages: Vec<StageSummary>,
    pub final_top1: f64,
    pub final_top5: f64,
    pub total_seconds: f64,
    /// False when the run stopped early (interrupted or `stop_after`).
    pub completed: bool,
    /// Steps skipped because they were not finite (`skip_nonfinite`), in this invocation.
    #[serde(default)]
    pub nonfinite_skipped: u64,
}

impl RunSummary {
    fn new(
        stages: Vec<StageSummary>,
        completed: bool,
        nonfinite_skipped: u64,
        started: Instant,
    ) -> RunSummary {
        let last = stages.last();
        RunSummary {
            final_top1: last.map_or(f64::NAN, |s| s.top1),
            final_top5: last.map_or(f64::NAN, |s| s.top5),
            total_seconds: started.elapsed().as_secs_f64(),
            stages,
            completed,
            nonfinite_skipped,
        }
    }
}

/// Runs (or resumes) a training run, reporting to `sink`; returns its summary (also written to
/// `summary.json` in the run directory).
pub fn train(
    config: &RunConfig,
    resume: bool,
    interrupted: &AtomicBool,
    sink: &mut dyn EventSink,
) -> Result<RunSummary> {
    let started = Instant::now();
    config.validate()?;
    // The spec is checked before anything is opened; a missing device or plugin fails before
    // any data is read.
    let spec = config.model()?.spec;
    let spec_classes = spec.num_classes;
    // A policy the step cannot run on the device is refused here too.
    InputPipeline::for_spec(&spec)?
        .with_augmentation(config.augmentation)
        .step_input(config.augment_on, false)?;
    let ctx = Context::open_devices(config.plugin, config.plugin_path.as_deref(), config.devices)?;
    let mut input = HostInput::for_run(&ctx, config)?;
    let (train_source, eval_source) = config.data.open_share(input.files)?;
    let examples = input.agree_on_examples(&ctx, train_source.len())?;
    let config = &config.with_classes(train_source.num_classes())?;
    let model = config.model()?;
    let recipe = Recipe::for_run(config.recipe.as_deref(), &model.spec)?;
    let layout = StateLayout::new(&model);
    check_host_memory(&model, &layout)?;
    let store = run_dir::open(config)?;
    let run_dir = RunDir::prepare(&store, config, resume, ctx.placement().is_primary(), sink)?;
    let plan = RunPlan::new(
        config,
        &model,
        examples,
        ctx.backend(),
        ctx.placement().replicas(),
    )?;
    let mut metrics = run_dir.metrics_log()?;
    let mut tensorboard = run_dir.tensorboard_log()?;
    let mut events = FanOut(
        metrics
            .iter_mut()
            .map(|m| m as &mut dyn EventSink)
            .chain(tensorboard.iter_mut().map(|t| t as &mut dyn EventSink))
            .collect(),
    );
    events.0.push(sink);
    if model.spec.num_classes != spec_classes {
        events.emit(&Event::HeadFollowsData {
            spec: spec_classes,
            data: model.spec.num_classes,
        })?;
    }
    let start = run_dir.starting_point(&ctx, &model, &layout, config, &mut events)?;
    check_same_start(&ctx, config, start.step, examples)?;
    let pipeline = InputPipeline::for_spec(&model.spec)?.with_augmentation(config.augmentation);
    events.emit(&Event::Pipeline(pipeline))?;
    let loader = train_loader(
        &recipe,
        pipeline,
        &plan,
        config,
        &input,
        train_source,
        start.cursor,
    )?;
    let eval_set = EvalSet::for_run(config, &model, eval_source, recipe.augment, pipeline);
    let mut trainer = Trainer {
        ctx: &ctx,
        config,
        model: &model,
        plan: &plan,
        run_dir: &run_dir,
        state: start.state,
        step: start.step,
        last_checkpoint: start.checkpoint,
        nonfinite_skipped: 0,
        loader,
        eval_set,
        events: &mut events,
        interrupted,
        ready: HashMap::new(),
    };
    let (stages, completed) = std::thread::scope(|scope| trainer.run(scope))?;
    let summary = RunSummary::new(stages, completed, trainer.nonfinite_skipped, started);
    drop(trainer);
    drop(events);
    run_dir.finish(&summary)?;
    Ok(summary)
}

/// Stops unless every replica of the run (on every host) starts at the same step, with the same
/// options and the same number of training examples.
fn check_same_start(ctx: &Context, config: &RunConfig, step: u64, examples: usize) -> Result<()> {
    check_agreement(
        ctx,
        &[
            Shared {
                what: "starting step",
                value: step as i64,
            },
            Shared {
                what: "run configuration (a digest of the options)",
                value: config.shared_fingerprint()?,
            },
            Shared {
                what: "number of training examples",
                value: examples as i64,
            },
        ],
    )
}

/// How this host reads the training data. On one host, or when every host reads the whole data
/// set (folders, zip shards), it takes its replicas' parts of every global batch. When the
/// hosts of a slice split TFRecord shards by file, each reads whole local batches (its
/// replicas' parts, `batch * local / replicas` examples) from its own files only; the hosts
/// then hold different numbers of examples, and each ends its epochs after the smallest host's
/// count, so that every host runs the same number of steps per epoch (the rest of a larger
/// host's files waits for the next epoch's order, as with `drop_remainder`).
struct HostInput {
    /// The files this host opens.
    files: FileShare,
    /// Examples per loader batch and the part of it this host delivers.
    batch: usize,
    shard: Shard,
    /// The seed of this host's loader: the run's, mixed with the host index when hosts read
    /// different files (else the hosts would draw the same augmentation for the same positions).
    seed: u64,
    /// The examples each host's epoch visits when hosts split the files (agreed by all hosts).
    epoch_cap: Option<usize>,
}

impl HostInput {
    fn for_run(ctx: &Context, config: &RunConfig) -> Result<HostInput> {
        let placement = ctx.placement();
        let files = placement.file_share();
        if !config.data.splits_by_file() || files.hosts == 1 {
            return Ok(HostInput {
                files: FileShare::ALL,
                batch: config.batch,
                shard: placement.shard(),
                seed: config.seed,
                epoch_cap: None,
            });
        }
        let local = placement.local_replicas().len();
        if !config.batch.is_multiple_of(placement.replicas()) {
            bail!(
                "--batch {} does not split into {} equal replica shares",
                config.batch,
                placement.replicas()
            );
        }
        Ok(HostInput {
            files,
            batch: config.batch / placement.replicas() * local,
            shard: Shard::all(local),
            seed: config.seed ^ (files.host as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            epoch_cap: None,
        })
    }

    fn splits_files(&self) -> bool {
        self.files != FileShare::ALL
    }

    /// The training examples of the run, as one global count every host agrees on: this
    /// host's `local` count, or, when hosts split the files, the smallest host's count (in
    /// whole local batches: the epoch cap) times the hosts.
    fn agree_on_examples(&mut self, ctx: &Context, local: usize) -> Result<usize> {
        if !self.splits_files() {
            return Ok(local);
        }
        let (lowest, _) = extremes(ctx, vec![vec![local as i64]; ctx.local_devices()])?;
        let cap = lowest[0] as usize / self.batch * self.batch;
        if cap == 0 {
            bail!(
                "a host of this run holds {} training examples in its TFRecord files, fewer than \
                 its part of a batch ({}): use fewer hosts or more data",
                lowest[0],
                self.batch
            );
        }
        self.epoch_cap = Some(cap);
        Ok(cap * self.files.hosts)
    }
}

/// The training loader of this host's part of every batch ([`HostInput`]), positioned at
/// `cursor`, with the model's pipeline and the first stage's augmentation.
fn train_loader(
    recipe: &Recipe,
    pipeline: InputPipeline,
    plan: &RunPlan,
    config: &RunConfig,
    input: &HostInput,
    source: Arc<dyn Source>,
    cursor: Cursor,
) -> Result<Loader> {
    let mut loader = Loader::new(
        source,
        LoaderConfig {
            shard: input.shard,
            // Two calls' worth, so the next call's batches are assembled during this one.
            queue_depth: 4.max(2 * config.steps_per_call),
            settings: recipe.augment,
            augment_on: config.augment_on,
            ..pipeline.loader_config(
                input.batch,
                loader_stage(&plan.stages[0]),
                input.seed,
                config.workers,
            )
        },
    )?;
    if let Some(cap) = input.epoch_cap {
        loader.cap_epoch(cap)?;
    }
    loader.resume(cursor)?;
    Ok(loader)
}

/// Where a run starts: its state on the device, the step, the data cursor and the checkpoint
/// they come from.
struct StartingPoint {
    state: DeviceState,
    step: u64,
    cursor: Cursor,
    checkpoint: Option<Location>,
}

impl RunDir<'_> {
    /// The state to start from: the newest readable checkpoint's when resuming (each damaged
    /// newer one reported and passed over), fresh otherwise.
    fn starting_point(
        &self,
        ctx: &Context,
        model: &Model,
        layout: &StateLayout,
        config: &RunConfig,
        events: &mut dyn EventSink,
    ) -> Result<StartingPoint> {
        if self.resume_from.is_empty() {
            let mut state = initial_state(layout, config.seed);
            if let Some(path) = &config.init {
                initialise_from(&WeightSource::at(path)?, model, layout, &mut state, events)?;
            }
            let state = DeviceState::upload(ctx, layout, &state)?;
            return Ok(StartingPoint {
                state,
                step: 0,
                cursor: Cursor::default(),
                checkpoint: None,
            });
        }
        let expected = || layout.entries().iter().map(|e| (e.name.as_str(), &e.shape));
        for dir in &self.resume_from {
            let (tensors, meta): (Vec<Literal>, CheckpointMeta) =
                match checkpoint::load(dir, expected()) {
                    Ok(loaded) => loaded,
                    Err(error) => match error.downcast::<checkpoint::Damaged>() {
                        Ok(damaged) => {
                            events.emit(&Event::CheckpointDamaged {
                                checkpoint: dir.clone(),
                                reason: damaged.reason,
                            })?;
                            continue;
                        }
                        Err(other) => return Err(other),
                    },
                };
            config.check_resumable(&meta.config)?;
            events.emit(&Event::Resumed {
                checkpoint: dir.clone(),
                step: meta.step,
            })?;
            return Ok(StartingPoint {
                state: DeviceState::upload(ctx, layout, &tensors)?,
                step: meta.step,
                cursor: meta.cursor,
                checkpoint: Some(dir.clone()),
            });
        }
        bail!(
            "cannot resume: every checkpoint of {} is damaged",
            config.out.display()
        )
    }
}

/// A train-step compile running in the background, for one image size.
type PendingCompile<'scope> = (
    usize,
    ScopedJoinHandle<'scope, Result<(StepExecutable, CompileEvent)>>,
);

/// The run loop's state.
struct Trainer<'r, 'e> {
    ctx: &'r Context,
    config: &'r RunConfig,
    model: &'r Model,
    plan: &'r RunPlan,
    run_dir: &'r RunDir<'r>,
    state: DeviceState,
    step: u64,
    /// The newest checkpoint written or resumed from, named when the run fails.
    last_checkpoint: Option<Location>,
    /// Non-finite steps skipped so far (`skip_nonfinite`).
    nonfinite_skipped: u64,
    loader: Loader,
    eval_set: EvalSet,
    events: &'r mut FanOut<'e>,
    interrupted: &'r AtomicBool,
    /// Train-step executables by image size.
    ready: HashMap<usize, Arc<StepExecutable>>,
}

/// What a train-step call leaves to its stage: the data cursor after it and the seconds the
/// device waited for its input.
struct CallEnd {
    cursor: Cursor,
    waiting: f64,
}

/// How a stage's training loop ended.
enum StageEnd {
    /// The stage's last step is done; `cursor` is the data position after it.
    Finished {
        steps: u64,
        /// The training loop's wall time and the part of it the device waited for input.
        time: InfeedTime,
        cursor: Cursor,
    },
    Stopped,
}

impl<'r> Trainer<'r, '_> {
    /// Trains every stage not yet done; returns their summaries and whether the run completed.
    fn run<'scope>(&mut self, scope: &'scope Scope<'scope, '_>) -> Result<(Vec<StageSummary>, bool)>
    where
        'r: 'scope,
    {
        let (eval_exe, compile) = self
            .ctx
            .compile(&self.plan.eval_graph().build(self.model)?)?;
        self.executable_ready(self.plan.stages.len(), compile)?;
        let mut pending: Option<PendingCompile<'scope>> = None;
        let mut summaries = Vec::new();
        for stage in &self.plan.stages {
            if self.step >= stage.steps.end {
                continue;
            }
            let stage_start = Instant::now();
            let (exe, compile_seconds) = self.executable_for(stage, &mut pending)?;
            if pending.is_none() {
                pending = self.compile_next(scope, stage);
            }
            let StageEnd::Finished {
                steps,
                time,
                cursor,
            } = self.train_stage(stage, &exe)?
            else {
                return Ok((summaries, false));
            };
            let accuracy = evaluate(self.ctx, &eval_exe, &self.state.ema(), &self.eval_set)?;
            self.events.emit(&Event::Evaluated(EvalRecord {
                step: self.step,
                stage: stage.index,
                image_size: self.eval_set.image_size,
                top1: accuracy.top1,
                top5: accuracy.top5,
                images: accuracy.examples,
            }))?;
            let summary = StageSummary {
                stage: stage.index,
                image_size: stage.image_size,
                steps,
                seconds: stage_start.elapsed().as_secs_f64(),
                images_per_sec: steps as f64 * self.config.batch as f64 / time.wall,
                infeed_bound: time.share().unwrap_or(0.0),
                compile_seconds,
                top1: accuracy.top1,
                top5: accuracy.top5,
                randaug: stage.randaug_magnitude.unwrap_or(0.0),
                mixup: stage.mixup_alpha,
                cutmix: stage.cutmix_alpha,
                dropout: stage.dropout,
            };
            // After the evaluation: a run resumed from this checkpoint never skips it.
            self.checkpoint(cursor)?;
            self.events.emit(&Event::StageDone(summary.clone()))?;
            summaries.push(summary);
            if self.stop_requested() && self.step < self.plan.total_steps {
                self.events.emit(&Event::Stopped { step: self.step })?;
                return Ok((summaries, false));
            }
        }
        Ok((summaries, true))
    }

    /// Whether the run should stop at the next checkpoint: interrupted, or at `stop_after`.
    fn stop_requested(&self) -> bool {
        self.config.stop_after.is_some_and(|s| self.step >= s)
            || self.interrupted.load(Ordering::SeqCst)
    }

    /// Writes a checkpoint of the current step, with the data cursor after it.
    fn checkpoint(&mut self, cursor: Cursor) -> Result<()> {
        if let Some(dir) = self
            .run_dir
            .save(&self.state, self.step, cursor, self.config)?
        {
            self.last_checkpoint = Some(dir);
        }
        Ok(())
    }

    /// Reports an executable that is ready (and a cache that could not keep it).
    fn executable_ready(&mut self, stage: usize, compile: CompileEvent) -> Result<()> {
        if let Some(error) = &compile.store_error {
            self.events.emit(&Event::CacheStoreFailed {
                module: compile.module.clone(),
                error: error.clone(),
            })?;
        }
        self.events.emit(&Event::ExecutableReady { stage, compile })
    }

    /// The stage's train step: already compiled, compiled in the background (`pending`, taken
    /// when it is this stage's), or compiled now. Returns it and the seconds its compile took.
    fn executable_for(
        &mut self,
        stage: &ProgressiveStage,
        pending: &mut Option<PendingCompile<'_>>,
    ) -> Result<(Arc<StepExecutable>, f64)> {
        if let Some(exe) = self.ready.get(&stage.image_size) {
            return Ok((exe.clone(), 0.0));
        }
        let background = pending.take_if(|(size, _)| *size == stage.image_size);
        let (exe, compile) = match background {
            Some((_, handle)) => handle.join().expect("the compile thread does not panic")?,
            None => self
                .ctx
                .compile(&self.plan.train_graph(stage.image_size).build(self.model)?)?,
        };
        let seconds = compile.seconds;
        self.executable_ready(stage.index, compile)?;
        let exe = Arc::new(exe);
        self.ready.insert(stage.image_size, exe.clone());
        Ok((exe, seconds))
    }

    /// Starts compiling the next stage size not compiled yet, in the background.
    fn compile_next<'scope>(
        &self,
        scope: &'scope Scope<'scope, '_>,
        current: &ProgressiveStage,
    ) -> Option<PendingCompile<'scope>>
    where
        'r: 'scope,
    {
        let next = self.plan.stages[current.index + 1..].iter().find(|s| {
            s.image_size != current.image_size && !self.ready.contains_key(&s.image_size)
        })?;
        let (ctx, model) = (self.ctx, self.model);
        let graph = self.plan.train_graph(next.image_size).clone();
        let handle = scope.spawn(move || ctx.compile(&graph.build(model)?));
        Some((next.image_size, handle))
    }

    /// Trains the stage's remaining steps (at least one), checkpointing as configured but for
    /// the stage's end, which is checkpointed after its evaluation.
    fn train_stage(&mut self, stage: &ProgressiveStage, exe: &StepExecutable) -> Result<StageEnd> {
        self.loader.set_stage(loader_stage(stage))?;
        let first_step = self.step;
        let start = Instant::now();
        let mut waiting = 0.0;
        loop {
            let call = self.train_call(stage, exe, self.call_length(stage))?;
            waiting += call.waiting;
            let cursor = call.cursor;
            if self.step == stage.steps.end {
                return Ok(StageEnd::Finished {
                    steps: self.step - first_step,
                    time: InfeedTime {
                        waiting,
                        wall: start.elapsed().as_secs_f64(),
                    },
                    cursor,
                });
            }
            let stop = self.stop_requested();
            if stop || self.step.is_multiple_of(self.config.checkpoint_every) {
                self.checkpoint(cursor)?;
            }
            if stop {
                self.events.emit(&Event::Stopped { step: self.step })?;
                return Ok(StageEnd::Stopped);
            }
        }
    }

    /// How many steps the next call trains: up to the graph's K, never past the end of the
    /// stage, the next checkpoint or `stop_after`, so those fall between calls.
    fn call_length(&self, stage: &ProgressiveStage) -> u64 {
        let every = self.config.checkpoint_every;
        let mut n = (self.config.steps_per_call as u64)
            .min(stage.steps.end - self.step)
            .min(every - self.step % every);
        if let Some(stop) = self.config.stop_after.filter(|&s| s > self.step) {
            n = n.min(stop - self.step);
        }
        n.max(1)
    }

    /// `steps` train steps in one call on the next batches; returns the data cursor after them
    /// and how long the device waited for their input.
    fn train_call(
        &mut self,
        stage: &ProgressiveStage,
        exe: &StepExecutable,
        steps: u64,
    ) -> Result<CallEnd> {
        // The previous call's losses were read back: no step is in flight from here until the
        // feeds are on the device (see `super::infeed`).
        let called = Instant::now();
        let batches = (0..steps)
            .map(|_| Ok(self.loader.next().context("the training loader ended")??))
            .collect::<Result<Vec<_>>>()?;
        let rates: Vec<f32> = (0..steps)
            .map(|i| self.plan.lr.at(self.step + i) as f32)
            .collect();
        let call = Call {
            batches: &batches,
            learning_rates: &rates,
            dropout: stage.dropout as f32,
            slots: self.config.steps_per_call,
        };
        let feeds = train_feeds(&call, self.state.replicas(), self.plan.mixes_on_device)?
            .into_iter()
            .enumerate()
            .map(|(r, feed)| self.ctx.upload_named_to(r, feed))
            .collect::<Result<Vec<_>>>()?;
        let waiting = called.elapsed().as_secs_f64();
        let t = Instant::now();
        let outcomes = self
            .state
            .step(exe, &feeds)
            .map_err(|e| self.step_failed(e, stage))?;
        let seconds = t.elapsed().as_secs_f64();
        let time = InfeedTime {
            waiting,
            wall: called.elapsed().as_secs_f64(),
        };
        for (i, (outcome, batch)) in outcomes.iter().zip(&batches).enumerate() {
            self.step += 1;
            if !outcome.loss.is_finite() {
                self.nonfinite(outcome.loss, stage)?;
                continue;
            }
            let record = StepRecord {
                step: self.step,
                stage: stage.index,
                image_size: stage.image_size,
                loss: outcome.loss,
                accuracy: outcome.correct as f32 / self.config.batch as f32,
                lr: f64::from(rates[i]),
                images_per_sec: (steps as usize * self.config.batch) as f64 / seconds,
                infeed_bound: time.share().unwrap_or(0.0),
                wall_seconds: time.wall / steps as f64,
            };
            self.events.emit(&Event::Step {
                record,
                total_steps: self.plan.total_steps,
            })?;
            if batch.end_of_epoch {
                self.report_skipped()?;
            }
        }
        Ok(CallEnd {
            cursor: batches.last().expect("a call has a batch").next,
            waiting,
        })
    }

    /// A step that was not finite: skipped and reported with `skip_nonfinite`, else the end of
    /// the run, with the checkpoint to go back to.
    fn nonfinite(&mut self, loss: f32, stage: &ProgressiveStage) -> Result<()> {
        if self.config.skip_nonfinite {
            self.nonfinite_skipped += 1;
            return self.events.emit(&Event::NonFiniteSkipped(NonFiniteRecord {
                step: self.step,
                stage: stage.index,
            }));
        }
        let back = match &self.last_checkpoint {
            Some(dir) => format!(
                "the last good checkpoint is {dir} (--resume continues from it; a lower --lr may \
                 help)"
            ),
            None => "no checkpoint was written yet".into(),
        };
        bail!(
            "the loss became {loss} at step {} (stage {}, {} px): stopped without writing a \
             checkpoint; {back}; --skip-nonfinite skips such steps instead",
            self.step,
            stage.index,
            stage.image_size
        )
    }

    /// Names the graph and batch of a train step that failed to run, and says so when the
    /// device ran out of memory.
    fn step_failed(&self, error: anyhow::Error, stage: &ProgressiveStage) -> anyhow::Error {
        let per_device = self.config.batch / self.state.replicas().max(1);
        let what = format!(
            "the train step at {} px (batch {} per device, {} steps per call) failed",
            stage.image_size, per_device, self.config.steps_per_call
        );
        if RuntimeError::out_of_memory_in(&error) {
            error.context(format!(
                "{what}: the device is out of memory (the plugin's report follows); lower --batch"
            ))
        } else {
            error.context(what)
        }
    }

    /// Reports the unreadable examples of the epoch that just ended, if any.
    fn report_skipped(&mut self) -> Result<()> {
        let Some(report) = self
            .loader
            .last_epoch_report()
            .filter(|r| !r.skipped.is_empty())
        else {
            return Ok(());
        };
        self.events.emit(&Event::Skipped(SkippedRecord {
            epoch: report.epoch,
            count: report.skipped.len(),
            first: report.skipped[0].reason.clone(),
        }))
    }
}
