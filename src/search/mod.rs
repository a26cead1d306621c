//! Training-aware neural architecture search (`effnetv2 search`), as the EfficientNetV2 paper
//! ran it: candidates from a stage-based space around a backbone, each scored by the accuracy A
//! of a short proxy training run, its training-step time S and its parameter count P, with the
//! reward `A * S^w * P^v`. S is measured on the running device, or estimated for an accelerator
//! target from its deviceless compile (the roofline of its cost analysis). Every candidate is
//! recorded as it finishes, so a killed search resumes where it stopped.

pub mod plot;
pub mod results;
pub mod reward;
pub mod sampler;
pub mod space;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use fs4::fs_std::FileExt;
use serde::Serialize;

use crate::aot::{AotCompiler, Target};
use crate::model::ScheduleVariant;
use crate::model::{Model, ModelSpec};
use crate::runtime::provision::PluginKind;
use crate::train::lr::Decay;
use crate::train::step::{Objective, Precision, StepConfig};
use crate::trainer::bench::time_train_step;
use crate::trainer::config::RunConfig;
use crate::trainer::context::Context;
use crate::trainer::data::DataSpec;
use crate::trainer::events::Discard;
use crate::trainer::plan::{plan_graphs, GraphSelection};
use crate::trainer::recipe::{Augmentation, TrainImageSize};
use crate::trainer::run::train;
use results::{Outcome, Record, Score};
use reward::Normalised;
use sampler::Sampler;
use space::{Candidate, SearchSpace, StageChoice};

/// Optimizer steps timed per candidate on the device.
const TIMED_STEPS: i64 = 16;
/// Best candidates (by reward) written as runnable specs.
const BEST_KEPT: usize = 3;

/// Where the step time S comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum StepTimer {
    /// Timed on the first device of this plugin (f32).
    Device(PluginKind),
    /// The roofline estimate of the deviceless compile for this target (bf16).
    Estimate(Target),
}

/// A search to run (or resume).
#[derive(Clone, Debug)]
pub struct SearchOptions {
    pub space: SearchSpace,
    /// Candidates besides the backbone.
    pub budget: usize,
    pub sampler: Sampler,
    pub seed: u64,
    pub timer: StepTimer,
    /// The proxy runs' data and plugin.
    pub data: DataSpec,
    pub plugin: PluginKind,
    /// Replaces the space's proxy epochs.
    pub proxy_epochs: Option<f64>,
    pub workers: usize,
    pub out: PathBuf,
}

/// What a search reports as it goes.
#[derive(Clone, Debug)]
pub enum SearchEvent {
    /// Candidates already recorded by an earlier invocation.
    Resumed {
        recorded: usize,
    },
    /// A candidate is being evaluated.
    Started {
        record_index: usize,
        total: usize,
        name: String,
    },
    Finished(Record),
}

/// The outcome of a search.
#[derive(Clone, Debug, Serialize)]
pub struct SearchSummary {
    pub records: Vec<Record>,
    /// Names of the accuracy/step-time Pareto front, fastest first.
    pub pareto: Vec<String>,
    /// The best candidates by reward, written as specs.
    pub best: Vec<PathBuf>,
    pub png: PathBuf,
    pub svg: PathBuf,
    /// False when interrupted before the budget was spent.
    pub completed: bool,
}

impl Candidate {
    /// The choices `spec` makes, stage by stage (the backbone as a candidate).
    pub fn of(spec: &ModelSpec) -> Candidate {
        Candidate {
            stages: spec
                .stages
                .iter()
                .map(|s| StageChoice {
                    block: s.block,
                    kernel: s.kernel,
                    expand_ratio: s.expand_ratio,
                    repeats: s.repeats,
                })
                .collect(),
        }
    }
}

/// Runs (or resumes) the search `options` describe, reporting to `report`.
pub fn search(
    options: &SearchOptions,
    interrupted: &AtomicBool,
    report: &mut dyn FnMut(SearchEvent),
) -> Result<SearchSummary> {
    let out = &options.out;
    std::fs::create_dir_all(out.join("specs"))
        .with_context(|| format!("creating {}", out.display()))?;
    let lock = std::fs::File::create(out.join(".lock"))?;
    if !lock.try_lock_exclusive()? {
        bail!("{} is in use by another search", out.display());
    }
    let space_file = out.join("space.json");
    let space_json = serde_json::to_string_pretty(&options.space)?;
    match std::fs::read_to_string(&space_file) {
        Ok(saved) if saved != space_json => bail!(
            "{} holds a search of another space: resume it with the same space or use a new --out",
            out.display()
        ),
        Ok(_) => {}
        Err(_) => std::fs::write(&space_file, &space_json)?,
    }
    let log = out.join("candidates.jsonl");
    let mut records = results::read(&log)?;
    if !records.is_empty() {
        report(SearchEvent::Resumed {
            recorded: records.len(),
        });
    }
    let timer = Timer::open(&options.timer)?;
    let backbone = options.space.backbone_spec()?;
    let total = options.budget + 1;
    let mut completed = true;
    for index in 0..total {
        if records.iter().any(|r| r.index == index) {
            continue;
        }
        if interrupted.load(Ordering::SeqCst) {
            completed = false;
            break;
        }
        let (name, candidate) = if index == 0 {
            (backbone.name.clone(), Candidate::of(&backbone))
        } else {
            let candidate = options
                .sampler
                .propose(&options.space, options.seed, index, &records);
            (format!("{}-{index:03}", options.space.name), candidate)
        };
        report(SearchEvent::Started {
            record_index: index,
            total,
            name: name.clone(),
        });
        let started = Instant::now();
        let reference = records
            .iter()
            .find(|r| r.index == 0)
            .and_then(Record::score);
        let outcome = match evaluate(options, &timer, &name, &candidate, index, reference) {
            Ok(score) => Outcome::Scored(score),
            Err(e) if index == 0 => {
                return Err(e.context("the backbone, the reward's reference, failed"))
            }
            Err(e) => Outcome::Failed {
                reason: format!("{e:#}"),
            },
        };
        let record = Record {
            index,
            name,
            candidate,
            outcome,
            seconds: started.elapsed().as_secs_f64(),
        };
        results::append(&log, &record)?;
        report(SearchEvent::Finished(record.clone()));
        records.push(record);
    }
    records.sort_by_key(|r| r.index);
    let pareto: Vec<String> = results::pareto_front(&records)
        .iter()
        .map(|r| r.name.clone())
        .collect();
    let best = write_best(out, &records)?;
    let (png, svg) = (out.join("pareto.png"), out.join("pareto.svg"));
    plot::write(&records, &pareto, &options.space.name, &png, &svg)?;
    Ok(SearchSummary {
        records,
        pareto,
        best,
        png,
        svg,
        completed,
    })
}

/// Builds, times, trains and scores one candidate.
fn evaluate(
    options: &SearchOptions,
    timer: &Timer,
    name: &str,
    candidate: &Candidate,
    index: usize,
    reference: Option<&Score>,
) -> Result<Score> {
    let spec = options.space.spec(candidate, name)?;
    let spec_path = spec_path(&options.out, name);
    std::fs::write(&spec_path, serde_json::to_string_pretty(&spec)?)?;
    let config = proxy_config(options, &spec_path, name);
    let model = config.model()?;
    let params = model.param_counts().total;
    let step_seconds = timer.step_seconds(&model, options.space.proxy.batch)?;
    let run_dir = &config.out;
    if run_dir.exists() {
        // A proxy run a kill cut short starts again.
        std::fs::remove_dir_all(run_dir)
            .with_context(|| format!("removing {}", run_dir.display()))?;
    }
    let summary = train(&config, false, &AtomicBool::new(false), &mut Discard)?;
    let accuracy = summary.final_top1;
    let reward = match (index, reference) {
        (0, _) => accuracy,
        (_, Some(r)) => options.space.reward.reward(
            accuracy,
            Normalised {
                value: step_seconds,
                reference: r.step_seconds,
            },
            Normalised {
                value: params as f64,
                reference: r.params as f64,
            },
        ),
        (_, None) => bail!("no reference: the backbone has no score"),
    };
    Ok(Score {
        accuracy,
        step_seconds,
        params,
        reward,
    })
}

fn spec_path(out: &Path, name: &str) -> PathBuf {
    out.join("specs").join(format!("{name}.json"))
}

/// The proxy training run of the spec at `spec_path`: one stage at the proxy size.
fn proxy_config(options: &SearchOptions, spec_path: &Path, name: &str) -> RunConfig {
    let proxy = &options.space.proxy;
    RunConfig {
        model: spec_path.display().to_string(),
        recipe: None,
        plugin: options.plugin,
        plugin_path: None,
        data: options.data.clone(),
        batch: proxy.batch,
        devices: Some(1),
        sync_batch_norm: false,
        steps_per_call: 8,
        skip_nonfinite: false,
        epochs: options.proxy_epochs.unwrap_or(proxy.epochs),
        min_steps: None,
        steps: None,
        stages: Some(1),
        num_classes: None,
        schedule: ScheduleVariant::Official,
        precision: Precision::F32,
        seed: options.seed,
        lr_base: proxy.lr_base,
        warmup_epochs: 0.1 * options.proxy_epochs.unwrap_or(proxy.epochs),
        decay: Decay::Cosine,
        objective: Objective::OFFICIAL,
        dropout: None,
        survival_prob: None,
        image_size: Some(TrainImageSize::Pixels(proxy.image_size)),
        augmentation: Augmentation::Model,
        init: None,
        eval_batch: 500,
        workers: options.workers,
        checkpoint_every: u64::MAX,
        keep_checkpoints: 2,
        stop_after: None,
        eval_limit: proxy.eval_limit,
        out: options.out.join("runs").join(name),
    }
}

/// Copies the specs of the best scored candidates to `best-1.json`, `best-2.json`, ...
fn write_best(out: &Path, records: &[Record]) -> Result<Vec<PathBuf>> {
    let mut scored: Vec<(&Record, f64)> = records
        .iter()
        .filter(|r| r.index > 0)
        .filter_map(|r| Some((r, r.reward()?)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored
        .iter()
        .take(BEST_KEPT)
        .enumerate()
        .map(|(rank, (record, _))| {
            let path = out.join(format!("best-{}.json", rank + 1));
            std::fs::copy(spec_path(out, &record.name), &path)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        })
        .collect()
}

/// The step timer, opened once for the whole search.
enum Timer {
    Device(Context),
    Estimate(AotCompiler),
}

impl Timer {
    fn open(timer: &StepTimer) -> Result<Timer> {
        Ok(match timer {
            StepTimer::Device(kind) => Timer::Device(Context::open_devices(*kind, None, Some(1))?),
            StepTimer::Estimate(target) => Timer::Estimate(AotCompiler::new(target.clone(), None)?),
        })
    }

    /// Seconds per train step of `model` (one progressive stage) at `batch`.
    fn step_seconds(&self, model: &Model, batch: usize) -> Result<f64> {
        let size = model.spec.image_size.train as i64;
        match self {
            Timer::Device(ctx) => {
                let cfg = StepConfig::official(batch as i64, size, Precision::F32, ctx.depthwise());
                Ok(time_train_step(ctx, model, &cfg, TIMED_STEPS)?.seconds_per_step)
            }
            Timer::Estimate(compiler) => {
                let selection = GraphSelection {
                    batch: batch as i64,
                    replicas: 1,
                    steps_per_call: 1,
                    sync_batch_norm: false,
                    skip_nonfinite: false,
                    objective: Objective::OFFICIAL,
                    eval_batch: batch as i64,
                    precision: Precision::Bf16,
                    depthwise: crate::nn::DepthwiseImpl::GroupedConvolution,
                    schedule: ScheduleVariant::Official,
                    stage: Some(0),
                    eval: false,
                };
                let graph = &plan_graphs(model, &selection)?[0];
                let report = compiler.report(model, graph, None)?;
                if !report.cost.memory.fits {
                    bail!(
                        "does not fit one {} device at batch {batch}: peak {} bytes",
                        compiler.target(),
                        report.cost.memory.peak
                    );
                }
                let roofline = report
                    .roofline
                    .context("the target's compiler gave no cost analysis for a roofline")?;
                Ok(roofline.seconds)
            }
        }
    }
}
