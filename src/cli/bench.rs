//! `effnetv2 bench`: train-step throughput for each device count and with K steps per
//! executable call, as ratios against the first setting measured in the same run (synthetic
//! data, so only the compiled step is timed); with `--data`, the input pipeline's throughput on
//! the user's own images at each progressive stage instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use effnetv2::data::throughput::{loader_rates, stage_cost};
use effnetv2::data::{
    AugmentOn, AugmentSettings, ImageFolder, LoaderConfig, Source, Stage, TrainTransform,
};
use effnetv2::model::{load_spec, Model, ScheduleVariant};
use effnetv2::step::graphs::{InputMode, Precision, StepConfig};
use effnetv2::trainer::bench::time_train_steps;
use effnetv2::trainer::input::{any_mixing, loader_stage, DataSpec, InputPipeline};

use super::feed::TargetArgs;
use super::plugin::PluginArgs;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[arg(long, default_value = "tiny")]
    model: String,
    #[arg(long, default_value_t = 128)]
    batch: i64,
    #[arg(long, default_value_t = 28)]
    image_size: i64,
    /// Steps per executable call to compare with 1 (1: only K = 1).
    #[arg(long, default_value_t = 8)]
    steps_per_call: i64,
    /// Device counts to compare, data-parallel over the global --batch (e.g. 1,2).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    devices: Vec<usize>,
    /// Train steps timed per setting (rounded up to whole calls).
    #[arg(long, default_value_t = 32)]
    steps: i64,
    /// Measure the input pipeline instead of the train step, on this folder of class folders
    /// (or a data directory with train/ and val/, whose train/ is used), with the model's
    /// official transform at each progressive stage.
    #[arg(long)]
    data: Option<PathBuf>,
    /// With --data: loader workers to compare with one worker.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// With --data: images per stage and variant for the per-core split.
    #[arg(long, default_value_t = 256)]
    images: usize,
    /// With --data: measure at these image sizes (e.g. 128,171,224,300, the sizes other
    /// pipelines are usually compared at) instead of the model's progressive stages, each with
    /// the last stage's augmentation strength.
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<usize>,
    /// `device`: time each train step that augments on the device against the same step taking
    /// host-augmented images (alternating turns, synthetic inputs); with --data, run the loader
    /// line in device mode (u8 images and drawn augmentation). The per-core table of --data
    /// shows both modes where the model's policy runs on the device.
    #[arg(long, default_value = "host")]
    augment_on: AugmentOn,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    plugin: PluginArgs,
}

/// Images per turn of the per-core measurement: small enough that many turns alternate, large
/// enough that a turn's timer overhead is negligible.
const IMAGES_PER_TURN: usize = 16;
/// Turns of each loader (1 and N workers) and the length of one turn.
const LOADER_TURNS: usize = 2;
const LOADER_TURN: Duration = Duration::from_secs(3);

impl BenchArgs {
    pub fn run(self) -> Result<()> {
        if let Some(dir) = &self.data {
            return self.run_data(dir);
        }
        let model = Model::new(load_spec(&self.model)?)?;
        // With --augment-on device, each setting's step is timed against the same step taking
        // host-augmented images, in alternating turns.
        let inputs = match self.augment_on {
            AugmentOn::Host => vec![InputMode::Normalised],
            AugmentOn::Device => {
                let spec = &model.spec;
                let stages = spec.progressive_stages(ScheduleVariant::Official, 1)?;
                let device = InputPipeline::for_spec(spec)?
                    .step_input(AugmentOn::Device, any_mixing(&stages))?;
                vec![InputMode::Normalised, device]
            }
        };
        let mut baseline = None;
        println!(
            "{:>7} {:>4} {:>7} {:>12} {:>10} {:>10}",
            "devices", "K", "augment", "compile s", "img/s", "vs first"
        );
        for &devices in &self.devices {
            let ctx = self.plugin.open(Some(devices))?;
            anyhow::ensure!(
                self.batch % devices as i64 == 0,
                "--batch {} does not split evenly over {devices} devices",
                self.batch
            );
            let ks = if self.steps_per_call > 1 {
                vec![1, self.steps_per_call]
            } else {
                vec![1]
            };
            for k in ks {
                let cfgs: Vec<StepConfig> = inputs
                    .iter()
                    .map(|&input| StepConfig {
                        steps_per_call: k,
                        replicas: devices as i64,
                        input,
                        ..StepConfig::official(
                            self.batch / devices as i64,
                            self.image_size,
                            Precision::F32,
                            ctx.backend(),
                        )
                    })
                    .collect();
                let benches: Vec<_> = cfgs.iter().map(|cfg| (&model, cfg)).collect();
                let timings = time_train_steps(&ctx, &benches, self.steps)?;
                for (timing, input) in timings.iter().zip(&inputs) {
                    let ips = timing.examples_per_second;
                    let base = *baseline.get_or_insert(ips);
                    let on = match input {
                        InputMode::Normalised => "host",
                        InputMode::DeviceAugment(_) => "device",
                    };
                    println!(
                        "{devices:>7} {k:>4} {on:>7} {:>12.1} {ips:>10.1} {:>9.2}x",
                        timing.compile.seconds,
                        ips / base
                    );
                }
            }
        }
        Ok(())
    }

    /// `bench --data`: per stage, images/s per core with the decode / crop-resize / augment
    /// split, then the loader with 1 and `--workers` workers at the last stage.
    fn run_data(&self, dir: &Path) -> Result<()> {
        anyhow::ensure!(self.workers > 0, "--workers must be at least 1");
        anyhow::ensure!(self.batch > 0, "--batch must be at least 1");
        let spec = load_spec(&self.model)?;
        let pipeline = InputPipeline::for_spec(&spec)?;
        let progressive = spec.progressive_stages(ScheduleVariant::Official, 1)?;
        // The chips' rates of the steps this mode trains with: with --augment-on device the
        // step augments, and costs the chip more.
        let input = pipeline.step_input(self.augment_on, any_mixing(&progressive))?;
        let demand = self.target.demand(&spec, self.batch, input)?;
        let source: Arc<dyn Source> = match dir.to_str().map(str::parse::<DataSpec>) {
            Some(Ok(data)) => data.open()?.0,
            _ => Arc::new(ImageFolder::open(dir)?),
        };
        let mut stages: Vec<Stage> = progressive.iter().map(loader_stage).collect();
        if !self.sizes.is_empty() {
            anyhow::ensure!(
                self.sizes.iter().all(|&size| size > 0),
                "--sizes must be positive image sizes"
            );
            let last = *stages.last().expect("a model has at least one stage");
            stages = self
                .sizes
                .iter()
                .map(|&image_size| Stage { image_size, ..last })
                .collect();
        }
        let transform = TrainTransform {
            image_size: stages[0].image_size,
            preprocessing: pipeline.preprocessing,
            policy: pipeline.policy,
            magnitude: stages[0].magnitude,
            settings: AugmentSettings::default(),
            normalization: pipeline.normalization,
        };
        println!(
            "{} images of {}; model {}: {pipeline}",
            source.len(),
            dir.display(),
            spec.name
        );
        println!(
            "one core, ms per image (alternating turns on the same images); device: the host's \
             part with --augment-on device (decode, crop/resize/flip to u8, drawing):"
        );
        println!(
            "{:>6} {:>9} {:>8} {:>12} {:>8} {:>8} {:>12} {:>12} {:>12} {:>8}",
            "px",
            "magnitude",
            "decode",
            "crop-resize",
            "augment",
            "total",
            "img/s/core",
            "device part",
            "device img/s",
            "vs host"
        );
        let turns = self.images.div_ceil(IMAGES_PER_TURN);
        let mut per_core = Vec::with_capacity(stages.len());
        for &stage in &stages {
            let cost = stage_cost(source.as_ref(), transform, stage, turns, IMAGES_PER_TURN)?;
            let device = cost.device_images_per_second();
            per_core.push(match self.augment_on {
                AugmentOn::Host => cost.images_per_second(),
                AugmentOn::Device => device.unwrap_or(cost.images_per_second()),
            });
            let device_columns = match (cost.device_host_part, device) {
                (Some(part), Some(rate)) => format!(
                    "{:>12.3} {rate:>12.1} {:>7.2}x",
                    part * 1e3,
                    rate / cost.images_per_second()
                ),
                _ => format!("{:>12} {:>12} {:>8}", "-", "-", "-"),
            };
            println!(
                "{:>6} {:>9.1} {:>8.3} {:>12.3} {:>8.3} {:>8.3} {:>12.1} {device_columns}",
                stage.image_size,
                stage.magnitude,
                cost.decode * 1e3,
                cost.crop_resize * 1e3,
                cost.augment * 1e3,
                1e3 / cost.images_per_second(),
                cost.images_per_second()
            );
            if cost.failed > 0 {
                println!(
                    "       ({} images failed to load and were skipped)",
                    cost.failed
                );
            }
        }
        let last = *stages.last().expect("a model has at least one stage");
        let config = LoaderConfig {
            drop_last: false,
            augment_on: self.augment_on,
            ..pipeline.loader_config(self.batch as usize, last, 0, self.workers)
        };
        let rates = loader_rates(source, config, LOADER_TURNS, LOADER_TURN)?;
        println!(
            "loader ({} mode) at {} px, batch {} with mixup/cutmix: 1 worker {:.1} img/s, {} workers \
             {:.1} img/s ({:.2}x)",
            self.augment_on,
            last.image_size,
            self.batch,
            rates.one,
            rates.workers,
            rates.many,
            rates.many / rates.one
        );
        if let Some(demand) = demand {
            let sizes: Vec<usize> = stages.iter().map(|s| s.image_size).collect();
            demand.print(&sizes, &per_core);
        }
        Ok(())
    }
}
