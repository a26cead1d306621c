//! `effnetv2 dump`: the HLO of every graph a training run compiles (text and serialized proto,
//! optionally XLA's optimized HLO), with a size table.

use std::fs;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use effnetv2::hlo::Module;
use effnetv2::model::graph::Lowering;
use effnetv2::model::{load_spec, Model, ScheduleVariant};
use effnetv2::nn::DepthwiseImpl;
use effnetv2::runtime::provision::PluginKind;
use effnetv2::runtime::{CompileOptions, OptionOverride};
use effnetv2::train::step::{eval_step_module, train_step_module, Precision, StepConfig};
use effnetv2::trainer::run::{depthwise_for, open_client};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Depthwise {
    Grouped,
    ShiftedSum,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    #[arg(long, default_value = "s")]
    model: String,
    #[arg(long, default_value_t = 128)]
    batch: i64,
    /// Only this progressive stage (default: every stage).
    #[arg(long, conflicts_with = "all_stages")]
    stage: Option<usize>,
    /// Every progressive stage (the default when --stage is not given).
    #[arg(long)]
    all_stages: bool,
    /// Also the eval step at the eval image size.
    #[arg(long)]
    eval: bool,
    #[arg(long, default_value = "official", value_parser = ["official", "paper"])]
    schedule: String,
    #[arg(long, default_value = "bf16", value_parser = ["f32", "bf16"])]
    precision: String,
    /// Depthwise lowering (default: grouped convolutions, or what suits --plugin with --optimized).
    #[arg(long, value_enum)]
    depthwise: Option<Depthwise>,
    #[arg(long, default_value = "hlo-dump")]
    out: PathBuf,
    /// Also compile each graph with the plugin and write XLA's optimized HLO.
    #[arg(long)]
    optimized: bool,
    #[arg(
        long,
        default_value = PluginKind::DEFAULT.name(),
        value_parser = super::plugin::kind_value_parser()
    )]
    plugin: PluginKind,
    #[arg(long)]
    plugin_path: Option<PathBuf>,
}

struct Graph {
    module: Module,
    image_size: usize,
}

impl DumpArgs {
    pub fn run(self) -> Result<()> {
        let model = Model::new(load_spec(&self.model)?)?;
        let precision = if self.precision == "bf16" {
            Precision::Bf16
        } else {
            Precision::F32
        };
        let schedule = if self.schedule == "paper" {
            ScheduleVariant::Paper
        } else {
            ScheduleVariant::Official
        };
        let client = if self.optimized {
            Some(open_client(self.plugin, self.plugin_path.as_deref())?)
        } else {
            None
        };
        let depthwise = match (self.depthwise, &client) {
            (Some(Depthwise::Grouped), _) => DepthwiseImpl::GroupedConvolution,
            (Some(Depthwise::ShiftedSum), _) => DepthwiseImpl::ShiftedSum,
            (None, Some(c)) => depthwise_for(c),
            (None, None) => DepthwiseImpl::GroupedConvolution,
        };
        let stages = model
            .spec
            .progressive_stages(schedule, model.spec.progressive.stages as u64 * 1000)?;
        let chosen: Vec<_> = match self.stage {
            Some(n) => match stages.get(n) {
                Some(s) => vec![s.clone()],
                None => bail!(
                    "--stage {n}: model {} has {} stages (0..{})",
                    model.spec.name,
                    stages.len(),
                    stages.len() - 1
                ),
            },
            None => stages,
        };
        let mut graphs = Vec::new();
        let mut sizes = Vec::new();
        for s in &chosen {
            if sizes.contains(&s.image_size) {
                continue;
            }
            sizes.push(s.image_size);
            let cfg = StepConfig::official(self.batch, s.image_size as i64, precision, depthwise);
            graphs.push(Graph {
                module: train_step_module(&model, &cfg)?,
                image_size: s.image_size,
            });
        }
        if self.eval {
            let eval = model.spec.image_size.eval;
            let lowering = Lowering {
                compute: precision.compute_type(),
                depthwise,
            };
            graphs.push(Graph {
                module: eval_step_module(&model, self.batch, eval as i64, lowering)?,
                image_size: eval,
            });
        }
        fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        let counts = model.param_counts();
        println!(
            "{:<28} {:>6} {:>6} {:>12} {:>12} {:>14} {:>14}",
            "graph", "image", "batch", "instructions", "parameters", "param bytes", "fwd MACs/img"
        );
        for g in &graphs {
            let name = g.module.name().to_string();
            fs::write(self.out.join(format!("{name}.hlo.txt")), g.module.to_text())?;
            fs::write(
                self.out.join(format!("{name}.hlo.pb")),
                g.module.to_proto_bytes(),
            )?;
            println!(
                "{:<28} {:>6} {:>6} {:>12} {:>12} {:>14} {:>14}",
                name,
                g.image_size,
                self.batch,
                g.module.instruction_count(),
                counts.total,
                counts.total * 4,
                model.macs(g.image_size).total()
            );
            if let Some(client) = &client {
                let dir = tempfile::tempdir()?;
                let options = CompileOptions::default()
                    .with_override(
                        "xla_dump_to",
                        OptionOverride::String(dir.path().display().to_string()),
                    )
                    .with_override("xla_dump_hlo_as_text", OptionOverride::Bool(true));
                client
                    .compile_module(&g.module, &options)
                    .with_context(|| format!("compiling {name}"))?;
                let optimized = fs::read_dir(dir.path())?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .find(|p| p.to_string_lossy().ends_with("after_optimizations.txt"))
                    .with_context(|| format!("XLA wrote no optimized HLO for {name}"))?;
                fs::copy(
                    &optimized,
                    self.out.join(format!("{name}.optimized.hlo.txt")),
                )?;
            }
        }
        println!("wrote {} graphs to {}", graphs.len(), self.out.display());
        Ok(())
    }
}
