//! Mapping from our parameter names to the names in timm's `tf_efficientnetv2_*` state dicts, so that
//! released PyTorch checkpoints can be loaded (transpose with [`ParamKind::torch_axes`]).
//!
//! timm's `EfficientNet` has `conv_stem`/`bn1`, `blocks.{stage}.{index in stage}`, `conv_head`/`bn2` and
//! `classifier`. Its block classes (`timm/models/_efficientnet_blocks.py`) name their layers:
//! - `ConvBnAct` (our fused block with expand ratio 1): `conv`, `bn1`
//! - `EdgeResidual` (fused, ratio ≠ 1): `conv_exp`, `bn1`, `conv_pwl`, `bn2`
//! - `InvertedResidual` (MBConv, ratio ≠ 1): `conv_pw`, `bn1`, `conv_dw`, `bn2`, `se.conv_reduce`,
//!   `se.conv_expand`, `conv_pwl`, `bn3`
//! - `DepthwiseSeparableConv` (MBConv with ratio 1, not used by V2): `conv_dw`, `bn1`, `se.*`, `conv_pw`, `bn2`
//!
//! Leaves: kernel → `weight`, bias → `bias`; BN gamma/beta/moving_mean/moving_var → `weight`/`bias`/
//! `running_mean`/`running_var` (timm's `num_batches_tracked` has no counterpart).
//!
//! [`Model::to_timm`] and [`Model::from_timm`] convert whole state dicts both ways.
//!
//! [`ParamKind::torch_axes`]: super::params::ParamKind::torch_axes

use std::collections::BTreeMap;

use ndarray::{ArrayD, IxDyn};

use super::params::Param;
use super::resolve::Model;
use super::spec::BlockType;

/// One tensor of a timm state dict: PyTorch layout, f32 values.
#[derive(Clone, Debug, PartialEq)]
pub struct TorchTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// The suffix of the batch-norm step counters timm's state dicts carry; they have no
/// counterpart here (inference ignores them).
pub const BN_COUNTER: &str = ".num_batches_tracked";

/// What keeps a state dict from being this model's: every missing, unexpected or mis-shaped
/// tensor, named.
#[derive(Debug, thiserror::Error)]
#[error("the state dict does not fit model '{model}': {}", problems.join("; "))]
pub struct StateDictMismatch {
    pub model: String,
    pub problems: Vec<String>,
}

/// `values` (of `shape`) with its axes permuted: `out = in.permute(axes)`.
fn permute(shape: &[usize], values: &[f32], axes: &[usize]) -> (Vec<usize>, Vec<f32>) {
    if axes.len() != shape.len() {
        return (shape.to_vec(), values.to_vec());
    }
    let array =
        ArrayD::from_shape_vec(IxDyn(shape), values.to_vec()).expect("values fill the shape");
    let permuted = array.permuted_axes(IxDyn(axes));
    let shape = permuted.shape().to_vec();
    (
        shape,
        permuted.as_standard_layout().iter().copied().collect(),
    )
}

/// The permutation that undoes `axes`.
fn inverse(axes: &[usize]) -> Vec<usize> {
    let mut inverse = vec![0; axes.len()];
    for (i, &a) in axes.iter().enumerate() {
        inverse[a] = i;
    }
    inverse
}

/// The timm leaf for our leaf, checked against the kind of module it sits in (BN statistics only under
/// `bn`, biases only where a layer has one).
fn leaf(module: &str, ours: &str) -> Option<&'static str> {
    let is_bn = module.ends_with("/bn");
    let has_bias =
        (module.starts_with("blocks/") && module.contains("/se/")) || module == "head/dense";
    Some(match ours {
        "kernel" if !is_bn => "weight",
        "bias" if has_bias => "bias",
        "gamma" if is_bn => "weight",
        "beta" if is_bn => "bias",
        "moving_mean" if is_bn => "running_mean",
        "moving_var" if is_bn => "running_var",
        _ => return None,
    })
}

impl Model {
    /// The timm parameter name for one of our parameter names, or `None` if `name` names no parameter
    /// of this model.
    pub fn timm_name(&self, name: &str) -> Option<String> {
        let (module, last) = name.rsplit_once('/')?;
        let leaf = leaf(module, last)?;
        let module = match module {
            "stem/conv" => "conv_stem".to_string(),
            "stem/bn" => "bn1".to_string(),
            "head/conv" => "conv_head".to_string(),
            "head/bn" => "bn2".to_string(),
            "head/dense" => "classifier".to_string(),
            _ => self.timm_block_module(module)?,
        };
        Some(format!("{module}.{leaf}"))
    }

    fn timm_block_module(&self, module: &str) -> Option<String> {
        let rest = module.strip_prefix("blocks/")?;
        let (index, layer) = rest.split_once('/')?;
        let b = self.blocks.get(index.parse::<usize>().ok()?)?;
        let timm_layer = match (b.block, b.has_expansion(), layer) {
            (BlockType::Fused, false, "fused/conv") => "conv",
            (BlockType::Fused, false, "fused/bn") => "bn1",
            (BlockType::Fused, true, "fused/conv") => "conv_exp",
            (BlockType::Fused, true, "fused/bn") => "bn1",
            (BlockType::Fused, true, "project/conv") => "conv_pwl",
            (BlockType::Fused, true, "project/bn") => "bn2",
            (BlockType::Mbconv, true, "expand/conv") => "conv_pw",
            (BlockType::Mbconv, true, "expand/bn") => "bn1",
            (BlockType::Mbconv, true, "depthwise/conv") => "conv_dw",
            (BlockType::Mbconv, true, "depthwise/bn") => "bn2",
            (BlockType::Mbconv, true, "project/conv") => "conv_pwl",
            (BlockType::Mbconv, true, "project/bn") => "bn3",
            (BlockType::Mbconv, false, "depthwise/conv") => "conv_dw",
            (BlockType::Mbconv, false, "depthwise/bn") => "bn1",
            (BlockType::Mbconv, false, "project/conv") => "conv_pw",
            (BlockType::Mbconv, false, "project/bn") => "bn2",
            (BlockType::Mbconv, _, "se/reduce") if b.se_filters.is_some() => "se.conv_reduce",
            (BlockType::Mbconv, _, "se/expand") if b.se_filters.is_some() => "se.conv_expand",
            _ => return None,
        };
        Some(format!(
            "blocks.{}.{}.{timm_layer}",
            b.stage, b.index_in_stage
        ))
    }
}

impl Model {
    /// timm's state dict of this model's weights: `values(param)` gives each parameter's
    /// values in our layout; each comes out under its timm name in PyTorch's layout. The
    /// batch-norm counters (see [`BN_COUNTER`]) are listed by [`Model::timm_bn_counters`].
    pub fn to_timm<'v>(&self, values: impl Fn(&Param) -> &'v [f32]) -> Vec<(String, TorchTensor)> {
        self.params()
            .iter()
            .map(|p| {
                let name = self
                    .timm_name(&p.name)
                    .expect("every parameter has a timm name");
                let (shape, values) = permute(&p.shape, values(p), p.kind.torch_axes());
                (name, TorchTensor { shape, values })
            })
            .collect()
    }

    /// The `num_batches_tracked` entries timm's modules hold, one per batch norm.
    pub fn timm_bn_counters(&self) -> Vec<String> {
        self.params()
            .iter()
            .filter(|p| p.name.ends_with("/bn/gamma"))
            .map(|p| {
                let weight = self.timm_name(&p.name).expect("a timm name");
                let module = weight
                    .strip_suffix(".weight")
                    .expect("BN gamma is `weight`");
                format!("{module}{BN_COUNTER}")
            })
            .collect()
    }

    /// This model's parameters (in [`Model::params`] order, our layout) from a timm state dict.
    /// Counters (see [`BN_COUNTER`]) are ignored; every other tensor must be one of ours with
    /// the right shape, and every one of ours must be there.
    pub fn from_timm(
        &self,
        state_dict: &BTreeMap<String, TorchTensor>,
    ) -> Result<Vec<Vec<f32>>, StateDictMismatch> {
        let mut problems = Vec::new();
        let mut used = std::collections::HashSet::new();
        let mut out = Vec::new();
        for p in self.params() {
            let name = self.timm_name(&p.name).expect("a timm name");
            let axes = p.kind.torch_axes();
            let torch_shape = permute(&p.shape, &vec![0.0; p.numel() as usize], axes).0;
            match state_dict.get(&name) {
                None => problems.push(format!("missing `{name}` {torch_shape:?}")),
                Some(t) if t.shape != torch_shape => problems.push(format!(
                    "`{name}` has shape {:?}, the model needs {torch_shape:?}",
                    t.shape
                )),
                Some(t) => out.push(permute(&t.shape, &t.values, &inverse(axes)).1),
            }
            used.insert(name);
        }
        for name in state_dict.keys() {
            if !used.contains(name) && !name.ends_with(BN_COUNTER) {
                problems.push(format!("unexpected `{name}`"));
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(StateDictMismatch {
                model: self.spec.name.clone(),
                problems,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::load_spec;

    #[test]
    fn a_state_dict_converts_both_ways_and_names_what_does_not_fit() {
        let model = Model::new(load_spec("b0").unwrap()).unwrap();
        let params = model.params();
        // Distinct values per element, so that a wrong permutation shows.
        let ours: Vec<Vec<f32>> = params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (0..p.numel())
                    .map(|j| (i * 1000) as f32 + j as f32)
                    .collect()
            })
            .collect();
        let index = |p: &Param| params.iter().position(|q| q.name == p.name).unwrap();
        let dict: BTreeMap<String, TorchTensor> =
            model.to_timm(|p| &ours[index(p)]).into_iter().collect();
        // timm's layout for the stem: [out, in, kh, kw]; ours [kh, kw, in, out].
        let stem = &dict["conv_stem.weight"];
        assert_eq!(stem.shape, [32, 3, 3, 3]);
        let stem_ours = &ours[0];
        // torch[o][i][y][x] = ours[y][x][i][o], row-major: element (o=1, i=2, y=0, x=1).
        let at = |dims: [usize; 4], index: [usize; 4]| {
            index.iter().zip(dims).fold(0, |flat, (i, d)| flat * d + i)
        };
        assert_eq!(
            stem.values[at([32, 3, 3, 3], [1, 2, 0, 1])],
            stem_ours[at([3, 3, 3, 32], [0, 1, 2, 1])]
        );
        assert_eq!(
            model.from_timm(&dict).unwrap(),
            ours,
            "the round trip is exact"
        );

        let mut broken = dict.clone();
        broken.remove("bn2.running_var");
        broken.insert(
            "classifier.weight".into(),
            TorchTensor {
                shape: vec![1, 1],
                values: vec![0.0],
            },
        );
        broken.insert("head.extra".into(), stem.clone());
        broken.insert(
            "bn1.num_batches_tracked".into(),
            TorchTensor {
                shape: vec![],
                values: vec![0.0],
            },
        );
        let err = model.from_timm(&broken).unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");
        let message = err.to_string();
        for part in [
            "missing `bn2.running_var` [1280]",
            "`classifier.weight` has shape [1, 1], the model needs [1000, 1280]",
            "unexpected `head.extra`",
        ] {
            assert!(message.contains(part), "{message}");
        }
        assert_eq!(model.timm_bn_counters()[0], "bn1.num_batches_tracked");
    }
}
