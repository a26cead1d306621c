//! What a TPU slice asks of its hosts' input pipelines: the images per second its chips consume
//! at each progressive stage (the roofline of a deviceless compile of the train step) and the
//! host cores that takes at a measured images/s per core.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::compile::{AotCompiler, GraphReport};
use super::target::Target;
use super::tpu_host::TpuHost;
use crate::model::{Backend, Model, ScheduleVariant};
use crate::program::executables::ExecutableCache;
use crate::program::graph_plan::{plan_graphs, GraphRole, GraphSelection};
use crate::step::graphs::{InputMode, Objective, Precision};

/// Images per second one chip consumes in the train step of some progressive stages.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChipRate {
    /// The stages that run this train step (stages of one size share it).
    pub stages: Vec<usize>,
    pub image_size: usize,
    /// Examples per device per step the estimate is for.
    pub batch: i64,
    /// By the roofline; `None` where the plugin reported no costs.
    pub images_per_second: Option<f64>,
}

/// The per-chip rates of one accelerator's train steps, stage by stage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChipRates {
    /// What the estimates were compiled for.
    pub compiled_for: Target,
    pub rates: Vec<ChipRate>,
}

/// The part of a `compile --json` document the rates come from.
#[derive(Deserialize)]
struct CompileDocument {
    target: String,
    graphs: Vec<GraphReport>,
}

impl ChipRates {
    /// The rates in compile reports of `target`'s graphs: each train step's images/s over all
    /// its devices, divided among the target's chips (a slice's step moves within 2 % of what
    /// one chip's does, so any slice gives the per-chip rate).
    pub fn from_reports(target: &Target, reports: &[GraphReport]) -> ChipRates {
        let chips = target.chips() as f64;
        let rates = reports
            .iter()
            .filter_map(|r| match &r.role {
                GraphRole::Train { stages } => Some(ChipRate {
                    stages: stages.clone(),
                    image_size: r.image_size,
                    batch: r.batch,
                    images_per_second: r.examples_per_second.map(|v| v / chips),
                }),
                GraphRole::Eval => None,
            })
            .collect();
        ChipRates {
            compiled_for: target.clone(),
            rates,
        }
    }

    /// The rates in the output of `effnetv2 compile --json` (`what` names it in errors).
    pub fn from_compile_json(text: &str, what: &str) -> Result<ChipRates> {
        let document: CompileDocument = serde_json::from_str(text).with_context(|| {
            format!("{what}: not the output of `effnetv2 compile --json` for a model's graphs")
        })?;
        let target: Target = document
            .target
            .parse()
            .with_context(|| format!("{what}: its target"))?;
        let rates = ChipRates::from_reports(&target, &document.graphs);
        if rates.rates.is_empty() {
            bail!("{what}: it reports no train step");
        }
        Ok(rates)
    }

    /// Compiles the train step of every progressive stage of `model` for one chip of the
    /// compiler's target, `batch` examples per device, bf16, the official schedule, taking
    /// `input` (host-augmented images, or u8 images it augments itself), as `train` on the
    /// target runs it; through `cache`, so that asking again costs no compile. `on_graph` sees
    /// each report as it comes (a compile of S takes minutes).
    pub fn compile(
        compiler: &AotCompiler,
        model: &Model,
        batch: i64,
        input: InputMode,
        cache: Option<&ExecutableCache>,
        mut on_graph: impl FnMut(&GraphReport),
    ) -> Result<ChipRates> {
        let devices = compiler.topology().devices().len() as i64;
        let graphs = plan_graphs(
            model,
            &GraphSelection {
                batch,
                replicas: devices,
                steps_per_call: 1,
                sync_batch_norm: false,
                skip_nonfinite: false,
                objective: Objective::OFFICIAL,
                eval_batch: batch,
                precision: Precision::Bf16,
                backend: Backend::Accelerator,
                schedule: ScheduleVariant::Official,
                stage: None,
                eval: false,
                input,
            },
        )?;
        let mut reports = Vec::with_capacity(graphs.len());
        for graph in &graphs {
            let report = compiler.report(model, graph, cache)?;
            on_graph(&report);
            reports.push(report);
        }
        Ok(ChipRates::from_reports(compiler.target(), &reports))
    }

    /// The rate of the train step at `image_size` px, if one was compiled.
    pub fn for_size(&self, image_size: usize) -> Option<&ChipRate> {
        self.rates.iter().find(|r| r.image_size == image_size)
    }

    /// Checks that every train step of the rates is at one of a model's stage sizes,
    /// `stage_sizes` (a result of one stage will do; the others then have no rate): a compile
    /// result of another model or schedule is an error naming both sets of sizes.
    pub fn check_sizes(&self, stage_sizes: &[usize]) -> Result<()> {
        let compiled: Vec<usize> = self.rates.iter().map(|r| r.image_size).collect();
        let foreign: Vec<usize> = compiled
            .iter()
            .copied()
            .filter(|size| !stage_sizes.contains(size))
            .collect();
        if !foreign.is_empty() {
            bail!(
                "the train steps were compiled for {} at {compiled:?} px, but this model's stages \
                 are at {stage_sizes:?} px (none at {foreign:?}): a compile result of another \
                 model or schedule?",
                self.compiled_for
            );
        }
        Ok(())
    }
}

/// What the chips of one host consume at one stage, and the host's cores that takes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct HostFeed {
    /// Images per second the host's chips consume.
    pub images_per_second: f64,
    /// Physical cores the input pipeline needs at the measured rate per core.
    pub cores: f64,
    /// `cores` over the host's physical cores: above 1 the host cannot feed its chips, and the
    /// training process itself needs cores too.
    pub share: f64,
}

impl HostFeed {
    /// The feed of `host`'s chips at `per_chip` images/s each, from an input pipeline that
    /// turns out `per_core` images/s on one core: `chips x per_chip / per_core` cores.
    /// Assumes the pipeline scales linearly over cores (see docs/input-pipeline.md). `None`
    /// unless both rates are positive and finite.
    pub fn new(host: &TpuHost, per_chip: f64, per_core: f64) -> Option<HostFeed> {
        let valid = |v: f64| v.is_finite() && v > 0.0;
        if !valid(per_chip) || !valid(per_core) {
            return None;
        }
        let images_per_second = host.chips as f64 * per_chip;
        let cores = images_per_second / per_core;
        Some(HostFeed {
            images_per_second,
            cores,
            share: cores / host.physical_cores() as f64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aot::tpu_host::TPU_HOSTS;

    fn host(machine_type: &str) -> TpuHost {
        *TPU_HOSTS
            .iter()
            .find(|h| h.machine_type == machine_type)
            .unwrap()
    }

    #[test]
    fn cores_needed_are_the_chips_rate_over_the_rate_per_core() {
        // v5e-8 at 171 px: 8 chips x 2719 img/s = 21752 img/s; at 352 img/s per core 61.8
        // cores, 55 % of its 112 physical cores.
        let feed = HostFeed::new(&host("ct5lp-hightpu-8t"), 2719.0, 352.0).unwrap();
        assert!((feed.images_per_second - 21752.0).abs() < 1e-9);
        assert!((feed.cores - 21752.0 / 352.0).abs() < 1e-9);
        assert!((feed.share - 21752.0 / 352.0 / 112.0).abs() < 1e-12);
        // v4-8 (4 chips, 120 cores) at 300 px: 4 x 2137 / 206 = 41.5 cores, 35 %.
        let feed = HostFeed::new(&host("ct4p-hightpu-4t"), 2137.0, 206.0).unwrap();
        assert!((feed.cores - 41.495).abs() < 1e-3, "{feed:?}");
        assert!((feed.share - 0.3458).abs() < 1e-4, "{feed:?}");
        // A host that cannot keep up: more cores than it has.
        let feed = HostFeed::new(&host("ct5p-hightpu-4t"), 9761.0, 352.0).unwrap();
        assert!(feed.share > 1.0, "{feed:?}");
    }

    #[test]
    fn meaningless_rates_give_no_feed() {
        let h = host("ct6e-standard-8t");
        assert!(HostFeed::new(&h, 0.0, 300.0).is_none());
        assert!(HostFeed::new(&h, 5000.0, 0.0).is_none());
        assert!(HostFeed::new(&h, f64::NAN, 300.0).is_none());
        assert!(HostFeed::new(&h, 5000.0, f64::INFINITY).is_none());
    }

    /// A `compile --json` document of `target` with train steps for stages 0-1 (shared) and
    /// 2 at `rate` images/s over all devices, and an eval step.
    fn document(target: &str, rate: f64) -> String {
        let graph = |stages: &str, image_size: usize, kind: &str| {
            format!(
                r#"{{"graph": "g", "role": {{"kind": "{kind}"{stages}}}, "image_size": {image_size},
                "batch": 128, "devices": 8, "instructions": 10, "compile_seconds": 1.0,
                "memory": {{"arguments": 1, "outputs": 1, "temporaries": 1, "aliased": 0,
                "peak": 3, "capacity": 4, "fits": true}}, "flops": 1.0, "bytes_accessed": 1.0,
                "transcendentals": null, "xla_optimal_seconds": null, "roofline": null,
                "examples_per_second": {rate}, "serialized_bytes": 5}}"#
            )
        };
        format!(
            r#"{{"target": "{target}", "topology": "", "graphs": [{}, {}, {}]}}"#,
            graph(r#", "stages": [0, 1]"#, 128, "train"),
            graph(r#", "stages": [2]"#, 192, "train"),
            graph("", 224, "eval"),
        )
    }

    #[test]
    fn a_compile_result_gives_per_chip_rates_of_the_train_steps() {
        let rates = ChipRates::from_compile_json(&document("tpu:v5e:2x4", 8000.0), "f").unwrap();
        assert_eq!(rates.compiled_for.to_string(), "tpu:v5e:2x4");
        assert_eq!(rates.rates.len(), 2, "the eval step is not a stage");
        let shared = rates.for_size(128).unwrap();
        assert_eq!(shared.stages, [0, 1]);
        assert_eq!(shared.images_per_second, Some(1000.0));
        assert_eq!(shared.batch, 128);
        assert!(rates.for_size(224).is_none(), "an eval step is no stage");
        rates.check_sizes(&[128, 128, 192, 256]).unwrap();
        let err = rates.check_sizes(&[128, 160, 300]).unwrap_err().to_string();
        assert!(
            err.contains("at [128, 192] px") && err.contains("none at [192]"),
            "{err}"
        );
    }

    #[test]
    fn other_documents_are_refused_with_their_name() {
        let err = |text: &str| {
            format!(
                "{:#}",
                ChipRates::from_compile_json(text, "x.json").unwrap_err()
            )
        };
        assert!(err("{}").contains("x.json: not the output of `effnetv2 compile --json`"));
        assert!(err(r#"{"target": "tpu:v9", "graphs": []}"#).contains("unknown TPU generation"));
        assert!(err(r#"{"target": "tpu:v5e", "graphs": []}"#).contains("no train step"));
    }
}
