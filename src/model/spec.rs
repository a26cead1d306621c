//! The declarative model spec: what a `graphs/*.json` file holds, parsed with serde and validated so
//! that every later stage (resolution, parameter naming, graph building) can trust it.
//!
//! The JSON schema is documented in `graphs/README.md`. Unknown fields are rejected so a typo in a
//! hand-edited file is reported instead of silently ignored.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{FieldError, SpecError};
use super::resolve::{round_filters, round_repeats};

/// One model: block table, scaling rules, regularisation, image sizes and the progressive schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Model name, e.g. `efficientnetv2-s`.
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Channel multiplier applied by `round_filters` to the stem, every stage and the head.
    pub width_multiplier: f64,
    /// Repeat multiplier applied by `round_repeats` (`ceil(multiplier * repeats)`).
    pub depth_multiplier: f64,
    /// Rounded filter counts are multiples of this.
    pub depth_divisor: usize,
    /// Lower bound of a rounded filter count; absent means `depth_divisor` (the official `min_depth or divisor`).
    #[serde(default)]
    pub min_depth: Option<usize>,
    pub stem: StemSpec,
    /// The block table, one entry per stage, before width/depth scaling.
    pub stages: Vec<StageSpec>,
    pub head: HeadSpec,
    pub num_classes: usize,
    /// Dropout rate before the classifier (0 disables it).
    pub dropout: f64,
    /// Survival probability of the last block's residual branch; earlier blocks interpolate linearly to 1.
    pub survival_prob: f64,
    pub batch_norm: BatchNormSpec,
    pub image_size: ImageSizes,
    pub input: InputSpec,
    pub augment: AugmentPolicy,
    /// The training recipe (a built-in name or a file) the model trains with unless the run
    /// names one; a spec derived from this one (a search candidate, a copy) keeps it. Absent:
    /// the official recipe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<String>,
    pub progressive: ProgressiveSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StemSpec {
    /// Output channels before width scaling; must equal the first stage's `in`.
    pub filters: usize,
    pub kernel: usize,
    pub stride: usize,
}

/// The two block types of EfficientNetV2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockType {
    /// Fused-MBConv: a k×k conv (expansion) then a 1×1 projection; a single k×k conv when `expand_ratio` is 1.
    Fused,
    /// MBConv: 1×1 expansion (unless `expand_ratio` is 1), k×k depthwise, squeeze-excite, 1×1 projection.
    Mbconv,
}

impl BlockType {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockType::Fused => "fused",
            BlockType::Mbconv => "mbconv",
        }
    }
}

/// One row of the block table (the official `r2_k3_s1_e1_i24_o24_c1` strings, spelled out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    #[serde(rename = "type")]
    pub block: BlockType,
    pub repeats: usize,
    pub kernel: usize,
    /// Stride of the stage's first block; later blocks use stride 1.
    pub stride: usize,
    pub expand_ratio: usize,
    #[serde(rename = "in")]
    pub in_filters: usize,
    #[serde(rename = "out")]
    pub out_filters: usize,
    /// Squeeze-excite ratio of the block's *input* filters; 0 (or absent) means no SE.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub se_ratio: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadSpec {
    /// Width of the final 1×1 conv before width scaling (official `feature_size`, 1280).
    pub feature_size: usize,
}

/// Batch norm hyper-parameters, TF convention: `moving = momentum * moving + (1 - momentum) * batch`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNormSpec {
    pub momentum: f64,
    pub epsilon: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSizes {
    /// Final training size (the last progressive stage of the official schedule).
    pub train: usize,
    pub eval: usize,
}

/// Input channels and per-channel normalisation on the 0–255 pixel scale: `x' = (x - mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub channels: usize,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

/// The training augmentation family; its strength is scheduled by [`ProgressiveSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AugmentPolicy {
    /// RandAugment with 2 layers; the magnitude comes from the progressive schedule.
    Randaugment,
    /// AutoAugment policy v0 (B0–B3 in the official code); no magnitude to schedule.
    AutoaugmentV0,
}

/// Which progressive-learning rule to follow (spec sections 4.1 and 4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleVariant {
    /// `google/automl` `main.py`: size `int(min + (max - min) * (i + 1) / M)`, regularisers `linspace`,
    /// dropout not scheduled.
    Official,
    /// Paper Algorithm 1: everything interpolated linearly from stage 0 to stage M - 1.
    Paper,
}

impl ScheduleVariant {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleVariant::Official => "official",
            ScheduleVariant::Paper => "paper",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressiveSpec {
    /// Number of progressive stages (4 in the paper and the code); 1 trains at the final values only.
    pub stages: usize,
    /// The variant used unless the user picks the other one.
    pub default: ScheduleVariant,
    pub official: StageRanges,
    /// Absent for models the paper's Table 6 gives no values for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper: Option<StageRanges>,
}

/// First-stage and last-stage values of the scheduled quantities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageRanges {
    pub image_size: MinMax<usize>,
    /// Required with `augment = "randaugment"`, forbidden otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub randaug_magnitude: Option<MinMax<f64>>,
    pub mixup_alpha: MinMax<f64>,
    pub cutmix_alpha: MinMax<f64>,
    /// Absent: dropout stays at the model's `dropout` in every stage (what the official code does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<MinMax<f64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinMax<T> {
    pub min: T,
    pub max: T,
}

type Check = Result<(), FieldError>;

fn ensure(ok: bool, field: impl Into<String>, message: impl FnOnce() -> String) -> Check {
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(field, message()))
    }
}

fn positive(value: usize, field: &str) -> Check {
    ensure(value >= 1, field, || {
        format!("must be at least 1, got {value}")
    })
}

/// Upper bounds on the spec's sizes. Far above every EfficientNetV2 (the widest, XL, has 640
/// block channels and a 1280-wide head), they stop a typo such as an extra zero before it becomes
/// a multi-terabyte allocation or a graph XLA cannot index.
const MAX_CHANNELS: usize = 1 << 16;
const MAX_KERNEL: usize = 31;
const MAX_STRIDE: usize = 16;
const MAX_REPEATS: usize = 1024;
const MAX_EXPAND_RATIO: usize = 64;
const MAX_CLASSES: usize = 1 << 20;
const MAX_IMAGE_SIZE: usize = 8192;
const MAX_INPUT_CHANNELS: usize = 64;
const MAX_MULTIPLIER: f64 = 64.0;
const MAX_PROGRESSIVE_STAGES: usize = 64;
/// Blocks of the whole network after depth scaling (XL has 100).
const MAX_BLOCKS: usize = 1024;

/// `value` in `1..=max`.
fn size(value: usize, max: usize, field: &str) -> Check {
    positive(value, field)?;
    ensure(value <= max, field, || {
        format!("{value} is larger than the supported maximum {max}")
    })
}

fn in_range(value: f64, low: f64, high: f64, high_inclusive: bool, field: &str) -> Check {
    let ok = value.is_finite()
        && value >= low
        && if high_inclusive {
            value <= high
        } else {
            value < high
        };
    let close = if high_inclusive { ']' } else { ')' };
    ensure(ok, field, || {
        format!("must be in [{low}, {high}{close}, got {value}")
    })
}

impl ModelSpec {
    /// Parses and validates a spec; `origin` (a file path or built-in name) prefixes every error.
    pub fn from_json(text: &str, origin: &str) -> Result<ModelSpec, SpecError> {
        let spec: ModelSpec = serde_json::from_str(text).map_err(|source| SpecError::Json {
            origin: origin.to_string(),
            source,
        })?;
        spec.validate().map_err(|e| e.at(origin))?;
        Ok(spec)
    }

    /// Reads and validates a spec file.
    pub fn from_file(path: &Path) -> Result<ModelSpec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        ModelSpec::from_json(&text, &path.display().to_string())
    }

    /// Checks every field and the consistency of the block table.
    pub fn validate(&self) -> Result<(), FieldError> {
        ensure(!self.name.trim().is_empty(), "name", || {
            "must not be empty".into()
        })?;
        let multiplier_ok = |m: f64| m.is_finite() && m > 0.0 && m <= MAX_MULTIPLIER;
        ensure(
            multiplier_ok(self.width_multiplier),
            "width_multiplier",
            || {
                format!(
                    "must be a positive number up to {MAX_MULTIPLIER}, got {}",
                    self.width_multiplier
                )
            },
        )?;
        ensure(
            multiplier_ok(self.depth_multiplier),
            "depth_multiplier",
            || {
                format!(
                    "must be a positive number up to {MAX_MULTIPLIER}, got {}",
                    self.depth_multiplier
                )
            },
        )?;
        size(self.depth_divisor, MAX_CHANNELS, "depth_divisor")?;
        if let Some(min_depth) = self.min_depth {
            size(min_depth, MAX_CHANNELS, "min_depth")?;
        }
        size(self.stem.filters, MAX_CHANNELS, "stem.filters")?;
        size(self.stem.kernel, MAX_KERNEL, "stem.kernel")?;
        size(self.stem.stride, MAX_STRIDE, "stem.stride")?;
        self.validate_stages()?;
        size(self.head.feature_size, MAX_CHANNELS, "head.feature_size")?;
        size(self.num_classes, MAX_CLASSES, "num_classes")?;
        in_range(self.dropout, 0.0, 1.0, false, "dropout")?;
        ensure(
            self.survival_prob.is_finite() && self.survival_prob > 0.0 && self.survival_prob <= 1.0,
            "survival_prob",
            || format!("must be in (0, 1], got {}", self.survival_prob),
        )?;
        in_range(
            self.batch_norm.momentum,
            0.0,
            1.0,
            false,
            "batch_norm.momentum",
        )?;
        ensure(
            self.batch_norm.epsilon.is_finite() && self.batch_norm.epsilon > 0.0,
            "batch_norm.epsilon",
            || format!("must be positive, got {}", self.batch_norm.epsilon),
        )?;
        size(self.image_size.train, MAX_IMAGE_SIZE, "image_size.train")?;
        size(self.image_size.eval, MAX_IMAGE_SIZE, "image_size.eval")?;
        self.validate_resolved()?;
        self.validate_input()?;
        self.validate_progressive()
    }

    fn validate_stages(&self) -> Check {
        ensure(!self.stages.is_empty(), "stages", || {
            "the block table must have at least one stage".into()
        })?;
        ensure(
            self.stem.filters == self.stages[0].in_filters,
            "stem.filters",
            || {
                format!(
                "stem.filters = {} does not match stages[0].in = {} (the stem feeds the first stage)",
                self.stem.filters, self.stages[0].in_filters
            )
            },
        )?;
        for (i, stage) in self.stages.iter().enumerate() {
            let field = |name: &str| format!("stages[{i}].{name}");
            size(stage.repeats, MAX_REPEATS, &field("repeats"))?;
            size(stage.kernel, MAX_KERNEL, &field("kernel"))?;
            size(stage.stride, MAX_STRIDE, &field("stride"))?;
            size(stage.expand_ratio, MAX_EXPAND_RATIO, &field("expand_ratio"))?;
            size(stage.in_filters, MAX_CHANNELS, &field("in"))?;
            size(stage.out_filters, MAX_CHANNELS, &field("out"))?;
            in_range(stage.se_ratio, 0.0, 1.0, true, &field("se_ratio"))?;
            ensure(
                stage.block == BlockType::Mbconv || stage.se_ratio == 0.0,
                field("se_ratio"),
                || {
                    format!(
                    "stage {i} is a fused stage with se_ratio {}; squeeze-excite is only supported in mbconv stages",
                    stage.se_ratio
                )
                },
            )?;
            if i > 0 {
                let prev = &self.stages[i - 1];
                ensure(stage.in_filters == prev.out_filters, field("in"), || {
                    format!(
                        "stage {i} takes {} input filters but stage {} outputs {}",
                        stage.in_filters,
                        i - 1,
                        prev.out_filters
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Bounds the network as it resolves, which the bounds on each field do not: a width
    /// multiplier of 64 on 65,536 filters, an expansion of 64 on top, or 1,024 repeats times a
    /// depth multiplier of 64 in every stage. The error names the field to change.
    fn validate_resolved(&self) -> Check {
        let round =
            |f: usize| round_filters(f, self.width_multiplier, self.depth_divisor, self.min_depth);
        let width = |filters: usize, field: &str| {
            ensure(round(filters) <= MAX_CHANNELS, field, || {
                format!(
                    "{filters} filters are {} channels after width scaling (width_multiplier {}), \
                     more than the supported maximum {MAX_CHANNELS}",
                    round(filters),
                    self.width_multiplier
                )
            })
        };
        width(self.stem.filters, "stem.filters")?;
        let mut blocks = 0;
        for (i, stage) in self.stages.iter().enumerate() {
            let field = |name: &str| format!("stages[{i}].{name}");
            width(stage.in_filters, &field("in"))?;
            width(stage.out_filters, &field("out"))?;
            let widest = round(stage.in_filters).max(round(stage.out_filters));
            ensure(
                widest * stage.expand_ratio <= MAX_CHANNELS,
                field("expand_ratio"),
                || {
                    format!(
                        "expands {widest} channels {} times, more than the supported maximum \
                         {MAX_CHANNELS}",
                        stage.expand_ratio
                    )
                },
            )?;
            blocks += round_repeats(stage.repeats, self.depth_multiplier);
            ensure(blocks <= MAX_BLOCKS, field("repeats"), || {
                format!(
                    "the network has {blocks} blocks up to stage {i} after depth scaling \
                     (depth_multiplier {}), more than the supported maximum {MAX_BLOCKS}",
                    self.depth_multiplier
                )
            })?;
        }
        width(self.head.feature_size, "head.feature_size")
    }

    fn validate_input(&self) -> Check {
        let input = &self.input;
        size(input.channels, MAX_INPUT_CHANNELS, "input.channels")?;
        for (name, values) in [("input.mean", &input.mean), ("input.std", &input.std)] {
            ensure(values.len() == input.channels, name, || {
                format!(
                    "has {} values but input.channels is {}",
                    values.len(),
                    input.channels
                )
            })?;
        }
        for (c, &m) in input.mean.iter().enumerate() {
            ensure(m.is_finite(), format!("input.mean[{c}]"), || {
                format!("must be finite, got {m}")
            })?;
        }
        for (c, &s) in input.std.iter().enumerate() {
            ensure(s.is_finite() && s > 0.0, format!("input.std[{c}]"), || {
                format!("must be positive, got {s}")
            })?;
        }
        Ok(())
    }

    fn validate_progressive(&self) -> Check {
        let p = &self.progressive;
        size(p.stages, MAX_PROGRESSIVE_STAGES, "progressive.stages")?;
        self.validate_ranges(&p.official, "progressive.official")?;
        ensure(
            p.official.image_size.max == self.image_size.train,
            "progressive.official.image_size.max",
            || {
                format!(
                    "is {} but the official schedule ends at image_size.train = {}",
                    p.official.image_size.max, self.image_size.train
                )
            },
        )?;
        match &p.paper {
            Some(paper) => self.validate_ranges(paper, "progressive.paper"),
            None => ensure(
                p.default != ScheduleVariant::Paper,
                "progressive.default",
                || "is \"paper\" but progressive.paper is absent".into(),
            ),
        }
    }

    fn validate_ranges(&self, r: &StageRanges, at: &str) -> Check {
        let range = r.image_size;
        size(range.min, MAX_IMAGE_SIZE, &format!("{at}.image_size.min"))?;
        size(range.max, MAX_IMAGE_SIZE, &format!("{at}.image_size.max"))?;
        ensure(range.min <= range.max, format!("{at}.image_size"), || {
            format!("min {} is larger than max {}", range.min, range.max)
        })?;
        match (self.augment, &r.randaug_magnitude) {
            (AugmentPolicy::Randaugment, Some(m)) => {
                let field = format!("{at}.randaug_magnitude");
                in_range(m.min, 0.0, f64::MAX, true, &format!("{field}.min"))?;
                in_range(m.max, 0.0, f64::MAX, true, &format!("{field}.max"))?;
            }
            (AugmentPolicy::Randaugment, None) => {
                return Err(FieldError::new(
                    format!("{at}.randaug_magnitude"),
                    "is required because augment is \"randaugment\"",
                ))
            }
            (AugmentPolicy::AutoaugmentV0, Some(_)) => {
                return Err(FieldError::new(
                    format!("{at}.randaug_magnitude"),
                    "must be absent because augment is \"autoaugment_v0\" (it has no magnitude)",
                ))
            }
            (AugmentPolicy::AutoaugmentV0, None) => {}
        }
        for (name, alpha) in [
            ("mixup_alpha", r.mixup_alpha),
            ("cutmix_alpha", r.cutmix_alpha),
        ] {
            in_range(alpha.min, 0.0, f64::MAX, true, &format!("{at}.{name}.min"))?;
            in_range(alpha.max, 0.0, f64::MAX, true, &format!("{at}.{name}.max"))?;
        }
        if let Some(d) = r.dropout {
            in_range(d.min, 0.0, 1.0, false, &format!("{at}.dropout.min"))?;
            in_range(d.max, 0.0, 1.0, false, &format!("{at}.dropout.max"))?;
        }
        Ok(())
    }
}
