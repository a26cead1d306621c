//! One gradient rule per opcode. Two exhaustive `match`es decide, for each op, whether gradients
//! flow through it ([`propagates_gradient`]) and which rule applies ([`apply`]). A new `Op`
//! variant therefore does not compile until it has a rule or is declared non-differentiable
//! here. The rules live in files named after the op families of `hlo::ops`.
//!
//! A rule receives the forward instruction, which operands need a cotangent and the instruction's
//! cotangent, and returns one optional cotangent per operand. Rules emit their ops into the same
//! builder; the caller labels them with the rule and the forward op's scope.

mod control;
mod elementwise;
mod linalg;
mod reduction;
mod structural;

use super::cotangent::Cotangent;
use crate::hlo::error::{HloError, Result};
use crate::hlo::{Builder, ConvSpec, Op, Value};

/// Per-operand array cotangents returned by the array rules.
type Grads = Vec<Option<Value>>;

/// The forward instruction a rule transposes.
struct Node<'a> {
    value: Value,
    operands: &'a [Value],
    needs: &'a [bool],
}

impl Node<'_> {
    /// Whether operand `i` needs a cotangent.
    fn need(&self, i: usize) -> bool {
        self.needs[i]
    }
}

/// Whether gradients flow through `op` at all. Comparisons, integer and bit-level ops, random
/// bits and the piecewise-constant roundings (`sign`, `floor`, `ceil`, `round`) have no
/// (or a zero) derivative: they stop the gradient like a constant would.
pub(crate) fn propagates_gradient(op: &Op) -> bool {
    match op {
        Op::Parameter { .. }
        | Op::Constant(_)
        | Op::Iota { .. }
        | Op::Compare { .. }
        | Op::BitcastConvert
        | Op::RngBitGenerator { .. }
        | Op::ReplicaId => false,
        Op::Unary(u) => elementwise::unary_has_derivative(*u),
        Op::Binary(b) => elementwise::binary_has_derivative(*b),
        Op::Convert
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
        | Op::Reduce { .. }
        | Op::ReduceWindow { .. }
        | Op::SelectAndScatter { .. }
        | Op::Convolution { .. }
        | Op::Dot { .. }
        | Op::Tuple
        | Op::GetTupleElement { .. }
        | Op::While { .. }
        | Op::Conditional { .. }
        | Op::AllReduce { .. } => true,
    }
}

/// The error for an op that reached a rule although it has no derivative.
fn no_derivative(opcode: &str) -> HloError {
    HloError::new(
        format!("grad/{opcode}"),
        &[],
        "internal error: this op has no derivative and should have stopped the gradient",
    )
}

/// The error for a differentiable op this module has no rule for.
fn unsupported(b: &Builder, node: Value, why: &str) -> HloError {
    let opcode = b.instruction(node).op.opcode();
    HloError::new(
        format!("grad/{opcode}"),
        &[b.shape(node)],
        format!("no gradient rule for {opcode}: {why}"),
    )
}

/// Applies the rule of `node`'s op: one optional cotangent per operand, `None` where `needs` is
/// false or no cotangent flows.
pub(super) fn apply(
    b: &mut Builder,
    node: Value,
    operands: &[Value],
    needs: &[bool],
    ct: Cotangent,
) -> Result<Vec<Option<Cotangent>>> {
    let op = b.instruction(node).op.clone();
    let opcode = op.opcode();
    let n = Node {
        value: node,
        operands,
        needs,
    };
    let grads = match &op {
        Op::Tuple => return control::tuple(&n, ct),
        Op::GetTupleElement { index } => return control::get_tuple_element(b, &n, *index, ct),
        Op::While { condition, body } => return control::while_loop(b, &n, *condition, *body, ct),
        Op::Unary(u) => elementwise::unary(b, *u, &n, ct.array(opcode)?)?,
        Op::Binary(o) => elementwise::binary(b, *o, &n, ct.array(opcode)?)?,
        Op::Select => elementwise::select(b, &n, ct.array(opcode)?)?,
        Op::Clamp => elementwise::clamp(b, &n, ct.array(opcode)?)?,
        Op::Convert => elementwise::convert(b, &n, ct.array(opcode)?)?,
        Op::Broadcast { dimensions } => structural::broadcast(b, dimensions, ct.array(opcode)?)?,
        Op::Reshape => structural::reshape(b, &n, ct.array(opcode)?)?,
        Op::Transpose { permutation } => structural::transpose(b, permutation, ct.array(opcode)?)?,
        Op::Slice { start, stride, .. } => {
            structural::slice(b, &n, start, stride, ct.array(opcode)?)?
        }
        Op::DynamicSlice { .. } => structural::dynamic_slice(b, &n, ct.array(opcode)?)?,
        Op::DynamicUpdateSlice => structural::dynamic_update_slice(b, &n, ct.array(opcode)?)?,
        Op::Pad { config } => structural::pad(b, &n, config, ct.array(opcode)?)?,
        Op::Concatenate { dimension } => {
            structural::concatenate(b, &n, *dimension, ct.array(opcode)?)?
        }
        Op::Reverse { dimensions } => structural::reverse(b, dimensions, ct.array(opcode)?)?,
        Op::Reduce {
            dimensions,
            reducer,
        } => match ct {
            Cotangent::Array(g) => reduction::reduce(b, &n, dimensions, *reducer, g)?,
            Cotangent::Tuple(_) => return Err(unsupported(b, node, "variadic reduce")),
        },
        Op::ReduceWindow { window, reducer } => {
            reduction::reduce_window(b, &n, window, *reducer, ct.array(opcode)?)?
        }
        Op::AllReduce {
            replica_groups,
            reducer,
        } => reduction::all_reduce(b, replica_groups, *reducer, ct.array(opcode)?)?,
        Op::Convolution {
            window,
            dimension_numbers,
            feature_group_count,
            batch_group_count,
        } => {
            let spec = ConvSpec {
                window: window.clone(),
                dimension_numbers: dimension_numbers.clone(),
                feature_group_count: *feature_group_count,
                batch_group_count: *batch_group_count,
            };
            linalg::convolution(b, &n, &spec, ct.array(opcode)?)?
        }
        Op::Dot { dimension_numbers } => linalg::dot(b, &n, dimension_numbers, ct.array(opcode)?)?,
        Op::Gather { .. } => return Err(structural::gather(b, node)),
        Op::SelectAndScatter { .. } => {
            return Err(unsupported(
                b,
                node,
                "second-order gradients of max pooling are not supported",
            ))
        }
        Op::Conditional { .. } => {
            return Err(unsupported(
                b,
                node,
                "differentiate the branches before branching instead",
            ))
        }
        Op::Parameter { .. }
        | Op::Constant(_)
        | Op::Iota { .. }
        | Op::Compare { .. }
        | Op::BitcastConvert
        | Op::RngBitGenerator { .. }
        | Op::ReplicaId => return Err(no_derivative(opcode)),
    };
    Ok(grads
        .into_iter()
        .zip(needs)
        .map(|(g, &need)| g.filter(|_| need).map(Cotangent::Array))
        .collect())
}
