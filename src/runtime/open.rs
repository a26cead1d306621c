//! Opening the plugin of a kind, the one sequence every user of a plugin goes through (the
//! execution context and the deviceless compiler): the environment its accelerator needs, the
//! library (the one given, or the pinned one, installed on first use), loaded.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::hardware;
use super::plugin::Plugin;
use super::provision::{self, PluginKind};

/// Prepares the environment for `kind`'s plugin and loads `plugin_path`, or the pinned plugin
/// of `kind` when it is `None`.
pub fn open_plugin(kind: PluginKind, plugin_path: Option<&Path>) -> Result<Arc<Plugin>> {
    hardware::prepare_environment(kind)?;
    let path = match plugin_path {
        Some(path) => path.to_path_buf(),
        None => provision::resolve(kind)?,
    };
    Plugin::load(&path).with_context(|| format!("loading PJRT plugin {}", path.display()))
}
