//! Rules of convolution and dot-general: each operand's cotangent is another contraction of the
//! cotangent with the other operand.
//!
//! Convolution, per spatial dimension with input size `N`, kernel size `K`, stride `S`, padding
//! `(pl, ph)`, lhs (base) dilation `B`, rhs (window) dilation `D` and output size `M`: output
//! position `y` reads padded, dilated input position `y*S + k*D` for tap `k`, and that position
//! holds input element `i` when it equals `pl + i*B`.
//!
//! - Input cotangent: a convolution of the cotangent (lhs-dilated by `S`) with the spatially
//!   reversed kernel whose input and output feature roles are swapped, window dilation `D`,
//!   stride `B`, low padding `(K-1)*D - pl` and high padding chosen so the result has `N`
//!   elements.
//! - Kernel cotangent: a convolution of the input (batch and feature roles swapped) with the
//!   cotangent as the kernel (window of `M` taps, window dilation `S`), stride `D`, lhs dilation
//!   `B`, low padding `pl` and high padding chosen so the result has `K` elements.
//!
//! Both are emitted in the canonical convolution form ([`Builder::canonical_convolution`]), so
//! that a gradient inside a loop body (K train steps per call) keeps XLA:CPU's fast path.
//!
//! Groups: with `feature_group_count = G` the transposed kernel moves the group factor of its
//! output features into its input features and the input cotangent is again a `G`-grouped
//! convolution; the kernel cotangent pairs input-feature groups with output-feature groups
//! through `batch_group_count = G`. A forward `batch_group_count` swaps these two roles.

use super::{Grads, Node};
use crate::hlo::error::Result;
use crate::hlo::{Builder, ConvDimensionNumbers, ConvSpec, DotDimensionNumbers, Value, WindowDim};

pub(super) fn convolution(b: &mut Builder, n: &Node, spec: &ConvSpec, g: Value) -> Result<Grads> {
    let (lhs, rhs) = (n.operands[0], n.operands[1]);
    let empty = b.array_shape("convolution", g)?.dims().contains(&0);
    let glhs = match (n.need(0), empty) {
        (false, _) => None,
        (true, true) => Some(b.full_like(lhs, 0.0)?),
        (true, false) => Some(input_cotangent(b, lhs, rhs, spec, g)?),
    };
    let grhs = match (n.need(1), empty) {
        (false, _) => None,
        (true, true) => Some(b.full_like(rhs, 0.0)?),
        (true, false) => Some(kernel_cotangent(b, lhs, rhs, spec, g)?),
    };
    Ok(vec![glhs, grhs])
}

fn input_cotangent(
    b: &mut Builder,
    lhs: Value,
    rhs: Value,
    spec: &ConvSpec,
    g: Value,
) -> Result<Value> {
    let dn = &spec.dimension_numbers;
    let lhs_dims = b.array_shape("convolution", lhs)?.dims().to_vec();
    let rhs_dims = b.array_shape("convolution", rhs)?.dims().to_vec();
    let g_dims = b.array_shape("convolution", g)?.dims().to_vec();
    let groups = spec.feature_group_count.max(spec.batch_group_count);
    let kernel = regroup(
        b,
        rhs,
        dn.kernel_output_feature,
        groups,
        dn.kernel_input_feature,
    )?;
    let kernel = b.reverse(kernel, &dn.kernel_spatial)?;
    let window = spec
        .window
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let n = lhs_dims[dn.input_spatial[i] as usize];
            let k = rhs_dims[dn.kernel_spatial[i] as usize];
            let m = g_dims[dn.output_spatial[i] as usize];
            let span = (k - 1) * w.window_dilation;
            let low = span - w.padding_low;
            let needed = (n - 1) * w.base_dilation + span + 1;
            let dilated = (m - 1) * w.stride + 1;
            WindowDim {
                size: k,
                stride: w.base_dilation,
                padding_low: low,
                padding_high: needed - low - dilated,
                window_dilation: w.window_dilation,
                base_dilation: w.stride,
            }
        })
        .collect();
    let dimension_numbers = ConvDimensionNumbers {
        input_batch: dn.output_batch,
        input_feature: dn.output_feature,
        input_spatial: dn.output_spatial.clone(),
        kernel_input_feature: dn.kernel_output_feature,
        kernel_output_feature: dn.kernel_input_feature,
        kernel_spatial: dn.kernel_spatial.clone(),
        output_batch: dn.input_batch,
        output_feature: dn.input_feature,
        output_spatial: dn.input_spatial.clone(),
    };
    let transposed = ConvSpec {
        window,
        dimension_numbers,
        feature_group_count: groups,
        batch_group_count: 1,
    };
    let out = b.canonical_convolution(g, kernel, &transposed)?;
    // A batch-grouped forward produced `groups` input-feature blocks per example: they belong to
    // the batch groups, so move that factor from the feature dimension into the batch dimension.
    regroup(
        b,
        out,
        dn.input_feature,
        spec.batch_group_count,
        dn.input_batch,
    )
}

fn kernel_cotangent(
    b: &mut Builder,
    lhs: Value,
    rhs: Value,
    spec: &ConvSpec,
    g: Value,
) -> Result<Value> {
    let dn = &spec.dimension_numbers;
    let lhs_dims = b.array_shape("convolution", lhs)?.dims().to_vec();
    let rhs_dims = b.array_shape("convolution", rhs)?.dims().to_vec();
    let g_dims = b.array_shape("convolution", g)?.dims().to_vec();
    let window = spec
        .window
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let n = lhs_dims[dn.input_spatial[i] as usize];
            let k = rhs_dims[dn.kernel_spatial[i] as usize];
            let m = g_dims[dn.output_spatial[i] as usize];
            let used = (m - 1) * w.stride + (k - 1) * w.window_dilation + 1;
            WindowDim {
                size: m,
                stride: w.window_dilation,
                padding_low: w.padding_low,
                padding_high: used - (n - 1) * w.base_dilation - 1 - w.padding_low,
                window_dilation: w.stride,
                base_dilation: w.base_dilation,
            }
        })
        .collect();
    let dimension_numbers = ConvDimensionNumbers {
        input_batch: dn.input_feature,
        input_feature: dn.input_batch,
        input_spatial: dn.input_spatial.clone(),
        kernel_input_feature: dn.output_batch,
        kernel_output_feature: dn.output_feature,
        kernel_spatial: dn.output_spatial.clone(),
        output_batch: dn.kernel_input_feature,
        output_feature: dn.kernel_output_feature,
        output_spatial: dn.kernel_spatial.clone(),
    };
    let transposed = ConvSpec {
        window,
        dimension_numbers,
        feature_group_count: spec.batch_group_count,
        batch_group_count: spec.feature_group_count,
    };
    b.canonical_convolution(lhs, g, &transposed)
}

/// Moves a factor `groups` out of dimension `from` (its major part) into dimension `into` (as the
/// major part): `result[.., from = j, .., into = q*n + i, ..] = x[.., from = q*m + j, .., into = i, ..]`
/// where `m` is the new size of `from` and `n` the old size of `into`.
fn regroup(b: &mut Builder, x: Value, from: i64, groups: i64, into: i64) -> Result<Value> {
    if groups == 1 {
        return Ok(x);
    }
    let (from, into) = (from as usize, into as usize);
    let dims = b.array_shape("convolution", x)?.dims().to_vec();
    let mut split = dims.clone();
    split[from] /= groups;
    split.insert(from, groups);
    let split_x = b.reshape(x, &split)?;
    // In `split_x` the group factor sits at `from`; original dimension `d` moved to `position(d)`.
    let position = |d: usize| if d < from { d } else { d + 1 };
    let mut permutation = Vec::with_capacity(split.len());
    for d in 0..dims.len() {
        if d == into {
            permutation.push(from as i64);
        }
        permutation.push(position(d) as i64);
    }
    let moved = b.transpose(split_x, &permutation)?;
    let mut merged = dims;
    merged[from] /= groups;
    merged[into] *= groups;
    b.reshape(moved, &merged)
}

/// Dot-general: each operand's cotangent contracts `g` with the other operand over the other
/// operand's free dimensions (batch dimensions stay batch), then permutes the result into the
/// operand's dimension order.
pub(super) fn dot(b: &mut Builder, n: &Node, dn: &DotDimensionNumbers, g: Value) -> Result<Grads> {
    let (lhs, rhs) = (n.operands[0], n.operands[1]);
    let lhs_rank = b.array_shape("dot", lhs)?.rank();
    let rhs_rank = b.array_shape("dot", rhs)?.rank();
    let lhs_free = free_dims(lhs_rank, &dn.lhs_batch, &dn.lhs_contracting);
    let rhs_free = free_dims(rhs_rank, &dn.rhs_batch, &dn.rhs_contracting);
    let batch = dn.lhs_batch.len();
    // Positions of each operand's free dimensions within `g`.
    let g_lhs_free: Vec<i64> = (batch..batch + lhs_free.len()).map(|d| d as i64).collect();
    let g_rhs_free: Vec<i64> = (batch + lhs_free.len()..batch + lhs_free.len() + rhs_free.len())
        .map(|d| d as i64)
        .collect();
    let lhs_side = Side {
        batch: &dn.lhs_batch,
        contracting: &dn.lhs_contracting,
        free: &lhs_free,
        g_free: &g_lhs_free,
    };
    let rhs_side = Side {
        batch: &dn.rhs_batch,
        contracting: &dn.rhs_contracting,
        free: &rhs_free,
        g_free: &g_rhs_free,
    };
    let glhs = if n.need(0) {
        Some(dot_cotangent(b, g, rhs, lhs_rank, &lhs_side, &rhs_side)?)
    } else {
        None
    };
    let grhs = if n.need(1) {
        Some(dot_cotangent(b, g, lhs, rhs_rank, &rhs_side, &lhs_side)?)
    } else {
        None
    };
    Ok(vec![glhs, grhs])
}

/// One operand's view of a dot-general: its batch, contracting and free dimensions, and where
/// its free dimensions sit in the result.
struct Side<'a> {
    batch: &'a [i64],
    contracting: &'a [i64],
    free: &'a [i64],
    g_free: &'a [i64],
}

fn free_dims(rank: usize, batch: &[i64], contracting: &[i64]) -> Vec<i64> {
    (0..rank as i64)
        .filter(|d| !batch.contains(d) && !contracting.contains(d))
        .collect()
}

/// The cotangent of the operand described by `side` (rank `rank`), given the other operand.
fn dot_cotangent(
    b: &mut Builder,
    g: Value,
    other_value: Value,
    rank: usize,
    side: &Side,
    other: &Side,
) -> Result<Value> {
    let g_batch: Vec<i64> = (0..side.batch.len() as i64).collect();
    let dn = DotDimensionNumbers {
        lhs_contracting: other.g_free.to_vec(),
        rhs_contracting: other.free.to_vec(),
        lhs_batch: g_batch,
        rhs_batch: other.batch.to_vec(),
    };
    let product = b.dot_general(g, other_value, &dn)?;
    // `product` lists: batch dims, this side's free dims, then the other operand's contracting
    // dims in increasing order; each of those pairs with one of this side's contracting dims.
    let mut other_contracting: Vec<(i64, i64)> = other
        .contracting
        .iter()
        .zip(side.contracting)
        .map(|(&o, &s)| (o, s))
        .collect();
    other_contracting.sort_unstable();
    let order: Vec<i64> = side
        .batch
        .iter()
        .chain(side.free)
        .copied()
        .chain(other_contracting.into_iter().map(|(_, s)| s))
        .collect();
    // `order[p]` is the operand dimension held by product dimension `p`; invert it.
    let mut permutation = vec![0; rank];
    for (p, &d) in order.iter().enumerate() {
        permutation[d as usize] = p as i64;
    }
    if permutation.iter().enumerate().all(|(i, &p)| p == i as i64) {
        Ok(product)
    } else {
        b.transpose(product, &permutation)
    }
}
