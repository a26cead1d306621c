//! Loading a PJRT plugin shared library.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::api::{slice_from_raw, Api};
use super::error::{ErrorCode, Result, RuntimeError};
use super::ffi::{self, ApiFunction};
use super::named_value::{self, PjrtValue};
use super::plugin_log;
use super::version::ApiVersion;

/// A loaded, initialized PJRT plugin.
///
/// Plugins are never unloaded: XLA plugins start threads and register process-wide state that
/// `dlclose` would pull from under them. Loading the same library twice (by any path) returns
/// the same `Arc<Plugin>`, so `PJRT_Plugin_Initialize` runs exactly once per library.
///
/// `Plugin` is `Send + Sync`: after loading it is immutable, and the PJRT C API may be called
/// from any thread.
pub struct Plugin {
    path: PathBuf,
    sha256: [u8; 32],
    attributes: Vec<(String, PjrtValue)>,
    api: Api,
    // Keeps the library mapped; never dropped because the registry holds every plugin.
    _library: libloading::Library,
}

/// Loaded plugins by the address of their `PJRT_Api` table (one entry per mapped library).
static LOADED: Mutex<Vec<(usize, Arc<Plugin>)>> = Mutex::new(Vec::new());

type GetPjrtApi = unsafe extern "C" fn() -> *const ffi::ApiHeader;

/// Slots without which no client can be created or any error reported; checked at load time so
/// that a truncated table fails early with a clear message.
const REQUIRED_SLOTS: [(usize, &str); 4] = [
    (ffi::ErrorDestroyArgs::SLOT, ffi::ErrorDestroyArgs::NAME),
    (ffi::ErrorMessageArgs::SLOT, ffi::ErrorMessageArgs::NAME),
    (ffi::ErrorGetCodeArgs::SLOT, ffi::ErrorGetCodeArgs::NAME),
    (
        ffi::PluginInitializeArgs::SLOT,
        ffi::PluginInitializeArgs::NAME,
    ),
];

impl Plugin {
    /// Loads the plugin at `path`: `dlopen`, `GetPjrtApi`, version check against the layouts this
    /// crate declares, `PJRT_Plugin_Initialize`, attributes, and the sha256 of the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Arc<Plugin>> {
        let path = path.as_ref();
        let load_error = |reason: String| RuntimeError::Load {
            path: path.to_path_buf(),
            reason,
        };
        let canonical = path.canonicalize().map_err(|e| load_error(e.to_string()))?;
        // Holding the lock across load and initialize makes concurrent loads of one library
        // initialize it once.
        let mut loaded = LOADED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());

        // SAFETY: loading a library runs its initializers; PJRT plugins are ordinary shared
        // libraries whose initializers have no preconditions.
        let library = plugin_log::quietly(|| unsafe { libloading::Library::new(&canonical) })
            .map_err(|e| load_error(e.to_string()))?;
        // SAFETY: `GetPjrtApi` has this signature in every PJRT plugin.
        let get_api = unsafe { library.get::<GetPjrtApi>(b"GetPjrtApi\0") }
            .map_err(|e| load_error(format!("not a PJRT plugin (no GetPjrtApi symbol): {e}")))?;
        // SAFETY: calling the plugin's exported entry point, which takes no arguments.
        let table = unsafe { get_api() };
        let table = NonNull::new(table.cast_mut())
            .ok_or_else(|| load_error("GetPjrtApi returned null".into()))?;
        if let Some((_, plugin)) = loaded
            .iter()
            .find(|(key, _)| *key == table.as_ptr() as usize)
        {
            return Ok(Arc::clone(plugin));
        }
        // SAFETY: the table belongs to `library`, which is kept loaded for the process lifetime.
        let api = unsafe { Api::from_raw(table) };
        check_version(&canonical, api.version())?;
        if let Some((_, name)) = REQUIRED_SLOTS.iter().find(|(slot, _)| !api.has_slot(*slot)) {
            return Err(load_error(format!(
                "its function table ({} bytes, PJRT C API {}) has no {name}",
                api.table_size(),
                api.version()
            )));
        }
        // SAFETY: takes no pointers besides the args struct; called once per library (registry).
        plugin_log::quietly(|| unsafe { api.call(&mut ffi::PluginInitializeArgs::default()) })?;
        let attributes = read_attributes(&api)?;
        let sha256 = file_sha256(&canonical)
            .map_err(|e| load_error(format!("cannot hash the file: {e}")))?;
        let plugin = Arc::new(Plugin {
            path: canonical,
            sha256,
            attributes,
            api,
            _library: library,
        });
        loaded.push((table.as_ptr() as usize, Arc::clone(&plugin)));
        Ok(plugin)
    }

    /// The canonical path the library was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The PJRT C API version the plugin was built with.
    pub fn api_version(&self) -> ApiVersion {
        self.api.version()
    }

    /// The sha256 of the plugin file (part of executable cache keys: an executable serialized by
    /// one plugin build can load into another and compute garbage).
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// [`Plugin::sha256`] as lowercase hex.
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The plugin attributes (`xla_version`, `stablehlo_current_version`, ...); empty when the
    /// plugin reports none.
    pub fn attributes(&self) -> &[(String, PjrtValue)] {
        &self.attributes
    }

    /// One attribute by name.
    pub fn attribute(&self, name: &str) -> Option<&PjrtValue> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    pub(crate) fn api(&self) -> &Api {
        &self.api
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("path", &self.path)
            .field("api_version", &self.api_version())
            .field("sha256", &self.sha256_hex())
            .finish_non_exhaustive()
    }
}

fn check_version(path: &Path, plugin: ApiVersion) -> Result<()> {
    let reason = if plugin.major != ApiVersion::DECLARED.major {
        "the major versions differ, so the struct layouts are incompatible"
    } else if plugin < ApiVersion::OLDEST_SUPPORTED {
        "the plugin is older than the oldest version this runtime supports"
    } else {
        return Ok(());
    };
    Err(RuntimeError::Version {
        path: path.to_path_buf(),
        plugin,
        declared: ApiVersion::DECLARED,
        oldest: ApiVersion::OLDEST_SUPPORTED,
        reason,
    })
}

/// Copies `PJRT_Plugin_Attributes`; plugins that lack or do not implement it have none.
fn read_attributes(api: &Api) -> Result<Vec<(String, PjrtValue)>> {
    if !api.has_slot(ffi::PluginAttributesArgs::SLOT) {
        return Ok(Vec::new());
    }
    let mut args = ffi::PluginAttributesArgs::default();
    // SAFETY: only the args struct is passed.
    match unsafe { api.call(&mut args) } {
        Ok(()) => {}
        Err(e) if e.code() == Some(ErrorCode::Unimplemented) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    }
    // SAFETY: the attribute array lives as long as the process.
    let raw = unsafe { slice_from_raw(args.attributes, args.num_attributes) };
    // SAFETY: each entry is a valid `PJRT_NamedValue` filled in by the plugin.
    Ok(raw
        .iter()
        .filter_map(|value| unsafe { named_value::from_ffi(value) })
        .collect())
}

fn file_sha256(path: &Path) -> io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    io::copy(&mut File::open(path)?, &mut hasher)?;
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(major: i32, minor: i32) -> ApiVersion {
        ApiVersion { major, minor }
    }

    #[test]
    fn versions_from_the_oldest_supported_on_are_accepted() {
        for minor in [81, 114, 115, 117] {
            assert!(
                check_version(Path::new("p.so"), version(0, minor)).is_ok(),
                "0.{minor}"
            );
        }
    }

    #[test]
    fn a_different_major_or_an_older_minor_names_both_versions() {
        let err = check_version(Path::new("/x/p.so"), version(1, 2))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "PJRT plugin /x/p.so implements PJRT C API 1.2, but this build declares its structs at \
             0.114 and supports plugins from 0.81 on: the major versions differ, so the struct \
             layouts are incompatible"
        );
        let err = check_version(Path::new("/x/p.so"), version(0, 54))
            .unwrap_err()
            .to_string();
        assert!(err.contains("implements PJRT C API 0.54"), "{err}");
        assert!(err.contains("older than the oldest version"), "{err}");
    }
}
