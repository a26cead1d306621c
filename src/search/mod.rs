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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, ensure, Context as _, Result};
use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};

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
/// Draws per budgeted candidate after which a search whose step limit rejects nearly
/// everything stops instead of drawing on.
const MAX_DRAWS_PER_CANDIDATE: usize = 10;

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
    /// The plugin library to use instead of the pinned one.
    pub plugin_path: Option<PathBuf>,
    /// Replaces the space's proxy epochs.
    pub proxy_epochs: Option<f64>,
    pub workers: usize,
    pub out: PathBuf,
    /// An earlier search of the same space and proxy settings whose proxy accuracies are taken
    /// for the candidates it trained, instead of training them again (the step time is still
    /// this search's): how one set of trained candidates is scored for another target.
    pub reuse: Option<PathBuf>,
}

/// What a proxy run's accuracy depends on besides the space and the candidate: searches of one
/// space with equal settings train a candidate to the same accuracy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ProxySettings {
    seed: u64,
    epochs: f64,
    data: DataSpec,
    plugin: PluginKind,
}

impl SearchOptions {
    fn proxy_settings(&self) -> ProxySettings {
        ProxySettings {
            seed: self.seed,
            epochs: self.proxy_epochs.unwrap_or(self.space.proxy.epochs),
            data: self.data.clone(),
            plugin: self.plugin,
        }
    }
}

impl std::fmt::Display for StepTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepTimer::Device(kind) => write!(f, "timed on the first {kind} device"),
            StepTimer::Estimate(target) => write!(f, "the roofline estimate for {target}"),
        }
    }
}

/// The files that pin what a search directory's records mean: the space and proxy settings
/// (which a search reusing its accuracies must share) and where step times came from.
const SPACE_FILE: &str = "space.json";
const PROXY_FILE: &str = "proxy.json";
const STEP_TIME_FILE: &str = "step_time.json";

/// What a search reports as it goes.
#[derive(Clone, Debug)]
pub enum SearchEvent {
    /// Candidates already recorded by an earlier invocation.
    Resumed {
        recorded: usize,
    },
    /// A candidate is being evaluated, after `evaluated` of the `total` the budget allows
    /// (rejected candidates do not count).
    Started {
        evaluated: usize,
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
    let _lock = lock_search_dir(out)?;
    let pins = pin_settings(options)?;
    let known = match &options.reuse {
        Some(dir) => known_accuracies(dir, &pins)?,
        None => HashMap::new(),
    };
    let log = out.join("candidates.jsonl");
    let mut records = results::read(&log)?;
    if !records.is_empty() {
        report(SearchEvent::Resumed {
            recorded: records.len(),
        });
    }
    let timer = Timer::open(options)?;
    let backbone = options.space.backbone_spec()?;
    let total = options.budget + 1;
    let mut counted = records.iter().filter(|r| r.counts_toward_budget()).count();
    let mut completed = true;
    for index in 0.. {
        if counted >= total {
            break;
        }
        if records.iter().any(|r| r.index == index) {
            continue;
        }
        ensure!(
            index < total * MAX_DRAWS_PER_CANDIDATE,
            "the space's max_step_ratio rejected {} candidates before {total} were evaluated: \
             raise it in the space file",
            records.len() - counted
        );
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
            evaluated: counted,
            total,
            name: name.clone(),
        });
        let known_accuracy = known.get(&candidate).copied();
        let record = score(
            options,
            &timer,
            index,
            name,
            candidate,
            known_accuracy,
            &records,
        )?;
        results::append(&log, &record)?;
        report(SearchEvent::Finished(record.clone()));
        counted += usize::from(record.counts_toward_budget());
        records.push(record);
    }
    records.sort_by_key(|r| r.index);
    summarise(options, records, completed)
}

/// Creates the search directory `out` and locks it for this search (until the file is dropped).
fn lock_search_dir(out: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(out.join("specs"))
        .with_context(|| format!("creating {}", out.display()))?;
    let lock = std::fs::File::create(out.join(".lock"))?;
    if !lock.try_lock_exclusive()? {
        bail!("{} is in use by another search", out.display());
    }
    Ok(lock)
}

/// Writes the space, proxy settings and step timer into the search directory, or checks them
/// against the ones an earlier invocation wrote there: a resumed search must be the same search.
/// Returns the space's and proxy settings' file names and contents.
fn pin_settings(options: &SearchOptions) -> Result<[(&'static str, String); 2]> {
    let pins = [
        (SPACE_FILE, serde_json::to_string_pretty(&options.space)?),
        (
            PROXY_FILE,
            serde_json::to_string_pretty(&options.proxy_settings())?,
        ),
    ];
    let step_time = (
        STEP_TIME_FILE,
        serde_json::to_string(&options.timer.to_string())?,
    );
    for (file, json) in pins.iter().chain([&step_time]) {
        let path = options.out.join(file);
        match std::fs::read_to_string(&path) {
            Ok(saved) if &saved != json => bail!(
                "{} holds a search with another {file}: resume it with the same space and \
                 options (seed, proxy epochs, data, plugin, target) or use a new --out",
                options.out.display()
            ),
            Ok(_) => {}
            Err(_) => std::fs::write(&path, json)
                .with_context(|| format!("writing {}", path.display()))?,
        }
    }
    Ok(pins)
}

/// Evaluates candidate `index` into its record: a failure is recorded with its reason, except
/// the backbone's, which ends the search (it is the reward's reference).
fn score(
    options: &SearchOptions,
    timer: &Timer,
    index: usize,
    name: String,
    candidate: Candidate,
    known_accuracy: Option<f64>,
    records: &[Record],
) -> Result<Record> {
    let started = Instant::now();
    let reference = records
        .iter()
        .find(|r| r.index == 0)
        .and_then(Record::score);
    let outcome = match evaluate(
        options,
        timer,
        &name,
        &candidate,
        known_accuracy,
        index,
        reference,
    ) {
        Ok(outcome) => outcome,
        Err(e) if index == 0 => {
            return Err(e.context("the backbone, the reward's reference, failed"))
        }
        Err(e) => Outcome::Failed {
            reason: format!("{e:#}"),
        },
    };
    Ok(Record {
        index,
        name,
        candidate,
        accuracy_from: known_accuracy.and(options.reuse.clone()),
        outcome,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The Pareto front, the best specs and the plot of a search's `records` (in index order).
fn summarise(
    options: &SearchOptions,
    records: Vec<Record>,
    completed: bool,
) -> Result<SearchSummary> {
    let out = &options.out;
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

/// The proxy accuracies of the search in `dir`, by candidate, after checking that it searched
/// the same space with the same proxy settings (`pins`, as this search wrote them).
fn known_accuracies(dir: &Path, pins: &[(&str, String)]) -> Result<HashMap<Candidate, f64>> {
    for (file, json) in pins {
        let path = dir.join(file);
        let saved = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "--reuse {}: reading {} (not a search directory?)",
                dir.display(),
                path.display()
            )
        })?;
        ensure!(
            &saved == json,
            "--reuse {}: its {file} differs from this search's; only a search of the same space \
             with the same seed, proxy epochs, data and plugin trained the same candidates",
            dir.display()
        );
    }
    let records = results::read(&dir.join("candidates.jsonl"))?;
    Ok(records
        .iter()
        .filter_map(|r| Some((r.candidate.clone(), r.score()?.accuracy)))
        .collect())
}

/// Builds and times one candidate, then rejects it (a step over the space's limit) or trains
/// it (unless its proxy accuracy is `known`) and scores it.
fn evaluate(
    options: &SearchOptions,
    timer: &Timer,
    name: &str,
    candidate: &Candidate,
    known_accuracy: Option<f64>,
    index: usize,
    reference: Option<&Score>,
) -> Result<Outcome> {
    let spec = options.space.spec(candidate, name)?;
    let spec_path = spec_path(&options.out, name);
    std::fs::write(&spec_path, serde_json::to_string_pretty(&spec)?)?;
    let config = proxy_config(options, &spec_path, name);
    let model = config.model()?;
    let params = model.param_counts().total;
    let step_seconds = timer.step_seconds(&model, options.space.proxy.batch)?;
    let limit = reference.and_then(|r| options.space.step_limit(r.step_seconds));
    if let Some(limit_seconds) = limit.filter(|&limit| index > 0 && step_seconds > limit) {
        return Ok(Outcome::Rejected {
            step_seconds,
            limit_seconds,
        });
    }
    let accuracy = match known_accuracy {
        Some(accuracy) => accuracy,
        None => proxy_accuracy(&config)?,
    };
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
    Ok(Outcome::Scored(Score {
        accuracy,
        step_seconds,
        params,
        reward,
    }))
}

/// Trains the proxy run `config` from scratch and returns its final top-1 accuracy.
fn proxy_accuracy(config: &RunConfig) -> Result<f64> {
    let run_dir = &config.out;
    if run_dir.exists() {
        // A proxy run a kill cut short starts again.
        std::fs::remove_dir_all(run_dir)
            .with_context(|| format!("removing {}", run_dir.display()))?;
    }
    Ok(train(config, false, &AtomicBool::new(false), &mut Discard)?.final_top1)
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
        plugin_path: options.plugin_path.clone(),
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
    fn open(options: &SearchOptions) -> Result<Timer> {
        Ok(match &options.timer {
            StepTimer::Device(kind) => {
                // --plugin-path names the proxy runs' plugin; it serves the timer of that kind.
                let path = options
                    .plugin_path
                    .as_deref()
                    .filter(|_| *kind == options.plugin);
                Timer::Device(Context::open(*kind, path)?)
            }
            StepTimer::Estimate(target) => Timer::Estimate(AotCompiler::new(target.clone(), None)?),
        })
    }

    /// Seconds per train step of `model` (one progressive stage) at `batch`.
    fn step_seconds(&self, model: &Model, batch: usize) -> Result<f64> {
        let size = model.spec.image_size.train as i64;
        match self {
            Timer::Device(ctx) => {
                let cfg = StepConfig::official(batch as i64, size, Precision::F32, ctx.depthwise());
                Ok(time_train_step(ctx, model, &cfg, TIMED_STEPS)?.fastest_seconds_per_step)
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
