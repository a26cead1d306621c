//! `effnetv2 compile`: compile a run's graphs for a TPU or GPU without one, with per-device
//! memory, cost and a roofline estimate (TPU), and store the executables for `train` there.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use effnetv2::aot::{AotCompiler, GraphReport, MaxBatch, Probe, ProgramCost, Target};
use effnetv2::model::Backend;
use effnetv2::program::executables::ExecutableCache;
use effnetv2::program::graph_plan::{GraphRole, PlannedGraph};
use effnetv2::storage::Location;
use serde::Serialize;

use super::graphs::GraphArgs;

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// What to compile for: tpu:v4, tpu:v5e, tpu:v5p, tpu:v6e (one chip), a slice such as
    /// tpu:v5e:2x2, or one GPU: cuda:h100, cuda:a100.
    #[arg(long)]
    target: Target,
    #[command(flatten)]
    graphs: GraphArgs,
    /// Also find the largest batch of each graph that fits one device (a search over compiles
    /// that interpolates the peak memory measured, with bisection as its fallback).
    #[arg(long)]
    max_batch: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Do not store the executables in the executable cache.
    #[arg(long)]
    no_cache: bool,
    /// The executable cache, a folder or `gs://bucket/prefix` (default:
    /// `$EFFNETV2_EXECUTABLE_CACHE`, else the user cache's `executables/`). Copy it to the TPU
    /// VM (GPU machine), or name the same bucket there, with the same plugin and `train` loads
    /// these executables instead of compiling.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Use this plugin (libtpu, the CUDA plugin) instead of the pinned one.
    #[arg(long)]
    plugin_path: Option<PathBuf>,
    /// Instead of the model's graphs, compile this serialized HloModuleProto (one device; e.g. a
    /// JAX program written by tools/jax_reference.py) and print its cost.
    #[arg(long, conflicts_with = "max_batch")]
    hlo: Option<PathBuf>,
}

/// The `--json` document of `--hlo`.
#[derive(Serialize)]
struct HloReport<'a> {
    target: String,
    hlo: &'a Path,
    compile_seconds: f64,
    #[serde(flatten)]
    cost: ProgramCost,
}

/// The `--json` document.
#[derive(Serialize)]
struct Report<'a> {
    target: String,
    topology: &'a str,
    device_kind: &'a str,
    devices: usize,
    device: effnetv2::aot::ChipSpec,
    plugin_sha256: String,
    graphs: &'a [GraphReport],
    max_batch: &'a [(String, MaxBatch)],
}

impl CompileArgs {
    pub fn run(self) -> Result<()> {
        let compiler = AotCompiler::new(self.target.clone(), self.plugin_path.as_deref())?;
        if let Some(path) = &self.hlo {
            return self.report_hlo(&compiler, path);
        }
        let devices = compiler.topology().devices().len();
        let (model, planned) = self.graphs.plan(Backend::Accelerator, devices)?;
        let cache = match (&self.cache_dir, self.no_cache) {
            (_, true) => None,
            (Some(dir), false) => Some(ExecutableCache::new(Some(Location::parse_path(dir)?))),
            (None, false) => Some(ExecutableCache::shared()?),
        };
        let device_kind = compiler
            .topology()
            .devices()
            .first()
            .map_or("", |d| d.kind.as_str())
            .to_owned();
        let mut out = io::stdout().lock();
        if !self.json {
            self.print_header(&mut out, &compiler, &device_kind)?;
        }
        let mut reports = Vec::new();
        let mut max_batches = Vec::new();
        for graph in &planned {
            let report = compiler.report(&model, graph, cache.as_ref())?;
            if !self.json {
                print_row(&mut out, &report)?;
            }
            if self.max_batch {
                let found =
                    compiler.max_batch(&model, graph, graph.batch, Some(report.probe()), |p| {
                        // Progress, one line a compile, beside the table or JSON on stdout.
                        eprintln!(
                            "max-batch search: compiled {} in {:.0} s",
                            describe(p),
                            p.compile_seconds
                        );
                    })?;
                if !self.json {
                    print_max_batch(&mut out, graph, &found)?;
                }
                max_batches.push((report.graph.clone(), found));
            }
            reports.push(report);
        }
        if self.json {
            let report = Report {
                target: self.target.to_string(),
                topology: compiler.topology().name(),
                device_kind: &device_kind,
                devices: compiler.topology().devices().len(),
                device: compiler.device_spec(),
                plugin_sha256: compiler.topology().plugin().sha256_hex(),
                graphs: &reports,
                max_batch: &max_batches,
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        } else if let Some(dir) = cache.as_ref().and_then(ExecutableCache::location) {
            writeln!(
                out,
                "executables stored in {dir} (train with the same plugin on the target loads them)"
            )?;
        }
        Ok(())
    }

    /// Compiles the HloModuleProto in `path` and prints its cost (JSON with `--json`).
    fn report_hlo(&self, compiler: &AotCompiler, path: &Path) -> Result<()> {
        let proto = std::fs::read(path)
            .with_context(|| format!("--hlo {}: cannot read the file", path.display()))?;
        let (cost, seconds) = compiler
            .cost_of_hlo_proto(&proto)
            .with_context(|| format!("--hlo {}", path.display()))?;
        let mut out = io::stdout().lock();
        if self.json {
            let report = HloReport {
                target: self.target.to_string(),
                hlo: path,
                compile_seconds: seconds,
                cost,
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
            return Ok(());
        }
        let m = &cost.memory;
        writeln!(
            out,
            "{} on {}: compiled in {seconds:.1} s; per device: peak {}, temporaries {}, {} TFLOP, \
             {} GB accessed",
            path.display(),
            self.target,
            gib(m.peak as f64),
            gib(m.temporaries as f64),
            or_dash(cost.flops.map(|f| format!("{:.3}", f / 1e12))),
            or_dash(cost.bytes_accessed.map(|b| format!("{:.2}", b / 1e9))),
        )?;
        Ok(())
    }

    fn print_header(
        &self,
        out: &mut impl Write,
        compiler: &AotCompiler,
        device_kind: &str,
    ) -> Result<()> {
        let device = compiler.device_spec();
        let topology = compiler.topology();
        let name = match topology.name() {
            "" => String::new(),
            name => format!("topology {name}, "),
        };
        writeln!(
            out,
            "target {} ({name}{} x {device_kind}); per device: {} HBM, {:.0} TFLOP/s bf16, \
             {:.0} GB/s; estimates are rooflines max(flops / peak, bytes / bandwidth) where the \
             plugin reports costs",
            self.target,
            topology.devices().len(),
            gib(device.hbm_bytes as f64),
            device.peak_bf16_flops / 1e12,
            device.hbm_bytes_per_second / 1e9,
        )?;
        writeln!(
            out,
            "{:<24} {:>5} {:>5} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>4} {:>8} {:>8} {:>9} {:>6} {:>8} {:>5}",
            "graph",
            "image",
            "batch",
            "compile",
            "args",
            "outputs",
            "temp",
            "aliased",
            "peak",
            "fits",
            "TFLOP",
            "GB acc",
            "est ms",
            "bound",
            "img/s",
            "MFU"
        )?;
        Ok(())
    }
}

fn print_row(out: &mut impl Write, r: &GraphReport) -> Result<()> {
    let m = &r.cost.memory;
    writeln!(
        out,
        "{:<24} {:>5} {:>5} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>4} {:>8} {:>8} {:>9} {:>6} {:>8} {:>5}{}",
        r.graph,
        r.image_size,
        r.batch,
        // A report from the cache: the compile was made before, at no cost this time.
        if r.cached {
            "cached".to_owned()
        } else {
            format!("{:.1}s", r.compile_seconds)
        },
        gib(m.arguments as f64),
        gib(m.outputs as f64),
        gib(m.temporaries as f64),
        gib(m.aliased as f64),
        gib(m.peak as f64),
        if m.fits { "yes" } else { "NO" },
        or_dash(r.cost.flops.map(|f| format!("{:.3}", f / 1e12))),
        or_dash(r.cost.bytes_accessed.map(|b| format!("{:.2}", b / 1e9))),
        or_dash(r.roofline.map(|e| format!("{:.2}", e.seconds * 1e3))),
        or_dash(r.roofline.map(|e| format!("{:?}", e.bound).to_lowercase())),
        or_dash(r.examples_per_second.map(|v| format!("{v:.0}"))),
        or_dash(r.roofline.map(|e| format!("{:.0}%", e.mfu * 100.0))),
        r.cost.xla_optimal_seconds
            .map_or(String::new(), |s| format!("  (XLA optimal {:.2} ms)", s * 1e3)),
    )?;
    Ok(())
}

fn print_max_batch(out: &mut impl Write, graph: &PlannedGraph, found: &MaxBatch) -> Result<()> {
    let what = match &graph.role {
        GraphRole::Train { stages } => {
            format!("train step at {} px (stages {stages:?})", graph.image_size)
        }
        GraphRole::Eval => format!("eval step at {} px", graph.image_size),
    };
    match found.peak_bytes {
        Some(peak) => writeln!(
            out,
            "  max batch of the {what}: {} (peak {}; {} more compiles: {})",
            found.batch,
            gib(peak as f64),
            found.probes.len(),
            probes(&found.probes)
        )?,
        None => writeln!(
            out,
            "  max batch of the {what}: not even one example fits ({} more compiles: {})",
            found.probes.len(),
            probes(&found.probes)
        )?,
    }
    if let Some(fastest) = found.fastest {
        let rate = |p: &Probe| or_dash(p.examples_per_second.map(|v| format!("{v:.0}")));
        if fastest.batch == found.batch {
            writeln!(
                out,
                "  of the batches that fit, the largest has the highest estimated throughput \
                 ({} img/s)",
                rate(&fastest)
            )?;
        } else {
            writeln!(
                out,
                "  of the batches that fit, {} has the highest estimated throughput ({} img/s; \
                 the compiler rematerializes to fit larger ones)",
                fastest.batch,
                rate(&fastest)
            )?;
        }
    }
    if let Some(usable) = found.usable_bytes {
        writeln!(
            out,
            "  the compiler said it can use {} per device",
            gib(usable as f64)
        )?;
    }
    Ok(())
}

/// `1024 (12.10G, 1380 img/s), 1536 (out of memory), ...`: the batches a max-batch search
/// compiled, with their peak memory and estimated throughput.
fn probes(probes: &[Probe]) -> String {
    probes.iter().map(describe).collect::<Vec<_>>().join(", ")
}

/// `1024 (12.10G, 1380 img/s)` or `1536 (out of memory)`: one compile of a max-batch search.
fn describe(p: &Probe) -> String {
    match (p.peak_bytes, p.examples_per_second) {
        (Some(peak), Some(rate)) => format!("{} ({}, {rate:.0} img/s)", p.batch, gib(peak as f64)),
        (Some(peak), None) => format!("{} ({})", p.batch, gib(peak as f64)),
        (None, _) => format!("{} (out of memory)", p.batch),
    }
}

/// A figure, or `-` where the compiler gave none.
fn or_dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".to_owned())
}

/// Bytes as GiB (or MiB below one GiB).
fn gib(bytes: f64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    if bytes.abs() >= GIB {
        format!("{:.2}G", bytes / GIB)
    } else {
        format!("{:.1}M", bytes / (1u64 << 20) as f64)
    }
}
