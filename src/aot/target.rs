//! Compile targets: which accelerator a deviceless compile is for, how its PJRT plugin names the
//! topology, and the published figures of its chips that the estimates use.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::runtime::provision::PluginKind;
use crate::runtime::PjrtValue;

/// Published per-chip figures (Google Cloud TPU system architecture pages, NVIDIA data sheets):
/// what a roofline estimate and a memory check compare against.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ChipSpec {
    /// High-bandwidth memory per chip, bytes.
    pub hbm_bytes: u64,
    /// Dense bf16 peak, FLOP/s.
    pub peak_bf16_flops: f64,
    /// HBM bandwidth, bytes/s.
    pub hbm_bytes_per_second: f64,
}

const GIB: u64 = 1 << 30;

/// A Cloud TPU generation, named as libtpu's topology names spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TpuGeneration {
    V4,
    V5e,
    V5p,
    V6e,
}

impl TpuGeneration {
    pub const ALL: [TpuGeneration; 4] = [Self::V4, Self::V5e, Self::V5p, Self::V6e];

    pub fn name(self) -> &'static str {
        match self {
            Self::V4 => "v4",
            Self::V5e => "v5e",
            Self::V5p => "v5p",
            Self::V6e => "v6e",
        }
    }

    /// v4 and v5p chips sit in a 3-D torus (`2x2x1`), v5e and v6e in a 2-D mesh (`2x2`).
    fn dimensions(self) -> usize {
        match self {
            Self::V4 | Self::V5p => 3,
            Self::V5e | Self::V6e => 2,
        }
    }

    /// libtpu's default chips per host: a smaller slice must give its own per-host bounds.
    /// (The hosts a slice runs on are [`crate::aot::tpu_host::SliceHosts`].)
    fn chips_per_host(self) -> usize {
        4
    }

    pub fn chip(self) -> ChipSpec {
        match self {
            Self::V4 => ChipSpec {
                hbm_bytes: 32 * GIB,
                peak_bf16_flops: 275e12,
                hbm_bytes_per_second: 1228e9,
            },
            Self::V5e => ChipSpec {
                hbm_bytes: 16 * GIB,
                peak_bf16_flops: 197e12,
                hbm_bytes_per_second: 819e9,
            },
            Self::V5p => ChipSpec {
                hbm_bytes: 95 * GIB,
                peak_bf16_flops: 459e12,
                hbm_bytes_per_second: 2765e9,
            },
            Self::V6e => ChipSpec {
                hbm_bytes: 32 * GIB,
                peak_bf16_flops: 918e12,
                hbm_bytes_per_second: 1640e9,
            },
        }
    }
}

/// An NVIDIA GPU a deviceless compile can target, described to XLA by a `GpuTargetConfigProto`
/// (text format, in `src/aot/gpus/`, from NVIDIA's published figures).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuModel {
    /// H100 SXM5 80GB.
    H100,
    /// A100 SXM4 80GB.
    A100,
}

impl GpuModel {
    pub const ALL: [GpuModel; 2] = [Self::H100, Self::A100];

    pub fn name(self) -> &'static str {
        match self {
            Self::H100 => "h100",
            Self::A100 => "a100",
        }
    }

    /// XLA's description of the GPU: what the CUDA plugin compiles for without one.
    pub fn target_config(self) -> &'static str {
        match self {
            Self::H100 => include_str!("gpus/h100_sxm.txtpb"),
            Self::A100 => include_str!("gpus/a100_sxm_80.txtpb"),
        }
    }

    pub fn chip(self) -> ChipSpec {
        match self {
            Self::H100 => ChipSpec {
                hbm_bytes: 85_045_477_376,
                peak_bf16_flops: 989e12,
                hbm_bytes_per_second: 3352e9,
            },
            Self::A100 => ChipSpec {
                hbm_bytes: 85_198_045_184,
                peak_bf16_flops: 312e12,
                hbm_bytes_per_second: 2039e9,
            },
        }
    }
}

/// The chip a target is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "platform", content = "chip", rename_all = "lowercase")]
pub enum Accelerator {
    Tpu(TpuGeneration),
    Cuda(GpuModel),
}

/// What a deviceless compile is for: a TPU generation with a chip layout, or one GPU.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Target {
    pub accelerator: Accelerator,
    /// Chips along each axis (`[2, 2]` for `tpu:v5e:2x2`; `[1, 1]` for one v5e chip; `[1]`
    /// for a GPU).
    pub shape: Vec<usize>,
}

impl Target {
    /// The plugin that compiles for this target.
    pub fn plugin_kind(&self) -> PluginKind {
        match self.accelerator {
            Accelerator::Tpu(_) => PluginKind::Tpu,
            Accelerator::Cuda(_) => PluginKind::Cuda,
        }
    }

    /// One chip of the same accelerator (`tpu:v6e:1x1` for `tpu:v6e:2x4`): what a per-chip
    /// figure is compiled for.
    pub fn one_chip(&self) -> Target {
        Target {
            accelerator: self.accelerator,
            shape: vec![1; self.shape.len()],
        }
    }

    /// Chips in the slice.
    pub fn chips(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn chip(&self) -> ChipSpec {
        match self.accelerator {
            Accelerator::Tpu(generation) => generation.chip(),
            Accelerator::Cuda(model) => model.chip(),
        }
    }

    /// The topology name the plugin understands: libtpu's `v5e:2x2` or `v4:2x2x1`; the CUDA
    /// plugin takes its layout from the `topology` option instead.
    pub fn topology_name(&self) -> String {
        match self.accelerator {
            Accelerator::Tpu(generation) => {
                let dims: Vec<String> = self.shape.iter().map(usize::to_string).collect();
                format!("{}:{}", generation.name(), dims.join("x"))
            }
            Accelerator::Cuda(_) => String::new(),
        }
    }

    /// The plugin's topology create options. libtpu: a slice smaller than one host (one or two
    /// chips) must say that the host holds only those chips, or libtpu rejects a shape not
    /// divisible by its default per-host bounds; larger slices use libtpu's defaults. The CUDA
    /// plugin: the GPU's description, which makes it compile without a GPU, on one host with
    /// one device (`1x1x1`: hosts x slices x devices).
    pub fn topology_options(&self) -> Vec<(String, PjrtValue)> {
        match self.accelerator {
            Accelerator::Tpu(generation) => {
                if self.chips() >= generation.chips_per_host() {
                    return Vec::new();
                }
                let mut bounds: Vec<i64> = self.shape.iter().map(|&d| d as i64).collect();
                bounds.resize(3, 1);
                vec![(
                    "chips_per_host_bounds".to_owned(),
                    PjrtValue::Int64List(bounds),
                )]
            }
            Accelerator::Cuda(model) => vec![
                (
                    "target_config".to_owned(),
                    PjrtValue::String(model.target_config().to_owned()),
                ),
                ("topology".to_owned(), PjrtValue::String("1x1x1".to_owned())),
            ],
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.accelerator {
            Accelerator::Tpu(generation) => {
                let dims: Vec<String> = self.shape.iter().map(usize::to_string).collect();
                write!(f, "tpu:{}:{}", generation.name(), dims.join("x"))
            }
            Accelerator::Cuda(model) => write!(f, "cuda:{}", model.name()),
        }
    }
}

/// The target names `--target` accepts, for messages.
pub const TARGET_HELP: &str = "tpu:v4, tpu:v5e, tpu:v5p, tpu:v6e (one chip), a slice such as \
                               tpu:v5e:2x2, tpu:v5e:2x4, tpu:v4:2x2x2, or one GPU: cuda:h100, \
                               cuda:a100";

impl FromStr for Target {
    type Err = anyhow::Error;

    /// `tpu:GEN` (one chip), `tpu:GEN:AxB[xC]`, or `cuda:GPU`.
    fn from_str(text: &str) -> Result<Target> {
        let mut parts = text.split(':');
        let (platform, chip, shape) = (parts.next(), parts.next(), parts.next());
        if parts.next().is_some() {
            bail!("unknown target `{text}` (known: {TARGET_HELP})");
        }
        let chip = chip.unwrap_or_default();
        match platform {
            Some("tpu") => tpu_target(text, chip, shape),
            Some("cuda") => {
                let model = GpuModel::ALL
                    .into_iter()
                    .find(|m| m.name() == chip)
                    .with_context(|| {
                        format!("unknown GPU `{chip}` in target `{text}` (known: {TARGET_HELP})")
                    })?;
                if shape.is_some() {
                    bail!("target `{text}`: GPU targets are one GPU (`cuda:{chip}`)");
                }
                Ok(Target {
                    accelerator: Accelerator::Cuda(model),
                    shape: vec![1],
                })
            }
            _ => bail!("unknown target `{text}` (known: {TARGET_HELP})"),
        }
    }
}

/// `tpu:GENERATION[:SHAPE]`, split into its parts.
fn tpu_target(text: &str, generation: &str, shape: Option<&str>) -> Result<Target> {
    let generation = TpuGeneration::ALL
        .into_iter()
        .find(|g| g.name() == generation)
        .with_context(|| {
            format!(
                "unknown TPU generation `{generation}` in target `{text}` (known: {TARGET_HELP})"
            )
        })?;
    let rank = generation.dimensions();
    let shape = match shape {
        None => vec![1; rank],
        Some(shape) => {
            let dims: Vec<usize> = shape
                .split('x')
                .map(|d| d.parse::<usize>().ok().filter(|&d| d > 0))
                .collect::<Option<_>>()
                .with_context(|| {
                    format!("target `{text}`: the slice shape `{shape}` must be positive integers joined by `x`")
                })?;
            if dims.len() != rank {
                bail!(
                    "target `{text}`: {} chips form a {rank}-D layout, so the slice shape needs {rank} numbers (e.g. `{}`)",
                    generation.name(),
                    if rank == 2 { "2x2" } else { "2x2x1" }
                );
            }
            dims
        }
    };
    Ok(Target {
        accelerator: Accelerator::Tpu(generation),
        shape,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &str) -> Target {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e:#}"))
    }

    #[test]
    fn one_chip_by_default_with_the_per_host_bounds_libtpu_needs() {
        let t = target("tpu:v5e");
        assert_eq!((t.topology_name(), t.chips()), ("v5e:1x1".into(), 1));
        assert_eq!(
            t.topology_options(),
            vec![(
                "chips_per_host_bounds".to_owned(),
                PjrtValue::Int64List(vec![1, 1, 1])
            )]
        );
        let t = target("tpu:v4");
        assert_eq!(t.topology_name(), "v4:1x1x1");
        assert_eq!(t.to_string(), "tpu:v4:1x1x1");
    }

    #[test]
    fn slices_use_libtpus_default_bounds() {
        let t = target("tpu:v5e:2x4");
        assert_eq!((t.topology_name(), t.chips()), ("v5e:2x4".into(), 8));
        assert!(t.topology_options().is_empty());
        let t = target("tpu:v4:2x2x2");
        assert_eq!(
            (t.chips(), t.one_chip().to_string()),
            (8, "tpu:v4:1x1x1".into())
        );
        let t = target("tpu:v6e:1x2");
        assert_eq!(
            t.topology_options(),
            vec![(
                "chips_per_host_bounds".to_owned(),
                PjrtValue::Int64List(vec![1, 2, 1])
            )]
        );
    }

    #[test]
    fn bad_targets_name_the_problem() {
        let err = |text: &str| format!("{:#}", text.parse::<Target>().unwrap_err());
        assert!(err("gpu:h100").contains("unknown target `gpu:h100`"));
        assert!(err("cuda:v100").contains("unknown GPU `v100`"));
        assert!(err("cuda:h100:2").contains("GPU targets are one GPU"));
        assert!(err("tpu:v9").contains("unknown TPU generation `v9`"));
        assert!(err("tpu:v5e:2x2x1").contains("needs 2 numbers"));
        assert!(err("tpu:v4:2x2").contains("needs 3 numbers"));
        assert!(err("tpu:v5e:2x0").contains("positive integers"));
        assert!(err("tpu").contains("unknown TPU generation ``"));
    }

    #[test]
    fn a_gpu_target_describes_its_gpu_to_the_cuda_plugin() {
        let t = target("cuda:h100");
        assert_eq!(t.plugin_kind(), PluginKind::Cuda);
        assert_eq!((t.to_string(), t.chips()), ("cuda:h100".into(), 1));
        let options = t.topology_options();
        assert_eq!(
            options[1],
            ("topology".to_owned(), PjrtValue::String("1x1x1".into()))
        );
        let PjrtValue::String(config) = &options[0].1 else {
            panic!("{options:?}")
        };
        assert!(config.contains("core_count: 132") && config.contains("major: 9 minor: 0"));
        assert_eq!(
            t.chip().hbm_bytes,
            85_045_477_376,
            "the device_memory_size of the description"
        );
        assert!(GpuModel::A100.target_config().contains(&format!(
            "device_memory_size: {}",
            GpuModel::A100.chip().hbm_bytes
        )));
    }

    #[test]
    fn chip_figures_are_the_published_ones() {
        assert_eq!(TpuGeneration::V5e.chip().hbm_bytes, 16 << 30);
        assert_eq!(TpuGeneration::V4.chip().peak_bf16_flops, 275e12);
        assert_eq!(TpuGeneration::V5p.chip().hbm_bytes_per_second, 2765e9);
        assert_eq!(TpuGeneration::V6e.chip().peak_bf16_flops, 918e12);
    }
}
