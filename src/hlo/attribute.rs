//! An instruction's attributes, described once per op ([`Op::attributes`]) and rendered from that
//! description both as HLO text and into `HloInstructionProto` fields.
//!
//! The printer and the encoder hold no per-op code: each walks an instruction's attributes and
//! asks every one for its text ([`Attribute::text`]) and its proto fields ([`Attribute::encode`]).
//! A new op built from the kinds below therefore needs no edit in `printer.rs` or `encode.rs`;
//! a new kind is one variant here with its two renderings side by side, and the exhaustive
//! matches make the compiler ask for both.
//!
//! The types that attribute values are made of (windows, padding, dimension numbers, comparison
//! directions, computation ids) live here too, so that `op` builds on this module and not the
//! other way round (`tests/layers.rs` allows no circle of modules inside `hlo`).
//!
//! [`Op::attributes`]: super::Op::attributes

use super::element::{from_bytes, ElementType, NativeType};
use super::literal::Literal;
use super::proto_messages as pb;
use super::proto_values::literal_proto;
use super::shape::{join, Shape};

/// Index of a computation inside a [`super::Module`] (callee order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComputationId(pub(crate) u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ComparisonDirection {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl ComparisonDirection {
    pub fn name(self) -> &'static str {
        match self {
            ComparisonDirection::Eq => "EQ",
            ComparisonDirection::Ne => "NE",
            ComparisonDirection::Lt => "LT",
            ComparisonDirection::Le => "LE",
            ComparisonDirection::Gt => "GT",
            ComparisonDirection::Ge => "GE",
        }
    }
}

/// One spatial dimension of a window (pooling or convolution).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WindowDim {
    pub size: i64,
    pub stride: i64,
    pub padding_low: i64,
    pub padding_high: i64,
    /// Dilation of the window itself (`rhs_dilate` for convolutions).
    pub window_dilation: i64,
    /// Dilation of the input (`lhs_dilate` for convolutions).
    pub base_dilation: i64,
}

impl WindowDim {
    /// A window of `size` with stride 1, no padding and no dilation.
    pub fn new(size: i64) -> WindowDim {
        WindowDim {
            size,
            stride: 1,
            padding_low: 0,
            padding_high: 0,
            window_dilation: 1,
            base_dilation: 1,
        }
    }

    pub fn stride(self, stride: i64) -> WindowDim {
        WindowDim { stride, ..self }
    }

    pub fn padding(self, low: i64, high: i64) -> WindowDim {
        WindowDim {
            padding_low: low,
            padding_high: high,
            ..self
        }
    }

    pub fn window_dilation(self, d: i64) -> WindowDim {
        WindowDim {
            window_dilation: d,
            ..self
        }
    }

    pub fn base_dilation(self, d: i64) -> WindowDim {
        WindowDim {
            base_dilation: d,
            ..self
        }
    }

    /// Output size of this window over an input of `input` elements, or `None` when invalid.
    pub fn output_size(&self, input: i64) -> Option<i64> {
        if self.size < 1 || self.stride < 1 || self.window_dilation < 1 || self.base_dilation < 1 {
            return None;
        }
        let dilated_input = if input == 0 {
            0
        } else {
            (input - 1) * self.base_dilation + 1
        };
        let padded = dilated_input + self.padding_low + self.padding_high;
        let window = (self.size - 1) * self.window_dilation + 1;
        if padded < 0 {
            return None;
        }
        Some(if padded < window {
            0
        } else {
            (padded - window) / self.stride + 1
        })
    }
}

/// TF/XLA `SAME` padding for one spatial dimension: the output has `ceil(input/stride)` elements and
/// any odd total padding goes to the high side (TF's rule; timm's `get_same_padding`).
pub fn same_padding(input: i64, kernel: i64, stride: i64, dilation: i64) -> (i64, i64) {
    let out = (input + stride - 1) / stride;
    let total = ((out - 1) * stride + (kernel - 1) * dilation + 1 - input).max(0);
    (total / 2, total - total / 2)
}

/// Which operand dimensions play which role in a convolution.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConvDimensionNumbers {
    pub input_batch: i64,
    pub input_feature: i64,
    pub input_spatial: Vec<i64>,
    pub kernel_input_feature: i64,
    pub kernel_output_feature: i64,
    pub kernel_spatial: Vec<i64>,
    pub output_batch: i64,
    pub output_feature: i64,
    pub output_spatial: Vec<i64>,
}

impl ConvDimensionNumbers {
    /// NHWC input, HWIO kernel, NHWC output: the layout the model uses throughout.
    pub fn nhwc() -> ConvDimensionNumbers {
        ConvDimensionNumbers::canonical(2)
    }

    /// The canonical form with `spatial` spatial dimensions: input and output
    /// `[batch, spatial.., feature]`, kernel `[spatial.., in, out]` (NHWC/HWIO for two).
    pub fn canonical(spatial: usize) -> ConvDimensionNumbers {
        let n = spatial as i64;
        ConvDimensionNumbers {
            input_batch: 0,
            input_feature: n + 1,
            input_spatial: (1..=n).collect(),
            kernel_input_feature: n,
            kernel_output_feature: n + 1,
            kernel_spatial: (0..n).collect(),
            output_batch: 0,
            output_feature: n + 1,
            output_spatial: (1..=n).collect(),
        }
    }

    /// NCHW input, OIHW kernel, NCHW output.
    pub fn nchw() -> ConvDimensionNumbers {
        ConvDimensionNumbers {
            input_batch: 0,
            input_feature: 1,
            input_spatial: vec![2, 3],
            kernel_input_feature: 1,
            kernel_output_feature: 0,
            kernel_spatial: vec![2, 3],
            output_batch: 0,
            output_feature: 1,
            output_spatial: vec![2, 3],
        }
    }

    /// XLA's `dim_labels` text, e.g. `b01f_01io->b01f`.
    pub fn labels(&self) -> String {
        fn label(rank: usize, roles: &[(i64, char)], spatial: &[i64]) -> String {
            let mut chars = vec!['?'; rank];
            for &(d, c) in roles {
                chars[d as usize] = c;
            }
            for (i, &d) in spatial.iter().enumerate() {
                chars[d as usize] = char::from_digit(i as u32, 10).unwrap_or('?');
            }
            chars.into_iter().collect()
        }
        let rank = self.input_spatial.len() + 2;
        format!(
            "{}_{}->{}",
            label(
                rank,
                &[(self.input_batch, 'b'), (self.input_feature, 'f')],
                &self.input_spatial
            ),
            label(
                rank,
                &[
                    (self.kernel_input_feature, 'i'),
                    (self.kernel_output_feature, 'o')
                ],
                &self.kernel_spatial
            ),
            label(
                rank,
                &[(self.output_batch, 'b'), (self.output_feature, 'f')],
                &self.output_spatial
            ),
        )
    }
}

/// Contracting and batch dimensions of a dot-general.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DotDimensionNumbers {
    pub lhs_contracting: Vec<i64>,
    pub rhs_contracting: Vec<i64>,
    pub lhs_batch: Vec<i64>,
    pub rhs_batch: Vec<i64>,
}

/// How a gather reads its operand (XLA's `GatherDimensionNumbers`, without the batching
/// dimensions, which nothing here uses). Each index vector of `start_indices` (its dimension
/// `index_vector_dim`; equal to the indices' rank for scalar indices) holds the start of one
/// slice in the operand dimensions `start_index_map`; the slice's `collapsed_slice_dims` (of size
/// 1) are dropped and its other dimensions become the result's `offset_dims`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GatherDimensionNumbers {
    pub offset_dims: Vec<i64>,
    pub collapsed_slice_dims: Vec<i64>,
    pub start_index_map: Vec<i64>,
    pub index_vector_dim: i64,
}

/// Padding of one dimension: `low` and `high` may be negative (cropping); `interior` >= 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PadDim {
    pub low: i64,
    pub high: i64,
    pub interior: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RandomAlgorithm {
    Default = 0,
    ThreeFry = 1,
    Philox = 2,
}

impl RandomAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            RandomAlgorithm::Default => "rng_default",
            RandomAlgorithm::ThreeFry => "rng_three_fry",
            RandomAlgorithm::Philox => "rng_philox",
        }
    }
}

/// Literals with more elements than this print as `{...}` (XLA does the same for big constants).
const MAX_PRINTED_ELEMENTS: usize = 64;

/// One attribute of an instruction, in the order HLO text prints it. Each variant's doc gives its
/// text form, then (after `;`) the proto fields it sets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Attribute<'a> {
    /// `parameter(n)` in place of operands; `parameter_number`.
    ParameterNumber(i64),
    /// `constant(..)` in place of operands; `literal`.
    Literal(&'a Literal),
    /// `iota_dimension=d`; `dimensions = [d]`.
    IotaDimension(i64),
    /// `dimensions={..}`; `dimensions`.
    Dimensions(&'a [i64]),
    /// `slice={[start:limit:stride], ..}`; `slice_dimensions`.
    Slice {
        start: &'a [i64],
        limit: &'a [i64],
        stride: &'a [i64],
    },
    /// `dynamic_slice_sizes={..}`; `dynamic_slice_sizes`.
    DynamicSliceSizes(&'a [i64]),
    /// `padding=low_high[_interior]x..`; `padding_config`.
    Padding(&'a [PadDim]),
    /// `direction=LT`; `comparison_direction`, and `comparison_type` from operand 0's type.
    Comparison(ComparisonDirection),
    /// `window={size=.. stride=.. pad=.. lhs_dilate=.. rhs_dilate=..}` (fields at their defaults
    /// omitted; an empty window is printed only with `print_empty`, as XLA prints a
    /// reduce-window's but not a convolution's); `window`.
    Window {
        window: &'a [WindowDim],
        print_empty: bool,
    },
    /// `dim_labels=b01f_01io->b01f`; `convolution_dimension_numbers`.
    ConvolutionDimensions(&'a ConvDimensionNumbers),
    /// `feature_group_count=n` unless 1; `feature_group_count`.
    FeatureGroupCount(i64),
    /// `batch_group_count=n` unless 1; `batch_group_count`.
    BatchGroupCount(i64),
    /// `lhs_batch_dims={..}` (if any), `lhs_contracting_dims={..}`, the same for `rhs`;
    /// `dot_dimension_numbers`.
    DotDimensions(&'a DotDimensionNumbers),
    /// `offset_dims={..}, collapsed_slice_dims={..}, start_index_map={..}, index_vector_dim=d`;
    /// `gather_dimension_numbers`.
    GatherDimensions(&'a GatherDimensionNumbers),
    /// `slice_sizes={..}`; `gather_slice_sizes`.
    GatherSliceSizes(&'a [i64]),
    /// Nothing in text; `precision_config` with the default precision for both operands.
    DefaultPrecision,
    /// `index=i`; `tuple_index`.
    TupleIndex(i64),
    /// `algorithm=rng_three_fry`; `rng_algorithm`.
    RngAlgorithm(RandomAlgorithm),
    /// `replica_groups={{0,1},{2,3}}`; `replica_groups`.
    ReplicaGroups(&'a [Vec<i64>]),
    /// `key=%callee` (e.g. `to_apply`); one `called_computation_ids` entry.
    Call {
        key: &'static str,
        callee: ComputationId,
    },
    /// `condition=%c, body=%b`; `called_computation_ids` body first (XLA's while keeps the body at
    /// index 0).
    Loop {
        condition: ComputationId,
        body: ComputationId,
    },
    /// `true_computation=%t, false_computation=%f` when operand 0 is a pred (the only form XLA's
    /// parser takes for it), else `branch_computations={..}`; `called_computation_ids`.
    Branches(&'a [ComputationId]),
}

/// Where an attribute appears in an instruction's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttributeText {
    /// Inside the parentheses, in place of the operand list (`parameter(0)`, `constant(1.5)`).
    InParentheses(String),
    /// `name=value` entries after the operand list (none when every field holds its default).
    Named(Vec<String>),
}

impl Attribute<'_> {
    /// The computations this attribute calls, in XLA's `called_computations` order.
    pub fn callees(&self) -> Vec<ComputationId> {
        match *self {
            Attribute::Call { callee, .. } => vec![callee],
            Attribute::Loop { condition, body } => vec![body, condition],
            Attribute::Branches(branches) => branches.to_vec(),
            Attribute::ParameterNumber(_)
            | Attribute::Literal(_)
            | Attribute::IotaDimension(_)
            | Attribute::Dimensions(_)
            | Attribute::Slice { .. }
            | Attribute::DynamicSliceSizes(_)
            | Attribute::Padding(_)
            | Attribute::Comparison(_)
            | Attribute::Window { .. }
            | Attribute::ConvolutionDimensions(_)
            | Attribute::FeatureGroupCount(_)
            | Attribute::BatchGroupCount(_)
            | Attribute::DotDimensions(_)
            | Attribute::GatherDimensions(_)
            | Attribute::GatherSliceSizes(_)
            | Attribute::DefaultPrecision
            | Attribute::TupleIndex(_)
            | Attribute::RngAlgorithm(_)
            | Attribute::ReplicaGroups(_) => Vec::new(),
        }
    }

    /// The attribute in HLO text; `operands` are the instruction's operand shapes and `callee`
    /// names a called computation.
    pub fn text(
        &self,
        operands: &[&Shape],
        callee: &dyn Fn(ComputationId) -> String,
    ) -> AttributeText {
        let named = |entries: Vec<String>| AttributeText::Named(entries);
        let one = |entry: String| AttributeText::Named(vec![entry]);
        let call = |key: &str, id| format!("{key}={}", callee(id));
        match *self {
            Attribute::ParameterNumber(number) => AttributeText::InParentheses(number.to_string()),
            Attribute::Literal(lit) => AttributeText::InParentheses(literal_text(lit)),
            Attribute::IotaDimension(d) => one(format!("iota_dimension={d}")),
            Attribute::Dimensions(dims) => one(format!("dimensions={{{}}}", join(dims))),
            Attribute::Slice {
                start,
                limit,
                stride,
            } => {
                let dims: Vec<String> = (0..start.len())
                    .map(|d| format!("[{}:{}:{}]", start[d], limit[d], stride[d]))
                    .collect();
                one(format!("slice={{{}}}", dims.join(", ")))
            }
            Attribute::DynamicSliceSizes(sizes) => {
                one(format!("dynamic_slice_sizes={{{}}}", join(sizes)))
            }
            Attribute::Padding(config) => one(padding_text(config)),
            Attribute::Comparison(direction) => one(format!("direction={}", direction.name())),
            Attribute::Window {
                window,
                print_empty,
            } => named(if window.is_empty() && !print_empty {
                Vec::new()
            } else {
                vec![window_text(window)]
            }),
            Attribute::ConvolutionDimensions(dn) => one(format!("dim_labels={}", dn.labels())),
            Attribute::FeatureGroupCount(n) => {
                named(unless_one(n, || format!("feature_group_count={n}")))
            }
            Attribute::BatchGroupCount(n) => {
                named(unless_one(n, || format!("batch_group_count={n}")))
            }
            Attribute::DotDimensions(dn) => named(dot_dimensions_text(dn)),
            Attribute::GatherDimensions(dn) => named(vec![
                format!("offset_dims={{{}}}", join(&dn.offset_dims)),
                format!(
                    "collapsed_slice_dims={{{}}}",
                    join(&dn.collapsed_slice_dims)
                ),
                format!("start_index_map={{{}}}", join(&dn.start_index_map)),
                format!("index_vector_dim={}", dn.index_vector_dim),
            ]),
            Attribute::GatherSliceSizes(sizes) => one(format!("slice_sizes={{{}}}", join(sizes))),
            Attribute::DefaultPrecision => named(Vec::new()),
            Attribute::TupleIndex(index) => one(format!("index={index}")),
            Attribute::RngAlgorithm(algorithm) => one(format!("algorithm={}", algorithm.name())),
            Attribute::ReplicaGroups(groups) => {
                let groups: Vec<String> =
                    groups.iter().map(|g| format!("{{{}}}", join(g))).collect();
                one(format!("replica_groups={{{}}}", groups.join(",")))
            }
            Attribute::Call { key, callee } => one(call(key, callee)),
            Attribute::Loop { condition, body } => {
                named(vec![call("condition", condition), call("body", body)])
            }
            Attribute::Branches(branches) if operands.first().is_some_and(|s| is_pred(s)) => {
                named(vec![
                    call("true_computation", branches[0]),
                    call("false_computation", branches[1]),
                ])
            }
            Attribute::Branches(branches) => {
                let names: Vec<String> = branches.iter().map(|&b| callee(b)).collect();
                one(format!("branch_computations={{{}}}", names.join(", ")))
            }
        }
    }

    /// Sets the attribute's fields of `p`; `operands` are the instruction's operand shapes and
    /// `computation_id` numbers a called computation as the module proto does.
    pub fn encode(
        &self,
        p: &mut pb::HloInstructionProto,
        operands: &[&Shape],
        computation_id: &dyn Fn(ComputationId) -> i64,
    ) {
        p.called_computation_ids
            .extend(self.callees().into_iter().map(computation_id));
        match *self {
            Attribute::ParameterNumber(number) => p.parameter_number = number,
            Attribute::Literal(lit) => p.literal = Some(literal_proto(lit)),
            Attribute::IotaDimension(d) => p.dimensions = vec![d],
            Attribute::Dimensions(dims) => p.dimensions = dims.to_vec(),
            Attribute::Slice {
                start,
                limit,
                stride,
            } => {
                p.slice_dimensions = (0..start.len())
                    .map(|d| pb::SliceDimensions {
                        start: start[d],
                        limit: limit[d],
                        stride: stride[d],
                    })
                    .collect()
            }
            Attribute::DynamicSliceSizes(sizes) => p.dynamic_slice_sizes = sizes.to_vec(),
            Attribute::Padding(config) => {
                p.padding_config = Some(pb::PaddingConfig {
                    dimensions: config
                        .iter()
                        .map(|d| pb::PaddingConfigDimension {
                            edge_padding_low: d.low,
                            edge_padding_high: d.high,
                            interior_padding: d.interior,
                        })
                        .collect(),
                })
            }
            Attribute::Comparison(direction) => {
                p.comparison_direction = direction.name().to_string();
                if let Some(a) = operands.first().and_then(|s| s.as_array()) {
                    p.comparison_type = comparison_type(a.ty()).to_string();
                }
            }
            Attribute::Window { window, .. } => p.window = Some(window_proto(window)),
            Attribute::ConvolutionDimensions(dn) => {
                p.convolution_dimension_numbers = Some(pb::ConvolutionDimensionNumbers {
                    input_batch_dimension: dn.input_batch,
                    input_feature_dimension: dn.input_feature,
                    input_spatial_dimensions: dn.input_spatial.clone(),
                    kernel_input_feature_dimension: dn.kernel_input_feature,
                    kernel_output_feature_dimension: dn.kernel_output_feature,
                    kernel_spatial_dimensions: dn.kernel_spatial.clone(),
                    output_batch_dimension: dn.output_batch,
                    output_feature_dimension: dn.output_feature,
                    output_spatial_dimensions: dn.output_spatial.clone(),
                })
            }
            Attribute::FeatureGroupCount(n) => p.feature_group_count = n,
            Attribute::BatchGroupCount(n) => p.batch_group_count = n,
            Attribute::DotDimensions(dn) => {
                p.dot_dimension_numbers = Some(pb::DotDimensionNumbers {
                    lhs_contracting_dimensions: dn.lhs_contracting.clone(),
                    rhs_contracting_dimensions: dn.rhs_contracting.clone(),
                    lhs_batch_dimensions: dn.lhs_batch.clone(),
                    rhs_batch_dimensions: dn.rhs_batch.clone(),
                })
            }
            Attribute::GatherDimensions(dn) => {
                p.gather_dimension_numbers = Some(pb::GatherDimensionNumbers {
                    offset_dims: dn.offset_dims.clone(),
                    collapsed_slice_dims: dn.collapsed_slice_dims.clone(),
                    start_index_map: dn.start_index_map.clone(),
                    index_vector_dim: dn.index_vector_dim,
                })
            }
            Attribute::GatherSliceSizes(sizes) => p.gather_slice_sizes = sizes.to_vec(),
            Attribute::DefaultPrecision => {
                p.precision_config = Some(pb::PrecisionConfig {
                    operand_precision: vec![pb::Precision::Default as i32; 2],
                })
            }
            Attribute::TupleIndex(index) => p.tuple_index = index,
            Attribute::RngAlgorithm(algorithm) => p.rng_algorithm = algorithm as i32,
            Attribute::ReplicaGroups(groups) => {
                p.replica_groups = groups
                    .iter()
                    .map(|g| pb::ReplicaGroup {
                        replica_ids: g.clone(),
                    })
                    .collect()
            }
            Attribute::Call { .. } | Attribute::Loop { .. } | Attribute::Branches(_) => {}
        }
    }
}

/// XLA's padding text: `low_high` per dimension (`low_high_interior` with interior padding),
/// joined by `x`.
fn padding_text(config: &[PadDim]) -> String {
    let dims: Vec<String> = config
        .iter()
        .map(|p| {
            if p.interior == 0 {
                format!("{}_{}", p.low, p.high)
            } else {
                format!("{}_{}_{}", p.low, p.high, p.interior)
            }
        })
        .collect();
    format!("padding={}", dims.join("x"))
}

/// A dot's dimension numbers as XLA prints them; batch dimensions only when there are some.
fn dot_dimensions_text(dn: &DotDimensionNumbers) -> Vec<String> {
    let mut entries = Vec::new();
    if !dn.lhs_batch.is_empty() {
        entries.push(format!("lhs_batch_dims={{{}}}", join(&dn.lhs_batch)));
    }
    entries.push(format!(
        "lhs_contracting_dims={{{}}}",
        join(&dn.lhs_contracting)
    ));
    if !dn.rhs_batch.is_empty() {
        entries.push(format!("rhs_batch_dims={{{}}}", join(&dn.rhs_batch)));
    }
    entries.push(format!(
        "rhs_contracting_dims={{{}}}",
        join(&dn.rhs_contracting)
    ));
    entries
}

/// `entry()` as the only entry, or none when `n` is 1 (XLA omits group counts of 1).
fn unless_one(n: i64, entry: impl FnOnce() -> String) -> Vec<String> {
    if n == 1 {
        Vec::new()
    } else {
        vec![entry()]
    }
}

fn is_pred(shape: &Shape) -> bool {
    shape
        .as_array()
        .is_some_and(|a| a.ty() == ElementType::Pred)
}

/// The comparison semantics XLA records next to a direction; derived from the operand type.
fn comparison_type(ty: ElementType) -> &'static str {
    if ty.is_float() {
        "FLOAT"
    } else if ty.is_signed_int() {
        "SIGNED"
    } else {
        "UNSIGNED"
    }
}

/// XLA's window text: `size=3x3 stride=2x2 pad=0_1x0_1 lhs_dilate=.. rhs_dilate=..`, omitting
/// fields that hold their defaults.
fn window_text(window: &[WindowDim]) -> String {
    let field =
        |f: &dyn Fn(&WindowDim) -> String| window.iter().map(f).collect::<Vec<_>>().join("x");
    let mut parts = vec![format!("size={}", field(&|w| w.size.to_string()))];
    if window.iter().any(|w| w.stride != 1) {
        parts.push(format!("stride={}", field(&|w| w.stride.to_string())));
    }
    if window
        .iter()
        .any(|w| w.padding_low != 0 || w.padding_high != 0)
    {
        parts.push(format!(
            "pad={}",
            field(&|w| format!("{}_{}", w.padding_low, w.padding_high))
        ));
    }
    if window.iter().any(|w| w.base_dilation != 1) {
        parts.push(format!(
            "lhs_dilate={}",
            field(&|w| w.base_dilation.to_string())
        ));
    }
    if window.iter().any(|w| w.window_dilation != 1) {
        parts.push(format!(
            "rhs_dilate={}",
            field(&|w| w.window_dilation.to_string())
        ));
    }
    format!("window={{{}}}", parts.join(" "))
}

fn window_proto(window: &[WindowDim]) -> pb::Window {
    pb::Window {
        dimensions: window
            .iter()
            .map(|w| pb::WindowDimension {
                size: w.size,
                stride: w.stride,
                padding_low: w.padding_low,
                padding_high: w.padding_high,
                window_dilation: w.window_dilation,
                base_dilation: w.base_dilation,
                window_reversal: false,
            })
            .collect(),
    }
}

/// A literal in HLO text: `1.5` for a scalar, nested braces for arrays.
fn literal_text(lit: &Literal) -> String {
    let dims = lit.shape().dims();
    let count = lit.shape().element_count() as usize;
    if count > MAX_PRINTED_ELEMENTS {
        return "{...}".into();
    }
    let values = element_texts(lit);
    if dims.is_empty() {
        return values[0].clone();
    }
    fn nest(values: &[String], dims: &[i64]) -> String {
        if dims.len() == 1 {
            return format!("{{{}}}", values.join(", "));
        }
        let inner = values.len() / dims[0].max(1) as usize;
        let parts: Vec<String> = if inner == 0 {
            Vec::new()
        } else {
            values.chunks(inner).map(|c| nest(c, &dims[1..])).collect()
        };
        format!("{{ {} }}", parts.join(", "))
    }
    nest(&values, dims)
}

/// Each element in HLO text; integers print exactly, floats in Rust's shortest round-trip form.
fn element_texts(lit: &Literal) -> Vec<String> {
    fn ints<T: NativeType + std::fmt::Display>(b: &[u8]) -> Vec<String> {
        from_bytes::<T>(b).iter().map(T::to_string).collect()
    }
    let b = lit.bytes();
    match lit.ty() {
        ElementType::Pred => from_bytes::<bool>(b).iter().map(bool::to_string).collect(),
        ElementType::S8 => ints::<i8>(b),
        ElementType::S32 => ints::<i32>(b),
        ElementType::S64 => ints::<i64>(b),
        ElementType::U8 => ints::<u8>(b),
        ElementType::U32 => ints::<u32>(b),
        ElementType::U64 => ints::<u64>(b),
        // Half and single precision print at f32 precision so that 0.1 stays `0.1`.
        ElementType::F16 | ElementType::Bf16 | ElementType::F32 => lit
            .to_f64_vec()
            .into_iter()
            .map(|v| float_text(v, format!("{:?}", v as f32)))
            .collect(),
        ElementType::F64 => lit
            .to_f64_vec()
            .into_iter()
            .map(|v| float_text(v, format!("{v:?}")))
            .collect(),
    }
}

fn float_text(v: f64, finite: String) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        finite
    }
}
