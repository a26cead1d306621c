//! Errors raised while building HLO: every one names the op, its operand shapes and the problem,
//! so that XLA is never the first to notice a malformed graph.

use std::fmt;

use super::shape::Shape;

#[derive(Debug, Clone, PartialEq)]
pub struct HloError {
    /// The HLO opcode (or builder step) that failed, e.g. `convolution` or `build`.
    pub op: String,
    /// The shapes of the operands given to the op (empty where not applicable).
    pub operands: Vec<Shape>,
    pub message: String,
}

impl HloError {
    pub fn new(op: impl Into<String>, operands: &[&Shape], message: impl Into<String>) -> HloError {
        HloError {
            op: op.into(),
            operands: operands.iter().map(|s| (*s).clone()).collect(),
            message: message.into(),
        }
    }
}

impl fmt::Display for HloError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.op)?;
        if !self.operands.is_empty() {
            let shapes: Vec<String> = self.operands.iter().map(|s| s.to_string()).collect();
            write!(f, "({})", shapes.join(", "))?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for HloError {}

pub type Result<T, E = HloError> = std::result::Result<T, E>;
