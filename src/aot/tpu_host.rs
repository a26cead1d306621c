//! The hosts of Cloud TPU VMs: how many chips one host drives and the CPUs and memory it has
//! for everything else, above all the input pipeline that must keep its chips fed.
//!
//! One table, [`TPU_HOSTS`], with the source of every row. Sources, checked 2026-12-07:
//! - v5e: Cloud TPU "TPU v5e" page, table "VM types" (<https://cloud.google.com/tpu/docs/v5e>):
//!   ct5lp-hightpu-1t 24 vCPUs 48 GB, -4t 112 vCPUs 192 GB, -8t 224 vCPUs 384 GB.
//! - v5p: Cloud TPU "TPU v5p" training page, table "VM, host and slice properties"
//!   (<https://cloud.google.com/tpu/docs/v5p-training>): 4 chips, 208 vCPUs, 448 GB.
//! - v6e: GKE "Plan TPUs in GKE", table "Choose the TPU version"
//!   (<https://cloud.google.com/kubernetes-engine/docs/concepts/plan-tpus#choose-tpu-version>):
//!   ct6e-standard-1t 44 vCPUs, -4t 180 vCPUs 720 GiB, -8t 180 vCPUs 1440 GiB. The 1t's memory
//!   (176 GB) is GKE's machine-type table's; a copy of the GKE page gives 448 GiB.
//! - v4: ct4p-hightpu-4t, 240 vCPUs, 407 GB, from GKE's machine-type table (the cluster
//!   autoscaler's `ct4p` family); the Cloud TPU v4 page found here gives no host sizes.
//! - Threads per core: 2 (SMT on, Compute Engine's default) everywhere but ct6e-standard-8t,
//!   which GKE's machine-type table marks as one thread per core: its 180 vCPUs are 180 physical
//!   cores, twice ct6e-standard-4t's 90 on the same 180 vCPUs. Google's public pages found here
//!   do not state it; it is the one figure of this table that rests on GKE's code alone.

use anyhow::{bail, Result};
use serde::Serialize;

use super::target::{Accelerator, Target, TpuGeneration};

/// One TPU VM machine type: a host and the chips attached to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TpuHost {
    pub generation: TpuGeneration,
    /// Compute Engine's (GKE's) machine-type name, e.g. `ct6e-standard-8t`.
    pub machine_type: &'static str,
    /// TPU chips this host drives.
    pub chips: usize,
    pub vcpus: usize,
    /// Hardware threads per physical core (2 with SMT on).
    pub threads_per_core: usize,
    /// Host memory, GB as the source gives it.
    pub memory_gb: usize,
    /// Whether slices larger than one host are built from this machine type (the `4t` types);
    /// the `1t` and `8t` types are single-host only.
    pub multi_host: bool,
}

impl TpuHost {
    /// Physical cores: what decoding and augmenting images scale with (an SMT sibling adds
    /// little to a core that is already busy with the same integer and SIMD work).
    pub fn physical_cores(&self) -> usize {
        self.vcpus / self.threads_per_core
    }
}

/// Every TPU VM machine type this project knows, by generation and chips; see the module
/// documentation for the source of each row.
pub const TPU_HOSTS: [TpuHost; 8] = [
    TpuHost {
        generation: TpuGeneration::V4,
        machine_type: "ct4p-hightpu-4t",
        chips: 4,
        vcpus: 240,
        threads_per_core: 2,
        memory_gb: 407,
        multi_host: true,
    },
    TpuHost {
        generation: TpuGeneration::V5e,
        machine_type: "ct5lp-hightpu-1t",
        chips: 1,
        vcpus: 24,
        threads_per_core: 2,
        memory_gb: 48,
        multi_host: false,
    },
    TpuHost {
        generation: TpuGeneration::V5e,
        machine_type: "ct5lp-hightpu-4t",
        chips: 4,
        vcpus: 112,
        threads_per_core: 2,
        memory_gb: 192,
        multi_host: true,
    },
    TpuHost {
        generation: TpuGeneration::V5e,
        machine_type: "ct5lp-hightpu-8t",
        chips: 8,
        vcpus: 224,
        threads_per_core: 2,
        memory_gb: 384,
        multi_host: false,
    },
    TpuHost {
        generation: TpuGeneration::V5p,
        machine_type: "ct5p-hightpu-4t",
        chips: 4,
        vcpus: 208,
        threads_per_core: 2,
        memory_gb: 448,
        multi_host: true,
    },
    TpuHost {
        generation: TpuGeneration::V6e,
        machine_type: "ct6e-standard-1t",
        chips: 1,
        vcpus: 44,
        threads_per_core: 2,
        memory_gb: 176,
        multi_host: false,
    },
    TpuHost {
        generation: TpuGeneration::V6e,
        machine_type: "ct6e-standard-4t",
        chips: 4,
        vcpus: 180,
        threads_per_core: 2,
        memory_gb: 720,
        multi_host: true,
    },
    TpuHost {
        generation: TpuGeneration::V6e,
        machine_type: "ct6e-standard-8t",
        chips: 8,
        vcpus: 180,
        threads_per_core: 1,
        memory_gb: 1440,
        multi_host: false,
    },
];

/// The hosts a TPU slice runs on: their machine type and how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SliceHosts {
    pub host: TpuHost,
    pub hosts: usize,
}

impl SliceHosts {
    /// The VM hosts of `target`: one host of the machine type with exactly the slice's chips
    /// (Google's single-host shapes: a v5e or v6e `2x4` is one 8-chip VM), else as many hosts
    /// of the generation's multi-host type as the chips fill. A slice no VM shape gives (one v4
    /// chip, two v5e chips, a GPU) is an error that names the shapes there are.
    pub fn of(target: &Target) -> Result<SliceHosts> {
        let Accelerator::Tpu(generation) = target.accelerator else {
            bail!("target {target} is not a TPU slice: only TPU VMs have a host table");
        };
        let chips = target.chips();
        let types = || TPU_HOSTS.iter().filter(|h| h.generation == generation);
        if let Some(host) = types().find(|h| h.chips == chips) {
            return Ok(SliceHosts {
                host: *host,
                hosts: 1,
            });
        }
        if let Some(host) = types().find(|h| h.multi_host && chips.is_multiple_of(h.chips)) {
            return Ok(SliceHosts {
                host: *host,
                hosts: chips / host.chips,
            });
        }
        let shapes: Vec<String> = types()
            .map(|h| format!("{} ({} chips)", h.machine_type, h.chips))
            .collect();
        bail!(
            "target {target}: no TPU VM has {chips} {} chips; its hosts are {}{}",
            generation.name(),
            shapes.join(", "),
            types()
                .find(|h| h.multi_host)
                .map_or(String::new(), |h| format!(
                    ", and larger slices are multiples of {} chips",
                    h.chips
                ))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(text: &str) -> SliceHosts {
        SliceHosts::of(&text.parse().unwrap()).unwrap_or_else(|e| panic!("{text}: {e:#}"))
    }

    #[test]
    fn single_host_slices_take_the_vm_with_their_chips() {
        let s = hosts("tpu:v6e:2x4");
        assert_eq!((s.host.machine_type, s.hosts), ("ct6e-standard-8t", 1));
        assert_eq!(s.host.physical_cores(), 180);
        let s = hosts("tpu:v5e:2x4");
        assert_eq!((s.host.machine_type, s.hosts), ("ct5lp-hightpu-8t", 1));
        assert_eq!(s.host.physical_cores(), 112);
        let s = hosts("tpu:v5e");
        assert_eq!((s.host.machine_type, s.hosts), ("ct5lp-hightpu-1t", 1));
        let s = hosts("tpu:v6e:2x2");
        assert_eq!(
            (s.host.machine_type, s.host.physical_cores()),
            ("ct6e-standard-4t", 90)
        );
        let s = hosts("tpu:v4:2x2x1");
        assert_eq!((s.host.machine_type, s.hosts), ("ct4p-hightpu-4t", 1));
        assert_eq!(s.host.physical_cores(), 120);
        let s = hosts("tpu:v5p:2x2x1");
        assert_eq!((s.host.vcpus, s.host.physical_cores()), (208, 104));
    }

    #[test]
    fn larger_slices_are_multiples_of_the_multi_host_vm() {
        let s = hosts("tpu:v5e:4x4");
        assert_eq!((s.host.machine_type, s.hosts), ("ct5lp-hightpu-4t", 4));
        let s = hosts("tpu:v4:2x2x2");
        assert_eq!((s.host.machine_type, s.hosts), ("ct4p-hightpu-4t", 2));
        let s = hosts("tpu:v6e:4x8");
        assert_eq!((s.host.machine_type, s.hosts), ("ct6e-standard-4t", 8));
    }

    #[test]
    fn shapes_no_vm_has_are_refused_with_the_shapes_there_are() {
        let err = |text: &str| format!("{:#}", SliceHosts::of(&text.parse().unwrap()).unwrap_err());
        let v4 = err("tpu:v4");
        assert!(
            v4.contains("no TPU VM has 1 v4 chips") && v4.contains("ct4p-hightpu-4t (4 chips)"),
            "{v4}"
        );
        assert!(err("tpu:v5e:1x2").contains("multiples of 4 chips"));
        assert!(err("cuda:h100").contains("not a TPU slice"));
    }

    #[test]
    fn the_table_has_one_row_per_machine_type_and_one_multi_host_type_per_generation() {
        for generation in TpuGeneration::ALL {
            let rows: Vec<&TpuHost> = TPU_HOSTS
                .iter()
                .filter(|h| h.generation == generation)
                .collect();
            assert_eq!(
                rows.iter().filter(|h| h.multi_host).count(),
                1,
                "{generation:?}"
            );
            for (i, a) in rows.iter().enumerate() {
                assert!(rows[i + 1..].iter().all(|b| b.chips != a.chips));
                assert!(a.vcpus.is_multiple_of(a.threads_per_core));
            }
        }
    }
}
