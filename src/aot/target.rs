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

    /// Chips one host drives (a VM of the generation's usual shape): the bound a multi-host
    /// topology is divided by.
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

/// What a deviceless compile is for: a TPU generation with a chip layout.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Target {
    pub generation: TpuGeneration,
    /// Chips along each axis of the slice (`[2, 2]` for `v5e:2x2`; `[1, 1]` for one chip).
    pub shape: Vec<usize>,
}

impl Target {
    /// The plugin that compiles for this target.
    pub fn plugin_kind(&self) -> PluginKind {
        PluginKind::Tpu
    }

    /// Chips in the slice.
    pub fn chips(&self) -> usize {
        self.shape.iter().product()
    }

    /// Hosts the slice spans (each drives up to [`TpuGeneration::chips_per_host`] chips).
    pub fn hosts(&self) -> usize {
        self.chips().div_ceil(self.generation.chips_per_host())
    }

    pub fn chip(&self) -> ChipSpec {
        self.generation.chip()
    }

    /// The topology name libtpu understands, e.g. `v5e:2x2` or `v4:2x2x1`.
    pub fn topology_name(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(usize::to_string).collect();
        format!("{}:{}", self.generation.name(), dims.join("x"))
    }

    /// libtpu's topology create options. A slice smaller than one host (one or two chips) must
    /// say that the host holds only those chips, or libtpu rejects a shape not divisible by its
    /// default per-host bounds; larger slices use libtpu's defaults.
    pub fn topology_options(&self) -> Vec<(String, PjrtValue)> {
        if self.chips() >= self.generation.chips_per_host() {
            return Vec::new();
        }
        let mut bounds: Vec<i64> = self.shape.iter().map(|&d| d as i64).collect();
        bounds.resize(3, 1);
        vec![(
            "chips_per_host_bounds".to_owned(),
            PjrtValue::Int64List(bounds),
        )]
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.shape.iter().map(usize::to_string).collect();
        write!(f, "tpu:{}:{}", self.generation.name(), dims.join("x"))
    }
}

/// The target names `--target` accepts, for messages.
pub const TARGET_HELP: &str = "tpu:v4, tpu:v5e, tpu:v5p, tpu:v6e (one chip), or a slice such as \
                               tpu:v5e:2x2, tpu:v5e:2x4, tpu:v4:2x2x2";

impl FromStr for Target {
    type Err = anyhow::Error;

    /// `tpu:GEN` (one chip) or `tpu:GEN:AxB[xC]`.
    fn from_str(text: &str) -> Result<Target> {
        let mut parts = text.split(':');
        let (platform, generation, shape) = (parts.next(), parts.next(), parts.next());
        if parts.next().is_some() || platform != Some("tpu") {
            bail!("unknown target `{text}` (known: {TARGET_HELP})");
        }
        let generation = generation.unwrap_or_default();
        let generation = TpuGeneration::ALL
            .into_iter()
            .find(|g| g.name() == generation)
            .with_context(|| {
                format!("unknown TPU generation `{generation}` in target `{text}` (known: {TARGET_HELP})")
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
        Ok(Target { generation, shape })
    }
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
        assert_eq!(
            (t.topology_name(), t.chips(), t.hosts()),
            ("v5e:1x1".into(), 1, 1)
        );
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
    fn slices_use_libtpus_default_bounds_and_count_hosts() {
        let t = target("tpu:v5e:2x4");
        assert_eq!(
            (t.topology_name(), t.chips(), t.hosts()),
            ("v5e:2x4".into(), 8, 2)
        );
        assert!(t.topology_options().is_empty());
        let t = target("tpu:v4:2x2x2");
        assert_eq!((t.chips(), t.hosts()), (8, 2));
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
        assert!(err("tpu:v9").contains("unknown TPU generation `v9`"));
        assert!(err("tpu:v5e:2x2x1").contains("needs 2 numbers"));
        assert!(err("tpu:v4:2x2").contains("needs 3 numbers"));
        assert!(err("tpu:v5e:2x0").contains("positive integers"));
        assert!(err("tpu").contains("unknown TPU generation ``"));
    }

    #[test]
    fn chip_figures_are_the_published_ones() {
        assert_eq!(TpuGeneration::V5e.chip().hbm_bytes, 16 << 30);
        assert_eq!(TpuGeneration::V4.chip().peak_bf16_flops, 275e12);
        assert_eq!(TpuGeneration::V5p.chip().hbm_bytes_per_second, 2765e9);
        assert_eq!(TpuGeneration::V6e.chip().peak_bf16_flops, 918e12);
    }
}
