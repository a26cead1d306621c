//! The runtime layer: a thin, safe wrapper over the PJRT C API, loaded at run time from a plugin
//! shared library (no C++ XLA is linked, no bindings generator: `ffi` declares the few structs we
//! use at the 0.114 layout).
//!
//! Ownership: a [`Plugin`] stays loaded for the life of the process; a [`Client`] keeps its plugin
//! alive; every [`Buffer`] and [`LoadedExecutable`] keeps its client alive; each PJRT object is
//! destroyed exactly once, by the drop of the Rust value that owns it. No Rust callback is ever
//! handed to a plugin, so no panic can cross the C boundary.
//!
//! All unsafe code of the crate lives in this module. Errors returned by the plugin come back as
//! [`RuntimeError::Pjrt`] with PJRT's status code and message.

mod api;
mod buffer;
mod client;
mod compile_options;
mod compiled;
pub mod cuda_toolkit;
mod error;
mod event;
mod executable;
mod ffi;
pub mod hardware;
mod named_value;
mod open;
pub mod options_proto;
mod plugin;
pub mod plugin_log;
pub mod provision;
mod topology;
mod version;

pub use buffer::Buffer;
pub use client::{Client, ClientOptions, Device, DeviceDescription};
pub use compile_options::{CompileOptions, DeviceAssignment, OptionOverride};
pub use compiled::{CompiledMemoryStats, CostAnalysis, Executable, OptimizedProgram};
pub use error::{ErrorCode, Result, RuntimeError};
pub use executable::{Arg, LoadedExecutable};
pub use named_value::PjrtValue;
pub use open::open_plugin;
pub use plugin::Plugin;
pub use topology::Topology;
pub use version::ApiVersion;
