//! Convolution and dot-general compiled on the official CPU plugin against one general ndarray
//! reference each: a direct convolution loop over any dimension numbers, window (stride,
//! padding, lhs/rhs dilation) and group counts, and a direct contraction loop over any batch and
//! contracting dimensions.

mod common;

use common::{assert_close, assert_exact, lit, module, random, random_f32, run1, shapes_of};
use effnetv2::hlo::{same_padding, ConvDimensionNumbers, ConvSpec, DotDimensionNumbers, WindowDim};
use ndarray::{ArrayD, ArrayViewD, Dimension, IxDyn};

/// f32 products summed in another order than XLA's: a few ulp of the sum of magnitudes.
const RTOL: f64 = 1e-5;
const ATOL: f64 = 1e-5;

/// Output size of one window dimension over `n` input elements, from XLA's definition.
fn output_size(n: usize, w: &WindowDim) -> usize {
    let dilated = (n as i64 - 1) * w.base_dilation + 1;
    let padded = dilated + w.padding_low + w.padding_high;
    let extent = (w.size - 1) * w.window_dilation + 1;
    ((padded - extent) / w.stride + 1).max(0) as usize
}

/// `axes` as `usize` for `permuted_axes`.
fn axes(dims: impl IntoIterator<Item = i64>) -> IxDyn {
    IxDyn(&dims.into_iter().map(|d| d as usize).collect::<Vec<_>>())
}

/// Direct convolution following XLA's semantics.
///
/// Input and kernel are first viewed in canonical order (`[batch, feature, spatial...]` and
/// `[output feature, input feature, spatial...]`). Output feature `o` belongs to feature group
/// `o / (O / feature_group_count)`, which reads input features `group * I .. (group + 1) * I`,
/// and to batch group `o / (O / batch_group_count)`, which reads the batch slice
/// `group * N' .. (group + 1) * N'` (N' = output batch). The canonical result is finally laid out
/// as the output dimension numbers say.
fn conv_ref(lhs: &ArrayD<f32>, rhs: &ArrayD<f32>, spec: &ConvSpec) -> ArrayD<f32> {
    let dn = &spec.dimension_numbers;
    let l: ArrayViewD<f32> = lhs.view().permuted_axes(axes(
        [dn.input_batch, dn.input_feature]
            .into_iter()
            .chain(dn.input_spatial.clone()),
    ));
    let r: ArrayViewD<f32> = rhs.view().permuted_axes(axes(
        [dn.kernel_output_feature, dn.kernel_input_feature]
            .into_iter()
            .chain(dn.kernel_spatial.clone()),
    ));
    let (batch, out_features, kernel_in) = (l.shape()[0], r.shape()[0], r.shape()[1]);
    let out_batch = batch / spec.batch_group_count as usize;
    let per_feature_group = out_features / spec.feature_group_count as usize;
    let per_batch_group = out_features / spec.batch_group_count as usize;
    let spatial_in = &l.shape()[2..];
    let kernel_dims = &r.shape()[2..];
    let mut out_dims = vec![out_batch, out_features];
    out_dims.extend(
        spatial_in
            .iter()
            .zip(&spec.window)
            .map(|(&n, w)| output_size(n, w)),
    );
    let canonical = ArrayD::from_shape_fn(IxDyn(&out_dims), |ix| {
        let (n, o) = (ix[0], ix[1]);
        let batch_index = (o / per_batch_group) * out_batch + n;
        let first_feature = (o / per_feature_group) * kernel_in;
        let mut sum = 0.0f64;
        for k in ndarray::indices(IxDyn(kernel_dims)) {
            let Some(position) = input_position(ix.slice(), k.slice(), spatial_in, &spec.window)
            else {
                continue;
            };
            for i in 0..kernel_in {
                let mut li = vec![batch_index, first_feature + i];
                li.extend(&position);
                let mut ri = vec![o, i];
                ri.extend(k.slice());
                sum += f64::from(l[IxDyn(&li)]) * f64::from(r[IxDyn(&ri)]);
            }
        }
        sum as f32
    });
    let mut to_output = vec![0; out_dims.len()];
    to_output[dn.output_batch as usize] = 0;
    to_output[dn.output_feature as usize] = 1;
    for (i, &d) in dn.output_spatial.iter().enumerate() {
        to_output[d as usize] = 2 + i;
    }
    canonical
        .permuted_axes(IxDyn(&to_output))
        .as_standard_layout()
        .into_owned()
}

/// The input position read by kernel element `k` for canonical output index `ix`, or `None` on
/// padding or an lhs-dilation hole.
fn input_position(
    ix: &[usize],
    k: &[usize],
    spatial_in: &[usize],
    window: &[WindowDim],
) -> Option<Vec<usize>> {
    (0..window.len())
        .map(|d| {
            let w = window[d];
            let p = ix[2 + d] as i64 * w.stride + k[d] as i64 * w.window_dilation - w.padding_low;
            let real =
                p >= 0 && p % w.base_dilation == 0 && p / w.base_dilation < spatial_in[d] as i64;
            real.then_some((p / w.base_dilation) as usize)
        })
        .collect()
}

fn spec(
    window: Vec<WindowDim>,
    dimension_numbers: ConvDimensionNumbers,
    feature_group_count: i64,
    batch_group_count: i64,
) -> ConvSpec {
    ConvSpec {
        window,
        dimension_numbers,
        feature_group_count,
        batch_group_count,
    }
}

/// A square 2-D window with TF SAME padding for inputs of spatial size `n`.
fn same_window(n: i64, size: i64, stride: i64, dilation: i64) -> Vec<WindowDim> {
    let (low, high) = same_padding(n, size, stride, dilation);
    vec![
        WindowDim::new(size)
            .stride(stride)
            .padding(low, high)
            .window_dilation(dilation);
        2
    ]
}

/// Runs one convolution on random operands, as written and in the canonical form (transposes
/// around an NHWC/HWIO convolution), and compares both with [`conv_ref`]; returns the output
/// dimensions for further checks.
fn check_conv(
    name: &str,
    lhs_dims: &[usize],
    rhs_dims: &[usize],
    spec: &ConvSpec,
    seed: u64,
) -> Vec<usize> {
    let lhs = random_f32(lhs_dims, seed);
    let rhs = random_f32(rhs_dims, seed + 1000);
    let args = [lit(&lhs), lit(&rhs)];
    let expected = conv_ref(&lhs, &rhs, spec);
    let as_written = module("convolution", &shapes_of(&args), |b, p| {
        b.convolution(p[0], p[1], spec)
    });
    assert_close(name, &run1(&as_written, &args), &expected, RTOL, ATOL);
    let canonical = module("canonical_convolution", &shapes_of(&args), |b, p| {
        b.canonical_convolution(p[0], p[1], spec)
    });
    let what = format!("{name} (canonical form)");
    assert_close(&what, &run1(&canonical, &args), &expected, RTOL, ATOL);
    expected.shape().to_vec()
}

#[test]
fn convolution_stride_1_valid_and_same() {
    let nhwc = ConvDimensionNumbers::nhwc;
    let out = check_conv(
        "3x3 valid",
        &[2, 5, 5, 3],
        &[3, 3, 3, 4],
        &spec(vec![WindowDim::new(3); 2], nhwc(), 1, 1),
        1,
    );
    assert_eq!(out, [2, 3, 3, 4]);
    let out = check_conv(
        "3x3 SAME",
        &[2, 5, 6, 3],
        &[3, 3, 3, 4],
        &spec(same_window(5, 3, 1, 1), nhwc(), 1, 1),
        2,
    );
    assert_eq!(out, [2, 5, 6, 4]);
    let out = check_conv(
        "2x2 SAME (pads high only)",
        &[1, 6, 6, 2],
        &[2, 2, 2, 3],
        &spec(same_window(6, 2, 1, 1), nhwc(), 1, 1),
        3,
    );
    assert_eq!(out, [1, 6, 6, 3]);
    check_conv(
        "1x1",
        &[2, 4, 4, 5],
        &[1, 1, 5, 3],
        &spec(vec![WindowDim::new(1); 2], nhwc(), 1, 1),
        4,
    );
}

#[test]
fn convolution_stride_2_same_on_even_and_odd_sizes() {
    let nhwc = ConvDimensionNumbers::nhwc;
    // Even input: SAME pads (0, 1); odd input: (1, 1). Both give ceil(n / 2) outputs.
    let out = check_conv(
        "even 8",
        &[1, 8, 8, 2],
        &[3, 3, 2, 4],
        &spec(same_window(8, 3, 2, 1), nhwc(), 1, 1),
        5,
    );
    assert_eq!(out, [1, 4, 4, 4]);
    let out = check_conv(
        "odd 7",
        &[2, 7, 7, 2],
        &[3, 3, 2, 4],
        &spec(same_window(7, 3, 2, 1), nhwc(), 1, 1),
        6,
    );
    assert_eq!(out, [2, 4, 4, 4]);
    let out = check_conv(
        "5x5 odd 9",
        &[1, 9, 9, 1],
        &[5, 5, 1, 2],
        &spec(same_window(9, 5, 2, 1), nhwc(), 1, 1),
        7,
    );
    assert_eq!(out, [1, 5, 5, 2]);
    let out = check_conv(
        "valid stride 2",
        &[1, 8, 7, 2],
        &[3, 3, 2, 2],
        &spec(vec![WindowDim::new(3).stride(2); 2], nhwc(), 1, 1),
        8,
    );
    assert_eq!(out, [1, 3, 3, 2]);
}

#[test]
fn convolution_with_kernel_and_input_dilation() {
    let nhwc = ConvDimensionNumbers::nhwc;
    let out = check_conv(
        "rhs dilation 2 SAME",
        &[1, 7, 7, 2],
        &[3, 3, 2, 3],
        &spec(same_window(7, 3, 1, 2), nhwc(), 1, 1),
        9,
    );
    assert_eq!(out, [1, 7, 7, 3]);
    // lhs dilation with padding is the transposed (fractionally strided) convolution.
    let window = vec![WindowDim::new(3).padding(2, 2).base_dilation(2); 2];
    let out = check_conv(
        "lhs dilation 2",
        &[1, 4, 4, 2],
        &[3, 3, 2, 3],
        &spec(window, nhwc(), 1, 1),
        10,
    );
    assert_eq!(out, [1, 9, 9, 3]);
    let window = vec![
        WindowDim::new(2)
            .stride(2)
            .padding(1, 0)
            .window_dilation(3)
            .base_dilation(2),
        WindowDim::new(3).stride(1).padding(0, 1).window_dilation(2),
    ];
    check_conv(
        "mixed dilations",
        &[2, 5, 6, 3],
        &[2, 3, 3, 2],
        &spec(window, nhwc(), 1, 1),
        11,
    );
}

#[test]
fn convolution_in_nchw_and_other_dimension_orders() {
    let window = vec![
        WindowDim::new(3).stride(2).padding(1, 1),
        WindowDim::new(2).padding(0, 1),
    ];
    let out = check_conv(
        "NCHW/OIHW",
        &[2, 3, 6, 5],
        &[4, 3, 3, 2],
        &spec(window.clone(), ConvDimensionNumbers::nchw(), 1, 1),
        12,
    );
    assert_eq!(out, [2, 4, 3, 5]);
    // Input [H, N, W, C], kernel [O, H, W, I], output [N, H, C, W].
    let scrambled = ConvDimensionNumbers {
        input_batch: 1,
        input_feature: 3,
        input_spatial: vec![0, 2],
        kernel_input_feature: 3,
        kernel_output_feature: 0,
        kernel_spatial: vec![1, 2],
        output_batch: 0,
        output_feature: 2,
        output_spatial: vec![1, 3],
    };
    let out = check_conv(
        "scrambled dimension numbers",
        &[6, 2, 5, 3],
        &[4, 3, 2, 3],
        &spec(window, scrambled, 1, 1),
        13,
    );
    assert_eq!(out, [2, 3, 4, 5]);
    // One spatial dimension: [N, W, C] with a [W, I, O] kernel.
    let nwc = ConvDimensionNumbers {
        input_batch: 0,
        input_feature: 2,
        input_spatial: vec![1],
        kernel_input_feature: 1,
        kernel_output_feature: 2,
        kernel_spatial: vec![0],
        output_batch: 0,
        output_feature: 2,
        output_spatial: vec![1],
    };
    let out = check_conv(
        "1-D",
        &[2, 9, 3],
        &[3, 3, 4],
        &spec(vec![WindowDim::new(3).stride(2).padding(1, 1)], nwc, 1, 1),
        14,
    );
    assert_eq!(out, [2, 5, 4]);
}

#[test]
fn convolution_with_feature_groups_and_depthwise() {
    let nhwc = ConvDimensionNumbers::nhwc;
    // Depthwise: one group per channel, channel multiplier 2 (kernel input features = 1).
    let out = check_conv(
        "depthwise",
        &[2, 6, 6, 4],
        &[3, 3, 1, 8],
        &spec(same_window(6, 3, 1, 1), nhwc(), 4, 1),
        15,
    );
    assert_eq!(out, [2, 6, 6, 8]);
    let out = check_conv(
        "depthwise stride 2",
        &[1, 7, 7, 3],
        &[5, 5, 1, 3],
        &spec(same_window(7, 5, 2, 1), nhwc(), 3, 1),
        16,
    );
    assert_eq!(out, [1, 4, 4, 3]);
    let out = check_conv(
        "2 groups",
        &[1, 5, 5, 4],
        &[3, 3, 2, 6],
        &spec(vec![WindowDim::new(3); 2], nhwc(), 2, 1),
        17,
    );
    assert_eq!(out, [1, 3, 3, 6]);
    let window = vec![WindowDim::new(3).padding(1, 1); 2];
    check_conv(
        "depthwise NCHW",
        &[2, 4, 5, 5],
        &[4, 1, 3, 3],
        &spec(window, ConvDimensionNumbers::nchw(), 4, 1),
        18,
    );
}

#[test]
fn convolution_with_batch_groups() {
    let nhwc = ConvDimensionNumbers::nhwc;
    // Two batch groups of two images each: output features 0..3 read images 0-1, 3..6 images 2-3.
    let out = check_conv(
        "batch groups",
        &[4, 5, 5, 3],
        &[3, 3, 3, 6],
        &spec(vec![WindowDim::new(3); 2], nhwc(), 1, 2),
        19,
    );
    assert_eq!(out, [2, 3, 3, 6]);
    // The form a depthwise weight gradient takes: channels as batch, one batch group per channel.
    let window = vec![WindowDim::new(4).padding(1, 1); 2];
    let out = check_conv(
        "batch group per channel",
        &[3, 5, 5, 2],
        &[4, 4, 2, 3],
        &spec(window, nhwc(), 1, 3),
        20,
    );
    assert_eq!(out, [1, 4, 4, 3]);
}

/// Direct contraction following XLA's dot-general: the result lists batch dimensions, then the
/// free dimensions of `lhs`, then those of `rhs`.
fn dot_ref<T>(lhs: &ArrayD<T>, rhs: &ArrayD<T>, dn: &DotDimensionNumbers, zero: T) -> ArrayD<T>
where
    T: Copy + std::ops::Add<Output = T> + std::ops::Mul<Output = T>,
{
    let to_usize = |v: &[i64]| v.iter().map(|&d| d as usize).collect::<Vec<_>>();
    let (lb, rb, lc, rc) = (
        to_usize(&dn.lhs_batch),
        to_usize(&dn.rhs_batch),
        to_usize(&dn.lhs_contracting),
        to_usize(&dn.rhs_contracting),
    );
    let free =
        |rank: usize, used: &[usize]| (0..rank).filter(|d| !used.contains(d)).collect::<Vec<_>>();
    let lf = free(lhs.ndim(), &[lb.clone(), lc.clone()].concat());
    let rf = free(rhs.ndim(), &[rb.clone(), rc.clone()].concat());
    let mut out_dims: Vec<usize> = lb.iter().map(|&d| lhs.shape()[d]).collect();
    out_dims.extend(lf.iter().map(|&d| lhs.shape()[d]));
    out_dims.extend(rf.iter().map(|&d| rhs.shape()[d]));
    let contracted: Vec<usize> = lc.iter().map(|&d| lhs.shape()[d]).collect();
    ArrayD::from_shape_fn(IxDyn(&out_dims), |ix| {
        let (batch, rest) = ix.slice().split_at(lb.len());
        let (lhs_free, rhs_free) = rest.split_at(lf.len());
        let mut li = vec![0; lhs.ndim()];
        let mut ri = vec![0; rhs.ndim()];
        for (k, &i) in batch.iter().enumerate() {
            li[lb[k]] = i;
            ri[rb[k]] = i;
        }
        lf.iter().zip(lhs_free).for_each(|(&d, &i)| li[d] = i);
        rf.iter().zip(rhs_free).for_each(|(&d, &i)| ri[d] = i);
        let mut sum = zero;
        for c in ndarray::indices(IxDyn(&contracted)) {
            for (k, &i) in c.slice().iter().enumerate() {
                li[lc[k]] = i;
                ri[rc[k]] = i;
            }
            sum = sum + lhs[IxDyn(&li)] * rhs[IxDyn(&ri)];
        }
        sum
    })
}

fn dims(
    lhs_contracting: &[i64],
    rhs_contracting: &[i64],
    lhs_batch: &[i64],
    rhs_batch: &[i64],
) -> DotDimensionNumbers {
    DotDimensionNumbers {
        lhs_contracting: lhs_contracting.to_vec(),
        rhs_contracting: rhs_contracting.to_vec(),
        lhs_batch: lhs_batch.to_vec(),
        rhs_batch: rhs_batch.to_vec(),
    }
}

#[test]
fn dot_general_contracting_and_batch_dimensions() {
    let cases = [
        (
            "matmul",
            vec![3, 4],
            vec![4, 5],
            dims(&[1], &[0], &[], &[]),
            vec![3, 5],
        ),
        (
            "transposed rhs",
            vec![3, 4],
            vec![5, 4],
            dims(&[1], &[1], &[], &[]),
            vec![3, 5],
        ),
        (
            "vector dot",
            vec![6],
            vec![6],
            dims(&[0], &[0], &[], &[]),
            vec![],
        ),
        (
            "outer product",
            vec![3],
            vec![2],
            dims(&[], &[], &[], &[]),
            vec![3, 2],
        ),
        (
            "leading batch",
            vec![2, 3, 4],
            vec![2, 4, 5],
            dims(&[2], &[1], &[0], &[0]),
            vec![2, 3, 5],
        ),
        (
            "inner batch",
            vec![3, 2, 4],
            vec![4, 5, 2],
            dims(&[2], &[0], &[1], &[2]),
            vec![2, 3, 5],
        ),
        (
            "two contracting",
            vec![2, 3, 4],
            vec![4, 3, 5],
            dims(&[1, 2], &[1, 0], &[], &[]),
            vec![2, 5],
        ),
        (
            "two batch",
            vec![2, 3, 4, 2],
            vec![3, 2, 2, 5],
            dims(&[3], &[2], &[1, 0], &[0, 1]),
            vec![3, 2, 4, 5],
        ),
    ];
    for (seed, (name, lhs_dims, rhs_dims, dn, expected_dims)) in cases.into_iter().enumerate() {
        let lhs = random_f32(&lhs_dims, 100 + seed as u64);
        let rhs = random_f32(&rhs_dims, 200 + seed as u64);
        let args = [lit(&lhs), lit(&rhs)];
        let m = module("dot", &shapes_of(&args), |b, p| {
            b.dot_general(p[0], p[1], &dn)
        });
        let expected =
            dot_ref(&lhs.mapv(f64::from), &rhs.mapv(f64::from), &dn, 0.0).mapv(|v| v as f32);
        assert_eq!(expected.shape(), expected_dims.as_slice(), "{name}");
        assert_close(name, &run1(&m, &args), &expected, RTOL, ATOL);
    }
}

#[test]
fn dot_general_on_integers_and_f64() {
    let dn = dims(&[2], &[1], &[0], &[0]);
    let lhs = random(&[2, 3, 4], -50i32, 50, 300);
    let rhs = random(&[2, 4, 3], -50i32, 50, 301);
    let args = [lit(&lhs), lit(&rhs)];
    let m = module("dot_s32", &shapes_of(&args), |b, p| {
        b.dot_general(p[0], p[1], &dn)
    });
    assert_exact(
        "s32 batched",
        &run1(&m, &args),
        &dot_ref(&lhs, &rhs, &dn, 0),
    );

    let lhs = random(&[4, 7], -1.0f64, 1.0, 302);
    let rhs = random(&[7, 2], -1.0f64, 1.0, 303);
    let args = [lit(&lhs), lit(&rhs)];
    let m = module("matmul_f64", &shapes_of(&args), |b, p| b.matmul(p[0], p[1]));
    assert_close(
        "f64 matmul",
        &run1(&m, &args),
        &dot_ref(&lhs, &rhs, &dims(&[1], &[0], &[], &[]), 0.0),
        1e-14,
        1e-15,
    );
}
