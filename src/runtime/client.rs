//! `PJRT_Client`: one plugin's view of its devices; creates buffers and executables.

use std::ffi::c_void;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use super::api::{slice_from_raw, string_from_raw, Api};
use super::error::{Result, RuntimeError};
use super::ffi::{self, ApiFunction};
use super::named_value::{self, PjrtValue};
use super::plugin::Plugin;
use super::plugin_log;

/// Plugin-specific client create options (`PJRT_NamedValue`s), e.g. `cpu_device_count` for the
/// CPU plugins. Which names a plugin accepts is up to the plugin: 0.115 CPU plugins reject
/// unknown names, 0.81 silently ignores them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientOptions {
    values: Vec<(String, PjrtValue)>,
}

impl ClientOptions {
    pub fn new() -> ClientOptions {
        ClientOptions::default()
    }

    /// Sets `name` to `value`, replacing an earlier value of the same name.
    pub fn set(mut self, name: impl Into<String>, value: PjrtValue) -> ClientOptions {
        let name = name.into();
        self.values.retain(|(n, _)| *n != name);
        self.values.push((name, value));
        self
    }

    /// CPU plugins: how many CPU devices the client exposes (data-parallel code on one host).
    pub fn cpu_device_count(self, count: i64) -> ClientOptions {
        self.set("cpu_device_count", PjrtValue::Int64(count))
    }

    pub fn values(&self) -> &[(String, PjrtValue)] {
        &self.values
    }
}

/// What PJRT says about a device: identity, owning process and kind. Devices of a client and
/// of a compile-only [`super::Topology`] are described alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceDescription {
    /// The global device id (what device assignments refer to).
    pub id: i32,
    /// The index of the process that owns the device (0 on a single host).
    pub process_index: i32,
    /// The device kind, e.g. `cpu`, `TPU v5 lite` or `NVIDIA H100 80GB HBM3`.
    pub kind: String,
    /// The plugin's description of the device, e.g. `TFRT_CPU_0`.
    pub debug_string: String,
}

impl DeviceDescription {
    /// Copies a `PJRT_DeviceDescription`.
    ///
    /// # Safety
    /// `raw` must be a live device description of the plugin behind `api`.
    pub(crate) unsafe fn read(api: &Api, raw: *mut c_void) -> Result<DeviceDescription> {
        let mut id = ffi::DeviceDescriptionIdArgs {
            device_description: raw,
            ..Default::default()
        };
        let mut process_index = ffi::DeviceDescriptionProcessIndexArgs {
            device_description: raw,
            ..Default::default()
        };
        let mut kind = ffi::DeviceDescriptionKindArgs {
            device_description: raw,
            ..Default::default()
        };
        let mut debug_string = ffi::DeviceDescriptionDebugStringArgs {
            device_description: raw,
            ..Default::default()
        };
        // SAFETY: guaranteed by the caller; the strings live as long as the description and are
        // copied before returning.
        unsafe {
            api.call(&mut id)?;
            api.call(&mut process_index)?;
            api.call(&mut kind)?;
            api.call(&mut debug_string)?;
            Ok(DeviceDescription {
                id: id.id,
                process_index: process_index.process_index,
                kind: string_from_raw(kind.device_kind, kind.device_kind_size),
                debug_string: string_from_raw(
                    debug_string.debug_string,
                    debug_string.debug_string_size,
                ),
            })
        }
    }
}

/// A device of a client: its PJRT handle and description.
///
/// `Device` is `Send + Sync`: it is an immutable copy of the description plus the plugin's
/// device handle, which is only passed back to the (thread-safe) plugin.
pub struct Device {
    raw: NonNull<c_void>,
    description: DeviceDescription,
}

// SAFETY: see the type's documentation; the handle is never dereferenced by this crate.
unsafe impl Send for Device {}
unsafe impl Sync for Device {}

impl Device {
    /// The global device id (what device assignments refer to).
    pub fn id(&self) -> i32 {
        self.description.id
    }

    /// The index of the process that owns the device (0 on a single host).
    pub fn process_index(&self) -> i32 {
        self.description.process_index
    }

    /// The device kind, e.g. `cpu` or `NVIDIA H100 80GB HBM3`.
    pub fn kind(&self) -> &str {
        &self.description.kind
    }

    /// The plugin's description of the device, e.g. `TFRT_CPU_0`.
    pub fn debug_string(&self) -> &str {
        &self.description.debug_string
    }

    pub fn description(&self) -> &DeviceDescription {
        &self.description
    }

    pub(crate) fn raw(&self) -> *mut c_void {
        self.raw.as_ptr()
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("raw", &self.raw)
            .field("description", &self.description)
            .finish()
    }
}

/// A PJRT client. Cloning is cheap and shares the client; the client is destroyed when the last
/// clone, buffer and executable made from it are gone (they all hold a reference).
///
/// `Client` is `Send + Sync`: PJRT clients are thread-safe (XLA's `PjRtClient` contract), and
/// the state kept here is immutable after creation.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<ClientInner>,
}

pub(crate) struct ClientInner {
    plugin: Arc<Plugin>,
    raw: NonNull<c_void>,
    platform_name: String,
    platform_version: String,
    process_index: i32,
    devices: Vec<Device>,
    addressable_devices: Vec<Device>,
}

// SAFETY: see `Client`; `raw` is only passed to the thread-safe plugin.
unsafe impl Send for ClientInner {}
unsafe impl Sync for ClientInner {}

impl Client {
    /// Creates a client of `plugin` with plugin-specific `options`.
    pub fn new(plugin: Arc<Plugin>, options: &ClientOptions) -> Result<Client> {
        let api = plugin.api();
        let raw_options = named_value::to_ffi_list(&options.values);
        let mut args = ffi::ClientCreateArgs {
            create_options: raw_options.as_ptr(),
            num_options: raw_options.len(),
            ..Default::default()
        };
        // SAFETY: `raw_options` and the strings it points into outlive the call.
        plugin_log::quietly(|| unsafe { api.call(&mut args) })?;
        let raw = NonNull::new(args.client).ok_or_else(|| {
            RuntimeError::protocol(ffi::ClientCreateArgs::NAME, "no client and no error")
        })?;
        // From here on the client is owned by `ClientOwner`, which destroys it on any early error.
        let owner = ClientOwner { api, raw };
        let platform_name = owner.platform_name()?;
        let platform_version = owner.platform_version()?;
        let process_index = owner.process_index()?;
        let devices = owner.devices(false)?;
        let addressable_devices = owner.devices(true)?;
        // Ownership passes to `ClientInner`, whose drop destroys the client.
        std::mem::forget(owner);
        let inner = ClientInner {
            plugin,
            raw,
            platform_name,
            platform_version,
            process_index,
            devices,
            addressable_devices,
        };
        Ok(Client {
            inner: Arc::new(inner),
        })
    }

    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.inner.plugin
    }

    /// The platform name, e.g. `cpu` or `cuda`.
    pub fn platform_name(&self) -> &str {
        &self.inner.platform_name
    }

    /// The platform version string the plugin reports.
    pub fn platform_version(&self) -> &str {
        &self.inner.platform_version
    }

    /// All devices, including those of other processes.
    pub fn devices(&self) -> &[Device] {
        &self.inner.devices
    }

    /// Which process of a multi-host job this is (0 on a single host). Every host of a TPU pod
    /// slice runs the same program; the plugin numbers them.
    pub fn process_index(&self) -> usize {
        self.inner.process_index as usize
    }

    /// How many processes own the devices of [`Client::devices`] (1 on a single host).
    pub fn process_count(&self) -> usize {
        let mut owners: Vec<i32> = self.devices().iter().map(Device::process_index).collect();
        owners.sort_unstable();
        owners.dedup();
        owners.len().max(1)
    }

    /// The plugin's default placement of `replicas` one-partition replicas: the device id of
    /// each replica, over the devices of every process. This is the placement a program
    /// compiled without an explicit assignment runs with.
    pub fn default_device_assignment(&self, replicas: usize) -> Result<Vec<i64>> {
        let count = i32::try_from(replicas)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| RuntimeError::invalid(format!("cannot place {replicas} replicas")))?;
        let mut ids = vec![0i32; replicas];
        let mut args = ffi::ClientDefaultDeviceAssignmentArgs {
            client: self.inner.raw(),
            num_replicas: count,
            num_partitions: 1,
            default_assignment_size: ids.len(),
            default_assignment: ids.as_mut_ptr(),
            ..Default::default()
        };
        // SAFETY: live client; `ids` has room for `num_replicas * num_partitions` ints and
        // outlives the call.
        unsafe { self.inner.api().call(&mut args)? };
        Ok(ids.into_iter().map(i64::from).collect())
    }

    /// The devices this process can place buffers on and execute on.
    pub fn addressable_devices(&self) -> &[Device] {
        &self.inner.addressable_devices
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("platform_name", &self.inner.platform_name)
            .field("platform_version", &self.inner.platform_version)
            .field("devices", &self.inner.devices.len())
            .finish_non_exhaustive()
    }
}

impl ClientInner {
    pub(crate) fn api(&self) -> &Api {
        self.plugin.api()
    }

    pub(crate) fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    pub(crate) fn raw(&self) -> *mut c_void {
        self.raw.as_ptr()
    }

    /// The addressable device with this plugin handle.
    pub(crate) fn addressable_device_by_raw(&self, raw: *mut c_void) -> Option<&Device> {
        self.addressable_devices.iter().find(|d| d.raw() == raw)
    }

    /// Checks that `device` is one of this client's addressable devices (not another client's).
    pub(crate) fn check_addressable(&self, device: &Device) -> Result<()> {
        match self.addressable_device_by_raw(device.raw()) {
            Some(_) => Ok(()),
            None => Err(RuntimeError::invalid(format!(
                "device {} ({}) is not an addressable device of this {} client",
                device.id(),
                device.debug_string(),
                self.platform_name
            ))),
        }
    }
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        drop(ClientOwner {
            api: self.plugin.api(),
            raw: self.raw,
        });
    }
}

/// Owns a raw client while `Client::new` queries it, so that every exit destroys it once.
struct ClientOwner<'a> {
    api: &'a Api,
    raw: NonNull<c_void>,
}

impl ClientOwner<'_> {
    fn platform_name(&self) -> Result<String> {
        let mut args = ffi::ClientPlatformNameArgs {
            client: self.raw.as_ptr(),
            ..Default::default()
        };
        // SAFETY: live client; the returned string lives as long as the client and is copied.
        unsafe {
            self.api.call(&mut args)?;
            Ok(string_from_raw(args.platform_name, args.platform_name_size))
        }
    }

    fn platform_version(&self) -> Result<String> {
        let mut args = ffi::ClientPlatformVersionArgs {
            client: self.raw.as_ptr(),
            ..Default::default()
        };
        // SAFETY: as in `platform_name`.
        unsafe {
            self.api.call(&mut args)?;
            Ok(string_from_raw(
                args.platform_version,
                args.platform_version_size,
            ))
        }
    }

    fn process_index(&self) -> Result<i32> {
        let mut args = ffi::ClientProcessIndexArgs {
            client: self.raw.as_ptr(),
            ..Default::default()
        };
        // SAFETY: live client.
        unsafe { self.api.call(&mut args)? };
        Ok(args.process_index)
    }

    fn devices(&self, addressable_only: bool) -> Result<Vec<Device>> {
        let handles: Vec<*mut c_void> = if addressable_only {
            let mut args = ffi::ClientAddressableDevicesArgs {
                client: self.raw.as_ptr(),
                ..Default::default()
            };
            // SAFETY: live client; the list lives as long as the client and is copied.
            unsafe {
                self.api.call(&mut args)?;
                slice_from_raw(args.addressable_devices, args.num_addressable_devices).to_vec()
            }
        } else {
            let mut args = ffi::ClientDevicesArgs {
                client: self.raw.as_ptr(),
                ..Default::default()
            };
            // SAFETY: as above.
            unsafe {
                self.api.call(&mut args)?;
                slice_from_raw(args.devices, args.num_devices).to_vec()
            }
        };
        handles
            .into_iter()
            .map(|raw| describe_device(self.api, raw))
            .collect()
    }
}

impl Drop for ClientOwner<'_> {
    fn drop(&mut self) {
        let mut args = ffi::ClientDestroyArgs {
            client: self.raw.as_ptr(),
            ..Default::default()
        };
        // SAFETY: the client is live and this is its only destruction. A failure leaves nothing
        // to undo (the error object itself is destroyed by `call`).
        let _ = unsafe { self.api.call(&mut args) };
    }
}

fn describe_device(api: &Api, raw: *mut c_void) -> Result<Device> {
    let raw = NonNull::new(raw)
        .ok_or_else(|| RuntimeError::protocol("PJRT_Client_Devices", "null device handle"))?;
    let mut args = ffi::DeviceGetDescriptionArgs {
        device: raw.as_ptr(),
        ..Default::default()
    };
    // SAFETY: `raw` is a live device of a live client, and its description lives as long.
    let description = unsafe {
        api.call(&mut args)?;
        DeviceDescription::read(api, args.device_description)?
    };
    Ok(Device { raw, description })
}
