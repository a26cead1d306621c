//! `effnetv2 bench`: train-step throughput for each device count and with K steps per
//! executable call, as ratios against the first setting measured in the same run (synthetic
//! data, so only the compiled step is timed).

use anyhow::Result;
use clap::Args;
use effnetv2::model::{load_spec, Model};
use effnetv2::step::graphs::{Precision, StepConfig};
use effnetv2::trainer::bench::time_train_steps;

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
    #[command(flatten)]
    plugin: PluginArgs,
}

impl BenchArgs {
    pub fn run(self) -> Result<()> {
        let model = Model::new(load_spec(&self.model)?)?;
        let mut baseline = None;
        println!(
            "{:>7} {:>4} {:>12} {:>10} {:>10}",
            "devices", "K", "compile s", "img/s", "vs first"
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
                let cfg = StepConfig {
                    steps_per_call: k,
                    replicas: devices as i64,
                    ..StepConfig::official(
                        self.batch / devices as i64,
                        self.image_size,
                        Precision::F32,
                        ctx.backend(),
                    )
                };
                let timing = time_train_steps(&ctx, &[(&model, &cfg)], self.steps)?.remove(0);
                let ips = timing.examples_per_second;
                let base = *baseline.get_or_insert(ips);
                println!(
                    "{devices:>7} {k:>4} {:>12.1} {ips:>10.1} {:>9.2}x",
                    timing.compile.seconds,
                    ips / base
                );
            }
        }
        Ok(())
    }
}
