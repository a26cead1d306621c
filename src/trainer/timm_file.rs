//! timm state dicts as safetensors files (what `timm`'s `save_file` writes and
//! `timm.create_model(..., checkpoint_path=...)` reads): reading one into [`TorchTensor`]s and
//! writing ours, on local disk or in a bucket (`gs://bucket/.../model.safetensors`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use half::{bf16, f16};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::model::timm::{TorchTensor, BN_COUNTER};
use crate::storage::{Location, Store};

/// The store holding the file `path` (a local path or a `gs://` URL) and its name there.
fn file_place(path: &Path) -> Result<(Store, String)> {
    let text = path
        .to_str()
        .with_context(|| format!("{} is not a UTF-8 path", path.display()))?;
    let (folder, name) = Location::parse_file(text)?;
    Ok((Store::open(&folder)?, name))
}

/// Reads the floating-point tensors of a state dict (f32, f16 or bf16, as f32) at `path` (a
/// local path or a `gs://` URL); batch-norm counters are left out.
pub fn read_state_dict(path: &Path) -> Result<BTreeMap<String, TorchTensor>> {
    let (store, name) = file_place(path)?;
    let mut bytes = Vec::new();
    store
        .read(&name)?
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    let file = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{} is not a safetensors file", path.display()))?;
    let mut out = BTreeMap::new();
    for (name, view) in file.tensors() {
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            _ if name.ends_with(BN_COUNTER) => continue,
            other => bail!(
                "{}: tensor `{name}` is {other:?}; weights must be f32, f16 or bf16",
                path.display()
            ),
        };
        let shape = view.shape().to_vec();
        out.insert(name, TorchTensor { shape, values });
    }
    Ok(out)
}

/// Writes `tensors` (f32) and a zero `int64` scalar for each of `counters` to `path` (a local
/// path or a `gs://` URL), atomically: the file appears whole or not at all.
pub fn write_state_dict(
    path: &Path,
    tensors: &[(String, TorchTensor)],
    counters: &[String],
) -> Result<()> {
    let bytes: Vec<(&str, Vec<usize>, Dtype, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let data = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.as_str(), t.shape.clone(), Dtype::F32, data)
        })
        .chain(counters.iter().map(|name| {
            (
                name.as_str(),
                Vec::new(),
                Dtype::I64,
                0i64.to_le_bytes().to_vec(),
            )
        }))
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, dtype, data)| {
            let view = TensorView::new(*dtype, shape.clone(), data)
                .map_err(|e| anyhow::anyhow!("tensor {name}: {e}"))?;
            Ok((*name, view))
        })
        .collect::<Result<Vec<_>>>()?;
    let serialized = safetensors::serialize(views, &None).context("serializing the state dict")?;
    let (store, name) = file_place(path)?;
    store
        .write(&name, &mut &serialized[..])
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
