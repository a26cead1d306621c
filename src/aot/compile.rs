//! Compiling a run's graphs for a target without its device, and what the compiler says about
//! them: per-chip memory, whether it fits, cost, a roofline step time, the largest batch.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::estimate::Roofline;
use super::target::{ChipSpec, Target};
use crate::hlo::Module;
use crate::model::Model;
use crate::program::executables::ExecutableCache;
use crate::program::graph_plan::{GraphRole, PlannedGraph};
use crate::runtime::{
    open_plugin, CompileOptions, CompiledMemoryStats, Executable, RuntimeError, Topology,
};

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
        let plugin = open_plugin(kind, plugin_path)?;
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
    /// executable there for `train` on the target, and the report beside it: asked again for
    /// the same graph (same module, options and plugin build: the same key), it reads that
    /// report instead of compiling for minutes, as the executable cannot be costed again
    /// without a device to load it on.
    pub fn report(
        &self,
        model: &Model,
        graph: &PlannedGraph,
        cache: Option<&ExecutableCache>,
    ) -> Result<GraphReport> {
        let step = graph.build(model)?;
        let module = step.module;
        let options = options_for(step.replicas);
        let key = cache
            .map(|_| self.cache_key(&module, &options))
            .transpose()?;
        if let Some((cache, key)) = cache.zip(key.as_deref()) {
            let stored = cache.read_beside(key, REPORT_EXTENSION);
            if let Some(report) =
                stored.and_then(|b| serde_json::from_slice::<GraphReport>(&b).ok())
            {
                return Ok(GraphReport {
                    cached: true,
                    ..report
                });
            }
        }
        let compiled = self.compile(&module, &options)?;
        let serialized = compiled.executable.serialize()?;
        let report = GraphReport::new(self, graph, &module, &compiled, serialized.len())?;
        if let Some((cache, key)) = cache.zip(key.as_deref()) {
            cache.store(key, &serialized)?;
            cache.store_beside(key, REPORT_EXTENSION, &serde_json::to_vec_pretty(&report)?)?;
        }
        Ok(report)
    }

    /// Compiles `graph` at `batch`: its peak memory on one device and its estimated throughput,
    /// or, when it runs out of memory, what the compiler said it can use.
    fn probe(&self, model: &Model, graph: &PlannedGraph, batch: i64) -> Result<(Probe, Measured)> {
        let step = graph.with_batch(batch).build(model)?;
        let started = Instant::now();
        let compiled = self.compile(&step.module, &options_for(step.replicas));
        let compile_seconds = started.elapsed().as_secs_f64();
        match compiled {
            Ok(compiled) => {
                let chip = self.device_spec();
                let cost = ProgramCost::new(&compiled.executable, &chip)?;
                let probe = Probe {
                    batch,
                    peak_bytes: Some(cost.memory.peak),
                    examples_per_second: cost
                        .roofline(&chip)
                        .map(|r| r.examples_per_second((batch * graph.replicas) as u64)),
                    compile_seconds,
                };
                let measured = Measured {
                    peak: probe.peak_bytes,
                    usable: None,
                };
                Ok((probe, measured))
            }
            Err(e) if RuntimeError::out_of_memory_in(&e) => {
                let probe = Probe {
                    batch,
                    peak_bytes: None,
                    examples_per_second: None,
                    compile_seconds,
                };
                let measured = Measured {
                    peak: None,
                    usable: usable_bytes_in(&format!("{e:#}")),
                };
                Ok((probe, measured))
            }
            Err(e) => Err(e),
        }
    }

    /// The largest batch of `graph` that fits one device, searched over compiles from `start`.
    /// Peak memory is close to affine in the batch, so each probe is the batch where the line
    /// through the two measured peaks nearest the limit meets it (through the origin while only
    /// one is known), with bisection whenever that stops halving the bracket; see
    /// [`largest_fitting`]. Searches multiples of 8 (TPU-friendly batches) from a start of 8 or
    /// more, every batch below that. `measured_start` is the compile at `start` already made
    /// (the report's, see [`GraphReport::probe`]), which saves one compile. The lines aim at the
    /// memory the compiler says it can use once an out-of-memory error has said so (libtpu
    /// keeps part of the HBM). `on_probe` sees each compile as it finishes: a search takes
    /// minutes to hours of compiles, which a caller may want to show as they come.
    pub fn max_batch(
        &self,
        model: &Model,
        graph: &PlannedGraph,
        start: i64,
        measured_start: Option<Probe>,
        mut on_probe: impl FnMut(&Probe),
    ) -> Result<MaxBatch> {
        let unit = if start >= 8 { 8 } else { 1 };
        let start_units = (start / unit).max(1);
        let measured_start = measured_start.filter(|p| p.batch == start_units * unit);
        let limit = i64::try_from(self.device_spec().hbm_bytes).unwrap_or(i64::MAX);
        let mut probes = Vec::new();
        let mut usable_bytes = None;
        let (units, peak_bytes) = largest_fitting(
            start_units,
            measured_start.map(|p| (start_units, p.peak_bytes)),
            limit,
            |units| {
                let (probe, measured) = self.probe(model, graph, units * unit)?;
                on_probe(&probe);
                probes.push(probe);
                usable_bytes = usable_bytes.or(measured.usable);
                Ok(measured)
            },
        )?;
        let fastest = fastest_fitting(measured_start.iter().chain(&probes), limit);
        Ok(MaxBatch {
            batch: units * unit,
            peak_bytes,
            usable_bytes,
            probes,
            fastest,
        })
    }
}

/// The batch with the highest estimated throughput among `probes` that fit under `limit`.
fn fastest_fitting<'a>(probes: impl Iterator<Item = &'a Probe>, limit: i64) -> Option<Probe> {
    probes
        .filter(|p| p.peak_bytes.is_some_and(|peak| peak <= limit))
        .filter_map(|p| Some((p.examples_per_second?, p)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, p)| *p)
}

/// Interpolated probes in a row that may fail to halve the bracket before one bisection step
/// (the line through the origin, drawn while only one peak is known, does not count).
const STALLS_BEFORE_BISECTION: u32 = 2;
/// The furthest an extrapolated probe reaches past the largest fitting size, as a factor.
const MAX_EXTRAPOLATION: i64 = 16;
/// No size beyond this is probed (a guard against overflow, far past any batch).
const MAX_SIZE: i64 = 1 << 40;

/// What one compile of [`largest_fitting`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Measured {
    /// The peak memory; `None` when the compile ran out of memory (does not fit, and gives no
    /// figure).
    peak: Option<i64>,
    /// The memory the compiler says it can use, where its out-of-memory error says so.
    usable: Option<i64>,
}

/// The memory a compiler's out-of-memory error says it can use, in bytes: libtpu's "... exceeds
/// available HBM (15.75G)" or "Used 16.53G of 15.48G hbm", binary units (a v5e chip's 16 GiB
/// appears as 15.75G, and compiles with a peak of 15.63 GiB succeed).
fn usable_bytes_in(message: &str) -> Option<i64> {
    let figure = match message.split_once("available HBM (") {
        Some((_, rest)) => rest,
        None => message.split_once("Used ")?.1.split_once(" of ")?.1,
    };
    let end = figure.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let value: f64 = figure[..end].parse().ok()?;
    let unit: i64 = match figure[end..].chars().next()? {
        'K' => 1 << 10,
        'M' => 1 << 20,
        'G' => 1 << 30,
        'T' => 1 << 40,
        _ => return None,
    };
    Some((value * unit as f64) as i64).filter(|bytes| *bytes > 0)
}

/// The largest `n >= 1` whose measured peak is at most `limit`, assuming that whatever fits,
/// every smaller `n` fits too. `measure(n)` compiles at `n` (see [`Measured`]); `known` is a peak
/// already measured at `start`. Returns the size and its peak; `(0, None)` when not even 1 fits.
///
/// The search keeps a bracket: `low` fits (0: nothing known to), `high` does not (`None`: not
/// known yet). Each probe is where the line through two measured peaks reaches the aim (the
/// limit, or the usable memory an out-of-memory compile gave if that is less), rounded
/// down and kept strictly inside the bracket (see [`predict`]); for an affine peak that is the
/// answer, and the probe one above confirms it. The safeguards, for peaks that are not affine:
/// after a probe that failed to halve the bracket (to double `low` while `high` is unknown; the
/// first, through the origin, excepted), the next keeps a quarter of the bracket clear of its
/// ends (but for one confirming probe next to one in the whole search); after
/// [`STALLS_BEFORE_BISECTION`] such probes in a row, or when no line fits what was measured
/// (a peak that does not rise, or one that says a size that fitted does not), the next probe
/// bisects (doubles). So the search always ends, and even on peaks that jump takes at most a
/// small multiple of bisection's probes.
fn largest_fitting(
    start: i64,
    known: Option<(i64, Option<i64>)>,
    limit: i64,
    mut measure: impl FnMut(i64) -> Result<Measured>,
) -> Result<(i64, Option<i64>)> {
    let mut search = Bracket {
        limit,
        aim: limit,
        measured: Vec::new(),
        low: (0, None),
        high: None,
    };
    let first = start.clamp(1, MAX_SIZE);
    let first_measured = match known {
        Some((n, peak)) if n == first => Measured { peak, usable: None },
        _ => measure(first)?,
    };
    search.record(first, first_measured);
    let mut stalls = 0;
    // Interpolated probes in a row that fitted (> 0) or did not (< 0).
    let mut same_side = 0;
    let mut used_ends = false;
    loop {
        let low = search.low.0;
        let bisection = match search.high {
            Some(high) if high - low <= 1 => return Ok(search.low),
            Some(high) => (low + high) / 2,
            None if low >= MAX_SIZE => return Ok(search.low),
            None => (low * 2).clamp(1, MAX_SIZE),
        };
        let interpolated = predict(&search.measured, low, search.high, search.aim, same_side)
            .filter(|_| stalls < STALLS_BEFORE_BISECTION)
            .map(|(n, ends)| match search.high {
                // After a stall, probes keep a quarter of the bracket (half of `low`) clear of
                // its ends, but for one next to an end in the whole search (the affine answer's
                // confirmation).
                _ if stalls == 0 || (ends && !used_ends) => (n, ends),
                Some(high) => {
                    let quarter = (high - low) / 4;
                    (n.clamp(low + quarter.max(1), high - quarter.max(1)), false)
                }
                None => (n.max(low + (low + 1) / 2).min(MAX_SIZE), false),
            });
        // The one probe next to an end allowed after a stall.
        used_ends |= stalls > 0 && interpolated.is_some_and(|(_, ends)| ends);
        let through_origin = search.measured.len() == 1;
        let before = (low, search.high);
        let n = interpolated.map_or(bisection, |(n, _)| n);
        search.record(n, measure(n)?);
        if interpolated.is_none() {
            (stalls, same_side) = (0, 0);
            continue;
        }
        if through_origin || halved(before, (search.low.0, search.high)) {
            stalls = 0;
        } else {
            stalls += 1;
        }
        same_side = match (search.low.0 == n, same_side) {
            (true, s) if s > 0 => s + 1,
            (true, _) => 1,
            (false, s) if s < 0 => s - 1,
            (false, _) => -1,
        };
    }
}

/// The state of [`largest_fitting`].
struct Bracket {
    limit: i64,
    /// What the lines aim at: `limit`, or the usable memory an out-of-memory compile gave.
    aim: i64,
    /// Every measurement with a peak, as (size, peak).
    measured: Vec<(i64, i64)>,
    /// The largest size known to fit, and its peak.
    low: (i64, Option<i64>),
    /// The smallest size known not to fit.
    high: Option<i64>,
}

impl Bracket {
    fn record(&mut self, n: i64, measured: Measured) {
        if let Some(usable) = measured.usable {
            self.aim = self.aim.min(usable);
        }
        let peak = measured.peak.filter(|p| *p >= 0);
        if let Some(p) = peak {
            self.measured.push((n, p));
        }
        if peak.is_some_and(|p| p <= self.limit) {
            if n > self.low.0 {
                self.low = (n, peak);
            }
        } else if self.high.is_none_or(|h| n < h) {
            self.high = Some(n);
        }
    }
}

/// Whether a probe took the bracket from `before` to at most half its width: for an unbounded
/// one, bounded it or at least doubled its lower end.
fn halved(before: (i64, Option<i64>), after: (i64, Option<i64>)) -> bool {
    match (before.1, after.1) {
        (Some(b), Some(a)) => 2 * (a - after.0) <= b - before.0,
        (None, Some(_)) => true,
        (_, None) => after.0 >= 2 * before.0.max(1),
    }
}

/// Where the line through two measured peaks reaches `limit`, rounded down; `None` when there
/// is no such line or it contradicts the bracket `(low, high)`, i.e. when it does not rise or
/// says that `low` does not fit or `high` does. The two are those nearest the limit: the
/// largest fitting size and the smallest size over the limit; while one side has none, the next
/// measurement on the other side, or the origin. After `same_side` (> 1) probes in a row that
/// all fitted, the excess of the size over the limit is halved for each but the first, and
/// likewise the room left at the fitting size after probes that all failed (the Illinois
/// variant of regula falsi): otherwise a peak that jumps would have each probe creep one unit
/// past the last. The result is kept strictly inside the bracket and, while `high` is unknown,
/// at most [`MAX_EXTRAPOLATION`] times `low`; with it, whether it is next to an end of the
/// bracket (a probe that ends the search when the line is right).
fn predict(
    measured: &[(i64, i64)],
    low: i64,
    high: Option<i64>,
    limit: i64,
    same_side: i32,
) -> Option<(i64, bool)> {
    let mut fitting: Vec<(i64, i64)> = measured.iter().filter(|m| m.1 <= limit).copied().collect();
    let mut over: Vec<(i64, i64)> = measured.iter().filter(|m| m.1 > limit).copied().collect();
    fitting.sort_by_key(|m| std::cmp::Reverse(m.0));
    over.sort_by_key(|m| m.0);
    let (a, b) = match (fitting.as_slice(), over.as_slice()) {
        ([f, ..], [o, ..]) => {
            let shift = |k: i32| (k.unsigned_abs() - 1).min(62);
            match same_side {
                k if k > 1 => (*f, (o.0, limit + ((o.1 - limit) >> shift(k)).max(1))),
                k if k < -1 => ((f.0, limit - ((limit - f.1) >> shift(k))), *o),
                _ => (*f, *o),
            }
        }
        ([f1, f2, ..], []) => (*f1, *f2),
        ([], [o1, o2, ..]) => (*o1, *o2),
        ([one], []) | ([], [one]) => (*one, (0, 0)),
        ([], []) => return None,
    };
    // a.0 + (limit - a.1) * dn / dp, exactly, with the line rising: dn > 0 and dp > 0.
    let (mut dn, mut dp) = (i128::from(b.0 - a.0), i128::from(b.1 - a.1));
    if dn < 0 {
        (dn, dp) = (-dn, -dp);
    }
    if dn == 0 || dp <= 0 {
        return None;
    }
    let at = i128::from(a.0) + (i128::from(limit - a.1) * dn).div_euclid(dp);
    if at < i128::from(low) || high.is_some_and(|high| at >= i128::from(high)) {
        return None;
    }
    let ceiling = match high {
        Some(high) => high - 1,
        None => low.max(1).saturating_mul(MAX_EXTRAPOLATION).min(MAX_SIZE),
    };
    let n = at.clamp(i128::from(low + 1), i128::from(ceiling)) as i64;
    Some((n, n == low + 1 || high == Some(n + 1)))
}

/// The extension of a compile's [`GraphReport`] beside its executable in the cache.
const REPORT_EXTENSION: &str = "report.json";

/// Compile options for a step graph of `replicas` replicas, placed on the topology's first
/// devices: the same options [`crate::program::context::Context::compile`] uses, so the cache
/// keys agree.
fn options_for(replicas: usize) -> CompileOptions {
    CompileOptions::replicated(replicas as u32)
}

/// The result of [`AotCompiler::max_batch`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MaxBatch {
    /// The largest batch that fits (0 when not even one example does).
    pub batch: i64,
    /// Its peak memory per device.
    pub peak_bytes: Option<i64>,
    /// The memory per device the compiler said it can use, when one of its out-of-memory errors
    /// said so (libtpu keeps part of the HBM for itself).
    pub usable_bytes: Option<i64>,
    /// The compiles the search took, in order (besides the one at the start batch, when its
    /// peak was given): what a search that needed more compiles than expected went through.
    pub probes: Vec<Probe>,
    /// Of the batches compiled that fit (the start's included), the one with the highest
    /// estimated throughput; `None` where the plugin reports no costs. It need not be the
    /// largest: near the limit the compiler rematerializes activations to fit, which costs
    /// FLOPs and memory traffic per example.
    pub fastest: Option<Probe>,
}

/// One compile of [`AotCompiler::max_batch`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Probe {
    pub batch: i64,
    /// Its peak memory per device; `None` when the compiler ran out of memory.
    pub peak_bytes: Option<i64>,
    /// Examples per second over all devices by the roofline; `None` when it ran out of memory
    /// or the plugin reports no costs.
    pub examples_per_second: Option<f64>,
    /// How long the compile took, out of memory or not.
    pub compile_seconds: f64,
}

/// Memory of one execution on one device, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

    /// The roofline estimate on `chip`, where the plugin reported FLOPs and bytes accessed.
    pub fn roofline(&self, chip: &ChipSpec) -> Option<Roofline> {
        self.flops
            .zip(self.bytes_accessed)
            .and_then(|(f, b)| Roofline::new(f, b, chip))
    }
}

/// Everything `effnetv2 compile` says about one graph on one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// Whether this report was read from the executable cache (`compile_seconds` is then the
    /// first compile's) instead of compiling again.
    #[serde(default)]
    pub cached: bool,
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
        let roofline = cost.roofline(&chip);
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
            cached: false,
        })
    }

    /// This compile as a [`AotCompiler::max_batch`] search sees it (its start).
    pub fn probe(&self) -> Probe {
        Probe {
            batch: self.batch,
            peak_bytes: Some(self.cost.memory.peak),
            examples_per_second: self.examples_per_second,
            compile_seconds: self.compile_seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search from `start` with "peak(n)" as the compiler, returning the answer, its
    /// peak and the sizes probed.
    fn search(
        start: i64,
        limit: i64,
        peak: impl Fn(i64) -> Option<i64>,
    ) -> (i64, Option<i64>, Vec<i64>) {
        let mut probes = Vec::new();
        let (found, found_peak) = largest_fitting(start, None, limit, |n| {
            probes.push(n);
            Ok(Measured {
                peak: peak(n),
                usable: None,
            })
        })
        .unwrap();
        (found, found_peak, probes)
    }

    /// The answer by trying every size up to `max`.
    fn brute_force(limit: i64, max: i64, peak: impl Fn(i64) -> Option<i64>) -> i64 {
        (1..=max)
            .take_while(|n| peak(*n).is_some_and(|p| (0..=limit).contains(&p)))
            .last()
            .unwrap_or(0)
    }

    /// Checks the search against brute force for every start and limit given, and that it
    /// never probes a size twice; returns the most probes any search made.
    fn check(
        starts: &[i64],
        limits: impl IntoIterator<Item = i64> + Clone,
        peak: impl Fn(i64) -> Option<i64> + Copy,
    ) -> usize {
        let mut most = 0;
        for &start in starts {
            for limit in limits.clone() {
                let (found, found_peak, probes) = search(start, limit, peak);
                let expected = brute_force(limit, 5000, peak);
                assert_eq!(found, expected, "start {start}, limit {limit}: {probes:?}");
                assert_eq!(found_peak, (found > 0).then(|| peak(found).unwrap()));
                let mut distinct = probes.clone();
                distinct.sort_unstable();
                distinct.dedup();
                assert_eq!(
                    distinct.len(),
                    probes.len(),
                    "a size probed twice: {probes:?}"
                );
                most = most.max(probes.len());
            }
        }
        most
    }

    #[test]
    fn an_affine_peak_is_found_exactly_within_four_probes() {
        for (slope, intercept) in [(10, 0), (10, 35), (1000, 21_000), (7, 3), (64, 900)] {
            let peak = move |n: i64| Some(slope * n + intercept);
            // Answers from 1 to 16 times the start, on either side of it.
            for start in [1, 5, 16, 40] {
                let limits = (start / 4..=start * 16).map(|n| slope * n + intercept + slope / 2);
                let most = check(&[start], limits, peak);
                assert!(
                    most <= 4,
                    "slope {slope}, intercept {intercept}, start {start}: {most}"
                );
            }
        }
        // The figures of S on one v5e chip, in units of 8 examples from batch 128: the report's
        // compile is the first probe, three more compiles find the answer.
        let peak = |units: i64| Some(300_000_000 + units * 51_000_000);
        let (found, _, probes) = search(16, 16 << 30, peak);
        assert_eq!(found, (((16i64 << 30) - 300_000_000) / 51_000_000));
        assert_eq!(probes.len(), 4, "{probes:?}");
    }

    #[test]
    fn a_nonlinear_peak_is_found_exactly() {
        // Convex (the compiler fits less than a line predicts), concave, and with kinks.
        let convex = |n: i64| Some(50 + n * n);
        let concave = |n: i64| Some(((n as f64).sqrt() * 1000.0) as i64);
        let kinked = |n: i64| Some(if n < 40 { 10 * n } else { 400 + 60 * (n - 40) });
        for (name, most) in [
            ("convex", check(&[1, 8, 30], (0..4000).step_by(37), convex)),
            (
                "concave",
                check(&[1, 8, 30], (0..70_000).step_by(997), concave),
            ),
            ("kinked", check(&[1, 8, 30], (0..4000).step_by(41), kinked)),
        ] {
            assert!(most <= 24, "{name}: {most} probes");
        }
    }

    #[test]
    fn a_step_in_the_peak_is_found_exactly() {
        // The worst case for lines: bisection alone takes up to 12 probes here, 18 for `flat`.
        let step = |n: i64| Some(if n <= 50 { 100 } else { 1000 });
        assert!(check(&[1, 16, 50, 51, 200], [100, 500, 999], step) <= 20);
        let flat = |n: i64| Some(if n <= 333 { 7 } else { 1 << 40 });
        assert!(check(&[1, 16, 1000], [7, 1 << 30], flat) <= 26);
    }

    #[test]
    fn nothing_fitting_gives_zero() {
        let peak = |n: i64| Some(1000 + n);
        assert!(check(&[1, 8, 128], [0, 500, 1000], peak) <= 8);
        let (found, found_peak, probes) = search(128, 1000, peak);
        assert_eq!((found, found_peak), (0, None));
        assert_eq!(probes.last(), Some(&1));
    }

    #[test]
    fn a_huge_limit_stops_at_the_size_bound() {
        // Everything up to 2^40 fits: the search extrapolates in steps of at most 16x and stops
        // at the largest size it probes.
        let peak = |n: i64| Some(n);
        let (found, found_peak, probes) = search(16, i64::MAX, peak);
        assert_eq!((found, found_peak), (MAX_SIZE, Some(MAX_SIZE)));
        assert!(probes.len() <= 12, "{probes:?}");
        // Everything below a large limit: exact, in a few probes.
        let (found, _, probes) = search(16, 123_456_789, |n| Some(3 * n + 10));
        assert_eq!(found, (123_456_789 - 10) / 3);
        assert!(probes.len() <= 8, "{probes:?}");
    }

    #[test]
    fn an_out_of_memory_compile_counts_as_not_fitting() {
        // The compiler runs out of memory from 300 on, before any peak reaches the limit; below
        // that the peak is affine.
        let peak = |n: i64| (n < 300).then_some(5 * n + 20);
        for limit in [0, 24, 1000, 1499, 1500, 1514, 1515, 1 << 20] {
            let expected = brute_force(limit, 400, peak);
            for start in [1, 8, 128, 299, 300, 1000] {
                let (found, _, probes) = search(start, limit, peak);
                assert_eq!(found, expected, "start {start}, limit {limit}: {probes:?}");
            }
        }
        // Every compile runs out of memory.
        assert_eq!(search(64, 1 << 30, |_| None).0, 0);
    }

    #[test]
    fn the_usable_memory_an_out_of_memory_error_gives_is_aimed_at() {
        // The compiler can use 800 of the 1000 and runs out of memory above that, saying so or
        // not; the peak is affine.
        let probes_with = |says: bool| {
            let mut probes = Vec::new();
            let (found, peak) = largest_fitting(16, None, 1000, |n| {
                probes.push(n);
                let peak = 5 * n + 20;
                Ok(match peak <= 800 {
                    true => Measured {
                        peak: Some(peak),
                        usable: None,
                    },
                    false => Measured {
                        peak: None,
                        usable: says.then_some(800),
                    },
                })
            })
            .unwrap();
            assert_eq!((found, peak), (156, Some(800)), "{probes:?}");
            probes
        };
        let (told, untold) = (probes_with(true), probes_with(false));
        // 16; the line through the origin to 1000 (out of memory: 800 usable); the same line to
        // 800; the line through both peaks to 800, the answer; its neighbour.
        assert_eq!(told, [16, 160, 128, 156, 157]);
        assert!(untold.len() > told.len() + 2, "{untold:?}");
    }

    #[test]
    fn libtpu_out_of_memory_errors_say_how_much_it_can_use() {
        let gib = |g: f64| (g * (1u64 << 30) as f64) as i64;
        let temporaries = "PJRT_Compile failed with RESOURCE_EXHAUSTED: E1000: CompileTimeHbmOom: \
            Ran out of memory on HBM, the total memory required for HLO temporaries (31.72G) \
            exceeds available HBM (15.75G). HLO module: train_step_28px_b400000.";
        assert_eq!(usable_bytes_in(temporaries), Some(gib(15.75)));
        let space = "Ran out of memory in memory space hbm. Used 16.53G of 15.48G hbm. \
            Exceeded hbm capacity by 1.05G.";
        assert_eq!(usable_bytes_in(space), Some(gib(15.48)));
        assert_eq!(
            usable_bytes_in("Used 900.5M of 1.5T hbm"),
            Some(gib(1536.0))
        );
        for other in [
            "RESOURCE_EXHAUSTED: out of memory",
            "available HBM (lots)",
            "Used 1G of",
        ] {
            assert_eq!(usable_bytes_in(other), None, "{other}");
        }
    }

    #[test]
    fn a_known_first_measurement_is_not_compiled_again() {
        let mut probes = Vec::new();
        let (found, _) = largest_fitting(16, Some((16, Some(180))), 1000, |n| {
            probes.push(n);
            Ok(Measured {
                peak: Some(10 * n + 20),
                usable: None,
            })
        })
        .unwrap();
        assert_eq!(found, 98);
        assert!(!probes.contains(&16) && probes.len() <= 3, "{probes:?}");
    }

    #[test]
    fn search_errors_propagate() {
        let err = largest_fitting(4, None, 100, |_| anyhow::bail!("compiler crashed")).unwrap_err();
        assert_eq!(err.to_string(), "compiler crashed");
    }

    #[test]
    fn the_fastest_batch_is_the_quickest_that_fits() {
        let probe = |batch, peak, rate| Probe {
            batch,
            peak_bytes: peak,
            examples_per_second: rate,
            compile_seconds: 60.0,
        };
        let probes = [
            probe(128, Some(60), Some(1200.0)),
            // Rematerialized to fit: larger, and slower than a smaller batch.
            probe(752, Some(95), Some(1380.0)),
            probe(600, Some(90), Some(1410.0)),
            // Faster, but over the limit (a plugin that compiles what does not fit).
            probe(900, Some(120), Some(1500.0)),
            probe(1024, None, None),
        ];
        let fastest = fastest_fitting(probes.iter(), 100).unwrap();
        assert_eq!(
            (fastest.batch, fastest.examples_per_second),
            (600, Some(1410.0))
        );
        // Without costs (the CUDA plugin has no cost analysis) there is no fastest batch.
        let no_costs = [probe(128, Some(60), None), probe(256, Some(90), None)];
        assert_eq!(fastest_fitting(no_costs.iter(), 100), None);
        assert_eq!(fastest_fitting([].iter(), 100), None);
    }
}
