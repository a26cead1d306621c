//! `bench --data DIR --target tpu:...`: beside the measured images/s per core, the images/s a
//! TPU slice's chips need at each progressive stage and the host cores that takes on the slice's
//! TPU VM hosts ([`effnetv2::aot::feed`], [`effnetv2::aot::tpu_host`]).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use effnetv2::aot::{AotCompiler, ChipRates, HostFeed, SliceHosts, Target};
use effnetv2::model::{Model, ModelSpec, ScheduleVariant};
use effnetv2::program::executables::ExecutableCache;
use effnetv2::step::graphs::InputMode;

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// With --data: a TPU slice (e.g. tpu:v6e:2x4, tpu:v5e:2x4, tpu:v4:2x2x1, tpu:v5p:2x2x1):
    /// the images/s its chips need at each stage (chips x the roofline images/s of one chip, from
    /// a deviceless compile of the stage's train step at --batch per device, bf16; cached, so
    /// only the first run compiles) and the cores of its VM hosts that takes at the measured
    /// images/s per core.
    #[arg(long, requires = "data")]
    target: Option<Target>,
    /// With --target: take the per-chip images/s from this output of `effnetv2 compile --json`
    /// (the same chip generation, any slice, e.g. computed once on another machine, with the
    /// same --augment-on) instead of compiling.
    #[arg(long, requires = "target")]
    target_costs: Option<PathBuf>,
}

/// A slice's hosts and its chips' rates per stage: what the per-core figures are set against.
pub struct Demand {
    target: Target,
    slice: SliceHosts,
    rates: ChipRates,
}

impl TargetArgs {
    /// The demand of `--target` for `spec`'s train steps at `batch` per device taking `input`;
    /// `None` without `--target`. Everything is checked here, before any image is measured: the
    /// slice has VM hosts, the rates are for its chip and for the model's stage sizes.
    pub fn demand(&self, spec: &ModelSpec, batch: i64, input: InputMode) -> Result<Option<Demand>> {
        let Some(target) = &self.target else {
            return Ok(None);
        };
        let slice = SliceHosts::of(target).with_context(|| format!("--target {target}"))?;
        let rates = match &self.target_costs {
            Some(path) => {
                let what = format!("--target-costs {}", path.display());
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("{what}: cannot read the file"))?;
                ChipRates::from_compile_json(&text, &what)?
            }
            None => compile_rates(target, spec, batch, input)?,
        };
        if rates.compiled_for.accelerator != target.accelerator {
            bail!(
                "--target {target}: the per-chip rates are for {}, another chip",
                rates.compiled_for
            );
        }
        let stage_sizes: Vec<usize> = spec
            .progressive_stages(ScheduleVariant::Official, 1)?
            .iter()
            .map(|s| s.image_size)
            .collect();
        rates
            .check_sizes(&stage_sizes)
            .with_context(|| match &self.target_costs {
                Some(path) => format!("--target-costs {}", path.display()),
                None => format!("--target {target}"),
            })?;
        Ok(Some(Demand {
            target: target.clone(),
            slice,
            rates,
        }))
    }
}

/// Compiles `spec`'s train steps taking `input` for one chip of `target` through the shared
/// executable cache (the one `compile` and `train` use), with progress on standard error.
fn compile_rates(
    target: &Target,
    spec: &ModelSpec,
    batch: i64,
    input: InputMode,
) -> Result<ChipRates> {
    let chip = target.one_chip();
    let compiler = AotCompiler::new(chip.clone(), None)?;
    let cache = ExecutableCache::shared()?;
    let model = Model::new(spec.clone())?;
    eprintln!(
        "per-chip rates: compiling {}'s train steps for {chip} at batch {batch} per device \
         (minutes each for a large model the first time; cached after)",
        spec.name
    );
    ChipRates::compile(&compiler, &model, batch, input, Some(&cache), |report| {
        let how = if report.cached {
            "from the cache".to_owned()
        } else {
            format!("in {:.0} s", report.compile_seconds)
        };
        eprintln!("  {} {how}", report.graph);
    })
}

impl Demand {
    /// The table: per measured image size (the model's stages), the measured images/s per core,
    /// the images/s one chip and one host consume, and the host cores that takes.
    pub fn print(&self, sizes: &[usize], per_core: &[f64]) {
        let host = &self.slice.host;
        println!(
            "target {}: {} x {} ({} chips, {} vCPUs = {} physical cores, {} GB) per host; \
             per-chip images/s by the roofline of {}",
            self.target,
            self.slice.hosts,
            host.machine_type,
            host.chips,
            host.vcpus,
            host.physical_cores(),
            host.memory_gb,
            self.rates.compiled_for,
        );
        println!(
            "{:>6} {:>12} {:>11} {:>11} {:>11} {:>10}",
            "px", "img/s/core", "img/s/chip", "img/s/host", "cores/host", "of host"
        );
        let figure =
            |v: Option<f64>, digits: usize| v.map_or("-".to_owned(), |v| format!("{v:.digits$}"));
        for (&size, &core) in sizes.iter().zip(per_core) {
            let per_chip = self.rates.for_size(size).and_then(|r| r.images_per_second);
            let feed = per_chip.and_then(|chip| HostFeed::new(host, chip, core));
            println!(
                "{size:>6} {core:>12.1} {:>11} {:>11} {:>11} {:>10}",
                figure(per_chip, 0),
                figure(feed.map(|f| f.images_per_second), 0),
                figure(feed.map(|f| f.cores), 1),
                feed.map_or("-".to_owned(), |f| format!("{:.0} %", f.share * 100.0)),
            );
        }
        if let Some(batch) = self.rates.rates.first().map(|r| r.batch) {
            println!(
                "(chips at batch {batch} per device; the training process needs cores of its own \
                 besides; above 100 % the host cannot feed its chips)"
            );
        }
    }
}
