//! Rules of the elementwise ops: unary and binary math, select, clamp and convert.
//!
//! Rules reuse the forward result where the derivative is a function of it (`exp`, `tanh`,
//! `logistic`, `sqrt`, ...), so the gradient graph does not recompute the forward op.
//!
//! Ties of `maximum`/`minimum` split the cotangent evenly between both operands (the convention
//! of JAX), and `clamp` gives an element's cotangent to exactly one of its three operands: to the
//! operand itself when it lies inside `[lo, hi]` (bounds included), else to the bound it is
//! clamped to.

use super::{no_derivative, Grads, Node};
use crate::hlo::error::Result;
use crate::hlo::{BinaryOp, Builder, ComparisonDirection, UnaryOp, Value};

/// Whether gradients flow through `op`: the piecewise-constant roundings and the predicates have
/// a zero (or no) derivative.
pub(super) fn unary_has_derivative(op: UnaryOp) -> bool {
    match op {
        UnaryOp::Negate
        | UnaryOp::Abs
        | UnaryOp::Exp
        | UnaryOp::Expm1
        | UnaryOp::Log
        | UnaryOp::Log1p
        | UnaryOp::Sqrt
        | UnaryOp::Rsqrt
        | UnaryOp::Tanh
        | UnaryOp::Logistic
        | UnaryOp::Cos
        | UnaryOp::Sin => true,
        UnaryOp::Sign
        | UnaryOp::Floor
        | UnaryOp::Ceil
        | UnaryOp::Round
        | UnaryOp::IsFinite
        | UnaryOp::Not => false,
    }
}

/// Whether gradients flow through `op`: bitwise logic and shifts have no derivative.
pub(super) fn binary_has_derivative(op: BinaryOp) -> bool {
    match op {
        BinaryOp::Add
        | BinaryOp::Subtract
        | BinaryOp::Multiply
        | BinaryOp::Divide
        | BinaryOp::Maximum
        | BinaryOp::Minimum
        | BinaryOp::Power
        | BinaryOp::Remainder
        | BinaryOp::Atan2 => true,
        BinaryOp::And
        | BinaryOp::Or
        | BinaryOp::Xor
        | BinaryOp::ShiftLeft
        | BinaryOp::ShiftRightLogical => false,
    }
}

pub(super) fn unary(b: &mut Builder, op: UnaryOp, n: &Node, g: Value) -> Result<Grads> {
    let (x, y) = (n.operands[0], n.value);
    let gx = match op {
        UnaryOp::Negate => b.neg(g)?,
        UnaryOp::Abs => {
            let s = b.sign(x)?;
            b.mul(g, s)?
        }
        UnaryOp::Exp => b.mul(g, y)?,
        UnaryOp::Expm1 => {
            let one = b.full_like(y, 1.0)?;
            let e = b.add(y, one)?;
            b.mul(g, e)?
        }
        UnaryOp::Log => b.div(g, x)?,
        UnaryOp::Log1p => {
            let one = b.full_like(x, 1.0)?;
            let d = b.add(x, one)?;
            b.div(g, d)?
        }
        UnaryOp::Sqrt => {
            // d sqrt(x) = 1 / (2 sqrt(x))
            let two = b.full_like(y, 2.0)?;
            let d = b.mul(y, two)?;
            b.div(g, d)?
        }
        UnaryOp::Rsqrt => {
            // d x^(-1/2) = -x^(-3/2) / 2 = -y^3 / 2
            let y2 = b.mul(y, y)?;
            let y3 = b.mul(y2, y)?;
            let half = b.full_like(y, -0.5)?;
            let d = b.mul(y3, half)?;
            b.mul(g, d)?
        }
        UnaryOp::Tanh => {
            let one = b.full_like(y, 1.0)?;
            let y2 = b.mul(y, y)?;
            let d = b.sub(one, y2)?;
            b.mul(g, d)?
        }
        UnaryOp::Logistic => {
            let one = b.full_like(y, 1.0)?;
            let rest = b.sub(one, y)?;
            let d = b.mul(y, rest)?;
            b.mul(g, d)?
        }
        UnaryOp::Sin => {
            let c = b.cos(x)?;
            b.mul(g, c)?
        }
        UnaryOp::Cos => {
            let s = b.sin(x)?;
            let gs = b.mul(g, s)?;
            b.neg(gs)?
        }
        UnaryOp::Sign
        | UnaryOp::Floor
        | UnaryOp::Ceil
        | UnaryOp::Round
        | UnaryOp::IsFinite
        | UnaryOp::Not => return Err(no_derivative(op.opcode())),
    };
    Ok(vec![Some(gx)])
}

pub(super) fn binary(b: &mut Builder, op: BinaryOp, n: &Node, g: Value) -> Result<Grads> {
    let (l, r, out) = (n.operands[0], n.operands[1], n.value);
    let (gl, gr) = match op {
        BinaryOp::Add => (Some(g), Some(g)),
        BinaryOp::Subtract => (Some(g), n.need(1).then(|| b.neg(g)).transpose()?),
        BinaryOp::Multiply => (
            n.need(0).then(|| b.mul(g, r)).transpose()?,
            n.need(1).then(|| b.mul(g, l)).transpose()?,
        ),
        BinaryOp::Divide => {
            let gl = b.div(g, r)?;
            // d(l/r)/dr = -(l/r)/r, so the rhs cotangent is -(g/r) * out.
            let gr = n
                .need(1)
                .then(|| b.mul(gl, out).and_then(|t| b.neg(t)))
                .transpose()?;
            (Some(gl), gr)
        }
        BinaryOp::Maximum | BinaryOp::Minimum => {
            let wins = if op == BinaryOp::Maximum {
                ComparisonDirection::Gt
            } else {
                ComparisonDirection::Lt
            };
            let gl = tie_split(b, g, l, r, wins)?;
            let gr = n.need(1).then(|| b.sub(g, gl)).transpose()?;
            (Some(gl), gr)
        }
        BinaryOp::Power => {
            let gl = n.need(0).then(|| power_base(b, g, l, r)).transpose()?;
            let gr = n
                .need(1)
                .then(|| power_exponent(b, g, l, out))
                .transpose()?;
            (gl, gr)
        }
        BinaryOp::Remainder => {
            // l rem r = l - trunc(l/r) * r: d/dl = 1, d/dr = -trunc(l/r).
            let gr = n.need(1).then(|| remainder_rhs(b, g, l, r)).transpose()?;
            (Some(g), gr)
        }
        BinaryOp::Atan2 => {
            // atan2(l, r): d/dl = r / (l^2 + r^2), d/dr = -l / (l^2 + r^2).
            let l2 = b.mul(l, l)?;
            let r2 = b.mul(r, r)?;
            let norm = b.add(l2, r2)?;
            let scaled = b.div(g, norm)?;
            let gl = n.need(0).then(|| b.mul(scaled, r)).transpose()?;
            let gr = n
                .need(1)
                .then(|| b.mul(scaled, l).and_then(|t| b.neg(t)))
                .transpose()?;
            (gl, gr)
        }
        BinaryOp::And
        | BinaryOp::Or
        | BinaryOp::Xor
        | BinaryOp::ShiftLeft
        | BinaryOp::ShiftRightLogical => return Err(no_derivative(op.opcode())),
    };
    Ok(vec![gl.filter(|_| n.need(0)), gr.filter(|_| n.need(1))])
}

/// The lhs share of `g` for `maximum` (`wins` = GT) or `minimum` (`wins` = LT): all of it where
/// the lhs wins, half of it on ties.
fn tie_split(
    b: &mut Builder,
    g: Value,
    l: Value,
    r: Value,
    wins: ComparisonDirection,
) -> Result<Value> {
    let lhs_wins = b.compare(wins, l, r)?;
    let tie = b.compare(ComparisonDirection::Eq, l, r)?;
    let (one, half, zero) = (
        b.full_like(g, 1.0)?,
        b.full_like(g, 0.5)?,
        b.full_like(g, 0.0)?,
    );
    let tie_weight = b.select(tie, half, zero)?;
    let weight = b.select(lhs_wins, one, tie_weight)?;
    b.mul(g, weight)
}

/// d(l^r)/dl = r * l^(r-1).
fn power_base(b: &mut Builder, g: Value, l: Value, r: Value) -> Result<Value> {
    let one = b.full_like(r, 1.0)?;
    let r1 = b.sub(r, one)?;
    let p = b.pow(l, r1)?;
    let d = b.mul(r, p)?;
    b.mul(g, d)
}

/// d(l^r)/dr = log(l) * l^r, taken as 0 where l == 0 (where l^r is 0 or 1 for any r > 0).
fn power_exponent(b: &mut Builder, g: Value, l: Value, out: Value) -> Result<Value> {
    let zero = b.full_like(l, 0.0)?;
    let one = b.full_like(l, 1.0)?;
    let is_zero = b.compare(ComparisonDirection::Eq, l, zero)?;
    let safe = b.select(is_zero, one, l)?;
    let log = b.log(safe)?;
    let d = b.mul(log, out)?;
    b.mul(g, d)
}

fn remainder_rhs(b: &mut Builder, g: Value, l: Value, r: Value) -> Result<Value> {
    let q = b.div(l, r)?;
    let sign = b.sign(q)?;
    let magnitude = b.abs(q)?;
    let floor = b.floor(magnitude)?;
    let trunc = b.mul(sign, floor)?;
    let d = b.mul(g, trunc)?;
    b.neg(d)
}

/// `select(p, t, f)`: the cotangent goes to the branch that was taken.
pub(super) fn select(b: &mut Builder, n: &Node, g: Value) -> Result<Grads> {
    let pred = n.operands[0];
    let zero = b.full_like(g, 0.0)?;
    let gt = n.need(1).then(|| b.select(pred, g, zero)).transpose()?;
    let gf = n.need(2).then(|| b.select(pred, zero, g)).transpose()?;
    Ok(vec![None, gt, gf])
}

/// `clamp(lo, x, hi) = min(max(x, lo), hi)`; scalar bounds receive the sum over all elements.
pub(super) fn clamp(b: &mut Builder, n: &Node, g: Value) -> Result<Grads> {
    let (lo, x, hi) = (n.operands[0], n.operands[1], n.operands[2]);
    let dims = b.array_shape("clamp", x)?.dims().to_vec();
    let lo_full = broadcast_scalar(b, lo, &dims)?;
    let hi_full = broadcast_scalar(b, hi, &dims)?;
    let raised = b.max(x, lo_full)?;
    let to_hi = b.compare(ComparisonDirection::Gt, raised, hi_full)?;
    let to_lo = b.compare(ComparisonDirection::Lt, x, lo_full)?;
    let zero = b.full_like(g, 0.0)?;
    let below_hi = b.select(to_hi, zero, g)?;
    let glo = n
        .need(0)
        .then(|| b.select(to_lo, below_hi, zero))
        .transpose()?;
    let gx = n
        .need(1)
        .then(|| b.select(to_lo, zero, below_hi))
        .transpose()?;
    let ghi = n.need(2).then(|| b.select(to_hi, g, zero)).transpose()?;
    let fit = |b: &mut Builder, bound: Value, grad: Option<Value>| -> Result<Option<Value>> {
        match grad {
            Some(grad) if b.array_shape("clamp", bound)?.is_scalar() => {
                let all: Vec<i64> = (0..dims.len() as i64).collect();
                b.reduce_sum(grad, &all).map(Some)
            }
            grad => Ok(grad),
        }
    };
    Ok(vec![fit(b, lo, glo)?, gx, fit(b, hi, ghi)?])
}

fn broadcast_scalar(b: &mut Builder, v: Value, dims: &[i64]) -> Result<Value> {
    if b.array_shape("clamp", v)?.is_scalar() {
        b.broadcast_in_dim(v, dims, &[])
    } else {
        Ok(v)
    }
}

/// A conversion between float types: the cotangent converts back.
pub(super) fn convert(b: &mut Builder, n: &Node, g: Value) -> Result<Grads> {
    let ty = b.array_shape("convert", n.operands[0])?.ty();
    Ok(vec![Some(b.convert(g, ty)?)])
}
