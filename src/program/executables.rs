//! Compiled executables with a persistent on-disk cache.
//!
//! XLA compiles of a train step take seconds to minutes, so every executable is serialized
//! through PJRT and stored under a key that hashes everything that can change the binary: the
//! HLO bytes, the compile options, the plugin's sha256 and its PJRT version. A blob from another
//! plugin build can load and silently compute garbage (measured), hence the plugin hash; any
//! load error is treated as a miss and falls back to compiling. Every compile is logged with its
//! reason and duration.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::hlo::Module;
use crate::runtime::{Client, CompileOptions, LoadedExecutable, Plugin};

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

/// Compiles modules for one client, through the cache directory when one is set.
#[derive(Clone, Debug)]
pub struct ExecutableCache {
    dir: Option<PathBuf>,
}

impl ExecutableCache {
    /// A cache storing executables under `dir` (`None` disables caching).
    pub fn new(dir: Option<PathBuf>) -> ExecutableCache {
        ExecutableCache { dir }
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
    /// file). Without a cache directory this does nothing.
    pub fn store(&self, key: &str, serialized: &[u8]) -> Result<()> {
        self.store_file(&format!("{key}.pjrt"), serialized)
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
        let dir = self.dir.as_ref()?;
        if !dir.join(format!("{key}.pjrt")).is_file() {
            return None;
        }
        fs::read(dir.join(format!("{key}.{extension}"))).ok()
    }

    /// Writes `name` in the cache directory atomically; without a directory, nothing.
    fn store_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(name);
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&path)
            .map_err(|e| e.error)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// The cache directory, if caching is on.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
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
        let path = dir.join(format!("{key}.pjrt"));
        let reason = match fs::read(&path) {
            Ok(blob) => match client.deserialize_executable(&blob, None) {
                Ok(exe) => return Ok((exe, event(CompileReason::CacheHit, start))),
                Err(e) => CompileReason::CacheUnusable(e.to_string()),
            },
            Err(_) => CompileReason::CacheMiss,
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
