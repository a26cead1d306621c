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
use crate::program::context::Context;
use crate::program::graph_plan::{plan_graphs, GraphSelection};
use crate::runtime::provision::PluginKind;
use crate::step::graphs::{InputMode, Objective, Precision, StepConfig};
use crate::trainer::bench::time_train_steps;
use crate::trainer::config::RunConfig;
use crate::trainer::events::Discard;
use crate::trainer::input::DataSpec;
use crate::trainer::recipe::TrainImageSize;
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
    /// Timed on the first device of this plugin (f32), in turns with the backbone.
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
    pub timer: StepTimer,
    /// What every proxy run starts from: its data, plugin (and plugin library), data workers
    /// and seed, which also seeds the sampler. The space and [`SearchOptions::proxy_epochs`]
    /// then set the proxy's model, size, length and learning rate, and the search its output
    /// directory.
    pub proxy_run: RunConfig,
    /// Replaces the space's proxy epochs.
    pub proxy_epochs: Option<f64>,
    pub out: PathBuf,
    /// Earlier searches with the same backbone, proxy recipe and proxy settings whose proxy
    /// accuracies are taken for the candidates they trained, instead of training them again
    /// (the step time is still this search's): how one set of trained candidates is scored for
    /// another target, or under another step limit.
    pub reuse: Vec<PathBuf>,
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
            seed: self.proxy_run.seed,
            epochs: self.proxy_run_epochs(),
            data: self.proxy_run.data.clone(),
            plugin: self.proxy_run.plugin,
        }
    }

    /// The proxy runs' epochs: the option's, else the space's.
    fn proxy_run_epochs(&self) -> f64 {
        self.proxy_epochs.unwrap_or(self.space.proxy.epochs)
    }
}

impl std::fmt::Display for StepTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepTimer::Device(kind) => {
                write!(f, "timed on the first {kind} device beside the backbone")
            }
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
    pin_settings(options)?;
    let known = known_accuracies(options)?;
    let log = out.join("candidates.jsonl");
    let mut records = results::read(&log)?;
    if !records.is_empty() {
        report(SearchEvent::Resumed {
            recorded: records.len(),
        });
    }
    let backbone = options.space.backbone_spec()?;
    let (_, backbone_model) = prepare(options, &backbone.name, &Candidate::of(&backbone))?;
    let mut timer = Timer::open(options, backbone_model)?;
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
            let candidate =
                options
                    .sampler
                    .propose(&options.space, options.proxy_run.seed, index, &records);
            (format!("{}-{index:03}", options.space.name), candidate)
        };
        report(SearchEvent::Started {
            evaluated: counted,
            total,
            name: name.clone(),
        });
        let known_accuracy = known.get(&candidate).cloned();
        let record = score(
            options,
            &mut timer,
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
fn pin_settings(options: &SearchOptions) -> Result<()> {
    let pins = [
        (SPACE_FILE, serde_json::to_string_pretty(&options.space)?),
        (PROXY_FILE, proxy_pin(options)?),
        (
            STEP_TIME_FILE,
            serde_json::to_string(&options.timer.to_string())?,
        ),
    ];
    for (file, json) in pins {
        let path = options.out.join(file);
        match std::fs::read_to_string(&path) {
            Ok(saved) if saved != json => bail!(
                "{} holds a search with another {file}: resume it with the same space and \
                 options (seed, proxy epochs, data, plugin, target) or use a new --out",
                options.out.display()
            ),
            Ok(_) => {}
            Err(_) => std::fs::write(&path, json)
                .with_context(|| format!("writing {}", path.display()))?,
        }
    }
    Ok(())
}

fn proxy_pin(options: &SearchOptions) -> Result<String> {
    Ok(serde_json::to_string_pretty(&options.proxy_settings())?)
}

/// Evaluates candidate `index` into its record: a failure is recorded with its reason, except
/// the backbone's, which ends the search (it is the reward's reference).
fn score(
    options: &SearchOptions,
    timer: &mut Timer,
    index: usize,
    name: String,
    candidate: Candidate,
    known_accuracy: Option<KnownAccuracy>,
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
        known_accuracy.as_ref().map(|k| k.accuracy),
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
        accuracy_from: known_accuracy.map(|k| k.from),
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

/// A proxy accuracy an earlier search measured, and that search's directory.
#[derive(Clone, Debug)]
struct KnownAccuracy {
    accuracy: f64,
    from: PathBuf,
}

/// The proxy accuracies of the searches `options.reuse` names, by candidate, after checking
/// that each trained its candidates as this search would: the same backbone and proxy recipe
/// in its space (the stage choices, reward and step limit do not change how a candidate
/// trains) and the same proxy settings. The first directory that scored a candidate gives it.
fn known_accuracies(options: &SearchOptions) -> Result<HashMap<Candidate, KnownAccuracy>> {
    let proxy = proxy_pin(options)?;
    let mut known = HashMap::new();
    for dir in &options.reuse {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "--reuse {}: reading {} (not a search directory?)",
                    dir.display(),
                    path.display()
                )
            })
        };
        ensure!(
            read(PROXY_FILE)? == proxy,
            "--reuse {}: its {PROXY_FILE} differs from this search's; only a search with the \
             same seed, proxy epochs, data and plugin trained the same candidates alike",
            dir.display()
        );
        let space = SearchSpace::from_json(
            &read(SPACE_FILE)?,
            &dir.join(SPACE_FILE).display().to_string(),
        )?;
        ensure!(
            space.backbone == options.space.backbone && space.proxy == options.space.proxy,
            "--reuse {}: its space's backbone or proxy recipe differs from this search's, so its \
             candidates trained otherwise",
            dir.display()
        );
        for record in results::read(&dir.join("candidates.jsonl"))? {
            if let Some(accuracy) = record.score().map(|s| s.accuracy) {
                known.entry(record.candidate).or_insert(KnownAccuracy {
                    accuracy,
                    from: dir.clone(),
                });
            }
        }
    }
    Ok(known)
}

/// Builds and times one candidate, then rejects it (a step over the space's limit) or trains
/// it (unless its proxy accuracy is `known`) and scores it.
fn evaluate(
    options: &SearchOptions,
    timer: &mut Timer,
    name: &str,
    candidate: &Candidate,
    known_accuracy: Option<f64>,
    index: usize,
    reference: Option<&Score>,
) -> Result<Outcome> {
    let (config, model) = prepare(options, name, candidate)?;
    let params = model.param_counts().total;
    let step = timer.step_seconds(&model, options.space.proxy.batch)?;
    let limit = options.space.step_limit(step.backbone_seconds);
    if let Some(limit_seconds) = limit.filter(|&limit| index > 0 && step.seconds > limit) {
        return Ok(Outcome::Rejected {
            step_seconds: step.seconds,
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
                value: step.seconds,
                reference: step.backbone_seconds,
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
        step_seconds: step.seconds,
        backbone_step_seconds: Some(step.backbone_seconds),
        params,
        reward,
    }))
}

/// Writes the spec of `candidate` as `name` into the search directory and returns its proxy
/// run and the model that run trains.
fn prepare(
    options: &SearchOptions,
    name: &str,
    candidate: &Candidate,
) -> Result<(RunConfig, Model)> {
    let spec = options.space.spec(candidate, name)?;
    let spec_path = spec_path(&options.out, name);
    std::fs::write(&spec_path, serde_json::to_string_pretty(&spec)?)
        .with_context(|| format!("writing {}", spec_path.display()))?;
    let config = proxy_config(options, &spec_path, name);
    let model = config.model()?;
    Ok((config, model))
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

/// The proxy training run of the spec at `spec_path`: one stage at the proxy size, on one
/// device, with no checkpoint before the end.
fn proxy_config(options: &SearchOptions, spec_path: &Path, name: &str) -> RunConfig {
    let proxy = &options.space.proxy;
    let epochs = options.proxy_run_epochs();
    RunConfig {
        model: spec_path.display().to_string(),
        batch: proxy.batch,
        devices: Some(1),
        epochs,
        stages: Some(1),
        lr_base: proxy.lr_base,
        warmup_epochs: 0.1 * epochs,
        image_size: Some(TrainImageSize::Pixels(proxy.image_size)),
        checkpoint_every: u64::MAX,
        keep_checkpoints: 2,
        eval_limit: proxy.eval_limit,
        out: options.out.join("runs").join(name),
        ..options.proxy_run.clone()
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

/// The step timer, opened once for the whole search, and the backbone it compares with.
struct Timer {
    backbone: Model,
    clock: Clock,
}

enum Clock {
    /// Times each candidate in turns with the backbone.
    Device(Context),
    /// The roofline estimate; the backbone's is computed once, when first needed.
    Estimate {
        compiler: AotCompiler,
        backbone_seconds: Option<f64>,
    },
}

/// A candidate's step time and the backbone's it is compared with.
struct StepTime {
    seconds: f64,
    backbone_seconds: f64,
}

impl Timer {
    fn open(options: &SearchOptions, backbone: Model) -> Result<Timer> {
        let clock = match &options.timer {
            StepTimer::Device(kind) => {
                // --plugin-path names the proxy runs' plugin; it serves the timer of that kind.
                let run = &options.proxy_run;
                let path = run.plugin_path.as_deref().filter(|_| *kind == run.plugin);
                Clock::Device(Context::open(*kind, path)?)
            }
            StepTimer::Estimate(target) => Clock::Estimate {
                compiler: AotCompiler::new(target.clone(), None)?,
                backbone_seconds: None,
            },
        };
        Ok(Timer { backbone, clock })
    }

    /// Seconds per train step of `model` (one progressive stage) at `batch`, beside the
    /// backbone's. On the device the fastest call of each, timed in turns (the backbone itself
    /// is timed alone).
    fn step_seconds(&mut self, model: &Model, batch: usize) -> Result<StepTime> {
        let Timer { backbone, clock } = self;
        let is_backbone = model.spec.stages == backbone.spec.stages;
        match clock {
            Clock::Device(ctx) => {
                let config = |m: &Model| {
                    let size = m.spec.image_size.train as i64;
                    StepConfig::official(batch as i64, size, Precision::F32, ctx.backend())
                };
                let (cfg, backbone_cfg) = (config(model), config(backbone));
                let mut benches = vec![(model, &cfg)];
                if !is_backbone {
                    benches.push((&*backbone, &backbone_cfg));
                }
                let timings = time_train_steps(ctx, &benches, TIMED_STEPS)?;
                let seconds = timings[0].fastest_seconds_per_step;
                Ok(StepTime {
                    seconds,
                    backbone_seconds: timings
                        .get(1)
                        .map_or(seconds, |t| t.fastest_seconds_per_step),
                })
            }
            Clock::Estimate {
                compiler,
                backbone_seconds,
            } => {
                let seconds = estimate(compiler, model, batch)?;
                let backbone_seconds = match *backbone_seconds {
                    Some(known) => known,
                    None if is_backbone => *backbone_seconds.insert(seconds),
                    None => *backbone_seconds.insert(
                        estimate(compiler, backbone, batch)
                            .context("the backbone, the reward's reference")?,
                    ),
                };
                Ok(StepTime {
                    seconds,
                    backbone_seconds,
                })
            }
        }
    }
}

/// The roofline seconds of `model`'s train step (one progressive stage, bf16) at `batch` on one
/// device of the compiler's target.
fn estimate(compiler: &AotCompiler, model: &Model, batch: usize) -> Result<f64> {
    let selection = GraphSelection {
        batch: batch as i64,
        replicas: 1,
        steps_per_call: 1,
        sync_batch_norm: false,
        skip_nonfinite: false,
        objective: Objective::OFFICIAL,
        eval_batch: batch as i64,
        precision: Precision::Bf16,
        backend: crate::model::Backend::Accelerator,
        schedule: ScheduleVariant::Official,
        stage: Some(0),
        eval: false,
        input: InputMode::Normalised,
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
    Ok(report
        .roofline
        .context("the target's compiler gave no cost analysis for a roofline")?
        .seconds)
}
