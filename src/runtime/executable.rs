//! Compiled programs: compile, execute (with donation), serialize and reload.

use std::ffi::c_void;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::hlo::Module;

use super::api::{slice_from_raw, Api};
use super::buffer::Buffer;
use super::client::{Client, ClientInner, Device};
use super::compile_options::CompileOptions;
use super::compiled::{CompiledMemoryStats, Executable, OptimizedProgram};
use super::error::{Result, RuntimeError};
use super::ffi::{self, ApiFunction};

/// One argument of an execution.
///
/// A `Borrowed` buffer is never consumed: its position is passed to PJRT as non-donatable, so
/// even where the program aliases that parameter to an output, XLA writes the output to fresh
/// memory. A `Donated` buffer is moved in and is gone after the call, whether the program reuses
/// its memory for an output (an `input_output_alias`) or not, and whether the call succeeds or not.
#[derive(Debug)]
pub enum Arg<'a> {
    Borrowed(&'a Buffer),
    Donated(Buffer),
}

impl Arg<'_> {
    fn buffer(&self) -> &Buffer {
        match self {
            Arg::Borrowed(buffer) => buffer,
            Arg::Donated(buffer) => buffer,
        }
    }
}

impl<'a> From<&'a Buffer> for Arg<'a> {
    fn from(buffer: &'a Buffer) -> Arg<'a> {
        Arg::Borrowed(buffer)
    }
}

impl From<Buffer> for Arg<'_> {
    fn from(buffer: Buffer) -> Self {
        Arg::Donated(buffer)
    }
}

/// A compiled program loaded onto its devices; destroyed when dropped.
///
/// `LoadedExecutable` is `Send + Sync`: PJRT executables may be executed concurrently from
/// several threads (XLA's `PjRtLoadedExecutable` contract); the metadata kept here is immutable.
pub struct LoadedExecutable {
    raw: NonNull<c_void>,
    client: Arc<ClientInner>,
    num_outputs: usize,
    num_replicas: usize,
    num_partitions: usize,
    /// Handles of the devices that execute, in the order of `execute_replicated`'s lists.
    device_handles: Vec<*mut c_void>,
}

// SAFETY: see the type's documentation; the raw handles are only passed to the plugin.
unsafe impl Send for LoadedExecutable {}
unsafe impl Sync for LoadedExecutable {}

impl Client {
    /// Compiles a serialized `xla.HloModuleProto` (PJRT program format `"hlo"`).
    pub fn compile(
        &self,
        hlo_module_proto: &[u8],
        options: &CompileOptions,
    ) -> Result<LoadedExecutable> {
        let options = options.encode()?;
        let program = hlo_program(hlo_module_proto);
        let mut args = ffi::ClientCompileArgs {
            client: self.inner.raw(),
            program: &program,
            compile_options: options.as_ptr().cast(),
            compile_options_size: options.len(),
            ..Default::default()
        };
        // SAFETY: program bytes, format and options outlive the call; the plugin only reads
        // `code` (it is declared mutable in C because the same struct is also an output).
        unsafe { self.inner.api().call(&mut args) }?;
        LoadedExecutable::from_raw(&self.inner, args.executable, ffi::ClientCompileArgs::NAME)
    }

    /// Compiles an HLO module built with [`crate::hlo`].
    pub fn compile_module(
        &self,
        module: &Module,
        options: &CompileOptions,
    ) -> Result<LoadedExecutable> {
        self.compile(&module.to_proto_bytes(), options)
    }

    /// Loads an executable serialized by [`LoadedExecutable::serialize`], optionally replacing
    /// its compile options. Only the same plugin build can load it safely: a blob from another
    /// build may load and compute garbage, so callers must key caches by [`super::Plugin::sha256`].
    pub fn deserialize_executable(
        &self,
        serialized: &[u8],
        options: Option<&CompileOptions>,
    ) -> Result<LoadedExecutable> {
        let options = options.map(CompileOptions::encode).transpose()?;
        let mut args = ffi::ExecutableDeserializeAndLoadArgs {
            client: self.inner.raw(),
            serialized_executable: serialized.as_ptr().cast(),
            serialized_executable_size: serialized.len(),
            overridden_serialized_compile_options: options
                .as_ref()
                .map_or(std::ptr::null(), |o| o.as_ptr().cast()),
            overridden_serialized_compile_options_size: options.as_ref().map_or(0, Vec::len),
            ..Default::default()
        };
        // SAFETY: the serialized bytes and options outlive the call.
        unsafe { self.inner.api().call(&mut args) }?;
        LoadedExecutable::from_raw(
            &self.inner,
            args.loaded_executable,
            ffi::ExecutableDeserializeAndLoadArgs::NAME,
        )
    }
}

/// The `PJRT_Program` of a serialized `xla.HloModuleProto` (format `"hlo"`); it points into
/// `proto`, which must outlive it. The plugin only reads `code` (declared mutable in C because
/// the same struct is also an output).
pub(crate) fn hlo_program(proto: &[u8]) -> ffi::Program {
    const FORMAT: &str = "hlo";
    ffi::Program {
        code: proto.as_ptr().cast_mut().cast(),
        code_size: proto.len(),
        format: FORMAT.as_ptr().cast(),
        format_size: FORMAT.len(),
        ..Default::default()
    }
}

impl LoadedExecutable {
    /// Takes ownership of a loaded executable and reads its metadata (destroying it on failure).
    fn from_raw(
        client: &Arc<ClientInner>,
        raw: *mut c_void,
        function: &'static str,
    ) -> Result<LoadedExecutable> {
        let raw = NonNull::new(raw)
            .ok_or_else(|| RuntimeError::protocol(function, "returned no executable"))?;
        let mut executable = LoadedExecutable {
            raw,
            client: Arc::clone(client),
            num_outputs: 0,
            num_replicas: 0,
            num_partitions: 0,
            device_handles: Vec::new(),
        };
        let mut devices = ffi::LoadedExecutableAddressableDevicesArgs {
            executable: raw.as_ptr(),
            ..Default::default()
        };
        // SAFETY: live executable; the device list lives as long as it and is copied.
        unsafe {
            executable.api().call(&mut devices)?;
            executable.device_handles =
                slice_from_raw(devices.addressable_devices, devices.num_addressable_devices)
                    .to_vec();
        }
        if let Some(unknown) = executable
            .device_handles
            .iter()
            .find(|d| client.addressable_device_by_raw(**d).is_none())
        {
            return Err(RuntimeError::protocol(
                ffi::LoadedExecutableAddressableDevicesArgs::NAME,
                format!("device handle {unknown:?} is not an addressable device of the client"),
            ));
        }
        let unloaded = executable.executable()?;
        executable.num_outputs = unloaded.num_outputs()?;
        executable.num_replicas = unloaded.num_replicas()?;
        executable.num_partitions = unloaded.num_partitions()?;
        Ok(executable)
    }

    fn api(&self) -> &Api {
        self.client.api()
    }

    /// Outputs per device; a tuple-shaped result counts its elements (they come back as
    /// separate buffers).
    pub fn num_outputs(&self) -> usize {
        self.num_outputs
    }

    pub fn num_replicas(&self) -> usize {
        self.num_replicas
    }

    pub fn num_partitions(&self) -> usize {
        self.num_partitions
    }

    /// The devices that execute, in the order of [`LoadedExecutable::execute_replicated`]'s lists.
    pub fn addressable_devices(&self) -> Vec<&Device> {
        self.device_handles
            .iter()
            .filter_map(|d| self.client.addressable_device_by_raw(*d))
            .collect()
    }

    /// Runs a single-device executable and returns its outputs (tuple elements separately).
    /// Outputs are computed asynchronously: reading one waits for it.
    pub fn execute(&self, args: Vec<Arg<'_>>) -> Result<Vec<Buffer>> {
        if self.device_handles.len() != 1 {
            return Err(RuntimeError::invalid(format!(
                "execute runs single-device executables; this one runs on {} devices, use execute_replicated",
                self.device_handles.len()
            )));
        }
        let mut outputs = self.execute_replicated(vec![args])?;
        Ok(outputs.pop().unwrap_or_default())
    }

    /// Runs on every device of the executable: `args[d]` are the arguments for the `d`-th device
    /// of [`LoadedExecutable::addressable_devices`] (and must live there); returns `outputs[d]`.
    ///
    /// A position that is borrowed in any device's list is non-donatable for all devices.
    pub fn execute_replicated(&self, args: Vec<Vec<Arg<'_>>>) -> Result<Vec<Vec<Buffer>>> {
        let num_args = self.check_arguments(&args)?;
        let non_donatable: Vec<i64> = (0..num_args)
            .filter(|&i| args.iter().any(|list| matches!(list[i], Arg::Borrowed(_))))
            .map(|i| i as i64)
            .collect();
        let argument_handles: Vec<Vec<*mut c_void>> = args
            .iter()
            .map(|list| list.iter().map(|arg| arg.buffer().raw()).collect())
            .collect();
        let argument_lists: Vec<*const *mut c_void> =
            argument_handles.iter().map(|list| list.as_ptr()).collect();
        let mut output_handles: Vec<Vec<*mut c_void>> = args
            .iter()
            .map(|_| vec![std::ptr::null_mut(); self.num_outputs])
            .collect();
        let output_lists: Vec<*mut *mut c_void> = output_handles
            .iter_mut()
            .map(|list| list.as_mut_ptr())
            .collect();
        let mut options = ffi::ExecuteOptions {
            non_donatable_input_indices: non_donatable.as_ptr(),
            num_non_donatable_input_indices: non_donatable.len(),
            ..Default::default()
        };
        let mut call = ffi::LoadedExecutableExecuteArgs {
            executable: self.raw.as_ptr(),
            options: &mut options,
            argument_lists: argument_lists.as_ptr(),
            num_devices: args.len(),
            num_args,
            output_lists: output_lists.as_ptr(),
            ..Default::default()
        };
        // SAFETY: every list outlives the call; argument buffers are live (owned or borrowed by
        // `args`); output lists have `num_outputs` slots per device, as PJRT requires.
        let result = unsafe { self.api().call(&mut call) };
        // Donated buffers are released here: PJRT holds its own references for the execution.
        drop(args);
        result?;
        output_handles
            .into_iter()
            .map(|list| {
                // Take ownership of every output before reporting a null one, so none leaks.
                let buffers: Vec<Result<Buffer>> = list
                    .into_iter()
                    .map(|raw| {
                        Buffer::from_raw(&self.client, raw, ffi::LoadedExecutableExecuteArgs::NAME)
                    })
                    .collect();
                buffers.into_iter().collect()
            })
            .collect()
    }

    /// Checks shape and ownership of the argument lists; returns the argument count.
    fn check_arguments(&self, args: &[Vec<Arg<'_>>]) -> Result<usize> {
        if args.len() != self.device_handles.len() {
            return Err(RuntimeError::invalid(format!(
                "the executable runs on {} devices but {} argument lists were given",
                self.device_handles.len(),
                args.len()
            )));
        }
        let num_args = args.first().map_or(0, Vec::len);
        if let Some((d, list)) = args
            .iter()
            .enumerate()
            .find(|(_, list)| list.len() != num_args)
        {
            return Err(RuntimeError::invalid(format!(
                "argument list {d} has {} arguments but list 0 has {num_args}",
                list.len()
            )));
        }
        for (d, list) in args.iter().enumerate() {
            if let Some(i) = list
                .iter()
                .position(|arg| !Arc::ptr_eq(arg.buffer().client_inner(), &self.client))
            {
                return Err(RuntimeError::invalid(format!(
                    "argument {i} of list {d} is a buffer of another client than the executable's"
                )));
            }
            for (i, arg) in list.iter().enumerate() {
                let device = arg.buffer().device()?;
                if device.raw() != self.device_handles[d] {
                    return Err(RuntimeError::invalid(format!(
                        "argument {i} of list {d} lives on device {} but list {d} runs on device {}",
                        device.id(),
                        self.addressable_devices()
                            .get(d)
                            .map_or(-1, |device| device.id()),
                    )));
                }
            }
        }
        Ok(num_args)
    }

    /// A platform-specific serialization, loadable with [`Client::deserialize_executable`] by
    /// the same plugin build.
    pub fn serialize(&self) -> Result<Vec<u8>> {
        self.executable()?.serialize()
    }

    /// The program after XLA's optimizations (what the plugin runs), e.g. to inspect fusion.
    pub fn optimized_program(&self) -> Result<OptimizedProgram> {
        self.executable()?.optimized_program()
    }

    /// The compiler's memory plan for one execution on one device.
    pub fn compiled_memory_stats(&self) -> Result<CompiledMemoryStats> {
        self.executable()?.compiled_memory_stats()
    }

    /// The `PJRT_Executable` behind this loaded executable (a new object the caller owns), for
    /// its metadata: cost analysis, memory plan, optimized program, serialization.
    pub fn executable(&self) -> Result<Executable> {
        let mut args = ffi::LoadedExecutableGetExecutableArgs {
            loaded_executable: self.raw.as_ptr(),
            ..Default::default()
        };
        // SAFETY: live loaded executable.
        unsafe { self.api().call(&mut args) }?;
        Executable::from_raw(
            self.client.plugin(),
            args.executable,
            ffi::LoadedExecutableGetExecutableArgs::NAME,
        )
    }
}

impl fmt::Debug for LoadedExecutable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedExecutable")
            .field("num_outputs", &self.num_outputs)
            .field("num_replicas", &self.num_replicas)
            .field("num_partitions", &self.num_partitions)
            .field("devices", &self.device_handles.len())
            .finish()
    }
}

impl Drop for LoadedExecutable {
    fn drop(&mut self) {
        let mut args = ffi::LoadedExecutableDestroyArgs {
            executable: self.raw.as_ptr(),
            ..Default::default()
        };
        // SAFETY: owned and destroyed once; a failure leaves nothing to undo.
        let _ = unsafe { self.api().call(&mut args) };
    }
}
