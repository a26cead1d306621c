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
mod error;
mod event;
mod executable;
mod ffi;
mod named_value;
pub mod options_proto;
mod plugin;
pub mod provision;
mod version;

pub use buffer::Buffer;
pub use client::{Client, ClientOptions, Device};
pub use compile_options::{CompileOptions, DeviceAssignment, OptionOverride};
pub use error::{ErrorCode, Result, RuntimeError};
pub use executable::{Arg, CompiledMemoryStats, LoadedExecutable, OptimizedProgram};
pub use named_value::PjrtValue;
pub use plugin::Plugin;
pub use version::ApiVersion;
