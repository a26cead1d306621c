//! Builder methods, one file per op family; each method carries the op's shape rule.
mod control;
mod elementwise;
mod linalg;
mod reduce;
mod shape_ops;

pub use elementwise::scalar_literal;
pub use linalg::ConvSpec;
