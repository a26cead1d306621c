//! The HLO instruction set this crate emits: one enum variant per opcode with its attributes.
//!
//! Shape rules live with the builder methods in `ops/`, the text form in [`Op::text_attributes`]
//! and the proto form in `encode.rs`; each is a single `match` on this enum so adding an op shows
//! every place it needs.

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

    /// Whether the op is only defined on floating-point operands.
    pub fn float_only(self) -> bool {
        !matches!(
            self,
            UnaryOp::Negate | UnaryOp::Abs | UnaryOp::Sign | UnaryOp::Not
        )
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

    /// Bitwise/logical ops take pred or integer operands only.
    pub fn is_logical(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor)
    }

    /// Bit shifts take integer operands only.
    pub fn is_shift(self) -> bool {
        matches!(self, BinaryOp::ShiftLeft | BinaryOp::ShiftRightLogical)
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

/// The comparison semantics XLA records next to a direction; derived from the operand type.
pub fn comparison_type(ty: ElementType) -> &'static str {
    if ty.is_float() {
        "FLOAT"
    } else if ty.is_signed_int() {
        "SIGNED"
    } else {
        "UNSIGNED"
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

    /// The computations this op calls, in XLA's `called_computations` order.
    pub fn called_computations(&self) -> Vec<ComputationId> {
        match self {
            Op::Reduce { reducer, .. }
            | Op::ReduceWindow { reducer, .. }
            | Op::AllReduce { reducer, .. } => {
                vec![*reducer]
            }
            Op::SelectAndScatter {
                select, scatter, ..
            } => vec![*select, *scatter],
            // XLA's while instruction keeps the body at index 0 and the condition at index 1.
            Op::While { condition, body } => vec![*body, *condition],
            Op::Conditional { branches } => branches.clone(),
            _ => Vec::new(),
        }
    }

    /// Ops whose result is not a pure function of their operands' values (never merged by CSE).
    pub fn has_side_effects(&self) -> bool {
        matches!(self, Op::Parameter { .. } | Op::AllReduce { .. })
    }
}
