//! Builder methods, one file per op family; each method carries the op's shape rule. The
//! families match the gradient rules' files in `autodiff::rules`, so an op's shape rule and its
//! gradient rule sit in files of the same name.
mod control;
mod elementwise;
mod linalg;
mod reduction;
mod structural;

pub use elementwise::scalar_literal;
pub use linalg::ConvSpec;
