//! Checkpoints: every state tensor in one safetensors file (names from [`StateLayout`]) plus a
//! JSON metadata file, written atomically as a directory and pruned to the last `keep`.
//!
//! A checkpoint directory `ckpt-<step>` is first written as `ckpt-<step>.tmp` (files fsynced),
//! then renamed; a crash leaves either the previous set of checkpoints or the new one, never a
//! half-written checkpoint that `--resume` could pick up. The metadata records a CRC-32 of every
//! tensor, so bytes damaged after the write (a bad disk, a truncated copy) are found on load
//! and reported as [`Damaged`], which the trainer answers by resuming from an older checkpoint.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::hlo::{ArrayShape, ElementType, Literal};

const TENSORS: &str = "state.safetensors";
const METADATA: &str = "meta.json";

/// A checkpoint whose files are not what was written: unreadable, truncated, unparsable, or a
/// tensor whose checksum differs. (A checkpoint of another model is not damaged: its error is a
/// plain one.)
#[derive(Debug, thiserror::Error)]
#[error("checkpoint {} is damaged: {reason}", dir.display())]
pub struct Damaged {
    pub dir: PathBuf,
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

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    f.sync_all()
        .with_context(|| format!("syncing {}", path.display()))
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// Checkpoint directory name for a step; zero-padded so names sort by step.
fn dir_name(step: u64) -> String {
    format!("ckpt-{step:010}")
}

/// Writes `tensors` and `metadata` as checkpoint `step` under `root`, atomically, and removes all
/// but the newest `keep` checkpoints. Returns the checkpoint directory.
pub fn save<M: Serialize>(
    root: &Path,
    step: u64,
    tensors: &[(String, Literal)],
    metadata: &M,
    keep: usize,
) -> Result<PathBuf> {
    fs::create_dir_all(root)
        .with_context(|| format!("creating checkpoint root {}", root.display()))?;
    let final_dir = root.join(dir_name(step));
    let tmp = root.join(format!("{}.tmp", dir_name(step)));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("removing stale {}", tmp.display()))?;
    }
    fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
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
    write_synced(&tmp.join(TENSORS), &bytes)?;
    let stored = Stored {
        meta: metadata,
        tensor_crc32: Some(
            tensors
                .iter()
                .map(|(name, lit)| (name.clone(), crc32fast::hash(lit.bytes())))
                .collect(),
        ),
    };
    write_synced(
        &tmp.join(METADATA),
        serde_json::to_string_pretty(&stored)?.as_bytes(),
    )?;
    sync_dir(&tmp)?;
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir)
            .with_context(|| format!("replacing {}", final_dir.display()))?;
    }
    fs::rename(&tmp, &final_dir)
        .with_context(|| format!("renaming {} to {}", tmp.display(), final_dir.display()))?;
    sync_dir(root)?;
    prune(root, keep)?;
    Ok(final_dir)
}

/// Completed checkpoint directories under `root`, oldest first.
pub fn list(root: &Path) -> Result<Vec<PathBuf>> {
    if !root.exists() {
        return Ok(Vec::new());
    }
    let mut dirs: Vec<PathBuf> = fs::read_dir(root)
        .with_context(|| format!("listing {}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("ckpt-") && !n.ends_with(".tmp"))
        })
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The newest completed checkpoint under `root`, if any.
pub fn latest(root: &Path) -> Result<Option<PathBuf>> {
    Ok(list(root)?.pop())
}

/// The checkpoint `path` names: itself when it is a checkpoint directory, else the newest
/// checkpoint of the run directory `path`.
pub fn find(path: &Path) -> Result<PathBuf> {
    if path.join(METADATA).exists() {
        return Ok(path.to_path_buf());
    }
    latest(&path.join("checkpoints"))?.with_context(|| {
        format!(
            "{} holds no checkpoint (expected a run directory or a ckpt-* directory)",
            path.display()
        )
    })
}

fn prune(root: &Path, keep: usize) -> Result<()> {
    let dirs = list(root)?;
    let excess = dirs.len().saturating_sub(keep.max(1));
    for d in &dirs[..excess] {
        fs::remove_dir_all(d)
            .with_context(|| format!("removing old checkpoint {}", d.display()))?;
    }
    Ok(())
}

/// Reads a checkpoint's tensors (in the order of `expected`, by name) and metadata, verifying
/// every recorded checksum. Damage is reported as [`Damaged`]. Each tensor must have the expected
/// element type and dimensions: a checkpoint of another model (or of an edited spec) fails here,
/// by tensor name, instead of at execution.
pub fn load<'a, M: DeserializeOwned>(
    dir: &Path,
    expected: impl IntoIterator<Item = (&'a str, &'a ArrayShape)>,
) -> Result<(Vec<Literal>, M)> {
    let damaged = |reason: String| Damaged {
        dir: dir.to_path_buf(),
        reason,
    };
    let read = |name: &str| fs::read(dir.join(name)).map_err(|e| damaged(format!("{name}: {e}")));
    let stored: Stored<M> = serde_json::from_slice(&read(METADATA)?)
        .map_err(|e| damaged(format!("{METADATA}: {e}")))?;
    let bytes = read(TENSORS)?;
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
                .with_context(|| format!("checkpoint {} has no tensor '{name}'", dir.display()))?;
            let dims: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let ty = element_type(view.dtype())
                .with_context(|| format!("checkpoint {} tensor '{name}'", dir.display()))?;
            let shape = ArrayShape::new(ty, &dims);
            if shape.ty() != want.ty() || shape.dims() != want.dims() {
                bail!(
                    "checkpoint {} tensor '{name}' has shape {:?} ({}) \
                     but the model expects {:?} ({})",
                    dir.display(),
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
        assert!(newest.ends_with("ckpt-0000000003"));
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
        let expected = [("w", weights.shape())];
        let load_w = || load::<serde_json::Value>(&dir, expected);
        let (loaded, meta) = load_w().unwrap();
        assert_eq!((&loaded[0], &meta["step"]), (&weights, &1.into()));

        // Flip one byte of w's data: the last 16 bytes of the file are w's 4 floats (the
        // safetensors data section is sorted by dtype alignment, then name).
        let path = dir.join(TENSORS);
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

        let meta_path = dir.join(METADATA);
        let meta = fs::read(&meta_path).unwrap();
        fs::write(&meta_path, &meta[..meta.len() / 2]).unwrap();
        assert!(damage(load_w().unwrap_err()).starts_with(METADATA));
        fs::remove_file(&meta_path).unwrap();
        assert!(damage(load_w().unwrap_err()).starts_with(METADATA));
    }

    #[test]
    fn unfinished_checkpoints_are_ignored() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("ckpt-0000000009.tmp")).unwrap();
        assert!(latest(root.path()).unwrap().is_none());
    }
}
