//! The progressive-learning training run: stages in order, one compiled train step per
//! distinct image size (the next one compiled in the background while the current stage
//! trains), state kept on the device across stages, evaluation after each stage, checkpoints,
//! a JSONL metrics log and exact resumption.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use super::checkpoint;
use super::data::{upload_eval_batch, upload_train_batch, DataSpec};
use super::device_state::DeviceState;
use super::executables::{CompileEvent, ExecutableCache};
use super::init::initial_state;
use crate::data::{self, AugmentSettings, Cursor, EvalConfig, Loader, LoaderConfig, Source};
use crate::hlo::Literal;
use crate::model::graph::Lowering;
use crate::model::{load_spec, Model, ScheduleVariant};
use crate::nn::DepthwiseImpl;
use crate::runtime::hardware;
use crate::runtime::provision::{self, PluginKind};
use crate::runtime::{
    Arg, Buffer, Client, ClientOptions, CompileOptions, Device, LoadedExecutable, Plugin,
};
use crate::train::lr::{scaled_lr, Decay, LrSchedule};
use crate::train::state::StateLayout;
use crate::train::step::{eval_step_module, train_step_module, Precision, StepConfig};

/// Steps between plain progress lines when no terminal shows the progress bar.
const PLAIN_PROGRESS_EVERY: u64 = 100;

/// Everything that defines a training run (written to `config.json` in the run directory).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// A built-in spec name (`tiny`, `s`, ...) or a path to a spec JSON file.
    pub model: String,
    pub plugin: PluginKind,
    /// An explicit plugin library (otherwise found or installed by kind).
    pub plugin_path: Option<PathBuf>,
    pub data: DataSpec,
    pub batch: usize,
    pub epochs: f64,
    /// Number of progressive stages (`None`: the spec's).
    pub stages: Option<usize>,
    pub schedule: ScheduleVariant,
    pub precision: Precision,
    pub seed: u64,
    /// Base learning rate for batch 256 (scaled linearly with the batch size).
    pub lr_base: f64,
    pub warmup_epochs: f64,
    pub decay: Decay,
    pub eval_batch: usize,
    pub workers: usize,
    /// Write a checkpoint every this many steps (and at the end of every stage).
    pub checkpoint_every: u64,
    /// Checkpoints kept.
    pub keep_checkpoints: usize,
    /// Stop (after writing a checkpoint) once this many steps are done: a deliberate interruption,
    /// used to test resumption.
    pub stop_after: Option<u64>,
    /// Evaluate on at most this many test images (`None`: all).
    pub eval_limit: Option<usize>,
    pub out: PathBuf,
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Metric {
    Step {
        step: u64,
        stage: usize,
        image_size: usize,
        loss: f32,
        accuracy: f32,
        lr: f64,
        images_per_sec: f64,
    },
    Compile {
        stage: usize,
        module: String,
        reason: String,
        seconds: f64,
        instructions: usize,
    },
    Eval {
        step: u64,
        stage: usize,
        image_size: usize,
        top1: f64,
        top5: f64,
        images: usize,
    },
    Stage {
        stage: usize,
        image_size: usize,
        steps: u64,
        seconds: f64,
        images_per_sec: f64,
        randaug: f64,
        mixup: f64,
        cutmix: f64,
        dropout: f64,
    },
    Skipped {
        epoch: u64,
        count: usize,
        first: String,
    },
}

/// Checkpoint metadata: where the run stands.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub step: u64,
    pub cursor: Cursor,
    pub config: RunConfig,
}

/// Per-stage results for the final summary.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StageSummary {
    pub stage: usize,
    pub image_size: usize,
    pub steps: u64,
    pub seconds: f64,
    pub images_per_sec: f64,
    pub compile_seconds: f64,
    pub top1: f64,
    pub top5: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSummary {
    pub stages: Vec<StageSummary>,
    pub final_top1: f64,
    pub final_top5: f64,
    pub total_seconds: f64,
    /// False when the run stopped early (interrupted or `stop_after`).
    pub completed: bool,
}

/// Loads the plugin of a run and creates a one-device client.
pub fn open_client(kind: PluginKind, explicit: Option<&Path>) -> Result<Client> {
    hardware::check_device_present(kind)?;
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => provision::resolve(kind)?,
    };
    let plugin =
        Plugin::load(&path).with_context(|| format!("loading PJRT plugin {}", path.display()))?;
    let options = if matches!(kind, PluginKind::Cpu | PluginKind::CpuJax) {
        ClientOptions::new().cpu_device_count(1)
    } else {
        ClientOptions::new()
    };
    Ok(Client::new(plugin, &options)?)
}

/// The depthwise lowering that runs fastest on the client's platform.
pub fn depthwise_for(client: &Client) -> DepthwiseImpl {
    if client.platform_name().eq_ignore_ascii_case("cpu") {
        DepthwiseImpl::ShiftedSum
    } else {
        DepthwiseImpl::GroupedConvolution
    }
}

/// A metrics log appended to as the run goes (and across resumptions).
struct MetricsLog(File);

impl MetricsLog {
    fn open(path: &Path) -> Result<MetricsLog> {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(MetricsLog(f))
    }

    fn write(&mut self, m: &Metric) -> Result<()> {
        writeln!(self.0, "{}", serde_json::to_string(m)?)?;
        Ok(())
    }
}

/// The executables of a run, compiled once per distinct shape.
struct Executables<'c> {
    client: &'c Client,
    cache: ExecutableCache,
    by_size: HashMap<usize, Arc<LoadedExecutable>>,
}

impl Executables<'_> {
    fn compile(&self, model: &Model, cfg: &StepConfig) -> Result<(LoadedExecutable, CompileEvent)> {
        let module = train_step_module(model, cfg)?;
        self.cache
            .get(self.client, &module, &CompileOptions::default())
    }
}

/// A train-step compile running in the background: the image size and its compile thread.
type PendingCompile<'scope> =
    std::thread::ScopedJoinHandle<'scope, Result<(LoadedExecutable, CompileEvent)>>;

/// Runs (or resumes) a training run; returns its summary.
pub fn train(config: &RunConfig, resume: bool, interrupted: &AtomicBool) -> Result<RunSummary> {
    let started = Instant::now();
    // First, so that a missing device or plugin fails before any data is read.
    let client = open_client(config.plugin, config.plugin_path.as_deref())?;
    fs::create_dir_all(&config.out)
        .with_context(|| format!("creating run directory {}", config.out.display()))?;
    let ckpt_dir = config.out.join("checkpoints");
    let resumed = if resume {
        checkpoint::latest(&ckpt_dir)?
    } else {
        None
    };
    if !resume && checkpoint::latest(&ckpt_dir)?.is_some() {
        bail!("{} already holds checkpoints: pass --resume to continue that run, or choose another --out", config.out.display());
    }
    fs::write(
        config.out.join("config.json"),
        serde_json::to_string_pretty(config)?,
    )?;

    let mut spec = load_spec(&config.model)?;
    if let Some(n) = config.stages {
        spec.progressive.stages = n;
    }
    let model = Model::new(spec)?;
    let layout = StateLayout::new(&model);
    let (train_source, eval_source) = config.data.open()?;
    check_classes(&model, train_source.as_ref())?;
    let steps_per_epoch = (train_source.len() / config.batch) as u64;
    if steps_per_epoch == 0 {
        bail!(
            "--batch {} is larger than the {} training examples",
            config.batch,
            train_source.len()
        );
    }
    let total_steps =
        ((config.epochs * steps_per_epoch as f64) as u64).max(model.spec.progressive.stages as u64);
    let stages = model
        .spec
        .progressive_stages(config.schedule, total_steps)?;
    let lr = LrSchedule {
        peak: scaled_lr(config.lr_base, config.batch as u64),
        steps_per_epoch: steps_per_epoch as f64,
        warmup_epochs: config.warmup_epochs,
        total_steps,
        decay: config.decay,
        min_lr: 0.0,
    };

    let device = client
        .addressable_devices()
        .first()
        .context("the plugin exposes no device")?;
    let mut log = MetricsLog::open(&config.out.join("metrics.jsonl"))?;

    let (mut state, mut step, cursor) = match &resumed {
        Some(dir) => {
            let expected = layout.entries().iter().map(|e| (e.name.as_str(), &e.shape));
            let (tensors, meta): (Vec<Literal>, CheckpointMeta) = checkpoint::load(dir, expected)?;
            check_resumable(&meta.config, config)?;
            println!("resuming from {} (step {})", dir.display(), meta.step);
            (
                DeviceState::upload(&client, device, &tensors)?,
                meta.step,
                meta.cursor,
            )
        }
        None => (
            DeviceState::upload(&client, device, &initial_state(&layout, config.seed))?,
            0,
            Cursor::default(),
        ),
    };

    let first = &stages[0];
    let mut loader = Loader::new(
        train_source.clone(),
        LoaderConfig {
            batch: config.batch,
            image_size: first.image_size,
            magnitude: first.randaug_magnitude.unwrap_or(0.0) as f32,
            ra_layers: if first.randaug_magnitude.is_some() {
                data::RANDAUGMENT_LAYERS
            } else {
                0
            },
            mixup: first.mixup_alpha as f32,
            cutmix: first.cutmix_alpha as f32,
            seed: config.seed,
            workers: config.workers,
            queue_depth: 4,
            drop_last: true,
            shuffle: true,
            settings: model.spec.augment_settings,
        },
    )?;
    loader.resume(cursor)?;

    let exes = Executables {
        client: &client,
        cache: ExecutableCache::new(Some(crate::data::cache_dir()?.join("executables"))),
        by_size: HashMap::new(),
    };
    let depthwise = depthwise_for(&client);
    let lowering = Lowering {
        compute: config.precision.compute_type(),
        depthwise,
    };
    let eval_module = eval_step_module(
        &model,
        config.eval_batch as i64,
        model.spec.image_size.eval as i64,
        lowering,
    )?;
    let (eval_exe, eval_event) =
        exes.cache
            .get(&client, &eval_module, &CompileOptions::default())?;
    log_compile(&mut log, stages.len(), &eval_event)?;

    let step_config = |image_size: usize| {
        StepConfig::official(
            config.batch as i64,
            image_size as i64,
            config.precision,
            depthwise,
        )
    };
    let bar = ProgressBar::new(total_steps).with_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .expect("a valid template"),
    );
    bar.set_position(step);
    let mut summaries = Vec::new();
    let mut exes = exes;
    let mut completed = true;
    std::thread::scope(|scope| -> Result<()> {
        let mut pending: Option<(usize, PendingCompile)> = None;
        for (si, stage) in stages.iter().enumerate() {
            if step >= stage.steps.end {
                continue;
            }
            let stage_start = Instant::now();
            let mut compile_seconds = 0.0;
            if !exes.by_size.contains_key(&stage.image_size) {
                let (exe, event) = match pending.take() {
                    Some((size, handle)) if size == stage.image_size => {
                        handle.join().expect("the compile thread does not panic")?
                    }
                    _ => exes.compile(&model, &step_config(stage.image_size))?,
                };
                compile_seconds += event.seconds;
                log_compile(&mut log, si, &event)?;
                say(
                    &bar,
                    format!(
                        "stage {si}: {} ready ({:?}, {:.1} s)",
                        event.module, event.reason, event.seconds
                    ),
                );
                exes.by_size.insert(stage.image_size, Arc::new(exe));
            }
            // Compile the next distinct shape while this stage trains.
            if let Some(next) = stages[si + 1..].iter().find(|s| {
                !exes.by_size.contains_key(&s.image_size) && s.image_size != stage.image_size
            }) {
                if pending.as_ref().map(|(s, _)| *s) != Some(next.image_size) {
                    let cfg = step_config(next.image_size);
                    let (model, client, cache) = (&model, exes.client, exes.cache.clone());
                    pending = Some((
                        next.image_size,
                        scope.spawn(move || {
                            cache.get(
                                client,
                                &train_step_module(model, &cfg)?,
                                &CompileOptions::default(),
                            )
                        }),
                    ));
                }
            }
            let exe = exes.by_size[&stage.image_size].clone();
            loader.set_stage(data::Stage {
                image_size: stage.image_size,
                magnitude: stage.randaug_magnitude.unwrap_or(0.0) as f32,
                mixup: stage.mixup_alpha as f32,
                cutmix: stage.cutmix_alpha as f32,
            })?;
            let steps_before = step;
            let train_start = Instant::now();
            while step < stage.steps.end {
                let batch = loader.next().context("the training loader ended")??;
                let rate = lr.at(step);
                let mut inputs = upload_train_batch(&client, device, &batch)?;
                inputs.push(client.buffer_from_literal(&Literal::scalar(rate as f32), device)?);
                inputs.push(
                    client.buffer_from_literal(&Literal::scalar(stage.dropout as f32), device)?,
                );
                let t = Instant::now();
                let outcome = state.step(&exe, &inputs)?;
                step += 1;
                let ips = batch.len() as f64 / t.elapsed().as_secs_f64();
                if !outcome.loss.is_finite() {
                    bail!(
                        "the loss became {} at step {step}: lower the learning rate (--lr)",
                        outcome.loss
                    );
                }
                let accuracy = outcome.correct as f32 / batch.len() as f32;
                log.write(&Metric::Step {
                    step,
                    stage: si,
                    image_size: stage.image_size,
                    loss: outcome.loss,
                    accuracy,
                    lr: rate,
                    images_per_sec: ips,
                })?;
                bar.set_position(step);
                let message = format!(
                    "stage {si} {}px loss {:.3} acc {:.2} lr {:.4} {ips:.0} img/s",
                    stage.image_size, outcome.loss, accuracy, rate
                );
                // Without a terminal (CI, a log file) the bar is hidden: print a line now and then.
                if bar.is_hidden() && step % PLAIN_PROGRESS_EVERY == 0 {
                    say(&bar, format!("step {step}/{total_steps} {message}"));
                }
                bar.set_message(message);
                if batch.end_of_epoch {
                    if let Some(report) =
                        loader.last_epoch_report().filter(|r| !r.skipped.is_empty())
                    {
                        let first = report.skipped[0].reason.clone();
                        say(
                            &bar,
                            format!(
                                "epoch {}: skipped {} unreadable images (first: {first})",
                                report.epoch,
                                report.skipped.len()
                            ),
                        );
                        log.write(&Metric::Skipped {
                            epoch: report.epoch,
                            count: report.skipped.len(),
                            first,
                        })?;
                    }
                }
                let stop = config.stop_after.is_some_and(|s| step >= s)
                    || interrupted.load(Ordering::SeqCst);
                if stop || step % config.checkpoint_every == 0 || step == stage.steps.end {
                    save_checkpoint(&ckpt_dir, &layout, &state, step, batch.next, config)?;
                }
                if stop {
                    say(&bar, format!("stopped at step {step} after writing a checkpoint; rerun with --resume to continue"));
                    completed = false;
                    return Ok(());
                }
            }
            let train_seconds = train_start.elapsed().as_secs_f64();
            let images_per_sec = (step - steps_before) as f64 * config.batch as f64 / train_seconds;
            let set = EvalSet {
                source: eval_source.clone(),
                batch: config.eval_batch,
                image_size: model.spec.image_size.eval,
                workers: config.workers,
                limit: config.eval_limit,
                settings: model.spec.augment_settings,
            };
            let (top1, top5, images) = evaluate(
                &client,
                device,
                &eval_exe,
                &state.ema_buffers(&layout),
                &set,
            )?;
            log.write(&Metric::Eval {
                step,
                stage: si,
                image_size: model.spec.image_size.eval,
                top1,
                top5,
                images,
            })?;
            let seconds = stage_start.elapsed().as_secs_f64();
            log.write(&Metric::Stage {
                stage: si,
                image_size: stage.image_size,
                steps: step - steps_before,
                seconds,
                images_per_sec,
                randaug: stage.randaug_magnitude.unwrap_or(0.0),
                mixup: stage.mixup_alpha,
                cutmix: stage.cutmix_alpha,
                dropout: stage.dropout,
            })?;
            say(
                &bar,
                format!("stage {si} done: {}px, {} steps, {:.0} img/s, eval top-1 {:.2}% top-5 {:.2}% ({images} images)",
                stage.image_size,
                step - steps_before,
                images_per_sec,
                100.0 * top1,
                100.0 * top5
            ));
            summaries.push(StageSummary {
                stage: si,
                image_size: stage.image_size,
                steps: step - steps_before,
                seconds,
                images_per_sec,
                compile_seconds,
                top1,
                top5,
            });
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    let last = summaries.last().cloned();
    let summary = RunSummary {
        final_top1: last.as_ref().map_or(f64::NAN, |s| s.top1),
        final_top5: last.as_ref().map_or(f64::NAN, |s| s.top5),
        stages: summaries,
        total_seconds: started.elapsed().as_secs_f64(),
        completed,
    };
    fs::write(
        config.out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    Ok(summary)
}

/// Prints a line above the progress bar (or plainly when no terminal shows it).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        println!("{line}");
    } else {
        bar.println(line);
    }
}

fn log_compile(log: &mut MetricsLog, stage: usize, e: &CompileEvent) -> Result<()> {
    log.write(&Metric::Compile {
        stage,
        module: e.module.clone(),
        reason: format!("{:?}", e.reason),
        seconds: e.seconds,
        instructions: e.instructions,
    })
}

fn check_classes(model: &Model, source: &dyn Source) -> Result<()> {
    if source.num_classes() != model.spec.num_classes {
        bail!(
            "the data has {} classes but model '{}' has {} outputs",
            source.num_classes(),
            model.spec.name,
            model.spec.num_classes
        );
    }
    Ok(())
}

/// A run may only resume with the settings that shaped its state and data order.
fn check_resumable(saved: &RunConfig, now: &RunConfig) -> Result<()> {
    let differs = |what: &str, a: String, b: String| -> Result<()> {
        if a != b {
            bail!(
                "cannot resume: the checkpoint was written with {what} {a}, this run asks for {b}"
            );
        }
        Ok(())
    };
    differs("--model", saved.model.clone(), now.model.clone())?;
    differs("--batch", saved.batch.to_string(), now.batch.to_string())?;
    differs("--seed", saved.seed.to_string(), now.seed.to_string())?;
    differs("--epochs", saved.epochs.to_string(), now.epochs.to_string())?;
    differs(
        "--stages",
        format!("{:?}", saved.stages),
        format!("{:?}", now.stages),
    )?;
    differs(
        "--data",
        format!("{:?}", saved.data),
        format!("{:?}", now.data),
    )
}

fn save_checkpoint(
    dir: &Path,
    layout: &StateLayout,
    state: &DeviceState,
    step: u64,
    cursor: Cursor,
    config: &RunConfig,
) -> Result<PathBuf> {
    let tensors: Vec<(String, Literal)> = layout
        .entries()
        .iter()
        .map(|e| e.name.clone())
        .zip(state.download()?)
        .collect();
    checkpoint::save(
        dir,
        step,
        &tensors,
        &CheckpointMeta {
            step,
            cursor,
            config: config.clone(),
        },
        config.keep_checkpoints,
    )
}

/// What an evaluation pass reads: the test set and how to batch it.
pub struct EvalSet {
    pub source: Arc<dyn Source>,
    pub batch: usize,
    pub image_size: usize,
    pub workers: usize,
    /// Evaluate on at most this many examples.
    pub limit: Option<usize>,
    pub settings: AugmentSettings,
}

/// Top-1 and top-5 accuracy of `weights` (model variables in [`Model::params`] order) over the
/// evaluation set, with a compiled eval step; returns `(top1, top5, examples)`.
pub fn evaluate(
    client: &Client,
    device: &Device,
    exe: &LoadedExecutable,
    weights: &[&Buffer],
    set: &EvalSet,
) -> Result<(f64, f64, usize)> {
    let loader = Loader::eval(
        set.source.clone(),
        EvalConfig {
            batch: set.batch,
            image_size: set.image_size,
            workers: set.workers,
            queue_depth: 4,
            settings: set.settings,
        },
    )?;
    let limit = set.limit.unwrap_or(usize::MAX);
    let (mut top1, mut top5, mut seen) = (0i64, 0i64, 0usize);
    for batch in loader {
        let mut batch = batch?;
        let keep = batch.len().min(limit - seen);
        if keep < batch.len() {
            let per_image: usize = batch.image_dims()[1..].iter().product();
            batch.labels.truncate(keep);
            batch.images.truncate(keep * per_image);
        }
        if batch.is_empty() {
            if seen >= limit {
                break;
            }
            continue;
        }
        let inputs = upload_eval_batch(client, device, &batch, set.batch)?;
        let args: Vec<Arg> = weights
            .iter()
            .map(|b| Arg::Borrowed(b))
            .chain(inputs.iter().map(Arg::Borrowed))
            .collect();
        let out = exe.execute(args).context("executing the eval step")?;
        top1 += out[0].to_literal()?.to_f64_vec()[0] as i64;
        top5 += out[1].to_literal()?.to_f64_vec()[0] as i64;
        seen += batch.len();
    }
    let n = seen.max(1) as f64;
    Ok((top1 as f64 / n, top5 as f64 / n, seen))
}
