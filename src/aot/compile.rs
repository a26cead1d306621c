//! Compiling a run's graphs for a target without its device, and what the compiler says about
//! them: per-chip memory, whether it fits, cost, a roofline step time, the largest batch.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::estimate::Roofline;
use super::target::{ChipSpec, Target};
use crate::hlo::Module;
use crate::model::Model;
use crate::runtime::provision;
use crate::runtime::{
    hardware, CompileOptions, CompiledMemoryStats, Executable, Plugin, RuntimeError, Topology,
};
use crate::trainer::executables::ExecutableCache;
use crate::trainer::plan::{GraphRole, PlannedGraph};

/// A compile-only session for one target: its plugin loaded and its topology created.
pub struct AotCompiler {
    target: Target,
    topology: Topology,
    /// PJRT devices per chip: libtpu describes a v4 chip as two devices, one per TensorCore,
    /// and v5e, v5p and v6e chips as one.
    devices_per_chip: usize,
}

/// One program compiled for the target, and how long the compile took.
pub struct Compiled {
    pub executable: Executable,
    pub seconds: f64,
}

impl AotCompiler {
    /// Loads the target's plugin (`plugin_path`, or the pinned one, installed on first use) and
    /// creates the target's topology.
    pub fn new(target: Target, plugin_path: Option<&Path>) -> Result<AotCompiler> {
        let kind = target.plugin_kind();
        hardware::prepare_environment(kind)?;
        let path = match plugin_path {
            Some(path) => path.to_path_buf(),
            None => provision::resolve(kind)?,
        };
        let plugin = Plugin::load(&path)
            .with_context(|| format!("loading PJRT plugin {}", path.display()))?;
        let name = target.topology_name();
        let topology =
            Topology::new(plugin, &name, &target.topology_options()).with_context(|| {
                format!("target {target}: the {kind} plugin rejected topology `{name}`")
            })?;
        let devices = topology.devices().len();
        if devices == 0 || devices % target.chips() != 0 {
            bail!(
                "target {target}: topology `{name}` has {devices} devices, not a multiple of its {} chips",
                target.chips()
            );
        }
        Ok(AotCompiler {
            devices_per_chip: devices / target.chips(),
            target,
            topology,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The figures of one PJRT device, which a single-device program runs on: the chip's,
    /// shared equally among the devices of a chip.
    pub fn device_spec(&self) -> ChipSpec {
        let chip = self.target.chip();
        let share = self.devices_per_chip as f64;
        ChipSpec {
            hbm_bytes: chip.hbm_bytes / self.devices_per_chip as u64,
            peak_bf16_flops: chip.peak_bf16_flops / share,
            hbm_bytes_per_second: chip.hbm_bytes_per_second / share,
        }
    }

    /// Compiles `module` with `options` for the target.
    pub fn compile(&self, module: &Module, options: &CompileOptions) -> Result<Compiled> {
        let start = Instant::now();
        let executable = self
            .topology
            .compile_module(module, options)
            .with_context(|| format!("compiling {} for {}", module.name(), self.target))?;
        Ok(Compiled {
            executable,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Compiles a serialized `HloModuleProto` from elsewhere (e.g. a JAX program, see
    /// `tools/jax_reference.py`) for one device of the target and reports its cost, so that
    /// other frontends' programs are measured with the same compiler as ours.
    pub fn cost_of_hlo_proto(&self, proto: &[u8]) -> Result<(ProgramCost, f64)> {
        let start = Instant::now();
        let executable = self
            .topology
            .compile(proto, &CompileOptions::default())
            .with_context(|| format!("compiling an HLO module for {}", self.target))?;
        let seconds = start.elapsed().as_secs_f64();
        Ok((ProgramCost::new(&executable, &self.device_spec())?, seconds))
    }

    /// The executable-cache key under which `train` on a machine with the target's chips and
    /// the same plugin build finds this compile.
    pub fn cache_key(&self, module: &Module, options: &CompileOptions) -> Result<String> {
        ExecutableCache::key_for(
            &module.to_proto_bytes(),
            options,
            self.topology.plugin(),
            &self.device_identity(),
        )
    }

    /// The platform and chip kind, as a client on the target reports them.
    fn device_identity(&self) -> String {
        let kind = self
            .topology
            .devices()
            .first()
            .map_or("", |d| d.kind.as_str());
        ExecutableCache::device_identity(self.topology.platform_name(), kind)
    }

    /// Compiles one planned graph and reports on it; with `cache`, stores the serialized
    /// executable there for `train` on the target.
    pub fn report(
        &self,
        model: &Model,
        graph: &PlannedGraph,
        cache: Option<&ExecutableCache>,
    ) -> Result<GraphReport> {
        let step = graph.build(model)?;
        let module = step.module;
        let options = options_for(step.replicas);
        let compiled = self.compile(&module, &options)?;
        let serialized = compiled.executable.serialize()?;
        if let Some(cache) = cache {
            cache.store(&self.cache_key(&module, &options)?, &serialized)?;
        }
        GraphReport::new(self, graph, &module, &compiled, serialized.len())
    }

    /// Whether `graph` at `batch` compiles and fits one device's memory; `Ok(None)` when the
    /// compiler itself runs out of memory.
    fn peak_if_fits(&self, model: &Model, graph: &PlannedGraph, batch: i64) -> Result<Option<i64>> {
        let step = graph.with_batch(batch).build(model)?;
        match self.compile(&step.module, &options_for(step.replicas)) {
            Ok(compiled) => {
                let peak = compiled
                    .executable
                    .compiled_memory_stats()?
                    .device_peak_bytes();
                Ok((peak as u64 <= self.device_spec().hbm_bytes).then_some(peak))
            }
            Err(e) if RuntimeError::out_of_memory_in(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The largest batch of `graph` that fits one device, by doubling from `start` and then
    /// bisecting over compiles. Searches multiples of 8 (TPU-friendly batches) from a start of 8
    /// or more, every batch below that.
    pub fn max_batch(&self, model: &Model, graph: &PlannedGraph, start: i64) -> Result<MaxBatch> {
        let unit = if start >= 8 { 8 } else { 1 };
        let mut compiles = 0;
        let (units, peak_bytes) = largest_fitting((start / unit).max(1), |units| {
            compiles += 1;
            self.peak_if_fits(model, graph, units * unit)
        })?;
        Ok(MaxBatch {
            batch: units * unit,
            peak_bytes,
            compiles,
        })
    }
}

/// The largest `n >= 1` for which `fits(n)` gives `Some`, assuming that whatever fits, every
/// smaller `n` fits too: doubles from `start` until something does not fit (or halves until
/// something does), then bisects. `(0, None)` when not even 1 fits.
fn largest_fitting<T>(
    start: i64,
    mut fits: impl FnMut(i64) -> Result<Option<T>>,
) -> Result<(i64, Option<T>)> {
    // `low` fits (0: nothing known to fit), `high` does not.
    let mut low: (i64, Option<T>) = (0, None);
    let mut high = start;
    while let Some(found) = fits(high)? {
        low = (high, Some(found));
        high *= 2;
    }
    if low.0 == 0 {
        while high > 1 {
            let half = high / 2;
            match fits(half)? {
                Some(found) => {
                    low = (half, Some(found));
                    break;
                }
                None => high = half,
            }
        }
    }
    while high - low.0 > 1 {
        let mid = (low.0 + high) / 2;
        match fits(mid)? {
            Some(found) => low = (mid, Some(found)),
            None => high = mid,
        }
    }
    Ok(low)
}

/// Compile options for a step graph of `replicas` replicas, placed on the topology's first
/// devices: the same options [`crate::trainer::context::Context::compile`] uses, so the cache
/// keys agree.
fn options_for(replicas: usize) -> CompileOptions {
    CompileOptions::replicated(replicas as u32)
}

/// The result of [`AotCompiler::max_batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MaxBatch {
    /// The largest batch that fits (0 when not even one example does).
    pub batch: i64,
    /// Its peak memory per device.
    pub peak_bytes: Option<i64>,
    /// How many compiles the search took.
    pub compiles: usize,
}

/// Memory of one execution on one device, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MemoryReport {
    pub arguments: i64,
    pub outputs: i64,
    pub temporaries: i64,
    /// Argument bytes reused by outputs (donated state).
    pub aliased: i64,
    pub peak: i64,
    /// The device's HBM.
    pub capacity: u64,
    pub fits: bool,
}

impl MemoryReport {
    fn new(stats: &CompiledMemoryStats, capacity: u64) -> MemoryReport {
        let peak = stats.device_peak_bytes();
        MemoryReport {
            arguments: stats.argument_size_in_bytes,
            outputs: stats.output_size_in_bytes,
            temporaries: stats.temp_size_in_bytes,
            aliased: stats.alias_size_in_bytes,
            peak,
            capacity,
            fits: peak >= 0 && peak as u64 <= capacity,
        }
    }
}

/// What the compiler says one execution costs on one device.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProgramCost {
    pub memory: MemoryReport,
    /// From XLA's cost analysis, per device; `None` where the plugin has none.
    pub flops: Option<f64>,
    pub bytes_accessed: Option<f64>,
    pub transcendentals: Option<f64>,
    /// XLA's own `optimal_seconds`, only where it is positive (libtpu has returned negative
    /// values for whole train steps).
    pub xla_optimal_seconds: Option<f64>,
}

impl ProgramCost {
    fn new(executable: &Executable, chip: &ChipSpec) -> Result<ProgramCost> {
        let memory = MemoryReport::new(&executable.compiled_memory_stats()?, chip.hbm_bytes);
        let cost = executable.cost_analysis()?;
        let value = |name: &str| cost.as_ref().and_then(|c| c.get(name));
        Ok(ProgramCost {
            memory,
            flops: value("flops"),
            bytes_accessed: value("bytes accessed"),
            transcendentals: value("transcendentals"),
            xla_optimal_seconds: value("optimal_seconds").filter(|s| *s > 0.0),
        })
    }
}

/// Everything `effnetv2 compile` says about one graph on one target.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GraphReport {
    pub graph: String,
    pub role: GraphRole,
    pub image_size: usize,
    /// Examples per execution on each device.
    pub batch: i64,
    /// Devices the graph runs on, data-parallel.
    pub devices: i64,
    pub instructions: usize,
    pub compile_seconds: f64,
    #[serde(flatten)]
    pub cost: ProgramCost,
    pub roofline: Option<Roofline>,
    /// Examples per second over all devices (batch x replicas per execution), by the roofline.
    pub examples_per_second: Option<f64>,
    /// The size of the serialized executable.
    pub serialized_bytes: usize,
}

impl GraphReport {
    fn new(
        compiler: &AotCompiler,
        graph: &PlannedGraph,
        module: &Module,
        compiled: &Compiled,
        serialized_bytes: usize,
    ) -> Result<GraphReport> {
        let chip = compiler.device_spec();
        let cost = ProgramCost::new(&compiled.executable, &chip)?;
        let roofline = cost
            .flops
            .zip(cost.bytes_accessed)
            .and_then(|(f, b)| Roofline::new(f, b, &chip));
        Ok(GraphReport {
            graph: module.name().to_owned(),
            role: graph.role.clone(),
            image_size: graph.image_size,
            batch: graph.batch,
            devices: graph.replicas,
            instructions: module.instruction_count(),
            compile_seconds: compiled.seconds,
            cost,
            roofline,
            examples_per_second: roofline
                .map(|r| r.examples_per_second((graph.batch * graph.replicas) as u64)),
            serialized_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search against "fits up to `limit`", returning the answer and the probes made.
    fn search(start: i64, limit: i64) -> (i64, Vec<i64>) {
        let mut probes = Vec::new();
        let (found, value) = largest_fitting(start, |n| {
            probes.push(n);
            Ok((n <= limit).then_some(n * 10))
        })
        .unwrap();
        assert_eq!(value, (found > 0).then_some(found * 10));
        (found, probes)
    }

    #[test]
    fn the_search_finds_the_largest_fitting_size_from_either_side() {
        for start in [1, 3, 16, 100] {
            for limit in [0, 1, 2, 5, 16, 17, 99, 100, 101, 1000] {
                assert_eq!(
                    search(start, limit).0,
                    limit,
                    "start {start}, limit {limit}"
                );
            }
        }
        // Doubling then bisecting: 16 32 64 128 fit/not, then 96 80 72 68 66 65.
        assert_eq!(search(16, 65).1, [16, 32, 64, 128, 96, 80, 72, 68, 66, 65]);
    }

    #[test]
    fn search_errors_propagate() {
        let err = largest_fitting::<()>(4, |_| anyhow::bail!("compiler crashed")).unwrap_err();
        assert_eq!(err.to_string(), "compiler crashed");
    }
}
