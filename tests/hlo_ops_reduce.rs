//! Reductions compiled on the official CPU plugin against ndarray references: reduce (one and
//! several operands, e.g. argmax), reduce-window (max and average pooling, SAME padding,
//! dilations) and select-and-scatter (the gradient of max pooling).

mod common;

use common::{assert_close, assert_exact, lit, module, random, random_f32, run, run1, shapes_of};
use effnetv2::hlo::{
    same_padding, BinaryOp, Builder, ComparisonDirection, Computation, ElementType, Shape, Value,
    WindowDim,
};
use ndarray::{ArrayD, Axis, Dimension, IxDyn};

/// Summation in a different order than XLA's: a few ulp of the sum of magnitudes.
const SUM_RTOL: f64 = 1e-6;

#[test]
fn reduce_sums_products_and_extremes_over_dimensions() {
    let x = random_f32(&[3, 4, 5], 1);
    let n = random(&[4, 6], -1000i32, 1000, 2);
    let l = random(&[3, 4], -5i64, 5, 3);
    let args = [lit(&x), lit(&n), lit(&l)];
    let m = module("reduce", &shapes_of(&args), |b, p| {
        let values = [
            b.reduce_sum(p[0], &[0, 2])?,
            b.reduce_sum(p[0], &[1])?,
            b.reduce_sum(p[0], &[0, 1, 2])?,
            b.reduce_max(p[0], &[2, 0])?,
            b.reduce_binary(p[1], BinaryOp::Minimum, f64::from(i32::MAX), &[1])?,
            b.reduce_binary(p[2], BinaryOp::Multiply, 1.0, &[0])?,
        ];
        b.tuple(&values)
    });
    let out = run(&m, &args);
    let x64 = x.mapv(f64::from);
    let sum_over = |dims: &[usize]| {
        let mut r = x64.clone();
        for &d in dims.iter().rev() {
            r = r.sum_axis(Axis(d));
        }
        r.mapv(|v| v as f32)
    };
    assert_close(
        "sum over [0,2]",
        &out[0],
        &sum_over(&[0, 2]),
        SUM_RTOL,
        1e-6,
    );
    assert_close("sum over [1]", &out[1], &sum_over(&[1]), SUM_RTOL, 1e-6);
    assert_close(
        "sum over all",
        &out[2],
        &sum_over(&[0, 1, 2]),
        SUM_RTOL,
        1e-6,
    );
    let max = x
        .fold_axis(Axis(2), f32::NEG_INFINITY, |a, &v| a.max(v))
        .fold_axis(Axis(0), f32::NEG_INFINITY, |a, &v| a.max(v));
    assert_exact("max over [2,0]", &out[3], &max);
    assert_exact(
        "min over [1]",
        &out[4],
        &n.fold_axis(Axis(1), i32::MAX, |a, &v| *a.min(&v)),
    );
    assert_exact(
        "product over [0]",
        &out[5],
        &l.fold_axis(Axis(0), 1, |a, &v| a * v),
    );
}

/// `(value, index)` pairs reduced to the largest value, the smallest index among equal values.
fn argmax_reducer() -> Computation {
    let mut b = Builder::new("argmax");
    let scalar = |ty| Shape::scalar(ty);
    let av = b
        .parameter(0, scalar(ElementType::F32), "acc_value")
        .unwrap();
    let ai = b
        .parameter(1, scalar(ElementType::S32), "acc_index")
        .unwrap();
    let bv = b.parameter(2, scalar(ElementType::F32), "value").unwrap();
    let bi = b.parameter(3, scalar(ElementType::S32), "index").unwrap();
    let greater = b.compare(ComparisonDirection::Gt, av, bv).unwrap();
    let equal = b.compare(ComparisonDirection::Eq, av, bv).unwrap();
    let smaller_index = b.compare(ComparisonDirection::Lt, ai, bi).unwrap();
    let tie_to_a = b.and(equal, smaller_index).unwrap();
    let pick_a = b.or(greater, tie_to_a).unwrap();
    let value = b.select(pick_a, av, bv).unwrap();
    let index = b.select(pick_a, ai, bi).unwrap();
    let root = b.tuple(&[value, index]).unwrap();
    b.build(root).unwrap()
}

/// Reference argmax along `axis`: the first index of the largest value.
fn argmax_ref(x: &ArrayD<f32>, axis: usize) -> (ArrayD<f32>, ArrayD<i32>) {
    let max = x.fold_axis(Axis(axis), f32::NEG_INFINITY, |a, &v| a.max(v));
    let index = x.map_axis(Axis(axis), |lane| {
        let best = lane.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
        lane.iter().position(|&v| v == best).unwrap() as i32
    });
    (max, index)
}

#[test]
fn multi_operand_reduce_computes_argmax_with_first_index_on_ties() {
    // Small integers make ties common, so the tie-breaking rule is exercised.
    let x = random(&[5, 7], -3i32, 3, 4).mapv(|v| v as f32);
    let reducer = argmax_reducer();
    let m = module("argmax", &shapes_of(&[lit(&x)]), |b, p| {
        let mut outputs = Vec::new();
        for axis in [1, 0] {
            let index = b.iota_of(ElementType::S32, &[5, 7], axis)?;
            let init_value = b.scalar(f32::NEG_INFINITY)?;
            let init_index = b.scalar(i32::MAX)?;
            let pair = b.reduce(&[p[0], index], &[init_value, init_index], &[axis], &reducer)?;
            outputs.push(b.get_tuple_element(pair, 0)?);
            outputs.push(b.get_tuple_element(pair, 1)?);
        }
        b.tuple(&outputs)
    });
    let out = run(&m, &[lit(&x)]);
    for (k, axis) in [1, 0].into_iter().enumerate() {
        let (max, index) = argmax_ref(&x, axis);
        assert_exact(&format!("max along {axis}"), &out[2 * k], &max);
        assert_exact(&format!("argmax along {axis}"), &out[2 * k + 1], &index);
    }
}

/// XLA's reduce-window: windows over the base dilated by `base_dilation` and padded, where
/// padding and dilation holes hold `init`.
fn reduce_window_ref<T: Copy>(
    x: &ArrayD<T>,
    init: T,
    window: &[WindowDim],
    f: impl Fn(T, T) -> T,
) -> ArrayD<T> {
    let out_dims: Vec<usize> = x
        .shape()
        .iter()
        .zip(window)
        .map(|(&n, w)| window_output_size(n, w))
        .collect();
    let window_dims: Vec<usize> = window.iter().map(|w| w.size as usize).collect();
    ArrayD::from_shape_fn(IxDyn(&out_dims), |out| {
        let mut acc = init;
        for k in ndarray::indices(IxDyn(&window_dims)) {
            let value = base_index(x.shape(), out.slice(), k.slice(), window)
                .map_or(init, |i| x[IxDyn(&i)]);
            acc = f(acc, value);
        }
        acc
    })
}

/// Output size of one window dimension, computed from XLA's definition.
fn window_output_size(n: usize, w: &WindowDim) -> usize {
    let dilated = if n == 0 {
        0
    } else {
        (n as i64 - 1) * w.base_dilation + 1
    };
    let padded = dilated + w.padding_low + w.padding_high;
    let extent = (w.size - 1) * w.window_dilation + 1;
    if padded < extent {
        0
    } else {
        ((padded - extent) / w.stride + 1) as usize
    }
}

/// The operand index under window element `k` of output position `out`, or `None` where it
/// falls on padding or a dilation hole.
fn base_index(
    dims: &[usize],
    out: &[usize],
    k: &[usize],
    window: &[WindowDim],
) -> Option<Vec<usize>> {
    (0..dims.len())
        .map(|d| {
            let w = window[d];
            let position =
                out[d] as i64 * w.stride + k[d] as i64 * w.window_dilation - w.padding_low;
            let in_bounds = position >= 0
                && position % w.base_dilation == 0
                && position / w.base_dilation < dims[d] as i64;
            in_bounds.then_some((position / w.base_dilation) as usize)
        })
        .collect()
}

/// A window over the spatial dimensions of an NHWC array (size 1 over batch and channels).
fn nhwc_window(size: i64, stride: i64, padding: [(i64, i64); 2]) -> Vec<WindowDim> {
    let mut window = vec![WindowDim::new(1)];
    window.extend(
        padding
            .iter()
            .map(|&(low, high)| WindowDim::new(size).stride(stride).padding(low, high)),
    );
    window.push(WindowDim::new(1));
    window
}

/// TF SAME padding of a square NHWC input of spatial size `n`.
fn same(n: i64, size: i64, stride: i64) -> [(i64, i64); 2] {
    [same_padding(n, size, stride, 1); 2]
}

#[test]
fn same_padding_follows_tensorflow() {
    // out = ceil(n / stride); total = (out - 1) * stride + extent - n; the odd pixel goes high.
    assert_eq!(same_padding(8, 3, 2, 1), (0, 1));
    assert_eq!(same_padding(7, 3, 2, 1), (1, 1));
    assert_eq!(same_padding(6, 2, 1, 1), (0, 1));
    assert_eq!(same_padding(5, 3, 1, 1), (1, 1));
    assert_eq!(same_padding(7, 3, 1, 2), (2, 2));
    assert_eq!(same_padding(4, 1, 2, 1), (0, 0));
}

#[test]
fn max_pooling_valid_and_same() {
    let cases = [
        (
            "2x2 stride 2 valid",
            [2, 6, 6, 3],
            nhwc_window(2, 2, [(0, 0); 2]),
        ),
        (
            "3x3 stride 2 SAME even",
            [1, 8, 8, 2],
            nhwc_window(3, 2, same(8, 3, 2)),
        ),
        (
            "3x3 stride 2 SAME odd",
            [1, 7, 7, 2],
            nhwc_window(3, 2, same(7, 3, 2)),
        ),
        (
            "3x3 stride 1 SAME",
            [2, 5, 5, 1],
            nhwc_window(3, 1, same(5, 3, 1)),
        ),
    ];
    for (seed, (name, dims, window)) in cases.into_iter().enumerate() {
        let x = random_f32(&dims, 10 + seed as u64);
        let max = Computation::binary_reducer(BinaryOp::Maximum, ElementType::F32).unwrap();
        let m = module("max_pool", &shapes_of(&[lit(&x)]), |b, p| {
            let init = b.scalar(f32::NEG_INFINITY)?;
            b.reduce_window(p[0], init, &window, &max)
        });
        let expected = reduce_window_ref(&x, f32::NEG_INFINITY, &window, f32::max);
        if name.contains("SAME") {
            let n = dims[1];
            assert_eq!(
                expected.shape()[1],
                n.div_ceil(window[1].stride as usize),
                "{name}: SAME keeps ceil(n / stride)"
            );
        }
        assert_exact(name, &run1(&m, &[lit(&x)]), &expected);
    }
}

/// Average pooling as TF computes it: the window sum divided by the number of real (not
/// padded) elements, both as reduce-windows.
fn average_pool(
    b: &mut Builder,
    x: Value,
    window: &[WindowDim],
) -> Result<Value, effnetv2::hlo::HloError> {
    let add = Computation::binary_reducer(BinaryOp::Add, ElementType::F32)?;
    let zero = b.scalar(0.0f32)?;
    let sums = b.reduce_window(x, zero, window, &add)?;
    let ones = b.full_like(x, 1.0)?;
    let counts = b.reduce_window(ones, zero, window, &add)?;
    b.div(sums, counts)
}

#[test]
fn average_pooling_counts_only_real_elements() {
    let cases = [
        (
            "3x3 stride 1 SAME",
            [2, 5, 5, 3],
            nhwc_window(3, 1, same(5, 3, 1)),
        ),
        (
            "3x3 stride 2 SAME even",
            [1, 6, 6, 2],
            nhwc_window(3, 2, same(6, 3, 2)),
        ),
        (
            "2x2 stride 2 valid odd",
            [1, 5, 5, 1],
            nhwc_window(2, 2, [(0, 0); 2]),
        ),
    ];
    for (seed, (name, dims, window)) in cases.into_iter().enumerate() {
        let x = random_f32(&dims, 20 + seed as u64);
        let m = module("average_pool", &shapes_of(&[lit(&x)]), |b, p| {
            average_pool(b, p[0], &window)
        });
        let sums = reduce_window_ref(&x.mapv(f64::from), 0.0, &window, |a, v| a + v);
        let counts = reduce_window_ref(&x.mapv(|_| 1.0), 0.0, &window, |a, v| a + v);
        let expected = (sums / counts).mapv(|v| v as f32);
        assert_close(name, &run1(&m, &[lit(&x)]), &expected, SUM_RTOL, 1e-7);
    }
}

#[test]
fn reduce_window_with_window_and_base_dilation() {
    let x = random(&[5, 6], -50i32, 50, 30);
    let window = [
        WindowDim::new(2).stride(1).padding(1, 0).window_dilation(2),
        WindowDim::new(3).stride(2).padding(1, 2).base_dilation(2),
    ];
    let add = Computation::binary_reducer(BinaryOp::Add, ElementType::S32).unwrap();
    let m = module("dilated_window", &shapes_of(&[lit(&x)]), |b, p| {
        let init = b.scalar(0i32)?;
        b.reduce_window(p[0], init, &window, &add)
    });
    // The init value must be the reducer's identity: XLA skips padding and dilation holes, while
    // the StableHLO definition fills them with the init value; the two agree only then.
    let expected = reduce_window_ref(&x, 0, &window, |a, v| a + v);
    assert_exact("dilated sum", &run1(&m, &[lit(&x)]), &expected);
}

/// XLA's select-and-scatter with `select = ge` and `scatter = add`: in each window the first
/// largest real element receives the window's source value.
fn max_pool_gradient_ref(
    x: &ArrayD<f32>,
    source: &ArrayD<f32>,
    window: &[WindowDim],
) -> ArrayD<f32> {
    let mut result = ArrayD::zeros(x.raw_dim());
    let window_dims: Vec<usize> = window.iter().map(|w| w.size as usize).collect();
    for (out, &s) in source.indexed_iter() {
        let mut best: Option<Vec<usize>> = None;
        for k in ndarray::indices(IxDyn(&window_dims)) {
            if let Some(i) = base_index(x.shape(), out.slice(), k.slice(), window) {
                if best.as_ref().is_none_or(|b| x[IxDyn(b)] < x[IxDyn(&i)]) {
                    best = Some(i);
                }
            }
        }
        result[IxDyn(&best.expect("every window covers a real element"))] += s;
    }
    result
}

fn ge_selector() -> Computation {
    let mut b = Builder::new("ge");
    let x = b
        .parameter(0, Shape::scalar(ElementType::F32), "a")
        .unwrap();
    let y = b
        .parameter(1, Shape::scalar(ElementType::F32), "b")
        .unwrap();
    let r = b.compare(ComparisonDirection::Ge, x, y).unwrap();
    b.build(r).unwrap()
}

#[test]
fn select_and_scatter_routes_gradients_to_window_maxima() {
    let cases = [
        ("2x2 stride 2", [1, 4, 6, 2], nhwc_window(2, 2, [(0, 0); 2])),
        (
            "3x3 stride 2 SAME, overlapping",
            [2, 7, 7, 1],
            nhwc_window(3, 2, same(7, 3, 2)),
        ),
        (
            "3x3 stride 1 SAME",
            [1, 5, 5, 2],
            nhwc_window(3, 1, same(5, 3, 1)),
        ),
    ];
    let add = Computation::binary_reducer(BinaryOp::Add, ElementType::F32).unwrap();
    for (seed, (name, dims, window)) in cases.into_iter().enumerate() {
        let x = random_f32(&dims, 40 + seed as u64);
        let out_dims: Vec<usize> = dims
            .iter()
            .zip(&window)
            .map(|(&n, w)| window_output_size(n, w))
            .collect();
        let source = random_f32(&out_dims, 50 + seed as u64);
        let args = [lit(&x), lit(&source)];
        let m = module("select_and_scatter", &shapes_of(&args), |b, p| {
            let zero = b.scalar(0.0f32)?;
            b.select_and_scatter(p[0], &ge_selector(), &window, p[1], zero, &add)
        });
        let expected = max_pool_gradient_ref(&x, &source, &window);
        assert_close(name, &run1(&m, &args), &expected, SUM_RTOL, 1e-7);
    }
}

#[test]
fn select_and_scatter_breaks_ties_toward_the_first_element() {
    // All equal: with `ge` the first element of each window keeps the selection.
    let x = ArrayD::from_elem(IxDyn(&[4, 4]), 1.0f32);
    let source = ndarray::arr2(&[[1.0f32, 2.0], [3.0, 4.0]]).into_dyn();
    let window = [WindowDim::new(2).stride(2); 2];
    let add = Computation::binary_reducer(BinaryOp::Add, ElementType::F32).unwrap();
    let args = [lit(&x), lit(&source)];
    let m = module("select_and_scatter_ties", &shapes_of(&args), |b, p| {
        let zero = b.scalar(0.0f32)?;
        b.select_and_scatter(p[0], &ge_selector(), &window, p[1], zero, &add)
    });
    let expected = ndarray::arr2(&[
        [1.0f32, 0.0, 2.0, 0.0],
        [0.0; 4],
        [3.0, 0.0, 4.0, 0.0],
        [0.0; 4],
    ]);
    assert_exact("ties", &run1(&m, &args), &expected);
}
