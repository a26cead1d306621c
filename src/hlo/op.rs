//! The HLO instruction set this crate emits: one enum variant per opcode with its attributes.
//!
//! Everything the HLO layer knows about an op besides its shape rule lives here, each in one
//! exhaustive `match` so that a new variant does not compile until every question is answered:
//! its opcode ([`Op::opcode`]), its attributes ([`Op::attributes`], from which the text printer
//! and the proto encoder both work), the computations it calls ([`Op::with_callees`]) and whether
//! passes may merge it ([`Op::has_side_effects`]). The shape rule lives with the op's builder
//! method in `ops/`, its gradient rule in `autodiff::rules`; `docs/adding-an-op.md` walks through
//! all four places.

use super::attribute::Attribute;
use super::element::ElementType;
use super::literal::Literal;

/// Index of a computation inside a [`super::Module`] (callee order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComputationId(pub(crate) u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Negate,
    Abs,
    Sign,
    Exp,
    Expm1,
    Log,
    Log1p,
    Sqrt,
    Rsqrt,
    Tanh,
    Logistic,
    Floor,
    Ceil,
    /// Round half away from zero (`round-nearest-afz`).
    Round,
    IsFinite,
    Not,
    Cos,
    Sin,
}

impl UnaryOp {
    pub fn opcode(self) -> &'static str {
        match self {
            UnaryOp::Negate => "negate",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Exp => "exponential",
            UnaryOp::Expm1 => "exponential-minus-one",
            UnaryOp::Log => "log",
            UnaryOp::Log1p => "log-plus-one",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Logistic => "logistic",
            UnaryOp::Floor => "floor",
            UnaryOp::Ceil => "ceil",
            UnaryOp::Round => "round-nearest-afz",
            UnaryOp::IsFinite => "is-finite",
            UnaryOp::Not => "not",
            UnaryOp::Cos => "cosine",
            UnaryOp::Sin => "sine",
        }
    }

    /// The element types the op is defined on.
    pub fn domain(self) -> Domain {
        match self {
            UnaryOp::Negate | UnaryOp::Abs | UnaryOp::Sign => Domain::Numeric,
            UnaryOp::Not => Domain::PredOrInteger,
            UnaryOp::Exp
            | UnaryOp::Expm1
            | UnaryOp::Log
            | UnaryOp::Log1p
            | UnaryOp::Sqrt
            | UnaryOp::Rsqrt
            | UnaryOp::Tanh
            | UnaryOp::Logistic
            | UnaryOp::Floor
            | UnaryOp::Ceil
            | UnaryOp::Round
            | UnaryOp::IsFinite
            | UnaryOp::Cos
            | UnaryOp::Sin => Domain::Float,
        }
    }

    /// The element type of the result for an operand of type `operand`: the operand's own, or
    /// `pred` for a predicate.
    pub fn result_type(self, operand: ElementType) -> ElementType {
        match self {
            UnaryOp::IsFinite => ElementType::Pred,
            UnaryOp::Negate
            | UnaryOp::Abs
            | UnaryOp::Sign
            | UnaryOp::Exp
            | UnaryOp::Expm1
            | UnaryOp::Log
            | UnaryOp::Log1p
            | UnaryOp::Sqrt
            | UnaryOp::Rsqrt
            | UnaryOp::Tanh
            | UnaryOp::Logistic
            | UnaryOp::Floor
            | UnaryOp::Ceil
            | UnaryOp::Round
            | UnaryOp::Not
            | UnaryOp::Cos
            | UnaryOp::Sin => operand,
        }
    }
}

/// The element types an elementwise op is defined on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Domain {
    Float,
    /// Integers and floats.
    Numeric,
    Integer,
    /// Booleans and integers (bitwise logic).
    PredOrInteger,
}

impl Domain {
    pub fn contains(self, ty: ElementType) -> bool {
        match self {
            Domain::Float => ty.is_float(),
            Domain::Numeric => ty.is_numeric(),
            Domain::Integer => ty.is_integer(),
            Domain::PredOrInteger => ty == ElementType::Pred || ty.is_integer(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Subtract,
    Multiply,
    Divide,
    Maximum,
    Minimum,
    Power,
    Remainder,
    Atan2,
    And,
    Or,
    Xor,
    ShiftLeft,
    ShiftRightLogical,
}

impl BinaryOp {
    pub fn opcode(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Subtract => "subtract",
            BinaryOp::Multiply => "multiply",
            BinaryOp::Divide => "divide",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
            BinaryOp::Power => "power",
            BinaryOp::Remainder => "remainder",
            BinaryOp::Atan2 => "atan2",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Xor => "xor",
            BinaryOp::ShiftLeft => "shift-left",
            BinaryOp::ShiftRightLogical => "shift-right-logical",
        }
    }

    /// The element types the op is defined on.
    pub fn domain(self) -> Domain {
        match self {
            BinaryOp::Add
            | BinaryOp::Subtract
            | BinaryOp::Multiply
            | BinaryOp::Divide
            | BinaryOp::Maximum
            | BinaryOp::Minimum
            | BinaryOp::Power
            | BinaryOp::Remainder => Domain::Numeric,
            BinaryOp::Atan2 => Domain::Float,
            BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => Domain::PredOrInteger,
            BinaryOp::ShiftLeft | BinaryOp::ShiftRightLogical => Domain::Integer,
        }
    }

    /// Whether `op(a, b) == op(b, a)`, so that passes may ignore operand order.
    pub fn is_commutative(self) -> bool {
        match self {
            BinaryOp::Add
            | BinaryOp::Multiply
            | BinaryOp::Maximum
            | BinaryOp::Minimum
            | BinaryOp::And
            | BinaryOp::Or
            | BinaryOp::Xor => true,
            BinaryOp::Subtract
            | BinaryOp::Divide
            | BinaryOp::Power
            | BinaryOp::Remainder
            | BinaryOp::Atan2
            | BinaryOp::ShiftLeft
            | BinaryOp::ShiftRightLogical => false,
        }
    }
}

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

/// Readable provenance of an instruction, printed as `metadata={op_type=... op_name=...}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Metadata {
    /// The kind of layer or rule that emitted the op, e.g. `conv2d` or `grad/convolution`.
    pub op_type: String,
    /// The hierarchical scope, e.g. `blocks/3/expand/conv`.
    pub op_name: String,
}

/// One HLO instruction's opcode and attributes. Operands are stored on the instruction.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Parameter {
        number: i64,
        name: String,
    },
    Constant(Literal),
    Iota {
        dimension: i64,
    },
    Convert,
    BitcastConvert,
    Broadcast {
        dimensions: Vec<i64>,
    },
    Reshape,
    Transpose {
        permutation: Vec<i64>,
    },
    Slice {
        start: Vec<i64>,
        limit: Vec<i64>,
        stride: Vec<i64>,
    },
    DynamicSlice {
        sizes: Vec<i64>,
    },
    DynamicUpdateSlice,
    Pad {
        config: Vec<PadDim>,
    },
    Concatenate {
        dimension: i64,
    },
    Reverse {
        dimensions: Vec<i64>,
    },
    Select,
    Clamp,
    Compare {
        direction: ComparisonDirection,
    },
    Unary(UnaryOp),
    Binary(BinaryOp),
    Reduce {
        dimensions: Vec<i64>,
        reducer: ComputationId,
    },
    ReduceWindow {
        window: Vec<WindowDim>,
        reducer: ComputationId,
    },
    SelectAndScatter {
        window: Vec<WindowDim>,
        select: ComputationId,
        scatter: ComputationId,
    },
    Convolution {
        window: Vec<WindowDim>,
        dimension_numbers: ConvDimensionNumbers,
        feature_group_count: i64,
        batch_group_count: i64,
    },
    Dot {
        dimension_numbers: DotDimensionNumbers,
    },
    Tuple,
    GetTupleElement {
        index: i64,
    },
    RngBitGenerator {
        algorithm: RandomAlgorithm,
    },
    While {
        condition: ComputationId,
        body: ComputationId,
    },
    Conditional {
        branches: Vec<ComputationId>,
    },
    AllReduce {
        replica_groups: Vec<Vec<i64>>,
        reducer: ComputationId,
    },
    /// The index of the replica running the program (u32 scalar).
    ReplicaId,
}

impl Op {
    /// XLA's opcode string, as printed in HLO text and stored in `HloInstructionProto.opcode`.
    pub fn opcode(&self) -> &'static str {
        match self {
            Op::Parameter { .. } => "parameter",
            Op::Constant(_) => "constant",
            Op::Iota { .. } => "iota",
            Op::Convert => "convert",
            Op::BitcastConvert => "bitcast-convert",
            Op::Broadcast { .. } => "broadcast",
            Op::Reshape => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Slice { .. } => "slice",
            Op::DynamicSlice { .. } => "dynamic-slice",
            Op::DynamicUpdateSlice => "dynamic-update-slice",
            Op::Pad { .. } => "pad",
            Op::Concatenate { .. } => "concatenate",
            Op::Reverse { .. } => "reverse",
            Op::Select => "select",
            Op::Clamp => "clamp",
            Op::Compare { .. } => "compare",
            Op::Unary(u) => u.opcode(),
            Op::Binary(b) => b.opcode(),
            Op::Reduce { .. } => "reduce",
            Op::ReduceWindow { .. } => "reduce-window",
            Op::SelectAndScatter { .. } => "select-and-scatter",
            Op::Convolution { .. } => "convolution",
            Op::Dot { .. } => "dot",
            Op::Tuple => "tuple",
            Op::GetTupleElement { .. } => "get-tuple-element",
            Op::RngBitGenerator { .. } => "rng-bit-generator",
            Op::While { .. } => "while",
            Op::Conditional { .. } => "conditional",
            Op::AllReduce { .. } => "all-reduce",
            Op::ReplicaId => "replica-id",
        }
    }

    /// The op's attributes in HLO text order: what the printer prints after (or, for parameters
    /// and constants, instead of) the operands and what the encoder stores in the proto.
    pub fn attributes(&self) -> Vec<Attribute<'_>> {
        let to_apply = |reducer: &ComputationId| Attribute::Call {
            key: "to_apply",
            callee: *reducer,
        };
        match self {
            Op::Parameter { number, .. } => vec![Attribute::ParameterNumber(*number)],
            Op::Constant(literal) => vec![Attribute::Literal(literal)],
            Op::Iota { dimension } => vec![Attribute::IotaDimension(*dimension)],
            Op::Broadcast { dimensions } => vec![Attribute::Dimensions(dimensions)],
            Op::Transpose { permutation } => vec![Attribute::Dimensions(permutation)],
            Op::Slice {
                start,
                limit,
                stride,
            } => vec![Attribute::Slice {
                start,
                limit,
                stride,
            }],
            Op::DynamicSlice { sizes } => vec![Attribute::DynamicSliceSizes(sizes)],
            Op::Pad { config } => vec![Attribute::Padding(config)],
            Op::Concatenate { dimension } => {
                vec![Attribute::Dimensions(std::slice::from_ref(dimension))]
            }
            Op::Reverse { dimensions } => vec![Attribute::Dimensions(dimensions)],
            Op::Compare { direction } => vec![Attribute::Comparison(*direction)],
            Op::Reduce {
                dimensions,
                reducer,
            } => vec![Attribute::Dimensions(dimensions), to_apply(reducer)],
            Op::ReduceWindow { window, reducer } => vec![
                Attribute::Window {
                    window,
                    print_empty: true,
                },
                to_apply(reducer),
            ],
            Op::SelectAndScatter {
                window,
                select,
                scatter,
            } => vec![
                Attribute::Window {
                    window,
                    print_empty: true,
                },
                Attribute::Call {
                    key: "select",
                    callee: *select,
                },
                Attribute::Call {
                    key: "scatter",
                    callee: *scatter,
                },
            ],
            Op::Convolution {
                window,
                dimension_numbers,
                feature_group_count,
                batch_group_count,
            } => vec![
                Attribute::Window {
                    window,
                    print_empty: false,
                },
                Attribute::ConvolutionDimensions(dimension_numbers),
                Attribute::FeatureGroupCount(*feature_group_count),
                Attribute::BatchGroupCount(*batch_group_count),
                Attribute::DefaultPrecision,
            ],
            Op::Dot { dimension_numbers } => vec![
                Attribute::DotDimensions(dimension_numbers),
                Attribute::DefaultPrecision,
            ],
            Op::GetTupleElement { index } => vec![Attribute::TupleIndex(*index)],
            Op::RngBitGenerator { algorithm } => vec![Attribute::RngAlgorithm(*algorithm)],
            Op::While { condition, body } => vec![Attribute::Loop {
                condition: *condition,
                body: *body,
            }],
            Op::Conditional { branches } => vec![Attribute::Branches(branches)],
            Op::AllReduce {
                replica_groups,
                reducer,
            } => vec![Attribute::ReplicaGroups(replica_groups), to_apply(reducer)],
            Op::Convert
            | Op::BitcastConvert
            | Op::Reshape
            | Op::DynamicUpdateSlice
            | Op::Select
            | Op::Clamp
            | Op::Unary(_)
            | Op::Binary(_)
            | Op::Tuple
            | Op::ReplicaId => Vec::new(),
        }
    }

    /// The computations this op calls, in XLA's `called_computations` order.
    pub fn called_computations(&self) -> Vec<ComputationId> {
        self.attributes()
            .iter()
            .flat_map(Attribute::callees)
            .collect()
    }

    /// The op with each called computation `id` replaced by `f(id)` (how a pass points an op at
    /// an equal computation).
    pub fn with_callees(&self, f: impl Fn(ComputationId) -> ComputationId) -> Op {
        let mut op = self.clone();
        let callees: Vec<&mut ComputationId> = match &mut op {
            Op::Reduce { reducer, .. }
            | Op::ReduceWindow { reducer, .. }
            | Op::AllReduce { reducer, .. } => vec![reducer],
            Op::SelectAndScatter {
                select, scatter, ..
            } => vec![select, scatter],
            Op::While { condition, body } => vec![condition, body],
            Op::Conditional { branches } => branches.iter_mut().collect(),
            Op::Parameter { .. }
            | Op::Constant(_)
            | Op::Iota { .. }
            | Op::Convert
            | Op::BitcastConvert
            | Op::Broadcast { .. }
            | Op::Reshape
            | Op::Transpose { .. }
            | Op::Slice { .. }
            | Op::DynamicSlice { .. }
            | Op::DynamicUpdateSlice
            | Op::Pad { .. }
            | Op::Concatenate { .. }
            | Op::Reverse { .. }
            | Op::Select
            | Op::Clamp
            | Op::Compare { .. }
            | Op::Unary(_)
            | Op::Binary(_)
            | Op::Convolution { .. }
            | Op::Dot { .. }
            | Op::Tuple
            | Op::GetTupleElement { .. }
            | Op::RngBitGenerator { .. }
            | Op::ReplicaId => Vec::new(),
        };
        for id in callees {
            *id = f(*id);
        }
        op
    }

    /// Ops whose result is not a pure function of their operands' values (never merged by CSE):
    /// parameters, and collectives, whose result depends on the other replicas.
    pub fn has_side_effects(&self) -> bool {
        match self {
            Op::Parameter { .. } | Op::AllReduce { .. } => true,
            Op::Constant(_)
            | Op::Iota { .. }
            | Op::Convert
            | Op::BitcastConvert
            | Op::Broadcast { .. }
            | Op::Reshape
            | Op::Transpose { .. }
            | Op::Slice { .. }
            | Op::DynamicSlice { .. }
            | Op::DynamicUpdateSlice
            | Op::Pad { .. }
            | Op::Concatenate { .. }
            | Op::Reverse { .. }
            | Op::Select
            | Op::Clamp
            | Op::Compare { .. }
            | Op::Unary(_)
            | Op::Binary(_)
            | Op::Reduce { .. }
            | Op::ReduceWindow { .. }
            | Op::SelectAndScatter { .. }
            | Op::Convolution { .. }
            | Op::Dot { .. }
            | Op::Tuple
            | Op::GetTupleElement { .. }
            | Op::RngBitGenerator { .. }
            | Op::While { .. }
            | Op::Conditional { .. }
            | Op::ReplicaId => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every op that calls computations, each callee a distinct id.
    fn calling_ops() -> Vec<Op> {
        let id = ComputationId;
        let window = vec![WindowDim::new(2)];
        vec![
            Op::Reduce {
                dimensions: vec![0],
                reducer: id(1),
            },
            Op::ReduceWindow {
                window: window.clone(),
                reducer: id(1),
            },
            Op::SelectAndScatter {
                window,
                select: id(1),
                scatter: id(2),
            },
            Op::While {
                condition: id(1),
                body: id(2),
            },
            Op::Conditional {
                branches: vec![id(1), id(2), id(3)],
            },
            Op::AllReduce {
                replica_groups: vec![vec![0, 1]],
                reducer: id(1),
            },
        ]
    }

    #[test]
    fn with_callees_rewrites_exactly_the_called_computations() {
        for op in calling_ops() {
            let moved = op.with_callees(|id| ComputationId(id.0 + 10));
            let expected: Vec<ComputationId> = op
                .called_computations()
                .into_iter()
                .map(|id| ComputationId(id.0 + 10))
                .collect();
            assert!(!expected.is_empty(), "{op:?} calls nothing");
            assert_eq!(moved.called_computations(), expected, "{op:?}");
            assert_eq!(moved.with_callees(|id| ComputationId(id.0 - 10)), op);
        }
    }

    #[test]
    fn while_calls_its_body_first_as_xla_does() {
        let op = Op::While {
            condition: ComputationId(1),
            body: ComputationId(2),
        };
        assert_eq!(
            op.called_computations(),
            [ComputationId(2), ComputationId(1)]
        );
    }
}
