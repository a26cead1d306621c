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
pub use super::attribute::{
    same_padding, ComparisonDirection, ComputationId, ConvDimensionNumbers, DotDimensionNumbers,
    GatherDimensionNumbers, PadDim, RandomAlgorithm, WindowDim,
};
use super::element::ElementType;
use super::literal::Literal;

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
    /// Slices of `slice_sizes` read at runtime indices (operands: the array, the indices).
    Gather {
        dimension_numbers: GatherDimensionNumbers,
        slice_sizes: Vec<i64>,
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
            Op::Gather { .. } => "gather",
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
            Op::Gather {
                dimension_numbers,
                slice_sizes,
            } => vec![
                Attribute::GatherDimensions(dimension_numbers),
                Attribute::GatherSliceSizes(slice_sizes),
            ],
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
            | Op::Gather { .. }
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
            | Op::Gather { .. }
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
