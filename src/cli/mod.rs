//! Command-line interface. Each subcommand lives in its own module with a clap `Args` or
//! `Subcommand` type and a `run` method; adding one is a new file, a `Command` variant and a match
//! arm.

mod plugin;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Train and run EfficientNetV2 through XLA PJRT plugins.
#[derive(Debug, Parser)]
#[command(name = "effnetv2", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install and list PJRT plugins (the shared libraries that run the compiled programs).
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
}

impl Cli {
    pub fn run(self) -> Result<()> {
        match self.command {
            Command::Plugin(command) => command.run(),
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
