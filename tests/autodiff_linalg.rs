//! Gradient rules of dot-general and convolution against central finite differences (f64, CPU
//! plugin): both operands, for batch and multi-dimension contractions, and for convolutions with
//! every stride, padding (SAME, asymmetric, negative), lhs/rhs dilation, feature and batch
//! grouping and several dimension-number layouts, in one, two and three spatial dimensions.

mod autodiff_fd;
mod common;

use autodiff_fd::{check, Input};
use effnetv2::hlo::{same_padding, ConvDimensionNumbers, ConvSpec, DotDimensionNumbers, WindowDim};

fn dot_case(name: &str, lhs: &[i64], rhs: &[i64], dn: DotDimensionNumbers) {
    check(
        name,
        &[Input::random(lhs, 1), Input::random(rhs, 2)],
        |b, p| b.dot_general(p[0], p[1], &dn),
    );
}

#[test]
fn dot_general() {
    let dn = |lc: &[i64], rc: &[i64], lb: &[i64], rb: &[i64]| DotDimensionNumbers {
        lhs_contracting: lc.to_vec(),
        rhs_contracting: rc.to_vec(),
        lhs_batch: lb.to_vec(),
        rhs_batch: rb.to_vec(),
    };
    dot_case("matmul", &[3, 5], &[5, 7], dn(&[1], &[0], &[], &[]));
    dot_case("vector_dot", &[5], &[5], dn(&[0], &[0], &[], &[]));
    dot_case("outer_product", &[3], &[5], dn(&[], &[], &[], &[]));
    dot_case(
        "batch_matmul",
        &[2, 3, 5],
        &[2, 5, 7],
        dn(&[2], &[1], &[0], &[0]),
    );
    dot_case(
        "batch_in_the_middle",
        &[5, 2, 3],
        &[3, 7, 2],
        dn(&[2], &[0], &[1], &[2]),
    );
    // lhs dimension 2 pairs with rhs dimension 0 and lhs 0 with rhs 1: the pairs are not sorted.
    dot_case(
        "two_contractions_crossed",
        &[3, 4, 5],
        &[5, 3, 2],
        dn(&[2, 0], &[0, 1], &[], &[]),
    );
    dot_case(
        "two_batches_crossed",
        &[2, 3, 5, 4],
        &[3, 4, 2, 7],
        dn(&[3], &[1], &[1, 0], &[0, 2]),
    );
}

fn nhwc_spec(window: Vec<WindowDim>) -> ConvSpec {
    ConvSpec {
        window,
        dimension_numbers: ConvDimensionNumbers::nhwc(),
        feature_group_count: 1,
        batch_group_count: 1,
    }
}

fn conv_case(name: &str, input: &[i64], kernel: &[i64], spec: ConvSpec) {
    check(
        &format!("conv_{name}"),
        &[Input::random(input, 3), Input::random(kernel, 4)],
        |b, p| b.convolution(p[0], p[1], &spec),
    );
}

/// Input `[2, 5, 7, 3]` (NHWC), kernel `[3, 2, 3, 4]` (HWIO), one window per case.
#[test]
fn convolution_strides_and_padding() {
    let w = WindowDim::new;
    let same = |n: i64, k: i64, s: i64| {
        let (lo, hi) = same_padding(n, k, s, 1);
        w(k).stride(s).padding(lo, hi)
    };
    let cases = [
        ("valid", vec![w(3), w(2)]),
        ("same_stride1", vec![same(5, 3, 1), same(7, 2, 1)]),
        ("same_stride2", vec![same(5, 3, 2), same(7, 2, 2)]),
        (
            "stride2x3_asymmetric_pad",
            vec![w(3).stride(2).padding(0, 2), w(2).stride(3).padding(1, 0)],
        ),
        (
            "stride_leaves_a_remainder",
            vec![w(3).stride(3), w(2).stride(4).padding(0, 1)],
        ),
        (
            "negative_pad",
            vec![w(3).padding(-1, 1), w(2).stride(2).padding(1, -2)],
        ),
    ];
    for (name, window) in cases {
        conv_case(name, &[2, 5, 7, 3], &[3, 2, 3, 4], nhwc_spec(window));
    }
}

#[test]
fn convolution_dilations() {
    let w = WindowDim::new;
    let cases = [
        (
            "rhs_dilation",
            vec![
                w(3).window_dilation(2).padding(2, 1),
                w(2).window_dilation(3),
            ],
        ),
        (
            "lhs_dilation",
            vec![
                w(3).base_dilation(2).padding(2, 2),
                w(2).base_dilation(3).padding(1, 0),
            ],
        ),
        (
            "all_combined",
            vec![
                w(3).stride(2)
                    .base_dilation(2)
                    .window_dilation(2)
                    .padding(2, 1),
                w(2).stride(3)
                    .base_dilation(2)
                    .window_dilation(3)
                    .padding(3, 0),
            ],
        ),
    ];
    for (name, window) in cases {
        conv_case(name, &[2, 5, 7, 3], &[3, 2, 3, 4], nhwc_spec(window));
    }
}

#[test]
fn convolution_feature_groups() {
    let w = WindowDim::new;
    let grouped = |groups: i64, window: Vec<WindowDim>| ConvSpec {
        feature_group_count: groups,
        ..nhwc_spec(window)
    };
    // 6 input features in 3 groups of 2, 6 output features (2 per group).
    conv_case(
        "grouped",
        &[2, 5, 7, 6],
        &[3, 2, 2, 6],
        grouped(3, vec![w(3).padding(1, 1), w(2).stride(2)]),
    );
    // Depthwise: one group per channel, without and with a channel multiplier.
    conv_case(
        "depthwise",
        &[2, 5, 7, 3],
        &[3, 3, 1, 3],
        grouped(3, vec![w(3).padding(1, 1), w(3).padding(1, 1)]),
    );
    conv_case(
        "depthwise_multiplier2",
        &[2, 5, 7, 3],
        &[3, 3, 1, 6],
        grouped(3, vec![w(3).stride(2).padding(1, 1), w(3).padding(0, 1)]),
    );
    conv_case(
        "depthwise_dilated",
        &[2, 5, 7, 3],
        &[2, 3, 1, 3],
        grouped(
            3,
            vec![
                w(2).window_dilation(2).base_dilation(2).padding(1, 0),
                w(3).stride(2).padding(-1, 2),
            ],
        ),
    );
}

#[test]
fn convolution_batch_groups() {
    let w = WindowDim::new;
    let spec = |window: Vec<WindowDim>| ConvSpec {
        batch_group_count: 2,
        ..nhwc_spec(window)
    };
    // Batch 4 in 2 groups; 4 output features, 2 per batch group.
    conv_case(
        "batch_groups",
        &[4, 5, 7, 3],
        &[3, 2, 3, 4],
        spec(vec![w(3).padding(1, 0), w(2)]),
    );
    conv_case(
        "batch_groups_strided",
        &[4, 5, 7, 3],
        &[2, 2, 3, 6],
        spec(vec![
            w(2).stride(2).window_dilation(2),
            w(2).stride(3).padding(0, 1),
        ]),
    );
}

#[test]
fn convolution_dimension_numbers() {
    let w = WindowDim::new;
    let window = vec![
        w(3).stride(2).padding(1, 1),
        w(2).window_dilation(2).padding(0, 1),
    ];
    let nchw = ConvSpec {
        window: window.clone(),
        dimension_numbers: ConvDimensionNumbers::nchw(),
        feature_group_count: 1,
        batch_group_count: 1,
    };
    conv_case("nchw_oihw", &[2, 3, 5, 7], &[4, 3, 3, 2], nchw);
    // Every role at an unusual position: input f 0 b 1 0 2; kernel 1 o 0 i; output 0 f 1 b.
    let scrambled = ConvDimensionNumbers {
        input_batch: 2,
        input_feature: 0,
        input_spatial: vec![3, 1],
        kernel_input_feature: 3,
        kernel_output_feature: 1,
        kernel_spatial: vec![2, 0],
        output_batch: 3,
        output_feature: 1,
        output_spatial: vec![0, 2],
    };
    let spec = |groups: i64, batch_groups: i64| ConvSpec {
        window: window.clone(),
        dimension_numbers: scrambled.clone(),
        feature_group_count: groups,
        batch_group_count: batch_groups,
    };
    // input dims: [features, spatial 1, batch, spatial 0]; kernel: [spatial 1, out, spatial 0, in].
    conv_case("scrambled", &[3, 7, 2, 5], &[2, 4, 3, 3], spec(1, 1));
    conv_case(
        "scrambled_grouped",
        &[6, 7, 2, 5],
        &[2, 4, 3, 3],
        spec(2, 1),
    );
    conv_case(
        "scrambled_batch_grouped",
        &[3, 7, 4, 5],
        &[2, 4, 3, 3],
        spec(1, 2),
    );
}

#[test]
fn convolution_in_one_and_three_dimensions() {
    let w = WindowDim::new;
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
    let spec1 = ConvSpec {
        window: vec![w(3).stride(2).padding(1, 1)],
        dimension_numbers: nwc,
        feature_group_count: 1,
        batch_group_count: 1,
    };
    conv_case("1d", &[2, 9, 3], &[3, 3, 5], spec1);
    let ndhwc = ConvDimensionNumbers {
        input_batch: 0,
        input_feature: 4,
        input_spatial: vec![1, 2, 3],
        kernel_input_feature: 3,
        kernel_output_feature: 4,
        kernel_spatial: vec![0, 1, 2],
        output_batch: 0,
        output_feature: 4,
        output_spatial: vec![1, 2, 3],
    };
    let window = vec![w(2).padding(0, 1), w(3).stride(2), w(2).window_dilation(2)];
    let spec3 = ConvSpec {
        window,
        dimension_numbers: ndhwc,
        feature_group_count: 1,
        batch_group_count: 1,
    };
    conv_case("3d", &[1, 3, 5, 5, 2], &[2, 3, 2, 2, 3], spec3);
}
