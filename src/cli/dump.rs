//! `effnetv2 dump`: the HLO of every graph a training run compiles (text and serialized proto,
//! optionally the optimized HLO of a CPU plugin or of a TPU target), with a size table.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};
use effnetv2::aot::{AotCompiler, Target};
use effnetv2::hlo::Module;
use effnetv2::model::Backend;
use effnetv2::program::context::Context;
use effnetv2::runtime::{plugin_log, CompileOptions, OptionOverride};

use super::graphs::GraphArgs;
use super::plugin::PluginArgs;

/// `--backend`: the compilers the graphs are shaped for (see [`Backend`]).
#[derive(Clone, Copy, Debug, ValueEnum)]
enum BackendArg {
    /// Shifted-sum depthwise convolutions, autodiff's gradients (the CPU plugins' graphs).
    Cpu,
    /// Grouped depthwise convolutions, the joint batch-norm/SiLU/SE gradient (TPU, GPU).
    Accelerator,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    #[command(flatten)]
    graphs: GraphArgs,
    /// The compilers the graphs are shaped for (default: accelerator, or what suits --plugin
    /// with --optimized).
    #[arg(long, value_enum)]
    backend: Option<BackendArg>,
    /// Devices the train steps run on, data-parallel (with all-reduces).
    #[arg(long, default_value_t = 1)]
    devices: usize,
    #[arg(long, default_value = "hlo-dump")]
    out: PathBuf,
    /// Also compile each graph and write XLA's optimized HLO: for --target if given (no device
    /// needed), otherwise with --plugin.
    #[arg(long)]
    optimized: bool,
    /// A TPU target (tpu:v5e, ...) whose compiler writes the optimized HLO.
    #[arg(long, requires = "optimized")]
    target: Option<Target>,
    #[command(flatten)]
    plugin: PluginArgs,
}

/// Who compiles the graphs for `--optimized`.
enum Optimizer {
    Plugin(Box<Context>),
    Target(Box<AotCompiler>),
}

impl Optimizer {
    /// Compiles `module` with XLA's dump options and copies its optimized HLO text to `dest`.
    fn write_optimized(&self, module: &Module, dest: &Path) -> Result<()> {
        let dir = tempfile::tempdir()?;
        let options = CompileOptions::default()
            .with_override(
                "xla_dump_to",
                OptionOverride::String(dir.path().display().to_string()),
            )
            .with_override("xla_dump_hlo_as_text", OptionOverride::Bool(true));
        let name = module.name();
        // XLA logs where it dumps; nothing else prints while this compiles.
        plugin_log::quietly(|| -> Result<()> {
            match self {
                Optimizer::Plugin(ctx) => {
                    ctx.client()
                        .compile_module(module, &options)
                        .with_context(|| format!("compiling {name}"))?;
                }
                Optimizer::Target(compiler) => {
                    compiler.compile(module, &options)?;
                }
            }
            Ok(())
        })?;
        let optimized = fs::read_dir(dir.path())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.to_string_lossy().ends_with("after_optimizations.txt"))
            .with_context(|| format!("XLA wrote no optimized HLO for {name}"))?;
        fs::copy(&optimized, dest)?;
        Ok(())
    }
}

impl DumpArgs {
    pub fn run(self) -> Result<()> {
        let optimizer = match (self.optimized, &self.target) {
            (false, _) => None,
            (true, Some(target)) => Some(Optimizer::Target(Box::new(AotCompiler::new(
                target.clone(),
                self.plugin.path.as_deref(),
            )?))),
            (true, None) => Some(Optimizer::Plugin(Box::new(self.plugin.open(Some(1))?))),
        };
        let backend = match (self.backend, &optimizer) {
            (Some(BackendArg::Accelerator), _) => Backend::Accelerator,
            (Some(BackendArg::Cpu), _) => Backend::Cpu,
            (None, Some(Optimizer::Plugin(ctx))) => ctx.backend(),
            (None, _) => Backend::Accelerator,
        };
        let (model, planned) = self.graphs.plan(backend, self.devices)?;
        fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        let counts = model.param_counts();
        println!(
            "{:<28} {:>6} {:>6} {:>12} {:>12} {:>14} {:>14}",
            "graph", "image", "batch", "instructions", "parameters", "param bytes", "fwd MACs/img"
        );
        for graph in &planned {
            let module = graph.build(&model)?.module;
            let name = module.name().to_string();
            fs::write(self.out.join(format!("{name}.hlo.txt")), module.to_text())?;
            fs::write(
                self.out.join(format!("{name}.hlo.pb")),
                module.to_proto_bytes(),
            )?;
            println!(
                "{:<28} {:>6} {:>6} {:>12} {:>12} {:>14} {:>14}",
                name,
                graph.image_size,
                graph.batch,
                module.instruction_count(),
                counts.total,
                counts.total * 4,
                model.macs(graph.image_size).total()
            );
            if let Some(optimizer) = &optimizer {
                let dest = self.out.join(format!("{name}.optimized.hlo.txt"));
                optimizer.write_optimized(&module, &dest)?;
            }
        }
        println!("wrote {} graphs to {}", planned.len(), self.out.display());
        Ok(())
    }
}
