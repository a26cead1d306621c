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
//! [`ParamKind::torch_axes`]: super::params::ParamKind::torch_axes

use super::resolve::Model;
use super::spec::BlockType;

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
