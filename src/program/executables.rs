//! Compiled executables with a persistent cache: a local folder, or a `gs://` prefix that the
//! hosts of a slice share (`EFFNETV2_EXECUTABLE_CACHE`), so one host's compile serves all.
//!
//! XLA compiles of a train step take seconds to minutes, so every executable is serialized
//! through PJRT and stored under a key that hashes everything that can change the binary: the
//! HLO bytes, the compile options, the plugin's sha256 and its PJRT version. A blob from another
//! plugin build can load and silently compute garbage (measured), hence the plugin hash; any
//! load error is treated as a miss and falls back to compiling. Every compile is logged with its
//! reason and duration.

use std::io::Read;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::hlo::Module;
use crate::runtime::{Client, CompileOptions, LoadedExecutable, Plugin};
use crate::storage::{Location, Store};

/// The variable naming a shared executable cache (a folder or `gs://bucket/prefix`) in place of
/// the user cache's `executables/`.
pub const SHARED_CACHE_VAR: &str = "EFFNETV2_EXECUTABLE_CACHE";

/// The cache's name for the executable of `key`.
fn entry(key: &str) -> String {
    format!("{key}.pjrt")
}

/// Why an executable was compiled (or that it was not).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompileReason {
    /// Loaded from the disk cache: nothing was compiled.
    CacheHit,
    /// No cache entry for this key (a new shape, or options/plugin changed).
    CacheMiss,
    /// A cache entry existed but could not be loaded (the error is logged).
    CacheUnusable(String),
    /// Caching is disabled.
    NoCache,
}

/// One compile or cache load, for the metrics log.
#[derive(Clone, Debug, Serialize)]
pub struct CompileEvent {
    pub module: String,
    pub key: String,
    pub reason: CompileReason,
    pub seconds: f64,
    pub instructions: usize,
    /// Why a freshly compiled executable could not be stored in the cache (it is still used;
    /// the next run compiles it again).
    pub store_error: Option<String>,
}

/// Compiles modules for one client, through the cache location when one is set.
#[derive(Clone, Debug)]
pub struct ExecutableCache {
    dir: Option<Location>,
}

impl ExecutableCache {
    /// A cache storing executables under `dir`, a folder or a `gs://` prefix (`None` disables
    /// caching).
    pub fn new<L: Into<Location>>(dir: Option<L>) -> ExecutableCache {
        ExecutableCache {
            dir: dir.map(Into::into),
        }
    }

    /// The cache `train`, `compile` and `bench --target` share by default:
    /// `EFFNETV2_EXECUTABLE_CACHE` when set (a folder or `gs://`), else the user cache's
    /// `executables/`.
    pub fn shared() -> Result<ExecutableCache> {
        let dir = match std::env::var(SHARED_CACHE_VAR) {
            Ok(text) if !text.is_empty() => {
                Location::parse(&text).with_context(|| format!("${SHARED_CACHE_VAR}"))?
            }
            _ => crate::data::cache_dir()?.join("executables").into(),
        };
        Ok(ExecutableCache { dir: Some(dir) })
    }

    /// The cache key of a serialized module compiled with `options` on `client`.
    pub fn key(client: &Client, proto: &[u8], options: &CompileOptions) -> Result<String> {
        let kind = client
            .addressable_devices()
            .first()
            .map_or("", |d| d.kind());
        Self::key_for(
            proto,
            options,
            client.plugin(),
            &Self::device_identity(client.platform_name(), kind),
        )
    }

    /// What identifies the machine an executable runs on: platform and device kind (e.g.
    /// `tpu|TPU v5 lite`). A compile-only topology and a client on the real chips report the
    /// same, so an executable compiled ahead of time is found by `train` on the chips.
    pub fn device_identity(platform_name: &str, device_kind: &str) -> String {
        format!("{platform_name}|{device_kind}")
    }

    /// The key of a serialized module compiled with `options` by `plugin` for `device_identity`.
    /// The plugin's sha256 is part of it: a blob from another plugin build can load and compute
    /// garbage.
    pub fn key_for(
        proto: &[u8],
        options: &CompileOptions,
        plugin: &Plugin,
        device_identity: &str,
    ) -> Result<String> {
        let mut h = Sha256::new();
        for part in [
            proto,
            &options.encode()?,
            &plugin.sha256(),
            format!("{}|{device_identity}", plugin.api_version()).as_bytes(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Stores a serialized executable under `key` (atomically: a reader never sees a partial
    /// file or object). Without a cache location this does nothing.
    pub fn store(&self, key: &str, serialized: &[u8]) -> Result<()> {
        self.store_file(&entry(key), serialized)
    }

    /// Stores `bytes` beside the executable of `key`, as `{key}.{extension}`, atomically:
    /// what was learnt about the executable when it was compiled (a deviceless compile's cost
    /// report), which cannot be asked of the stored blob without the device it is for.
    pub fn store_beside(&self, key: &str, extension: &str, bytes: &[u8]) -> Result<()> {
        self.store_file(&format!("{key}.{extension}"), bytes)
    }

    /// What [`ExecutableCache::store_beside`] stored for `key`, while the executable itself is
    /// stored too (a note about an executable that is gone is not used).
    pub fn read_beside(&self, key: &str, extension: &str) -> Option<Vec<u8>> {
        let store = Store::open(self.dir.as_ref()?).ok()?;
        let executable = entry(key);
        if !store.list(&executable).ok()?.contains(&executable) {
            return None;
        }
        let mut bytes = Vec::new();
        store
            .read(&format!("{key}.{extension}"))
            .ok()?
            .read_to_end(&mut bytes)
            .ok()?;
        Some(bytes)
    }

    /// Writes `name` in the cache location atomically; without a location, nothing.
    fn store_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        Store::open(dir)?
            .write(name, &mut &bytes[..])
            .with_context(|| format!("writing {name} in {dir}"))
    }

    /// The serialized executable under `key`, if the cache has it (anything unreadable is a
    /// miss: the executable is compiled again).
    fn load(dir: &Location, key: &str) -> Option<Vec<u8>> {
        let mut blob = Vec::new();
        Store::open(dir)
            .ok()?
            .read(&entry(key))
            .ok()?
            .read_to_end(&mut blob)
            .ok()?;
        Some(blob)
    }

    /// The cache location, if caching is on.
    pub fn location(&self) -> Option<&Location> {
        self.dir.as_ref()
    }

    /// Returns a loaded executable for `module`, from the cache when possible.
    pub fn get(
        &self,
        client: &Client,
        module: &Module,
        options: &CompileOptions,
    ) -> Result<(LoadedExecutable, CompileEvent)> {
        let proto = module.to_proto_bytes();
        let key = Self::key(client, &proto, options)?;
        let start = Instant::now();
        let event = |reason, start: Instant| CompileEvent {
            module: module.name().to_string(),
            key: key.clone(),
            reason,
            seconds: start.elapsed().as_secs_f64(),
            instructions: module.instruction_count(),
            store_error: None,
        };
        let Some(dir) = &self.dir else {
            let exe = client
                .compile(&proto, options)
                .with_context(|| format!("compiling {}", module.name()))?;
            return Ok((exe, event(CompileReason::NoCache, start)));
        };
        let reason = match Self::load(dir, &key) {
            Some(blob) => match client.deserialize_executable(&blob, None) {
                Ok(exe) => return Ok((exe, event(CompileReason::CacheHit, start))),
                Err(e) => CompileReason::CacheUnusable(e.to_string()),
            },
            None => CompileReason::CacheMiss,
        };
        let exe = client
            .compile(&proto, options)
            .with_context(|| format!("compiling {}", module.name()))?;
        let mut done = event(reason, start);
        // A failure to store only costs a recompile next time; it is not an error of this run.
        if let Err(e) = exe
            .serialize()
            .map_err(Into::into)
            .and_then(|blob| self.store(&key, &blob))
        {
            done.store_error = Some(format!("{e:#}"));
        }
        Ok((exe, done))
    }
}
