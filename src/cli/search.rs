//! `effnetv2 search`: training-aware architecture search over a search space, printing each
//! candidate as it is scored and the Pareto front and best candidates at the end.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use effnetv2::runtime::provision::PluginKind;
use effnetv2::search::results::Outcome;
use effnetv2::search::sampler::Sampler;
use effnetv2::search::space::SearchSpace;
use effnetv2::search::{search, SearchEvent, SearchOptions, StepTimer};
use effnetv2::trainer::config::RunConfig;
use effnetv2::trainer::input::DataSpec;

use super::interrupt::interrupt_flag;
use super::plugin::PluginArgs;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SamplerName {
    /// Uniform random search.
    Random,
    /// Regularized evolution (population 10, tournaments of 3) after 10 random candidates.
    Evolution,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// A built-in search space (tiny, s) or a space JSON file.
    #[arg(long, default_value = "tiny")]
    space: String,
    /// Candidates to evaluate besides the backbone (those over the space's `max_step_ratio` are
    /// rejected once timed and do not count).
    #[arg(long)]
    budget: usize,
    /// Where step times come from: `cpu` (or another plugin kind: timed on its first device) or
    /// an accelerator target such as `tpu:v5e` (the roofline of its deviceless compile).
    #[arg(long, default_value = "cpu")]
    target: String,
    /// Proxy training epochs per candidate (default: the space's).
    #[arg(long)]
    proxy_epochs: Option<f64>,
    #[arg(long, value_enum, default_value = "random")]
    sampler: SamplerName,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The proxy runs' data: `fashion-mnist` or a directory with train/ and val/.
    #[arg(long, default_value = "fashion-mnist")]
    data: DataSpec,
    #[command(flatten)]
    plugin: PluginArgs,
    /// Data-pipeline threads (default: all cores).
    #[arg(long)]
    workers: Option<usize>,
    /// The search directory (candidates.jsonl, specs/, runs/, pareto.png, best-*.json); an
    /// existing one resumes.
    #[arg(long, default_value = "runs/search")]
    out: PathBuf,
    /// An earlier search directory with the same backbone, proxy recipe, seed, proxy epochs,
    /// data and plugin (repeatable): the candidates it trained keep its proxy accuracy and are
    /// only timed again. With the random sampler and the same seed this scores one set of
    /// trained candidates for another --target.
    #[arg(long)]
    reuse: Vec<PathBuf>,
}

impl SearchArgs {
    fn timer(&self) -> Result<StepTimer> {
        if self.target.contains(':') {
            return Ok(StepTimer::Estimate(self.target.parse()?));
        }
        match self.target.parse::<PluginKind>() {
            Ok(kind) => Ok(StepTimer::Device(kind)),
            Err(e) => bail!(
                "--target {}: neither a plugin kind nor an accelerator target such as tpu:v5e ({e})",
                self.target
            ),
        }
    }

    /// What the proxy runs share: the options given, the rest the training defaults.
    fn proxy_run(&self) -> RunConfig {
        let defaults = RunConfig::default();
        RunConfig {
            data: self.data.clone(),
            plugin: self.plugin.kind,
            plugin_path: self.plugin.path.clone(),
            seed: self.seed,
            workers: self.workers.unwrap_or(defaults.workers),
            ..defaults
        }
    }

    pub fn run(self) -> Result<()> {
        let options = SearchOptions {
            space: SearchSpace::load(&self.space)?,
            budget: self.budget,
            sampler: match self.sampler {
                SamplerName::Random => Sampler::Random,
                SamplerName::Evolution => Sampler::EVOLUTION,
            },
            timer: self.timer()?,
            proxy_run: self.proxy_run(),
            proxy_epochs: self.proxy_epochs,
            out: self.out.clone(),
            reuse: self.reuse.clone(),
        };
        // Ctrl-C finishes the current candidate; a second one kills.
        let interrupted = interrupt_flag()?;
        let summary = search(&options, &interrupted, &mut print_event)?;
        println!(
            "Pareto front (fastest first): {}",
            summary.pareto.join(", ")
        );
        for path in &summary.best {
            println!(
                "best by reward: {} (train it with --model {0})",
                path.display()
            );
        }
        println!(
            "plot: {} and {}",
            summary.png.display(),
            summary.svg.display()
        );
        if !summary.completed {
            println!("interrupted: run the same command again to go on");
        }
        Ok(())
    }
}

fn print_event(event: SearchEvent) {
    match event {
        SearchEvent::Resumed { recorded } => {
            println!("resuming: {recorded} candidates already recorded")
        }
        SearchEvent::Started {
            evaluated,
            total,
            name,
        } => eprintln!("[{}/{total}] {name} ...", evaluated + 1),
        SearchEvent::Finished(record) => match &record.outcome {
            Outcome::Scored(s) => {
                let reused = if record.accuracy_from.is_some() {
                    " (reused)"
                } else {
                    ""
                };
                println!(
                    "{:<16} top-1 {:6.2}%{reused}  step {:8.2} ms ({:.2}x)  params {:>9}  reward {:.4}  ({:.0} s)",
                    record.name,
                    s.accuracy * 100.0,
                    s.step_seconds * 1e3,
                    s.relative_step(None),
                    s.params,
                    s.reward,
                    record.seconds
                )
            }
            Outcome::Failed { reason } => println!("{:<16} failed: {reason}", record.name),
            Outcome::Rejected {
                step_seconds,
                limit_seconds,
            } => println!(
                "{:<16} rejected: step {:.2} ms over the space's limit of {:.2} ms ({:.0} s)",
                record.name,
                step_seconds * 1e3,
                limit_seconds * 1e3,
                record.seconds
            ),
        },
    }
}
