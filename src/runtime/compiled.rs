//! `PJRT_Executable`: a compiled program without a device binding. It is what a compile-only
//! (deviceless) [`super::Topology::compile`] returns, and what a [`super::LoadedExecutable`]
//! hands out for its metadata: memory plan, cost analysis, optimized HLO, serialization.

use std::ffi::c_void;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use super::api::{slice_from_raw, string_from_raw, Api};
use super::error::{ErrorCode, Result, RuntimeError};
use super::ffi;
use super::named_value::{self, PjrtValue};
use super::plugin::Plugin;
use super::version::ApiVersion;

/// The program XLA actually runs, after its optimization passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptimizedProgram {
    /// The program format, `hlo_with_config` (a serialized `xla.HloModuleProtoWithConfig`) for
    /// the XLA plugins.
    pub format: String,
    pub code: Vec<u8>,
}

/// Memory the compiler planned for one execution on one device, in bytes, as
/// `PJRT_Executable_GetCompiledMemoryStats` reports it.
///
/// The struct grew over PJRT versions; a field the plugin's version does not have is `None`
/// (rather than the zero our larger struct was initialised with).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompiledMemoryStats {
    pub generated_code_size_in_bytes: i64,
    pub argument_size_in_bytes: i64,
    pub output_size_in_bytes: i64,
    /// Argument bytes reused by outputs (donation).
    pub alias_size_in_bytes: i64,
    pub temp_size_in_bytes: i64,
    pub host_generated_code_size_in_bytes: i64,
    pub host_argument_size_in_bytes: i64,
    pub host_output_size_in_bytes: i64,
    pub host_alias_size_in_bytes: i64,
    pub host_temp_size_in_bytes: i64,
    pub peak_memory_in_bytes: i64,
    /// Since PJRT C API 0.90.
    pub total_size_in_bytes: Option<i64>,
    /// Since PJRT C API 0.104, as are the two fields below.
    pub total_allocation_bytes: Option<i64>,
    pub indefinite_allocations: Option<i64>,
    pub peak_unpadded_heap_bytes: Option<i64>,
}

impl CompiledMemoryStats {
    /// The first version whose struct has `total_size_in_bytes`.
    const TOTAL_SIZE_SINCE: ApiVersion = ApiVersion {
        major: 0,
        minor: 90,
    };
    /// The first version whose struct has the allocation and heap fields.
    const ALLOCATIONS_SINCE: ApiVersion = ApiVersion {
        major: 0,
        minor: 104,
    };

    /// Device bytes live at the peak of one execution: the compiler's own figure where the plugin
    /// reports one, otherwise arguments plus outputs not aliased to them plus temporaries.
    pub fn device_peak_bytes(&self) -> i64 {
        if self.peak_memory_in_bytes > 0 {
            self.peak_memory_in_bytes
        } else {
            self.argument_size_in_bytes + self.output_size_in_bytes - self.alias_size_in_bytes
                + self.temp_size_in_bytes
        }
    }

    fn from_ffi(args: &ffi::ExecutableGetCompiledMemoryStatsArgs, version: ApiVersion) -> Self {
        let since = |first: ApiVersion, value: i64| (version >= first).then_some(value);
        CompiledMemoryStats {
            generated_code_size_in_bytes: args.generated_code_size_in_bytes,
            argument_size_in_bytes: args.argument_size_in_bytes,
            output_size_in_bytes: args.output_size_in_bytes,
            alias_size_in_bytes: args.alias_size_in_bytes,
            temp_size_in_bytes: args.temp_size_in_bytes,
            host_generated_code_size_in_bytes: args.host_generated_code_size_in_bytes,
            host_argument_size_in_bytes: args.host_argument_size_in_bytes,
            host_output_size_in_bytes: args.host_output_size_in_bytes,
            host_alias_size_in_bytes: args.host_alias_size_in_bytes,
            host_temp_size_in_bytes: args.host_temp_size_in_bytes,
            peak_memory_in_bytes: args.peak_memory_in_bytes,
            total_size_in_bytes: since(Self::TOTAL_SIZE_SINCE, args.total_size_in_bytes),
            total_allocation_bytes: since(Self::ALLOCATIONS_SINCE, args.total_allocation_bytes),
            indefinite_allocations: since(Self::ALLOCATIONS_SINCE, args.indefinite_allocations),
            peak_unpadded_heap_bytes: since(Self::ALLOCATIONS_SINCE, args.peak_unpadded_heap_bytes),
        }
    }
}

/// XLA's cost analysis of a compiled program: named values such as `flops`, `bytes accessed`,
/// `transcendentals` and `optimal_seconds`, plus per-operand breakdowns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CostAnalysis {
    pub properties: Vec<(String, PjrtValue)>,
}

impl CostAnalysis {
    /// A numeric property by name (`flops`, `bytes accessed`, ...).
    pub fn get(&self, name: &str) -> Option<f64> {
        self.properties
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, value)| match value {
                PjrtValue::Float(v) => Some(f64::from(*v)),
                PjrtValue::Int64(v) => Some(*v as f64),
                _ => None,
            })
    }

    /// Floating-point operations of one execution.
    pub fn flops(&self) -> Option<f64> {
        self.get("flops")
    }

    /// Bytes read and written from device memory by one execution.
    pub fn bytes_accessed(&self) -> Option<f64> {
        self.get("bytes accessed")
    }
}

/// An owned `PJRT_Executable`, destroyed when dropped. Keeps its plugin loaded.
///
/// `Executable` is `Send + Sync`: it is only read, through the thread-safe PJRT C API.
pub struct Executable {
    plugin: Arc<Plugin>,
    raw: NonNull<c_void>,
}

// SAFETY: see the type's documentation; the handle is only passed to the plugin.
unsafe impl Send for Executable {}
unsafe impl Sync for Executable {}

impl Executable {
    /// Takes ownership of a `PJRT_Executable` that `function` returned.
    pub(crate) fn from_raw(
        plugin: &Arc<Plugin>,
        raw: *mut c_void,
        function: &'static str,
    ) -> Result<Executable> {
        let raw =
            NonNull::new(raw).ok_or_else(|| RuntimeError::protocol(function, "returned null"))?;
        Ok(Executable {
            plugin: Arc::clone(plugin),
            raw,
        })
    }

    fn api(&self) -> &Api {
        self.plugin.api()
    }

    /// The plugin that compiled the program.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// Outputs per device; a tuple-shaped result counts its elements.
    pub fn num_outputs(&self) -> Result<usize> {
        let mut args = ffi::ExecutableNumOutputsArgs {
            executable: self.raw.as_ptr(),
            ..Default::default()
        };
        // SAFETY: live executable.
        unsafe { self.api().call(&mut args) }?;
        Ok(args.num_outputs)
    }

    pub fn num_replicas(&self) -> Result<usize> {
        let mut args = ffi::ExecutableNumReplicasArgs {
            executable: self.raw.as_ptr(),
            ..Default::default()
        };
        // SAFETY: live executable.
        unsafe { self.api().call(&mut args) }?;
        Ok(args.num_replicas)
    }

    pub fn num_partitions(&self) -> Result<usize> {
        let mut args = ffi::ExecutableNumPartitionsArgs {
            executable: self.raw.as_ptr(),
            ..Default::default()
        };
        // SAFETY: live executable.
        unsafe { self.api().call(&mut args) }?;
        Ok(args.num_partitions)
    }

    /// A platform-specific serialization, loadable with
    /// [`super::Client::deserialize_executable`] by the same plugin build.
    pub fn serialize(&self) -> Result<Vec<u8>> {
        let mut args = ffi::ExecutableSerializeArgs {
            executable: self.raw.as_ptr(),
            ..Default::default()
        };
        // SAFETY: live executable; the bytes are copied before the deleter frees them, and the
        // deleter runs exactly once.
        unsafe {
            self.api().call(&mut args)?;
            let bytes = slice_from_raw(
                args.serialized_bytes.cast::<u8>(),
                args.serialized_bytes_size,
            )
            .to_vec();
            if let Some(deleter) = args.serialized_executable_deleter {
                deleter(args.serialized_executable);
            }
            Ok(bytes)
        }
    }

    /// The program after XLA's optimizations (what the plugin runs), e.g. to inspect fusion.
    pub fn optimized_program(&self) -> Result<OptimizedProgram> {
        let mut program = ffi::Program::default();
        let mut args = ffi::ExecutableOptimizedProgramArgs {
            executable: self.raw.as_ptr(),
            program: &mut program,
            ..Default::default()
        };
        // SAFETY: live executable. The first call (null `code`) reports the size; the second
        // fills a buffer of exactly that size, which outlives the call.
        unsafe {
            self.api().call(&mut args)?;
            let mut code = vec![0u8; program.code_size];
            program.code = code.as_mut_ptr().cast();
            self.api().call(&mut args)?;
            let format = string_from_raw(program.format, program.format_size);
            code.truncate(program.code_size);
            Ok(OptimizedProgram { format, code })
        }
    }

    /// The compiler's memory plan for one execution on one device.
    pub fn compiled_memory_stats(&self) -> Result<CompiledMemoryStats> {
        let mut args = ffi::ExecutableGetCompiledMemoryStatsArgs {
            executable: self.raw.as_ptr(),
            ..Default::default()
        };
        // SAFETY: live executable; the plugin writes at most the fields its version knows.
        unsafe { self.api().call(&mut args) }?;
        Ok(CompiledMemoryStats::from_ffi(
            &args,
            self.plugin.api_version(),
        ))
    }

    /// XLA's cost analysis; `None` where the plugin does not implement it (the CUDA plugin).
    pub fn cost_analysis(&self) -> Result<Option<CostAnalysis>> {
        let mut args = ffi::ExecutableGetCostAnalysisArgs {
            executable: self.raw.as_ptr(),
            ..Default::default()
        };
        // SAFETY: live executable; the properties live as long as it and are copied here.
        match unsafe { self.api().call(&mut args) } {
            Ok(()) => {}
            Err(e) if e.code() == Some(ErrorCode::Unimplemented) => return Ok(None),
            Err(RuntimeError::Unsupported { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        // SAFETY: `num_properties` valid `PJRT_NamedValue`s filled in by the plugin.
        let raw = unsafe { slice_from_raw(args.properties, args.num_properties) };
        let properties = raw
            .iter()
            .filter_map(|value| unsafe { named_value::from_ffi(value) })
            .collect();
        Ok(Some(CostAnalysis { properties }))
    }
}

impl fmt::Debug for Executable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executable")
            .field("plugin", &self.plugin.path())
            .finish_non_exhaustive()
    }
}

impl Drop for Executable {
    fn drop(&mut self) {
        let mut args = ffi::ExecutableDestroyArgs {
            executable: self.raw.as_ptr(),
            ..Default::default()
        };
        // SAFETY: owned and destroyed once; a failure leaves nothing to undo.
        let _ = unsafe { self.api().call(&mut args) };
    }
}
