//! The run directory (`--out`, a local folder or `gs://bucket/prefix`): `config.json`,
//! `metrics.jsonl`, `tensorboard/`, `checkpoints/`, `summary.json`, and the lock that keeps a
//! second trainer off it. Only the primary process (the only one on a single host) writes
//! them; on a multi-host slice the others read checkpoints from it when resuming.
//!
//! The logs are appended to as the run goes, which an object store cannot do: for a bucket
//! they are written to a local staging folder and uploaded whole (`metrics.jsonl` and this
//! run's TensorBoard event file) after every checkpoint, which follows every evaluation, and
//! at the end. A resumed run downloads `metrics.jsonl` first and appends to it.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use super::checkpoint;
use super::config::{CheckpointMeta, RunConfig};
use super::events::{Event, EventSink, MetricsLog, METRICS_FILE};
use super::tensorboard::{TensorBoardLog, TENSORBOARD_DIR};
use crate::data::Cursor;
use crate::program::device_state::DeviceState;
use crate::storage::{Location, ObjectLock, StorageError, Store};

/// The lock object: created only if absent, holding who took it.
const LOCK: &str = ".trainer-lock";
const CHECKPOINTS: &str = "checkpoints";

/// Opens the store of the run directory `config.out` names.
pub(super) fn open(config: &RunConfig) -> Result<Store> {
    let location = Location::parse_path(&config.out)?;
    Ok(Store::open(&location)?)
}

/// Where the logs are written as they happen.
enum Staging {
    /// In the run directory itself (local disk).
    InPlace(PathBuf),
    /// A local folder uploaded to the bucket at each sync, removed at the end.
    Uploaded(tempfile::TempDir),
}

impl Staging {
    fn dir(&self) -> &Path {
        match self {
            Staging::InPlace(dir) => dir,
            Staging::Uploaded(dir) => dir.path(),
        }
    }
}

/// An open run directory; the lock is released when it is dropped.
pub(super) struct RunDir<'s> {
    store: &'s Store,
    pub(super) primary: bool,
    staging: Staging,
    /// The checkpoints to resume from, newest first: an older one is the fallback when a newer
    /// one is damaged.
    pub(super) resume_from: Vec<Location>,
    /// Held while the run lasts, so that a second trainer on the same directory refuses to start.
    lock: Option<ObjectLock<'s>>,
}

impl<'s> RunDir<'s> {
    /// Opens the run directory in `store` and (on the primary process) locks it and writes
    /// `config.json`. Without `resume`, a directory that already holds checkpoints is refused;
    /// with it, the checkpoints are found. A lock whose holder is gone (a process of this host
    /// that no longer runs) or that `config.break_lock` breaks is reported and taken over.
    pub(super) fn prepare(
        store: &'s Store,
        config: &RunConfig,
        resume: bool,
        primary: bool,
        events: &mut dyn EventSink,
    ) -> Result<RunDir<'s>> {
        let staging = match store.location() {
            Location::Local(dir) => {
                fs::create_dir_all(dir)
                    .with_context(|| format!("creating run directory {}", dir.display()))?;
                Staging::InPlace(dir.clone())
            }
            Location::Gcs(_) => Staging::Uploaded(
                tempfile::Builder::new()
                    .prefix("effnetv2-run-")
                    .tempdir()
                    .context("creating a local staging folder for the run's logs")?,
            ),
        };
        let lock = primary
            .then(|| lock(store, config.break_lock, events))
            .transpose()?;
        let mut saved = checkpoint::list(store.location().join(CHECKPOINTS))?;
        if !resume && !saved.is_empty() {
            bail!(
                "{} already holds checkpoints: pass --resume to continue that run, or choose another --out",
                store.location()
            );
        }
        let run_dir = RunDir {
            store,
            primary,
            staging,
            resume_from: {
                saved.reverse();
                saved
            },
            lock,
        };
        if primary {
            run_dir.write_json("config.json", config)?;
            if let Staging::Uploaded(dir) = &run_dir.staging {
                download_if_present(store, METRICS_FILE, &dir.path().join(METRICS_FILE))?;
            }
        }
        Ok(run_dir)
    }

    /// Writes `value` as the JSON file `name` (whole, replacing any before).
    fn write_json(&self, name: &str, value: &impl Serialize) -> Result<()> {
        let text = serde_json::to_string_pretty(value)?;
        self.store
            .write(name, &mut text.as_bytes())
            .with_context(|| format!("writing {name} of the run"))
    }

    /// The metrics log, written by the primary process only.
    pub(super) fn metrics_log(&self) -> Result<Option<MetricsLog>> {
        self.primary
            .then(|| MetricsLog::open(&self.staging.dir().join(METRICS_FILE)))
            .transpose()
    }

    /// The TensorBoard event file of this process's part of the run, written by the primary
    /// process only.
    pub(super) fn tensorboard_log(&self) -> Result<Option<TensorBoardLog>> {
        self.primary
            .then(|| TensorBoardLog::create(&self.staging.dir().join(TENSORBOARD_DIR)))
            .transpose()
    }

    /// Uploads the staged logs to the bucket (nothing to do on local disk): whole files, each
    /// replacing its previous upload.
    fn sync(&self) -> Result<()> {
        let Staging::Uploaded(dir) = &self.staging else {
            return Ok(());
        };
        let staged = Store::open(&Location::Local(dir.path().to_path_buf()))?;
        for name in staged.list("")? {
            self.store
                .write(&name, &mut staged.read(&name)?)
                .with_context(|| format!("uploading {name} of the run"))?;
        }
        Ok(())
    }

    /// Writes a checkpoint (on the primary process), then syncs the logs; returns the
    /// checkpoint's location.
    pub(super) fn save(
        &self,
        state: &DeviceState,
        step: u64,
        cursor: Cursor,
        config: &RunConfig,
    ) -> Result<Option<Location>> {
        if !self.primary {
            return Ok(None);
        }
        let meta = CheckpointMeta {
            step,
            cursor,
            config: config.clone(),
        };
        let root = self.store.location().join(CHECKPOINTS);
        let dir = checkpoint::save(
            &root,
            step,
            &state.download()?,
            &meta,
            config.keep_checkpoints,
        )
        .with_context(|| {
            format!(
                "writing the checkpoint of step {step} failed; the checkpoints already in {root} are intact",
            )
        })?;
        self.sync()?;
        Ok(Some(dir))
    }

    /// Writes `summary.json` and the logs' last lines, and releases the lock (primary only).
    pub(super) fn finish(mut self, summary: &impl Serialize) -> Result<()> {
        if self.primary {
            self.write_json("summary.json", summary)?;
            self.sync()?;
        }
        if let Some(lock) = self.lock.take() {
            lock.release()?;
        }
        Ok(())
    }
}

impl Drop for RunDir<'_> {
    /// A run that fails still releases its lock (and uploads what it logged): only a killed
    /// trainer leaves a lock behind.
    fn drop(&mut self) {
        if let Some(lock) = self.lock.take() {
            let _ = self.sync();
            let _ = lock.release();
        }
    }
}

/// Who holds the lock: this process on this host.
struct Holder {
    host: String,
    pid: u32,
}

impl Holder {
    fn this() -> Holder {
        Holder {
            host: hostname(),
            pid: std::process::id(),
        }
    }

    fn text(&self) -> String {
        format!("process {} on host {}", self.pid, self.host)
    }

    fn parse(text: &str) -> Option<Holder> {
        let (pid, host) = text.strip_prefix("process ")?.split_once(" on host ")?;
        Some(Holder {
            host: host.trim().to_string(),
            pid: pid.parse().ok()?,
        })
    }

    /// Whether the holder certainly no longer runs: a process of this host that is gone. (A
    /// process of another host cannot be checked from here.)
    fn is_gone(&self) -> bool {
        self.host == hostname() && !Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Takes the run's lock; a lock left by a gone process of this host, or any lock when
/// `break_lock`, is broken first and reported.
fn lock<'s>(
    store: &'s Store,
    break_lock: bool,
    events: &mut dyn EventSink,
) -> Result<ObjectLock<'s>> {
    let me = Holder::this().text();
    // Looked up first as well: a store that ignores the create-only precondition (the
    // emulator) still refuses a trainer that starts while another holds the lock.
    let acquired = match read_if_present(store, LOCK)? {
        Some(holder) => Err(StorageError::Locked {
            location: store.location().join(LOCK).to_string(),
            holder: String::from_utf8_lossy(&holder).into_owned(),
        }),
        None => ObjectLock::acquire(store, LOCK, &me),
    };
    match acquired {
        Err(StorageError::Locked { holder, .. })
            if break_lock || Holder::parse(&holder).is_some_and(|h| h.is_gone()) =>
        {
            let holder = ObjectLock::break_stale(store, LOCK)?;
            events.emit(&Event::LockBroken {
                lock: store.location().join(LOCK),
                holder,
            })?;
            Ok(ObjectLock::acquire(store, LOCK, &me)?)
        }
        Err(locked @ StorageError::Locked { .. }) => Err(anyhow::Error::new(locked).context(
            "another trainer is using this run directory: wait for it, choose another --out, \
             or, if that trainer is dead (a preempted VM), pass --break-lock",
        )),
        other => Ok(other?),
    }
}

/// The bytes of `name` in `store`, if it exists.
fn read_if_present(store: &Store, name: &str) -> Result<Option<Vec<u8>>> {
    let mut reader = match store.read(name) {
        Ok(reader) => reader,
        Err(StorageError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {name} of the run"))?;
    Ok(Some(bytes))
}

/// Copies `name` from `store` to `path` if it exists there.
fn download_if_present(store: &Store, name: &str, path: &Path) -> Result<()> {
    if let Some(bytes) = read_if_present(store, name)? {
        fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
