//! The HLO layer: element types, shapes, literals, the op set with one description per op
//! (`op`, `attribute`), the builder with shape inference, the text printer and the
//! `HloModuleProto` encoder. `docs/adding-an-op.md` says where a new op goes.
pub mod attribute;
pub mod builder;
pub mod element;
pub mod encode;
pub mod error;
pub mod literal;
pub mod module;
pub mod op;
pub mod ops;
pub mod passes;
pub mod printer;
pub mod shape;

pub use attribute::{Attribute, AttributeText};
pub use builder::{Builder, Computation, CustomGradient, GradientRule, Instruction, Value};
pub use element::{ElementType, NativeType};
pub use error::HloError;
pub use literal::Literal;
pub use module::{InputOutputAlias, Module};
pub use op::{
    same_padding, BinaryOp, ComparisonDirection, ComputationId, ConvDimensionNumbers, Domain,
    DotDimensionNumbers, GatherDimensionNumbers, Metadata, Op, PadDim, RandomAlgorithm, UnaryOp,
    WindowDim,
};
pub use ops::ConvSpec;
pub use shape::{ArrayShape, Shape};
pub mod proto_messages;
pub mod proto_values;
