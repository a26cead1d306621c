//! `effnetv2 bench`: train-step throughput for each device count and with K steps per
//! executable call, as ratios against the first setting measured in the same run (synthetic
//! data, so only the compiled step is timed).

use std::time::Instant;

use anyhow::Result;
use clap::Args;
use effnetv2::hlo::{ArrayShape, ElementType, Literal};
use effnetv2::model::{load_spec, Model};
use effnetv2::runtime::provision::PluginKind;
use effnetv2::train::signature::Signature;
use effnetv2::train::state::StateLayout;
use effnetv2::train::step::{train_step, Precision, StepConfig};
use effnetv2::trainer::context::Context;
use effnetv2::trainer::device_state::DeviceState;
use effnetv2::trainer::init::initial_state;

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
    #[arg(
        long,
        default_value = PluginKind::DEFAULT.name(),
        value_parser = super::plugin::kind_value_parser()
    )]
    plugin: PluginKind,
}

/// Deterministic stand-in data for every non-state input of `signature`: pixel-like images,
/// one-hot labels of class 0, class 0, a small learning rate, dropout 0.1, all K steps.
fn synthetic_feeds<'s>(
    signature: &'s Signature,
    layout: &StateLayout,
) -> Result<Vec<(&'s str, Literal)>> {
    signature
        .inputs()
        .iter()
        .filter(|p| layout.index_of(&p.name).is_none())
        .map(|p| Ok((p.name.as_str(), synthetic(&p.name, &p.shape)?)))
        .collect()
}

fn synthetic(name: &str, shape: &ArrayShape) -> Result<Literal> {
    use effnetv2::train::step::port;
    let n = shape.element_count() as usize;
    let literal = match (name, shape.ty()) {
        (port::IMAGES, _) => Literal::from_vec(
            shape.dims(),
            &(0..n)
                .map(|i| ((i * 7919) % 255) as f32 / 128.0 - 1.0)
                .collect::<Vec<_>>(),
        ),
        (port::LABELS, _) => {
            let classes = *shape.dims().last().unwrap_or(&1) as usize;
            Literal::from_vec(
                shape.dims(),
                &(0..n)
                    .map(|i| if i % classes == 0 { 1.0f32 } else { 0.0 })
                    .collect::<Vec<_>>(),
            )
        }
        (port::DROPOUT_RATE, _) => Literal::from_vec(shape.dims(), &vec![0.1f32; n]),
        // Every stacked batch: the graph clamps the count to its K.
        (port::STEPS, _) => Ok(Literal::scalar(i32::MAX)),
        (_, ElementType::S32) => Literal::from_vec(shape.dims(), &vec![0i32; n]),
        _ => Literal::from_vec(shape.dims(), &vec![0.01f32; n]),
    };
    literal.map_err(anyhow::Error::msg)
}

impl BenchArgs {
    pub fn run(self) -> Result<()> {
        let model = Model::new(load_spec(&self.model)?)?;
        let layout = StateLayout::new(&model);
        let mut baseline = None;
        println!(
            "{:>7} {:>4} {:>12} {:>10} {:>10}",
            "devices", "K", "compile s", "img/s", "vs first"
        );
        for &devices in &self.devices {
            let ctx = Context::open_devices(self.plugin, None, Some(devices))?;
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
                        ctx.depthwise(),
                    )
                };
                let graph = train_step(&model, &cfg)?;
                let (exe, event) = ctx.compile(&graph)?;
                let feeds = (0..devices)
                    .map(|r| ctx.upload_named_to(r, synthetic_feeds(&graph.signature, &layout)?))
                    .collect::<Result<Vec<_>>>()?;
                let mut state = DeviceState::upload(&ctx, &layout, &initial_state(&layout, 0))?;
                let calls = (self.steps + k - 1) / k;
                state.step(&exe, &feeds)?; // warm-up
                let t = Instant::now();
                for _ in 0..calls {
                    state.step(&exe, &feeds)?;
                }
                let ips = (calls * k * self.batch) as f64 / t.elapsed().as_secs_f64();
                let base = *baseline.get_or_insert(ips);
                println!(
                    "{devices:>7} {k:>4} {:>12.1} {ips:>10.1} {:>9.2}x",
                    event.seconds,
                    ips / base
                );
            }
        }
        Ok(())
    }
}
