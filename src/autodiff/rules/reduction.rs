//! Rules of reductions: reduce (sum, max, min), reduce-window (sum and average pooling, max and
//! min pooling) and all-reduce (sum).
//!
//! Ties: a `reduce` max/min splits the cotangent evenly among all elements equal to the result
//! (JAX's convention); max/min pooling gives it to the first maximal (minimal) element of each
//! window in row-major window order (XLA's `select-and-scatter` with a `GE`/`LE` select). The
//! init value of a reduction gets no gradient: XLA may apply it any number of times, so it must
//! be the reducer's identity, and asking for its gradient is an error.

use super::structural::{scalar_zero, zeros_like};
use super::{Grads, Node};
use crate::hlo::error::{HloError, Result};
use crate::hlo::{
    BinaryOp, Builder, ComparisonDirection, Computation, ComputationId, Op, Value, WindowDim,
};

/// The binary op a reducer applies to its two parameters, when it is exactly that.
fn reducer_op(c: &Computation) -> Option<BinaryOp> {
    let root = c.root();
    let mut operands = root.operands.clone();
    operands.sort_unstable();
    let mut params = c.parameter_indices().to_vec();
    params.sort_unstable();
    match root.op {
        Op::Binary(op) if params.len() == 2 && operands == params => Some(op),
        _ => None,
    }
}

fn reducer(b: &Builder, opcode: &str, id: ComputationId) -> Result<(Computation, BinaryOp)> {
    let c = b.callee(id).cloned().ok_or_else(|| {
        HloError::new(
            format!("grad/{opcode}"),
            &[],
            "internal error: the reducer is not registered with the builder",
        )
    })?;
    match reducer_op(&c) {
        Some(op) => Ok((c, op)),
        None => Err(HloError::new(
            format!("grad/{opcode}"),
            &[],
            format!("no gradient for a {opcode} whose reducer '{}' is not a single add, maximum or minimum", c.name()),
        )),
    }
}

fn reject_init_gradient(n: &Node, opcode: &str) -> Result<()> {
    let count = n.operands.len() / 2;
    if n.needs[count..].contains(&true) {
        return Err(HloError::new(
            format!("grad/{opcode}"),
            &[],
            "no gradient with respect to the init value of a reduction (XLA may apply it any number of times)",
        ));
    }
    Ok(())
}

pub(super) fn reduce(
    b: &mut Builder,
    n: &Node,
    dimensions: &[i64],
    id: ComputationId,
    g: Value,
) -> Result<Grads> {
    if n.operands.len() != 2 {
        return Err(HloError::new(
            "grad/reduce",
            &[b.shape(n.value)],
            "no gradient for a variadic (multi-operand) reduce",
        ));
    }
    reject_init_gradient(n, "reduce")?;
    let (_, op) = reducer(b, "reduce", id)?;
    let x = n.operands[0];
    let xs = b.array_shape("reduce", x)?.clone();
    let kept: Vec<i64> = (0..xs.rank() as i64)
        .filter(|d| !dimensions.contains(d))
        .collect();
    let gx = match op {
        BinaryOp::Add => b.broadcast_in_dim(g, xs.dims(), &kept)?,
        BinaryOp::Maximum | BinaryOp::Minimum => {
            let result = b.broadcast_in_dim(n.value, xs.dims(), &kept)?;
            let attains = b.compare(ComparisonDirection::Eq, x, result)?;
            let ones = b.convert(attains, xs.ty())?;
            let count = b.reduce_sum(ones, dimensions)?;
            let share = b.div(g, count)?;
            let share = b.broadcast_in_dim(share, xs.dims(), &kept)?;
            let zero = zeros_like(b, x)?;
            b.select(attains, share, zero)?
        }
        other => {
            return Err(HloError::new(
                "grad/reduce",
                &[],
                format!("no gradient for a reduce with reducer {}", other.opcode()),
            ))
        }
    };
    Ok(vec![Some(gx), None])
}

pub(super) fn reduce_window(
    b: &mut Builder,
    n: &Node,
    window: &[WindowDim],
    id: ComputationId,
    g: Value,
) -> Result<Grads> {
    reject_init_gradient(n, "reduce-window")?;
    let (_, op) = reducer(b, "reduce-window", id)?;
    let x = n.operands[0];
    let gx = match op {
        BinaryOp::Add => window_sum_transpose(b, x, window, g)?,
        BinaryOp::Maximum => window_select_transpose(b, x, window, g, ComparisonDirection::Ge)?,
        BinaryOp::Minimum => window_select_transpose(b, x, window, g, ComparisonDirection::Le)?,
        other => {
            return Err(HloError::new(
                "grad/reduce-window",
                &[],
                format!(
                    "no gradient for a reduce-window with reducer {}",
                    other.opcode()
                ),
            ))
        }
    };
    Ok(vec![Some(gx), None])
}

/// Transpose of a windowed sum. Per dimension (input size `N`, window `K`, stride `S`, padding
/// `pl`, base dilation `B`, window dilation `D`, output size `M`), input element `i` receives
/// `g[j]` for every window tap `j*S + k*D == pl + i*B`. Dilating `g` by `S`, padding it by
/// `(K-1)*D - pl` below and summing windows of `K` taps (dilation `D`) with stride `B` gathers
/// exactly those terms; the high padding makes the result `N` long.
fn window_sum_transpose(
    b: &mut Builder,
    x: Value,
    window: &[WindowDim],
    g: Value,
) -> Result<Value> {
    let xs = b.array_shape("reduce-window", x)?.clone();
    let out = b.array_shape("reduce-window", g)?.dims().to_vec();
    if out.contains(&0) || xs.dims().contains(&0) {
        return zeros_like(b, x);
    }
    let mut config = Vec::with_capacity(window.len());
    let mut gather = Vec::with_capacity(window.len());
    for ((w, &n), &m) in window.iter().zip(xs.dims()).zip(&out) {
        let span = (w.size - 1) * w.window_dilation;
        let low = span - w.padding_low;
        let needed = (n - 1) * w.base_dilation + span + 1;
        let dilated = (m - 1) * w.stride + 1;
        config.push(crate::hlo::PadDim {
            low,
            high: needed - low - dilated,
            interior: w.stride - 1,
        });
        gather.push(
            WindowDim::new(w.size)
                .stride(w.base_dilation)
                .window_dilation(w.window_dilation),
        );
    }
    let zero = scalar_zero(b, g)?;
    let padded = b.pad(g, zero, &config)?;
    let add = Computation::binary_reducer(BinaryOp::Add, xs.ty())?;
    b.reduce_window(padded, zero, &gather, &add)
}

/// Transpose of max (`Ge`) or min (`Le`) pooling: each window's cotangent goes to the element the
/// select picks, the first extreme one.
fn window_select_transpose(
    b: &mut Builder,
    x: Value,
    window: &[WindowDim],
    g: Value,
    direction: ComparisonDirection,
) -> Result<Value> {
    if window
        .iter()
        .any(|w| w.base_dilation != 1 || w.window_dilation != 1)
    {
        return Err(HloError::new(
            "grad/reduce-window",
            &[b.shape(x)],
            "no gradient for max/min pooling with base or window dilation (select-and-scatter has no dilation)",
        ));
    }
    let ty = b.array_shape("reduce-window", x)?.ty();
    let select = {
        let mut s = Builder::new(format!("select_{}_{ty}", direction.name().to_lowercase()));
        let shape = crate::hlo::Shape::scalar(ty);
        let lhs = s.parameter(0, shape.clone(), "lhs")?;
        let rhs = s.parameter(1, shape, "rhs")?;
        let pick = s.compare(direction, lhs, rhs)?;
        s.build(pick)?
    };
    let add = Computation::binary_reducer(BinaryOp::Add, ty)?;
    let zero = scalar_zero(b, g)?;
    b.select_and_scatter(x, &select, window, g, zero, &add)
}

/// A summing all-reduce is its own transpose.
pub(super) fn all_reduce(
    b: &mut Builder,
    replica_groups: &[Vec<i64>],
    id: ComputationId,
    g: Value,
) -> Result<Grads> {
    let (c, op) = reducer(b, "all-reduce", id)?;
    if op != BinaryOp::Add {
        return Err(HloError::new(
            "grad/all-reduce",
            &[],
            format!("no gradient for an all-reduce with reducer {}", op.opcode()),
        ));
    }
    Ok(vec![Some(b.all_reduce(g, replica_groups, &c)?)])
}
