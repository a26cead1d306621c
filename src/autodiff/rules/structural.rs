//! Rules of the ops that move elements: each is linear, and its rule is the transposed movement.

use super::{Grads, Node};
use crate::hlo::error::{HloError, Result};
use crate::hlo::{Builder, PadDim, Value};

/// Broadcast copies each operand element to every position of the unmapped result dimensions,
/// so its transpose sums over them.
pub(super) fn broadcast(b: &mut Builder, mapping: &[i64], g: Value) -> Result<Grads> {
    let rank = b.array_shape("broadcast", g)?.rank() as i64;
    let unmapped: Vec<i64> = (0..rank).filter(|d| !mapping.contains(d)).collect();
    let gx = if unmapped.is_empty() {
        g
    } else {
        b.reduce_sum(g, &unmapped)?
    };
    Ok(vec![Some(gx)])
}

pub(super) fn reshape(b: &mut Builder, n: &Node, g: Value) -> Result<Grads> {
    let dims = b.array_shape("reshape", n.operands[0])?.dims().to_vec();
    Ok(vec![Some(b.reshape(g, &dims)?)])
}

pub(super) fn transpose(b: &mut Builder, permutation: &[i64], g: Value) -> Result<Grads> {
    let mut inverse = vec![0; permutation.len()];
    for (i, &p) in permutation.iter().enumerate() {
        inverse[p as usize] = i as i64;
    }
    Ok(vec![Some(b.transpose(g, &inverse)?)])
}

/// A strided slice's transpose scatters the cotangent back with zero padding: `start` zeros
/// before, `stride - 1` zeros between kept elements and the rest after.
pub(super) fn slice(
    b: &mut Builder,
    n: &Node,
    start: &[i64],
    stride: &[i64],
    g: Value,
) -> Result<Grads> {
    let dims = b.array_shape("slice", n.operands[0])?.dims().to_vec();
    let out = b.array_shape("slice", g)?.dims().to_vec();
    if out.contains(&0) {
        return Ok(vec![Some(zeros_like(b, n.operands[0])?)]);
    }
    let config: Vec<PadDim> = (0..dims.len())
        .map(|d| {
            let last = start[d] + (out[d] - 1) * stride[d];
            PadDim {
                low: start[d],
                high: dims[d] - last - 1,
                interior: stride[d] - 1,
            }
        })
        .collect();
    let zero = scalar_zero(b, g)?;
    Ok(vec![Some(b.pad(g, zero, &config)?)])
}

/// Dynamic slice: the cotangent is written back at the same (identically clamped) start indices.
pub(super) fn dynamic_slice(b: &mut Builder, n: &Node, g: Value) -> Result<Grads> {
    let zeros = zeros_like(b, n.operands[0])?;
    let gx = b.dynamic_update_slice(zeros, g, &n.operands[1..])?;
    let mut grads = vec![Some(gx)];
    grads.resize(n.operands.len(), None);
    Ok(grads)
}

/// Dynamic update slice: the update's cotangent is the slice it overwrote; the operand's
/// cotangent is zero there.
pub(super) fn dynamic_update_slice(b: &mut Builder, n: &Node, g: Value) -> Result<Grads> {
    let (update, starts) = (n.operands[1], &n.operands[2..]);
    let gx = if n.need(0) {
        let zeros = zeros_like(b, update)?;
        Some(b.dynamic_update_slice(g, zeros, starts)?)
    } else {
        None
    };
    let gu = if n.need(1) {
        let sizes = b
            .array_shape("dynamic-update-slice", update)?
            .dims()
            .to_vec();
        Some(b.dynamic_slice(g, starts, &sizes)?)
    } else {
        None
    };
    let mut grads = vec![gx, gu];
    grads.resize(n.operands.len(), None);
    Ok(grads)
}

/// Pad: undoing the edge padding (negative padding restores cropped elements as zeros), then a
/// strided slice that skips interior padding gives the operand's cotangent; the padding value
/// receives everything else, i.e. `sum(g) - sum(g_operand)`.
pub(super) fn pad(b: &mut Builder, n: &Node, config: &[PadDim], g: Value) -> Result<Grads> {
    let zero = scalar_zero(b, g)?;
    let unpad: Vec<PadDim> = config
        .iter()
        .map(|p| PadDim {
            low: -p.low,
            high: -p.high,
            interior: 0,
        })
        .collect();
    let unpadded = b.pad(g, zero, &unpad)?;
    let dims = b.array_shape("pad", unpadded)?.dims().to_vec();
    let stride: Vec<i64> = config.iter().map(|p| p.interior + 1).collect();
    let gx = b.slice(unpadded, &vec![0; dims.len()], &dims, &stride)?;
    let gv = if n.need(1) {
        let all: Vec<i64> = (0..dims.len() as i64).collect();
        let total = b.reduce_sum(g, &all)?;
        let kept = b.reduce_sum(gx, &all)?;
        Some(b.sub(total, kept)?)
    } else {
        None
    };
    Ok(vec![n.need(0).then_some(gx), gv])
}

/// Concatenate: each operand's cotangent is its slice of `g`.
pub(super) fn concatenate(b: &mut Builder, n: &Node, dimension: i64, g: Value) -> Result<Grads> {
    let dims = b.array_shape("concatenate", g)?.dims().to_vec();
    let d = dimension as usize;
    let mut offset = 0;
    let mut grads = Vec::with_capacity(n.operands.len());
    for (i, &x) in n.operands.iter().enumerate() {
        let size = b.array_shape("concatenate", x)?.dims()[d];
        if n.need(i) {
            let mut start = vec![0; dims.len()];
            let mut limit = dims.clone();
            start[d] = offset;
            limit[d] = offset + size;
            grads.push(Some(b.slice(g, &start, &limit, &vec![1; dims.len()])?));
        } else {
            grads.push(None);
        }
        offset += size;
    }
    Ok(grads)
}

pub(super) fn reverse(b: &mut Builder, dimensions: &[i64], g: Value) -> Result<Grads> {
    Ok(vec![Some(b.reverse(g, dimensions)?)])
}

/// A zero array shaped like `v`.
pub(super) fn zeros_like(b: &mut Builder, v: Value) -> Result<Value> {
    b.full_like(v, 0.0)
}

/// A zero scalar of `v`'s element type.
pub(super) fn scalar_zero(b: &mut Builder, v: Value) -> Result<Value> {
    let ty = b.array_shape("grad", v)?.ty();
    b.scalar_of(ty, 0.0)
}

/// Gather's gradient is a scatter-add into the operand, an op this crate does not emit. Gather
/// is only applied to values that are never differentiated (the input images of device-side
/// augmentation), so reaching this rule is an error that says why.
pub(super) fn gather(b: &Builder, node: Value) -> HloError {
    super::unsupported(
        b,
        node,
        "its gradient would be a scatter, which this crate does not emit; gather only values \
         that need no gradient (such as input images)",
    )
}
