//! `effnetv2 bench`: train-step throughput with K steps per executable call against K = 1
//! measured in the same run (synthetic data, so only the compiled step is timed).

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use effnetv2::hlo::Literal;
use effnetv2::model::{load_spec, Model};
use effnetv2::runtime::provision::PluginKind;
use effnetv2::runtime::{Buffer, CompileOptions};
use effnetv2::train::state::StateLayout;
use effnetv2::train::step::{train_step_module, Precision, StepConfig};
use effnetv2::trainer::device_state::DeviceState;
use effnetv2::trainer::executables::ExecutableCache;
use effnetv2::trainer::init::initial_state;
use effnetv2::trainer::run::{depthwise_for, open_client};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[arg(long, default_value = "tiny")]
    model: String,
    #[arg(long, default_value_t = 128)]
    batch: i64,
    #[arg(long, default_value_t = 28)]
    image_size: i64,
    /// Steps per executable call to compare with 1.
    #[arg(long, default_value_t = 8)]
    steps_per_call: i64,
    /// Train steps timed per setting (rounded up to whole calls).
    #[arg(long, default_value_t = 32)]
    steps: i64,
    #[arg(
        long,
        default_value = PluginKind::DEFAULT.name(),
        value_parser = super::plugin::kind_value_parser()
    )]
    plugin: PluginKind,
}

impl BenchArgs {
    pub fn run(self) -> Result<()> {
        let model = Model::new(load_spec(&self.model)?)?;
        let layout = StateLayout::new(&model);
        let client = open_client(self.plugin, None)?;
        let device = client.addressable_devices().first().context("no device")?;
        let cache = ExecutableCache::new(Some(effnetv2::data::cache_dir()?.join("executables")));
        let classes = model.spec.num_classes as i64;
        let mut baseline = None;
        println!(
            "{:>6} {:>12} {:>10} {:>10}",
            "K", "compile s", "img/s", "vs K=1"
        );
        for k in [1, self.steps_per_call] {
            let mut cfg = StepConfig::official(
                self.batch,
                self.image_size,
                Precision::F32,
                depthwise_for(&client),
            );
            cfg.steps_per_call = k;
            let (exe, event) = cache.get(
                &client,
                &train_step_module(&model, &cfg)?,
                &CompileOptions::default(),
            )?;
            let lead: Vec<i64> = if k > 1 { vec![k] } else { vec![] };
            let dims = |d: &[i64]| -> Vec<i64> { lead.iter().chain(d).copied().collect() };
            let (b, s) = (self.batch, self.image_size);
            let n_img = (lead.iter().product::<i64>() * b * s * s * 3) as usize;
            let images: Vec<f32> = (0..n_img)
                .map(|i| ((i * 7919) % 255) as f32 / 128.0 - 1.0)
                .collect();
            let labels: Vec<f32> = (0..(lead.iter().product::<i64>() * b * classes) as usize)
                .map(|i| if i as i64 % classes == 0 { 1.0 } else { 0.0 })
                .collect();
            let inputs = [
                Literal::from_vec(&dims(&[b, s, s, 3]), &images),
                Literal::from_vec(&dims(&[b, classes]), &labels),
                Literal::from_vec(
                    &dims(&[b]),
                    &vec![0i32; (lead.iter().product::<i64>() * b) as usize],
                ),
                Literal::from_vec(
                    &dims(&[]),
                    &vec![0.01f32; lead.iter().product::<i64>() as usize],
                ),
                Ok(Literal::scalar(0.1f32)),
            ];
            let inputs: Vec<Buffer> = inputs
                .into_iter()
                .map(|l| Ok(client.buffer_from_literal(&l.map_err(anyhow::Error::msg)?, device)?))
                .collect::<Result<_>>()?;
            let mut state = DeviceState::upload(&client, device, &initial_state(&layout, 0))?;
            let calls = (self.steps + k - 1) / k;
            state.step(&exe, &inputs)?; // warm-up
            let t = Instant::now();
            for _ in 0..calls {
                state.step(&exe, &inputs)?;
            }
            let ips = (calls * k * b) as f64 / t.elapsed().as_secs_f64();
            let base = *baseline.get_or_insert(ips);
            println!(
                "{k:>6} {:>12.1} {ips:>10.1} {:>9.2}x",
                event.seconds,
                ips / base
            );
        }
        Ok(())
    }
}
