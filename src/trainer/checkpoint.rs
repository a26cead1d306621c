//! Checkpoints: every state tensor in one safetensors file (names from [`StateLayout`]) plus a
//! JSON metadata file, written through a [`Store`] (a local folder or a `gs://` prefix, one
//! mechanism for both) and pruned to the last `keep`.
//!
//! Object stores have no rename, so a checkpoint is committed as Orbax commits one there: every
//! file of `ckpt-<step>/` is written (each object whole or not at all), then a marker object
//! `commit_success.txt` last. A checkpoint without its marker (a trainer killed during the
//! upload) is not one: listing passes over it, so `--resume` takes the one before. Pruning
//! deletes the marker first, so a half-deleted checkpoint is not one either. The metadata
//! records a CRC-32 of every tensor, so bytes damaged after the write (a bad disk, a truncated
//! copy) are found on load and reported as [`Damaged`], which the trainer answers by resuming
//! from an older checkpoint.
//!
//! Local checkpoints written before markers (committed by renaming a finished `.tmp` folder,
//! their metadata without `commit_marker`) still count as committed.
//!
//! [`StateLayout`]: crate::step::state::StateLayout

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::hlo::{ArrayShape, ElementType, Literal};
use crate::storage::{Location, StorageError, Store};

const TENSORS: &str = "state.safetensors";
const METADATA: &str = "meta.json";
/// Written last: its presence commits the checkpoint (Orbax's name for it on object stores).
const COMMIT_MARKER: &str = "commit_success.txt";
/// The prefix of checkpoint folder names; the step follows, zero-padded.
const PREFIX: &str = "ckpt-";

/// A checkpoint whose files are not what was written: unreadable, truncated, unparsable, or a
/// tensor whose checksum differs. (A checkpoint of another model is not damaged: its error is a
/// plain one.)
#[derive(Debug, thiserror::Error)]
#[error("checkpoint {dir} is damaged: {reason}")]
pub struct Damaged {
    pub dir: Location,
    pub reason: String,
}

/// The metadata file: the caller's metadata and the tensors' checksums.
#[derive(Serialize, Deserialize)]
struct Stored<M> {
    #[serde(flatten)]
    meta: M,
    /// CRC-32 of each tensor's bytes, by name. Absent in checkpoints written before checksums
    /// were recorded, which load unverified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tensor_crc32: Option<BTreeMap<String, u32>>,
    /// True when the checkpoint counts only with its commit marker; absent (false) in those
    /// written before markers, which renaming committed.
    #[serde(default)]
    commit_marker: bool,
}

fn dtype(ty: ElementType) -> Result<Dtype> {
    Ok(match ty {
        ElementType::F32 => Dtype::F32,
        ElementType::F64 => Dtype::F64,
        ElementType::Bf16 => Dtype::BF16,
        ElementType::F16 => Dtype::F16,
        ElementType::S64 => Dtype::I64,
        ElementType::S32 => Dtype::I32,
        ElementType::U64 => Dtype::U64,
        ElementType::U32 => Dtype::U32,
        ElementType::U8 => Dtype::U8,
        ElementType::S8 => Dtype::I8,
        ElementType::Pred => Dtype::BOOL,
    })
}

fn element_type(d: Dtype) -> Result<ElementType> {
    Ok(match d {
        Dtype::F32 => ElementType::F32,
        Dtype::F64 => ElementType::F64,
        Dtype::BF16 => ElementType::Bf16,
        Dtype::F16 => ElementType::F16,
        Dtype::I64 => ElementType::S64,
        Dtype::I32 => ElementType::S32,
        Dtype::U64 => ElementType::U64,
        Dtype::U32 => ElementType::U32,
        Dtype::U8 => ElementType::U8,
        Dtype::I8 => ElementType::S8,
        Dtype::BOOL => ElementType::Pred,
        other => bail!("checkpoint tensors of type {other:?} are not supported"),
    })
}

/// Checkpoint folder name for a step; zero-padded so names sort by step.
fn dir_name(step: u64) -> String {
    format!("{PREFIX}{step:010}")
}

/// The step a checkpoint folder's name holds (`None` for other names, such as an unfinished
/// `ckpt-<step>.tmp` of the rename scheme).
fn step_of(dir: &str) -> Option<u64> {
    let digits = dir.strip_prefix(PREFIX)?;
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())?
}

fn open(location: &Location) -> Result<Store> {
    Store::open(location).with_context(|| format!("opening {location}"))
}

/// Writes `tensors` and `metadata` as checkpoint `step` under `root`, committed by its marker
/// written last, and removes all but the newest `keep` checkpoints. Returns the checkpoint's
/// location.
pub fn save<M: Serialize>(
    root: impl Into<Location>,
    step: u64,
    tensors: &[(String, Literal)],
    metadata: &M,
    keep: usize,
) -> Result<Location> {
    let store = open(&root.into())?;
    let dir = dir_name(step);
    let file = |name: &str| format!("{dir}/{name}");
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, lit)| {
            let shape: Vec<usize> = lit.shape().dims().iter().map(|&d| d as usize).collect();
            let view = TensorView::new(dtype(lit.ty())?, shape, lit.bytes())
                .map_err(|e| anyhow::anyhow!("tensor {name}: {e}"))?;
            Ok((name.clone(), view))
        })
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(views, &None).context("serializing checkpoint tensors")?;
    let stored = Stored {
        meta: metadata,
        tensor_crc32: Some(
            tensors
                .iter()
                .map(|(name, lit)| (name.clone(), crc32fast::hash(lit.bytes())))
                .collect(),
        ),
        commit_marker: true,
    };
    let meta = serde_json::to_string_pretty(&stored)?;
    // A checkpoint of this step written before (by a run that went on from an older one) stops
    // being one before any of its files is replaced.
    store.delete(&file(COMMIT_MARKER))?;
    store.write(&file(TENSORS), &mut &bytes[..])?;
    store.write(&file(METADATA), &mut meta.as_bytes())?;
    store.write(&file(COMMIT_MARKER), &mut &b""[..])?;
    prune(&store, keep)?;
    Ok(store.location().join(&dir))
}

/// What listing found of one checkpoint folder.
#[derive(Default)]
struct Found {
    files: Vec<String>,
    marker: bool,
    metadata: bool,
}

/// The checkpoint folders under `store`'s root by step, with their files.
fn scan(store: &Store) -> Result<BTreeMap<u64, Found>> {
    let mut found = BTreeMap::<u64, Found>::new();
    for name in store.list(PREFIX)? {
        let Some((dir, file)) = name.split_once('/') else {
            continue;
        };
        let Some(step) = step_of(dir) else {
            continue;
        };
        let entry = found.entry(step).or_default();
        entry.marker |= file == COMMIT_MARKER;
        entry.metadata |= file == METADATA;
        entry.files.push(name);
    }
    Ok(found)
}

/// Whether a checkpoint folder is committed: its marker exists, or it was written before markers
/// (renamed into place whole; its metadata says so).
fn committed(store: &Store, dir: &str, found: &Found) -> Result<bool> {
    if found.marker || !found.metadata {
        return Ok(found.marker);
    }
    #[derive(Deserialize)]
    struct Marker {
        #[serde(default)]
        commit_marker: bool,
    }
    let text = read_all(store, &format!("{dir}/{METADATA}"));
    // Unreadable metadata of a marker-less folder: an upload cut short, not a checkpoint.
    Ok(text
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Marker>(&bytes).ok())
        .is_some_and(|m| !m.commit_marker))
}

/// The committed checkpoints' steps under `store`'s root, oldest first, with every checkpoint
/// folder's files.
fn committed_steps(store: &Store) -> Result<(Vec<u64>, BTreeMap<u64, Found>)> {
    let found = scan(store)?;
    let mut steps = Vec::new();
    for (&step, entry) in &found {
        if committed(store, &dir_name(step), entry)? {
            steps.push(step);
        }
    }
    Ok((steps, found))
}

/// Committed checkpoints under `root`, oldest first.
pub fn list(root: impl Into<Location>) -> Result<Vec<Location>> {
    let store = open(&root.into())?;
    let (steps, _) = committed_steps(&store)?;
    Ok(steps
        .into_iter()
        .map(|step| store.location().join(&dir_name(step)))
        .collect())
}

/// The newest committed checkpoint under `root`, if any.
pub fn latest(root: impl Into<Location>) -> Result<Option<Location>> {
    Ok(list(root)?.pop())
}

/// The checkpoint `path` names: itself when it is a checkpoint folder, else the newest
/// checkpoint of the run directory `path`.
pub fn find(path: impl Into<Location>) -> Result<Location> {
    let path = path.into();
    if open(&path)?.list(METADATA)?.iter().any(|n| n == METADATA) {
        return Ok(path);
    }
    latest(path.join("checkpoints"))?.with_context(|| {
        format!("{path} holds no checkpoint (expected a run directory or a ckpt-* directory)")
    })
}

/// Deletes all but the newest `keep` committed checkpoints (each marker first), and the
/// uncommitted folders older than the newest committed one (uploads cut short).
fn prune(store: &Store, keep: usize) -> Result<()> {
    let (steps, found) = committed_steps(store)?;
    let excess = steps.len().saturating_sub(keep.max(1));
    let newest = steps.last().copied().unwrap_or(0);
    for (step, entry) in &found {
        let old = steps[..excess].contains(step);
        let leftover = *step < newest && !steps.contains(step);
        if !(old || leftover) {
            continue;
        }
        let marker = format!("{}/{COMMIT_MARKER}", dir_name(*step));
        store
            .delete(&marker)
            .with_context(|| format!("removing old checkpoint {}", dir_name(*step)))?;
        for file in entry.files.iter().filter(|f| **f != marker) {
            store.delete(file)?;
        }
    }
    Ok(())
}

fn read_all(store: &Store, name: &str) -> Result<Vec<u8>, StorageError> {
    let mut bytes = Vec::new();
    store
        .read(name)?
        .read_to_end(&mut bytes)
        .map_err(|e| StorageError::io(store.location().join(name).to_string(), e))?;
    Ok(bytes)
}

/// Reads `name` of the checkpoint in `store`: a missing or unreadable file is damage, a store
/// that cannot be reached (no bucket, no permission) a plain error.
fn read_part(store: &Store, name: &str) -> Result<Vec<u8>> {
    read_all(store, name).map_err(|error| match error {
        StorageError::NotFound { .. } | StorageError::Io { .. } => Damaged {
            dir: store.location().clone(),
            reason: format!("{name}: {error}"),
        }
        .into(),
        other => other.into(),
    })
}

/// The metadata of the checkpoint at `dir` (without the checksums).
pub fn metadata<M: DeserializeOwned>(dir: impl Into<Location>) -> Result<M> {
    let store = open(&dir.into())?;
    let stored: Stored<M> = serde_json::from_slice(&read_part(&store, METADATA)?)
        .with_context(|| format!("{}: unreadable checkpoint metadata", store.location()))?;
    Ok(stored.meta)
}

/// Reads a checkpoint's tensors (in the order of `expected`, by name) and metadata, verifying
/// every recorded checksum. Damage is reported as [`Damaged`]. Each tensor must have the expected
/// element type and dimensions: a checkpoint of another model (or of an edited spec) fails here,
/// by tensor name, instead of at execution.
pub fn load<'a, M: DeserializeOwned>(
    dir: impl Into<Location>,
    expected: impl IntoIterator<Item = (&'a str, &'a ArrayShape)>,
) -> Result<(Vec<Literal>, M)> {
    let dir = dir.into();
    let store = open(&dir)?;
    let damaged = |reason: String| Damaged {
        dir: dir.clone(),
        reason,
    };
    let stored: Stored<M> = serde_json::from_slice(&read_part(&store, METADATA)?)
        .map_err(|e| damaged(format!("{METADATA}: {e}")))?;
    let bytes = read_part(&store, TENSORS)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| damaged(format!("{TENSORS}: {e}")))?;
    for (name, &written) in stored.tensor_crc32.iter().flatten() {
        let view = st.tensor(name).map_err(|_| {
            damaged(format!(
                "tensor '{name}' recorded in {METADATA} is missing from {TENSORS}"
            ))
        })?;
        let read = crc32fast::hash(view.data());
        if read != written {
            return Err(damaged(format!(
                "tensor '{name}' reads with checksum {read:08x}, {written:08x} was written"
            ))
            .into());
        }
    }
    let tensors = expected
        .into_iter()
        .map(|(name, want)| {
            let view = st
                .tensor(name)
                .with_context(|| format!("checkpoint {dir} has no tensor '{name}'"))?;
            let dims: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let ty = element_type(view.dtype())
                .with_context(|| format!("checkpoint {dir} tensor '{name}'"))?;
            let shape = ArrayShape::new(ty, &dims);
            if shape.ty() != want.ty() || shape.dims() != want.dims() {
                bail!(
                    "checkpoint {dir} tensor '{name}' has shape {:?} ({}) \
                     but the model expects {:?} ({})",
                    shape.dims(),
                    shape.ty(),
                    want.dims(),
                    want.ty()
                );
            }
            Literal::from_bytes(shape, view.data().to_vec())
                .map_err(|e| anyhow::anyhow!("tensor {name}: {e}"))
        })
        .collect::<Result<_>>()?;
    Ok((tensors, stored.meta))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn round_trip_and_pruning() {
        let root = tempfile::tempdir().unwrap();
        let tensors = vec![
            (
                "params/w".to_string(),
                Literal::from_vec(&[2, 2], &[1f32, 2., 3., 4.]).unwrap(),
            ),
            ("step".to_string(), Literal::scalar(7i64)),
            (
                "rng".to_string(),
                Literal::from_vec(&[2], &[1u64, u64::MAX]).unwrap(),
            ),
        ];
        for step in [1, 2, 3] {
            save(
                root.path(),
                step,
                &tensors,
                &serde_json::json!({ "step": step }),
                2,
            )
            .unwrap();
        }
        let dirs = list(root.path()).unwrap();
        assert_eq!(dirs.len(), 2, "only the newest two are kept");
        let newest = latest(root.path()).unwrap().unwrap();
        assert_eq!(newest, root.path().join("ckpt-0000000003").into());
        let expected = tensors.iter().map(|(n, l)| (n.as_str(), l.shape()));
        let (loaded, meta): (Vec<Literal>, serde_json::Value) = load(&newest, expected).unwrap();
        assert_eq!(meta["step"], 3);
        for ((_, want), got) in tensors.iter().zip(&loaded) {
            assert_eq!(want, got);
        }
        let scalar = ArrayShape::scalar(ElementType::S64);
        let err = load::<serde_json::Value>(&newest, [("missing", &scalar)]).unwrap_err();
        assert!(format!("{err:#}").contains("no tensor 'missing'"));
        let wider = ArrayShape::new(ElementType::F32, &[2, 3]);
        let err = load::<serde_json::Value>(&newest, [("params/w", &wider)]).unwrap_err();
        assert!(
            format!("{err:#}")
                .contains("'params/w' has shape [2, 2] (f32) but the model expects [2, 3] (f32)"),
            "{err:#}"
        );
    }

    fn damage(err: anyhow::Error) -> String {
        err.downcast::<Damaged>()
            .expect("the error reports damage")
            .reason
    }

    #[test]
    fn damaged_bytes_are_found_and_named() {
        let root = tempfile::tempdir().unwrap();
        let weights = Literal::from_vec(&[4], &[1f32, 2., 3., 4.]).unwrap();
        let tensors = vec![
            ("a".to_string(), Literal::scalar(7i64)),
            ("w".to_string(), weights.clone()),
        ];
        let dir = save(root.path(), 1, &tensors, &serde_json::json!({"step": 1}), 2).unwrap();
        let path = root.path().join("ckpt-0000000001");
        assert_eq!(dir, (&path).into());
        let expected = [("w", weights.shape())];
        let load_w = || load::<serde_json::Value>(&dir, expected);
        let (loaded, meta) = load_w().unwrap();
        assert_eq!((&loaded[0], &meta["step"]), (&weights, &1.into()));

        // Flip one byte of w's data: the last 16 bytes of the file are w's 4 floats (the
        // safetensors data section is sorted by dtype alignment, then name).
        let path = path.join(TENSORS);
        let clean = fs::read(&path).unwrap();
        let mut flipped = clean.clone();
        let at = flipped.len() - 5;
        flipped[at] ^= 0x01;
        fs::write(&path, &flipped).unwrap();
        let reason = damage(load_w().unwrap_err());
        assert!(
            reason.starts_with("tensor 'w' reads with checksum"),
            "{reason}"
        );

        fs::write(&path, &clean[..clean.len() / 2]).unwrap();
        assert!(damage(load_w().unwrap_err()).starts_with(TENSORS));
        fs::write(&path, &clean).unwrap();

        let meta_path = path.with_file_name(METADATA);
        let meta = fs::read(&meta_path).unwrap();
        fs::write(&meta_path, &meta[..meta.len() / 2]).unwrap();
        assert!(damage(load_w().unwrap_err()).starts_with(METADATA));
        fs::remove_file(&meta_path).unwrap();
        assert!(damage(load_w().unwrap_err()).starts_with(METADATA));
    }

    fn steps(root: &std::path::Path) -> Vec<Location> {
        list(root).unwrap()
    }

    #[test]
    fn only_committed_checkpoints_count() {
        let root = tempfile::tempdir().unwrap();
        let at = |step: u64| root.path().join(dir_name(step));
        let tensors = vec![("a".to_string(), Literal::scalar(7i64))];
        let json = serde_json::json!({ "step": 1 });
        for step in [1, 2, 3] {
            save(root.path(), step, &tensors, &json, 5).unwrap();
        }
        // A rename-scheme folder left unfinished is not a checkpoint.
        fs::create_dir_all(root.path().join("ckpt-0000000009.tmp")).unwrap();
        fs::write(root.path().join("ckpt-0000000009.tmp").join(METADATA), "{}").unwrap();
        // An upload cut short before its marker: not a checkpoint, though its files are whole.
        fs::remove_file(at(3).join(COMMIT_MARKER)).unwrap();
        assert_eq!(steps(root.path()), [at(1).into(), at(2).into()]);
        // A checkpoint written before markers (renamed into place): its metadata has no
        // `commit_marker`, and it counts without a marker.
        let legacy = fs::read_to_string(at(1).join(METADATA))
            .unwrap()
            .replace("\"commit_marker\": true", "\"old\": 1");
        fs::write(at(1).join(METADATA), legacy).unwrap();
        fs::remove_file(at(1).join(COMMIT_MARKER)).unwrap();
        assert_eq!(steps(root.path()), [at(1).into(), at(2).into()]);
        let (_, meta): (_, serde_json::Value) = load(at(1), [("a", tensors[0].1.shape())]).unwrap();
        assert_eq!(meta["step"], 1);

        // Saving step 4 keeping 2 prunes step 1 and the cut-short step 3 (older than the
        // newest committed one) entirely, markers and all.
        save(root.path(), 4, &tensors, &json, 2).unwrap();
        assert_eq!(steps(root.path()), [at(2).into(), at(4).into()]);
        assert!(
            !at(1).exists() && !at(3).exists(),
            "pruned folders are gone"
        );
        // Rewriting a step first removes its marker: a rewrite cut short is not a checkpoint.
        fs::write(at(4).join(TENSORS), b"partial").unwrap();
        fs::remove_file(at(4).join(COMMIT_MARKER)).unwrap();
        assert_eq!(latest(root.path()).unwrap(), Some(at(2).into()));
        assert_eq!(find(at(2)).unwrap(), at(2).into());
    }
}
