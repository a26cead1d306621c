//! Ahead-of-time compiles for accelerators this machine does not have: libtpu compiles for a
//! TPU topology described by name, with no device and no client. Every graph a run would execute
//! on a TPU can so be compiled, sized against the chip's memory, costed and cached on a CPU
//! machine, and a TPU VM with the same libtpu loads the cached executables instead of compiling.
//! The costs also say what a TPU VM's host must feed its chips ([`feed`], [`tpu_host`]).

pub mod compile;
pub mod estimate;
pub mod feed;
pub mod target;
pub mod tpu_host;

pub use compile::{AotCompiler, GraphReport, MaxBatch, MemoryReport, Probe, ProgramCost};
pub use estimate::{Bound, Roofline};
pub use feed::{ChipRate, ChipRates, HostFeed};
pub use target::{Accelerator, ChipSpec, GpuModel, Target, TpuGeneration};
pub use tpu_host::{SliceHosts, TpuHost, TPU_HOSTS};
