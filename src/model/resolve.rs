//! Turns a [`ModelSpec`] into the concrete network: width/depth scaling with the official rounding rules,
//! one [`Block`] per repeat with its channel widths, residual flag and survival probability.

use super::error::SpecError;
use super::spec::{BlockType, ModelSpec};

/// The official `round_filters` (spec section 1.3): scale in f64, round to the nearest multiple of
/// `divisor` (halves up), never below `min_depth` (default `divisor`). Unlike EfficientNet-V1 there is no
/// "do not round down by more than 10%" bump, which is what makes B3's 16×1.2 = 19.2 round to 16.
pub fn round_filters(
    filters: usize,
    multiplier: f64,
    divisor: usize,
    min_depth: Option<usize>,
) -> usize {
    let scaled = filters as f64 * multiplier;
    let min_depth = min_depth.unwrap_or(divisor);
    // Python: `int(filters + divisor / 2) // divisor * divisor`, truncation of a non-negative float.
    let rounded = (scaled + divisor as f64 / 2.0) as usize / divisor * divisor;
    rounded.max(min_depth)
}

/// The official `round_repeats`: `ceil(multiplier * repeats)`, multiplied in that order in f64
/// (`1.1 * 8 = 8.8 → 9`, `1.4 * 5 = 7.0 → 7`).
pub fn round_repeats(repeats: usize, multiplier: f64) -> usize {
    (multiplier * repeats as f64).ceil() as usize
}

/// One block of the resolved network.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Position among all blocks of the network, 0-based (the `idx` of the survival formula).
    pub index: usize,
    /// 0-based stage (index into `ModelSpec::stages`; the paper numbers it one higher, the stem being 0).
    pub stage: usize,
    /// Position inside the stage, 0-based.
    pub index_in_stage: usize,
    pub block: BlockType,
    pub kernel: usize,
    pub stride: usize,
    pub expand_ratio: usize,
    pub in_filters: usize,
    pub out_filters: usize,
    /// Expanded width `in * expand_ratio` (not rounded). For a fused block with ratio 1 there is no
    /// expanded tensor and this equals `in_filters`.
    pub mid_filters: usize,
    /// Squeeze-excite hidden width `max(1, int(in * se_ratio))`, from the block's *input* filters.
    pub se_filters: Option<usize>,
    /// `stride == 1 && in == out`: the block adds its input (through stochastic depth when training).
    pub has_residual: bool,
    /// `1 - (1 - survival_prob) * index / total_blocks`.
    pub survival_prob: f64,
}

impl Block {
    /// Whether the block has its own expansion conv (MBConv 1×1 or Fused k×k followed by a projection).
    pub fn has_expansion(&self) -> bool {
        self.expand_ratio != 1
    }

    /// Short human-readable description, e.g. `mbconv6 k3 s2 se`.
    pub fn label(&self) -> String {
        let se = if self.se_filters.is_some() { " se" } else { "" };
        format!(
            "{}{} k{} s{}{se}",
            self.block.as_str(),
            self.expand_ratio,
            self.kernel,
            self.stride
        )
    }
}

/// A stage after scaling.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub block: BlockType,
    pub repeats: usize,
    pub in_filters: usize,
    pub out_filters: usize,
    /// Range of this stage's blocks in [`Model::blocks`].
    pub blocks: std::ops::Range<usize>,
}

/// The network a spec describes, with every width and repeat count resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub spec: ModelSpec,
    pub stem_filters: usize,
    pub stages: Vec<Stage>,
    pub blocks: Vec<Block>,
    /// Channels of the head's 1×1 conv, `round_filters(feature_size)`.
    pub head_filters: usize,
}

impl Model {
    /// Validates `spec` (again, as it may have been edited in code since loading) and resolves it.
    pub fn new(spec: ModelSpec) -> Result<Model, SpecError> {
        spec.validate().map_err(|e| e.at(&spec.name))?;
        let round =
            |f: usize| round_filters(f, spec.width_multiplier, spec.depth_divisor, spec.min_depth);
        let mut stages = Vec::with_capacity(spec.stages.len());
        let mut blocks = Vec::new();
        for (s, st) in spec.stages.iter().enumerate() {
            let repeats = round_repeats(st.repeats, spec.depth_multiplier);
            let (in_filters, out_filters) = (round(st.in_filters), round(st.out_filters));
            let first = blocks.len();
            for r in 0..repeats {
                let (input, stride) = if r == 0 {
                    (in_filters, st.stride)
                } else {
                    (out_filters, 1)
                };
                let se_filters =
                    (st.se_ratio > 0.0).then(|| ((input as f64 * st.se_ratio) as usize).max(1));
                blocks.push(Block {
                    index: blocks.len(),
                    stage: s,
                    index_in_stage: r,
                    block: st.block,
                    kernel: st.kernel,
                    stride,
                    expand_ratio: st.expand_ratio,
                    in_filters: input,
                    out_filters,
                    mid_filters: input * st.expand_ratio,
                    se_filters,
                    has_residual: stride == 1 && input == out_filters,
                    survival_prob: 1.0,
                });
            }
            stages.push(Stage {
                block: st.block,
                repeats,
                in_filters,
                out_filters,
                blocks: first..blocks.len(),
            });
        }
        let total = blocks.len() as f64;
        for b in &mut blocks {
            b.survival_prob = 1.0 - (1.0 - spec.survival_prob) * b.index as f64 / total;
        }
        Ok(Model {
            stem_filters: round(spec.stem.filters),
            head_filters: round(spec.head.feature_size),
            stages,
            blocks,
            spec,
        })
    }
}
