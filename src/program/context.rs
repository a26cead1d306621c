//! The one place that sets up execution: plugin, client, device, executable cache, and
//! compiling and running step graphs through their signatures. `train`, `eval`, `bench` and
//! `dump` all start from a [`Context`].

use std::path::Path;

use anyhow::{Context as _, Result};

use super::executables::{CompileEvent, ExecutableCache};
use super::placement::Placement;
use crate::hlo::Literal;
use crate::model::graph::Lowering;
use crate::model::Backend;
use crate::runtime::provision::PluginKind;
use crate::runtime::{
    hardware, open_plugin, Arg, Buffer, Client, ClientOptions, CompileOptions, Device,
    DeviceAssignment, LoadedExecutable,
};
use crate::step::graphs::Precision;
use crate::step::signature::{Outputs, Signature, StepGraph};

/// A plugin's client on this machine, the devices it uses and the executable cache.
pub struct Context {
    client: Client,
    /// The replicas of data-parallel steps and which of them run here.
    placement: Placement,
    /// The devices of this process's replicas, in replica order: indices into the client's
    /// addressable devices.
    local: Vec<usize>,
    /// Where the plugin places a one-replica program by default.
    default_single_device: i64,
    cache: ExecutableCache,
}

impl Context {
    /// A one-device context: see [`Context::open_devices`].
    pub fn open(kind: PluginKind, plugin_path: Option<&Path>) -> Result<Context> {
        Context::open_devices(kind, plugin_path, Some(1))
    }

    /// Loads the plugin of `kind` (`plugin_path`, or the pinned one, installed on first use for
    /// the CPU plugins and libtpu), creates a client using `devices` devices and uses the user's
    /// executable cache. `None` means every device of an accelerator, and one CPU device (the
    /// CPU plugins make as many virtual devices as asked for, which share the same cores). On a
    /// multi-host slice every device of every host is used. Fails at once, before loading
    /// anything, when the plugin's accelerator is not present.
    pub fn open_devices(
        kind: PluginKind,
        plugin_path: Option<&Path>,
        devices: Option<usize>,
    ) -> Result<Context> {
        if devices == Some(0) {
            anyhow::bail!("--devices 0: at least one device is needed");
        }
        hardware::check_device_present(kind)?;
        let plugin = open_plugin(kind, plugin_path)?;
        let cpu = matches!(kind, PluginKind::Cpu | PluginKind::CpuJax);
        let options = if cpu {
            ClientOptions::new().cpu_device_count(devices.unwrap_or(1) as i64)
        } else {
            ClientOptions::new()
        };
        let client = Client::new(plugin, &options)?;
        let replicas = replica_count(&client, kind, devices)?;
        let placement = place(&client, replicas)?;
        let local = placement
            .local_device_ids()
            .iter()
            .map(|&id| {
                client
                    .addressable_devices()
                    .iter()
                    .position(|d| i64::from(d.id()) == id)
                    .with_context(|| {
                        format!("device {id} of this host's replicas is not addressable")
                    })
            })
            .collect::<Result<_>>()?;
        let default_single_device = client.default_device_assignment(1)?[0];
        let cache = ExecutableCache::shared()?;
        Ok(Context {
            client,
            placement,
            local,
            default_single_device,
            cache,
        })
    }

    /// The same context with another executable cache.
    pub fn with_cache(self, cache: ExecutableCache) -> Context {
        Context { cache, ..self }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The replicas of data-parallel steps and this process's part of them.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// How many devices this process runs replicas on.
    pub fn local_devices(&self) -> usize {
        self.local.len()
    }

    /// The device of this process's `index`-th replica (of
    /// [`Placement::local_replicas`]).
    pub fn local_device(&self, index: usize) -> &Device {
        &self.client.addressable_devices()[self.local[index]]
    }

    /// The first local device, which one-device programs (evaluation) run on.
    pub fn device(&self) -> &Device {
        self.local_device(0)
    }

    /// The compilers this platform's graphs are shaped for: XLA's CPU backend on the CPU
    /// plugins, the accelerator compilers elsewhere.
    pub fn backend(&self) -> Backend {
        if self.client.platform_name().eq_ignore_ascii_case("cpu") {
            Backend::Cpu
        } else {
            Backend::Accelerator
        }
    }

    /// How graphs are lowered here at `precision`.
    pub fn lowering(&self, precision: Precision) -> Lowering {
        Lowering {
            compute: precision.compute_type(),
            backend: self.backend(),
        }
    }

    /// Compiles a step graph (or loads it from the cache) for as many devices as it has
    /// replicas, with the plugin's default placement (that of [`Context::placement`]). No
    /// explicit device assignment is sent, so the options (part of the cache key) equal those
    /// `effnetv2 compile` uses for the same graph on a TPU topology, and its executables are
    /// found here. One-replica graphs go to [`Context::device`], explicitly where the plugin
    /// would place them elsewhere (on the other hosts of a slice, or when the plugin's replica
    /// order does not start with its first device).
    pub fn compile(&self, graph: &StepGraph) -> Result<(StepExecutable, CompileEvent)> {
        let options = match graph.replicas {
            1 if i64::from(self.device().id()) != self.default_single_device => CompileOptions {
                device_assignment: Some(DeviceAssignment::replicas(&[i64::from(
                    self.device().id(),
                )])?),
                ..CompileOptions::default()
            },
            1 => CompileOptions::default(),
            n if n == self.placement.replicas() => CompileOptions::replicated(n as u32),
            n => anyhow::bail!(
                "{} runs on {n} devices, but this context uses {}",
                graph.signature.graph(),
                self.placement.replicas()
            ),
        };
        self.compile_with(graph, &options)
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

    /// Copies a host array to the first device.
    pub fn upload(&self, literal: &Literal) -> Result<Buffer> {
        self.upload_to(0, literal)
    }

    /// Copies a host array to local device `index` (see [`Context::local_device`]).
    pub fn upload_to(&self, index: usize, literal: &Literal) -> Result<Buffer> {
        Ok(self
            .client
            .buffer_from_literal(literal, self.local_device(index))?)
    }

    /// Copies named host arrays to the first device, keeping their names.
    pub fn upload_named<'n>(
        &self,
        named: impl IntoIterator<Item = (&'n str, Literal)>,
    ) -> Result<Vec<(&'n str, Buffer)>> {
        self.upload_named_to(0, named)
    }

    /// Copies named host arrays to local device `index`, keeping their names.
    pub fn upload_named_to<'n>(
        &self,
        index: usize,
        named: impl IntoIterator<Item = (&'n str, Literal)>,
    ) -> Result<Vec<(&'n str, Buffer)>> {
        named
            .into_iter()
            .map(|(name, literal)| Ok((name, self.upload_to(index, &literal)?)))
            .collect()
    }
}

/// How many replicas data-parallel steps have: `devices` (or all) on one host; every device of
/// every host on a multi-host slice, where `devices` may only repeat that count.
fn replica_count(client: &Client, kind: PluginKind, devices: Option<usize>) -> Result<usize> {
    let processes = client.process_count();
    if processes > 1 {
        let all = client.devices().len();
        if devices.is_some_and(|n| n != all) {
            anyhow::bail!(
                "{} devices asked for: a run on this {processes}-host slice uses all of its {all} devices",
                devices.unwrap_or_default()
            );
        }
        return Ok(all);
    }
    let available = client.addressable_devices().len();
    let devices = devices.unwrap_or(available);
    if available == 0 || devices > available {
        anyhow::bail!("--devices {devices}: the {kind} plugin has {available} devices here");
    }
    Ok(devices)
}

/// The plugin's default placement of `replicas` replicas and this process's part of it.
fn place(client: &Client, replicas: usize) -> Result<Placement> {
    let assignment = client
        .default_device_assignment(replicas)
        .context("asking the plugin where replicas run")?;
    let owner = |id: i64| {
        client
            .devices()
            .iter()
            .find(|d| i64::from(d.id()) == id)
            .map(|d| d.process_index() as usize)
    };
    Placement::new(
        &assignment,
        owner,
        client.process_index(),
        client.process_count(),
    )
}

/// A compiled step graph with its signature: run with named arguments, get named results.
pub struct StepExecutable {
    pub executable: LoadedExecutable,
    pub signature: Signature,
}

impl StepExecutable {
    /// Runs every replica: `args[r]` are replica `r`'s named arguments (on its device);
    /// returns each replica's named results.
    pub fn run_replicated<'s, 'a, N: AsRef<str>>(
        &'s self,
        args: Vec<Vec<(N, Arg<'a>)>>,
    ) -> Result<Vec<Outputs<'s, Buffer>>> {
        let args = args
            .into_iter()
            .map(|named| self.signature.arrange(named))
            .collect::<Result<Vec<_>, _>>()?;
        let results = self
            .executable
            .execute_replicated(args)
            .with_context(|| format!("executing {}", self.signature.graph()))?;
        results
            .into_iter()
            .map(|r| Ok(self.signature.name_outputs(r)?))
            .collect()
    }

    /// Runs a one-device step with named arguments (donated or borrowed).
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
