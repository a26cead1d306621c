//! Command-line interface. Each subcommand lives in its own module with a clap `Args` or
//! `Subcommand` type and a `run` method; adding one is a new file, a `Command` variant and a match
//! arm.

mod bench;
mod compile;
mod data;
mod dump;
mod eval;
mod feed;
mod graphs;
mod info;
mod interrupt;
mod plugin;
mod predict;
mod progress;
mod report;
mod search;
mod summary;
mod train;
mod transfer;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Train and run EfficientNetV2 through XLA PJRT plugins.
#[derive(Debug, Parser)]
#[command(name = "effnetv2", version)]
pub struct Cli {
    /// Show the PJRT plugins' own log lines (otherwise appended to plugin.log in the cache).
    #[arg(long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install and list PJRT plugins (the shared libraries that run the compiled programs).
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Train with progressive learning (defaults: the small variant on Fashion-MNIST, CPU plugin).
    Train(Box<train::TrainArgs>),
    /// Plot a run's loss, accuracy and learning rate (PNG and SVG) and summarise its stages.
    Report(report::ReportArgs),
    /// Evaluate a run's EMA weights (top-1 / top-5).
    Eval(eval::EvalArgs),
    /// Write the HLO of every graph a training run compiles, with a size table.
    Dump(dump::DumpArgs),
    /// Compile a run's graphs for a TPU or GPU without one: memory per device, cost, speed.
    Compile(Box<compile::CompileArgs>),
    /// Print a model's layer table (shapes, parameters, MACs).
    Summary(summary::SummaryArgs),
    /// Show a plugin's version, platform and devices.
    Info(info::InfoArgs),
    /// Measure train-step throughput with K steps per call against K = 1.
    Bench(bench::BenchArgs),
    /// Classify images with a run's or a timm file's weights: top classes with probabilities.
    Predict(Box<predict::PredictArgs>),
    /// Write a run's weights as a timm state dict (safetensors).
    Export(transfer::ExportArgs),
    /// Start a run from a timm state dict: its first checkpoint.
    Import(Box<transfer::ImportArgs>),
    /// Training-aware architecture search: sample, train briefly, score A * S^w * P^v.
    Search(search::SearchArgs),
    /// Install data sets and pack image folders into zip shards.
    #[command(subcommand)]
    Data(data::DataCommand),
}

impl Cli {
    pub fn run(self) -> Result<()> {
        effnetv2::runtime::provision::on_notice(|message| eprintln!("effnetv2: {message}"));
        if !self.verbose {
            let log = effnetv2::data::cache_dir()?.join("logs").join("plugin.log");
            effnetv2::runtime::plugin_log::redirect_plugin_output(Some(log));
        }
        match self.command {
            Command::Plugin(command) => command.run(),
            Command::Train(args) => args.run(),
            Command::Report(args) => args.run(),
            Command::Eval(args) => args.run(),
            Command::Dump(args) => args.run(),
            Command::Compile(args) => args.run(),
            Command::Summary(args) => args.run(),
            Command::Info(args) => args.run(),
            Command::Bench(args) => args.run(),
            Command::Predict(args) => args.run(),
            Command::Export(args) => args.run(),
            Command::Import(args) => args.run(),
            Command::Search(args) => args.run(),
            Command::Data(command) => command.run(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
