//! Convolutions, activations, pooling and dense layers.

use crate::hlo::{
    error::Result, same_padding, ArrayShape, Builder, ConvDimensionNumbers, ConvSpec,
    DotDimensionNumbers, HloError, PadDim, Value, WindowDim,
};

/// NHWC x HWIO convolution with TF `SAME` padding (any odd total padding goes to the high side).
/// `groups` > 1 makes it grouped; `groups == channels` with an `[kh, kw, 1, C]` kernel is depthwise.
fn conv_same(b: &mut Builder, x: Value, kernel: Value, stride: i64, groups: i64) -> Result<Value> {
    let xs = b.array_shape("conv2d", x)?.dims().to_vec();
    let ks = b.array_shape("conv2d", kernel)?.dims().to_vec();
    if xs.len() != 4 || ks.len() != 4 {
        return Err(HloError::new(
            "conv2d",
            &[b.shape(x), b.shape(kernel)],
            "expected an NHWC input and an HWIO kernel",
        ));
    }
    let window = (0..2)
        .map(|i| {
            let (lo, hi) = same_padding(xs[i + 1], ks[i], stride, 1);
            WindowDim::new(ks[i]).stride(stride).padding(lo, hi)
        })
        .collect();
    let spec = ConvSpec {
        window,
        dimension_numbers: ConvDimensionNumbers::nhwc(),
        feature_group_count: groups,
        batch_group_count: 1,
    };
    b.convolution(x, kernel, &spec)
}

/// A dense NHWC convolution with an `[kh, kw, in, out]` kernel, stride `stride`, TF `SAME` padding.
///
/// A 1x1 stride-1 convolution is emitted as a matrix product over `[B*H*W, in]`: the same
/// arithmetic, but its kernel gradient becomes a plain matrix product too instead of a
/// convolution with the batch as the contracted feature dimension, which XLA's CPU backend runs
/// several times slower (measured 4.8x at 7x7x96->24, batch 128).
pub fn conv2d(b: &mut Builder, x: Value, kernel: Value, stride: i64) -> Result<Value> {
    let xs = b.array_shape("conv2d", x)?.dims().to_vec();
    let ks = b.array_shape("conv2d", kernel)?.dims().to_vec();
    if stride == 1 && xs.len() == 4 && ks.len() == 4 && ks[0] == 1 && ks[1] == 1 && ks[2] == xs[3] {
        let rows = b.reshape(x, &[xs[0] * xs[1] * xs[2], xs[3]])?;
        let w = b.reshape(kernel, &[ks[2], ks[3]])?;
        let y = b.matmul(rows, w)?;
        return b.reshape(y, &[xs[0], xs[1], xs[2], ks[3]]);
    }
    conv_same(b, x, kernel, stride, 1)
}

/// How a depthwise convolution is lowered to HLO.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DepthwiseImpl {
    /// One `convolution` with `feature_group_count = C` (what TPU and GPU compilers expect).
    GroupedConvolution,
    /// `kh*kw` shifted slices of the padded input, each scaled per channel and summed: plain
    /// elementwise HLO that fuses well. XLA's CPU backend runs grouped convolutions through a
    /// slow generic path (measured: 15x slower than this at 14x14x96, batch 128).
    ShiftedSum,
}

/// A depthwise NHWC convolution with an `[kh, kw, 1, C]` kernel (channel multiplier 1), stride
/// `stride`, TF `SAME` padding.
pub fn depthwise_conv2d(
    b: &mut Builder,
    x: Value,
    kernel: Value,
    stride: i64,
    how: DepthwiseImpl,
) -> Result<Value> {
    let xs = b.array_shape("depthwise_conv2d", x)?.dims().to_vec();
    let ks = b.array_shape("depthwise_conv2d", kernel)?.dims().to_vec();
    if xs.len() != 4 || ks.len() != 4 || ks[2] != 1 || ks[3] != xs[3] {
        return Err(HloError::new(
            "depthwise_conv2d",
            &[b.shape(x), b.shape(kernel)],
            "expected an NHWC input and a [kh, kw, 1, C] kernel with the input's C",
        ));
    }
    match how {
        DepthwiseImpl::GroupedConvolution => conv_same(b, x, kernel, stride, xs[3]),
        DepthwiseImpl::ShiftedSum => shifted_sum(b, x, kernel, stride, &xs, &ks),
    }
}

fn shifted_sum(
    b: &mut Builder,
    x: Value,
    kernel: Value,
    stride: i64,
    xs: &[i64],
    ks: &[i64],
) -> Result<Value> {
    let (h_pad, w_pad) = (
        same_padding(xs[1], ks[0], stride, 1),
        same_padding(xs[2], ks[1], stride, 1),
    );
    let (oh, ow) = ((xs[1] + stride - 1) / stride, (xs[2] + stride - 1) / stride);
    let zero = b.scalar_of(b.array_shape("depthwise_conv2d", x)?.ty(), 0.0)?;
    let none = PadDim {
        low: 0,
        high: 0,
        interior: 0,
    };
    let padded = b.pad(
        x,
        zero,
        &[
            none,
            PadDim {
                low: h_pad.0,
                high: h_pad.1,
                interior: 0,
            },
            PadDim {
                low: w_pad.0,
                high: w_pad.1,
                interior: 0,
            },
            none,
        ],
    )?;
    let out_dims = [xs[0], oh, ow, xs[3]];
    let mut sum: Option<Value> = None;
    for i in 0..ks[0] {
        for j in 0..ks[1] {
            let start = [0, i, j, 0];
            let limit = [
                xs[0],
                i + (oh - 1) * stride + 1,
                j + (ow - 1) * stride + 1,
                xs[3],
            ];
            let window = b.slice(padded, &start, &limit, &[1, stride, stride, 1])?;
            let tap = b.slice(
                kernel,
                &[i, j, 0, 0],
                &[i + 1, j + 1, 1, xs[3]],
                &[1, 1, 1, 1],
            )?;
            let tap = b.reshape(tap, &[xs[3]])?;
            let tap = b.broadcast_in_dim(tap, &out_dims, &[3])?;
            let term = b.mul(window, tap)?;
            sum = Some(match sum {
                Some(acc) => b.add(acc, term)?,
                None => term,
            });
        }
    }
    sum.ok_or_else(|| HloError::new("depthwise_conv2d", &[], "the kernel has no taps"))
}

/// SiLU (swish): `x * sigmoid(x)`.
pub fn silu(b: &mut Builder, x: Value) -> Result<Value> {
    let s = b.logistic(x)?;
    b.mul(x, s)
}

/// Mean over the spatial dimensions of NHWC: `[B, H, W, C] -> [B, C]`.
pub fn global_avg_pool(b: &mut Builder, x: Value) -> Result<Value> {
    let shape = b.array_shape("global_avg_pool", x)?.clone();
    let d = shape.dims();
    let sum = b.reduce_sum(x, &[1, 2])?;
    let n = b.full(
        &ArrayShape::new(shape.ty(), &[d[0], d[3]]),
        (d[1] * d[2]) as f64,
    )?;
    b.div(sum, n)
}

/// `x @ w + bias` for `x: [B, in]`, `w: [in, out]`, `bias: [out]`.
pub fn dense(b: &mut Builder, x: Value, w: Value, bias: Value) -> Result<Value> {
    let dn = DotDimensionNumbers {
        lhs_contracting: vec![1],
        rhs_contracting: vec![0],
        ..Default::default()
    };
    let y = b.dot_general(x, w, &dn)?;
    let dims = b.array_shape("dense", y)?.dims().to_vec();
    let bias = b.broadcast_in_dim(bias, &dims, &[1])?;
    b.add(y, bias)
}

/// The weights of a squeeze-and-excite unit, as 2-D matrices (1x1 conv kernels reshaped).
#[derive(Clone, Copy, Debug)]
pub struct SeWeights {
    /// `[C, rd]` and `[rd]`.
    pub reduce_w: Value,
    pub reduce_b: Value,
    /// `[rd, C]` and `[C]`.
    pub expand_w: Value,
    pub expand_b: Value,
}

/// Squeeze-and-excite: global average pool -> dense (SiLU) -> dense (sigmoid) -> scale channels.
pub fn squeeze_excite(b: &mut Builder, x: Value, w: &SeWeights) -> Result<Value> {
    let pooled = global_avg_pool(b, x)?;
    let gate = se_gate(b, pooled, w)?;
    gate_channels(b, x, gate)
}

/// The squeeze-and-excite gate `[B, C]` of the pooled features `[B, C]`.
pub(super) fn se_gate(b: &mut Builder, pooled: Value, w: &SeWeights) -> Result<Value> {
    let reduced = dense(b, pooled, w.reduce_w, w.reduce_b)?;
    let reduced = silu(b, reduced)?;
    let expanded = dense(b, reduced, w.expand_w, w.expand_b)?;
    b.logistic(expanded)
}

/// NHWC `x` scaled by `gate[b, c]` at every position of example `b`, channel `c`.
pub(super) fn gate_channels(b: &mut Builder, x: Value, gate: Value) -> Result<Value> {
    let dims = b.array_shape("squeeze_excite", x)?.dims().to_vec();
    let gate = b.broadcast_in_dim(gate, &dims, &[0, 3])?;
    b.mul(x, gate)
}
