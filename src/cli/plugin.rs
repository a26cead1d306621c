//! `effnetv2 plugin`: install and list PJRT plugins.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Result;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Subcommand};
use effnetv2::program::context::Context;
use effnetv2::runtime::provision::{self, LocalWheel, Locator, Pip, PluginKind, WheelSource};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Download the pinned wheel of a plugin, check its sha256 and extract the library into the
    /// user cache ($EFFNETV2_CACHE, $XDG_CACHE_HOME/effnetv2 or ~/.cache/effnetv2).
    Install {
        /// Which plugin.
        #[arg(value_parser = kind_value_parser())]
        kind: PluginKind,
        /// Install again even if the cache already has it.
        #[arg(long)]
        force: bool,
        /// Install from this wheel file instead of downloading it (it must be the pinned wheel).
        #[arg(long, value_name = "WHEEL")]
        wheel: Option<PathBuf>,
    },
    /// Show every plugin kind and where its library was found.
    List,
}

/// The plugin a command runs on (`--plugin`, `--plugin-path`).
#[derive(Clone, Debug, Args)]
pub struct PluginArgs {
    /// PJRT plugin kind.
    #[arg(
        long = "plugin",
        default_value = PluginKind::DEFAULT.name(),
        value_parser = kind_value_parser()
    )]
    pub kind: PluginKind,
    /// Use this plugin library instead of finding/installing one.
    #[arg(long = "plugin-path")]
    pub path: Option<PathBuf>,
}

impl PluginArgs {
    /// Opens the plugin and its client on `devices` devices (default: the plugin's choice).
    pub fn open(&self, devices: Option<usize>) -> Result<Context> {
        Context::open_devices(self.kind, self.path.as_deref(), devices)
    }
}

/// Parses a plugin kind; clap lists the kinds in help and errors.
pub fn kind_value_parser() -> impl TypedValueParser<Value = PluginKind> {
    PossibleValuesParser::new(PluginKind::ALL.map(PluginKind::name))
        .try_map(|name| name.parse::<PluginKind>())
}

impl PluginCommand {
    pub fn run(self) -> Result<()> {
        match self {
            Self::Install { kind, force, wheel } => install(kind, force, wheel),
            Self::List => list(),
        }
    }
}

fn install(kind: PluginKind, force: bool, wheel: Option<PathBuf>) -> Result<()> {
    let locator = Locator::from_env()?;
    let pin = kind.pin();
    if !force {
        if let Some(path) = locator.cache().lookup(pin)? {
            println!(
                "{kind}: {} is already installed at {} (--force installs it again)",
                pin.requirement(),
                path.display()
            );
            return Ok(());
        }
    }
    let source: Box<dyn WheelSource> = match wheel {
        Some(wheel) => Box::new(LocalWheel(wheel)),
        None => Box::new(Pip),
    };
    let path = provision::install(kind, source.as_ref(), force)?;
    println!(
        "{kind}: installed {} at {}",
        pin.requirement(),
        path.display()
    );
    Ok(())
}

fn list() -> Result<()> {
    let locator = Locator::from_env()?;
    let mut out = io::stdout().lock();
    writeln!(out, "{:<8} {:<28} LOCATION", "KIND", "PINNED WHEEL")?;
    for kind in PluginKind::ALL {
        let location = match locator.locate(kind, None) {
            Ok(Some(found)) => format!("{} ({})", found.path.display(), found.source),
            Ok(None) => "not installed".to_owned(),
            Err(err) => format!("error: {err:#}"),
        };
        writeln!(
            out,
            "{:<8} {:<28} {location}",
            kind.name(),
            kind.pin().requirement()
        )?;
    }
    writeln!(out, "cache: {}", locator.cache().root().display())?;
    Ok(())
}
