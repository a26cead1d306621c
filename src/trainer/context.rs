//! The one place that sets up execution: plugin, client, device, executable cache, and
//! compiling and running step graphs through their signatures. `train`, `eval`, `bench` and
//! `dump` all start from a [`Context`].

use std::path::Path;

use anyhow::{Context as _, Result};

use super::executables::{CompileEvent, ExecutableCache};
use crate::hlo::Literal;
use crate::model::graph::Lowering;
use crate::nn::DepthwiseImpl;
use crate::runtime::provision::{self, PluginKind};
use crate::runtime::{
    hardware, Arg, Buffer, Client, ClientOptions, CompileOptions, Device, LoadedExecutable, Plugin,
};
use crate::train::signature::{Outputs, Signature, StepGraph};
use crate::train::step::Precision;

/// A plugin's client on this machine, its device and the executable cache.
pub struct Context {
    client: Client,
    cache: ExecutableCache,
}

impl Context {
    /// Loads the plugin of `kind` (`plugin_path`, or the pinned one, installed on first use for
    /// the CPU plugins), creates a one-device client and uses the user's executable cache. Fails
    /// at once, before loading anything, when the plugin's accelerator is not present.
    pub fn open(kind: PluginKind, plugin_path: Option<&Path>) -> Result<Context> {
        hardware::check_device_present(kind)?;
        let path = match plugin_path {
            Some(p) => p.to_path_buf(),
            None => provision::resolve(kind)?,
        };
        let plugin = Plugin::load(&path)
            .with_context(|| format!("loading PJRT plugin {}", path.display()))?;
        let options = if matches!(kind, PluginKind::Cpu | PluginKind::CpuJax) {
            ClientOptions::new().cpu_device_count(1)
        } else {
            ClientOptions::new()
        };
        let client = Client::new(plugin, &options)?;
        if client.addressable_devices().is_empty() {
            anyhow::bail!("the {kind} plugin exposes no device");
        }
        let cache = ExecutableCache::new(Some(crate::data::cache_dir()?.join("executables")));
        Ok(Context { client, cache })
    }

    /// The same context with another executable cache.
    pub fn with_cache(self, cache: ExecutableCache) -> Context {
        Context { cache, ..self }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The device programs run on.
    pub fn device(&self) -> &Device {
        &self.client.addressable_devices()[0]
    }

    /// The depthwise lowering that runs fastest on this platform: shifted sums on the CPU
    /// plugins, grouped convolutions elsewhere.
    pub fn depthwise(&self) -> DepthwiseImpl {
        if self.client.platform_name().eq_ignore_ascii_case("cpu") {
            DepthwiseImpl::ShiftedSum
        } else {
            DepthwiseImpl::GroupedConvolution
        }
    }

    /// How graphs are lowered here at `precision`.
    pub fn lowering(&self, precision: Precision) -> Lowering {
        Lowering {
            compute: precision.compute_type(),
            depthwise: self.depthwise(),
        }
    }

    /// Compiles a step graph (or loads it from the cache) with the default options.
    pub fn compile(&self, graph: &StepGraph) -> Result<(StepExecutable, CompileEvent)> {
        self.compile_with(graph, &CompileOptions::default())
    }

    /// Compiles a step graph (or loads it from the cache) with `options`.
    pub fn compile_with(
        &self,
        graph: &StepGraph,
        options: &CompileOptions,
    ) -> Result<(StepExecutable, CompileEvent)> {
        let (executable, event) = self.cache.get(&self.client, &graph.module, options)?;
        let step = StepExecutable {
            executable,
            signature: graph.signature.clone(),
        };
        Ok((step, event))
    }

    /// Copies a host array to the device.
    pub fn upload(&self, literal: &Literal) -> Result<Buffer> {
        Ok(self.client.buffer_from_literal(literal, self.device())?)
    }

    /// Copies named host arrays to the device, keeping their names.
    pub fn upload_named<'n>(
        &self,
        named: impl IntoIterator<Item = (&'n str, Literal)>,
    ) -> Result<Vec<(&'n str, Buffer)>> {
        named
            .into_iter()
            .map(|(name, literal)| Ok((name, self.upload(&literal)?)))
            .collect()
    }
}

/// A compiled step graph with its signature: run with named arguments, get named results.
pub struct StepExecutable {
    pub executable: LoadedExecutable,
    pub signature: Signature,
}

impl StepExecutable {
    /// Runs on the context's device with named arguments (donated or borrowed).
    pub fn run<'s, 'a>(
        &'s self,
        args: impl IntoIterator<Item = (impl AsRef<str>, Arg<'a>)>,
    ) -> Result<Outputs<'s, Buffer>> {
        let args = self.signature.arrange(args)?;
        let results = self
            .executable
            .execute(args)
            .with_context(|| format!("executing {}", self.signature.graph()))?;
        Ok(self.signature.name_outputs(results)?)
    }
}
