//! Compile-only PJRT: a device topology described by name (`v5e:2x2`, or a GPU target config)
//! and `PJRT_Compile` without a client, so programs for a TPU or GPU can be compiled, sized and
//! costed on a machine that has neither.

use std::ffi::c_void;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::hlo::Module;

use super::api::{slice_from_raw, string_from_raw, Api};
use super::client::DeviceDescription;
use super::compile_options::CompileOptions;
use super::compiled::Executable;
use super::error::{Result, RuntimeError};
use super::executable::hlo_program;
use super::ffi::{self, ApiFunction};
use super::named_value::{self, PjrtValue};
use super::plugin::Plugin;
use super::plugin_log;

/// A `PJRT_TopologyDescription`: the chips a program is compiled for, without the chips.
///
/// `Topology` is `Send + Sync`: it is immutable after creation and only read through the
/// thread-safe PJRT C API.
pub struct Topology {
    plugin: Arc<Plugin>,
    raw: NonNull<c_void>,
    name: String,
    platform_name: String,
    platform_version: String,
    devices: Vec<DeviceDescription>,
}

// SAFETY: see the type's documentation; the handle is only passed to the plugin.
unsafe impl Send for Topology {}
unsafe impl Sync for Topology {}

impl Topology {
    /// Creates the topology `name` with plugin-specific create options (libtpu:
    /// `chips_per_host_bounds`, `wrap`, `num_slices`; the CUDA plugin: `target_config`,
    /// `topology`). The plugin's error names what it rejected.
    pub fn new(
        plugin: Arc<Plugin>,
        name: &str,
        options: &[(String, PjrtValue)],
    ) -> Result<Topology> {
        let api = plugin.api();
        let raw_options = named_value::to_ffi_list(options);
        let mut args = ffi::TopologyDescriptionCreateArgs {
            topology_name: name.as_ptr().cast(),
            topology_name_size: name.len(),
            create_options: raw_options.as_ptr(),
            num_options: raw_options.len(),
            ..Default::default()
        };
        // SAFETY: the name, the options and the strings they point into outlive the call.
        plugin_log::quietly(|| unsafe { api.call(&mut args) })?;
        let raw = NonNull::new(args.topology).ok_or_else(|| {
            RuntimeError::protocol(
                ffi::TopologyDescriptionCreateArgs::NAME,
                "no topology and no error",
            )
        })?;
        // From here on the topology is destroyed by `Topology`'s drop on any early return.
        let mut topology = Topology {
            plugin,
            raw,
            name: name.to_owned(),
            platform_name: String::new(),
            platform_version: String::new(),
            devices: Vec::new(),
        };
        topology.describe()?;
        Ok(topology)
    }

    fn api(&self) -> &Api {
        self.plugin.api()
    }

    fn describe(&mut self) -> Result<()> {
        let mut name = ffi::TopologyDescriptionPlatformNameArgs {
            topology: self.raw.as_ptr(),
            ..Default::default()
        };
        let mut version = ffi::TopologyDescriptionPlatformVersionArgs {
            topology: self.raw.as_ptr(),
            ..Default::default()
        };
        let mut devices = ffi::TopologyDescriptionGetDeviceDescriptionsArgs {
            topology: self.raw.as_ptr(),
            ..Default::default()
        };
        // SAFETY: live topology; strings and the description list live as long as it and are
        // copied here.
        unsafe {
            self.api().call(&mut name)?;
            self.api().call(&mut version)?;
            self.api().call(&mut devices)?;
            self.platform_name = string_from_raw(name.platform_name, name.platform_name_size);
            self.platform_version =
                string_from_raw(version.platform_version, version.platform_version_size);
            self.devices = slice_from_raw(devices.descriptions, devices.num_descriptions)
                .iter()
                .map(|&d| DeviceDescription::read(self.api(), d))
                .collect::<Result<_>>()?;
        }
        Ok(())
    }

    /// The name it was created with.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// The platform name, e.g. `tpu` or `cuda`.
    pub fn platform_name(&self) -> &str {
        &self.platform_name
    }

    pub fn platform_version(&self) -> &str {
        &self.platform_version
    }

    /// Every device of the topology (all hosts of a slice), in the plugin's order.
    pub fn devices(&self) -> &[DeviceDescription] {
        &self.devices
    }

    /// Compiles a serialized `xla.HloModuleProto` for this topology without a client.
    pub fn compile(&self, hlo_module_proto: &[u8], options: &CompileOptions) -> Result<Executable> {
        let options = options.encode()?;
        let program = hlo_program(hlo_module_proto);
        let mut args = ffi::CompileArgs {
            topology: self.raw.as_ptr(),
            program: &program,
            compile_options: options.as_ptr().cast(),
            compile_options_size: options.len(),
            client: std::ptr::null_mut(),
            ..Default::default()
        };
        // SAFETY: live topology; program bytes, format and options outlive the call. The CUDA
        // plugin announces its deviceless compile on descriptor 2.
        plugin_log::quietly(|| unsafe { self.api().call(&mut args) })?;
        Executable::from_raw(&self.plugin, args.executable, ffi::CompileArgs::NAME)
    }

    /// Compiles an HLO module built with [`crate::hlo`] for this topology.
    pub fn compile_module(&self, module: &Module, options: &CompileOptions) -> Result<Executable> {
        self.compile(&module.to_proto_bytes(), options)
    }
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topology")
            .field("name", &self.name)
            .field("platform_name", &self.platform_name)
            .field("platform_version", &self.platform_version)
            .field("devices", &self.devices.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let mut args = ffi::TopologyDescriptionDestroyArgs {
            topology: self.raw.as_ptr(),
            ..Default::default()
        };
        // SAFETY: owned and destroyed once; a failure leaves nothing to undo.
        let _ = unsafe { self.api().call(&mut args) };
    }
}
