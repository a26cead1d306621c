//! Gradient rules of reductions against central finite differences (f64, CPU plugin): reduce
//! (sum, max, min), reduce-window sums (average pooling with strides, padding and dilations),
//! max and min pooling (select-and-scatter), the documented tie conventions, and all-reduce on
//! two replicas.

mod autodiff_fd;
mod common;

use autodiff_fd::{check, Input};
use common::{module, run, run_replicated};
use effnetv2::autodiff;
use effnetv2::hlo::{
    BinaryOp, Builder, Computation, ElementType, HloError, Literal, Shape, Value, WindowDim,
};

const F64: ElementType = ElementType::F64;

#[test]
fn reduce_sum_max_min() {
    let x = Input::random(&[3, 5, 7], 1);
    check("reduce_sum_middle", std::slice::from_ref(&x), |b, p| {
        b.reduce_sum(p[0], &[1])
    });
    check("reduce_sum_outer", std::slice::from_ref(&x), |b, p| {
        b.reduce_sum(p[0], &[0, 2])
    });
    check("reduce_sum_all", std::slice::from_ref(&x), |b, p| {
        b.reduce_sum(p[0], &[2, 0, 1])
    });
    check("reduce_max", std::slice::from_ref(&x), |b, p| {
        b.reduce_max(p[0], &[1])
    });
    check("reduce_max_all", std::slice::from_ref(&x), |b, p| {
        b.reduce_max(p[0], &[0, 1, 2])
    });
    check("reduce_min", &[x], |b, p| {
        b.reduce_binary(p[0], BinaryOp::Minimum, f64::INFINITY, &[0, 2])
    });
}

/// A reduce max splits the cotangent evenly among all elements equal to the maximum.
#[test]
fn reduce_max_splits_ties_evenly() {
    let m = module("ties", &[Shape::array(F64, &[2, 4])], |b, p| {
        let m = b.reduce_max(p[0], &[1])?;
        let loss = b.reduce_sum(m, &[0])?;
        let g = autodiff::grad(b, loss, &[p[0]])?;
        Ok(g[0])
    });
    let x = Literal::from_vec(&[2, 4], &[1.0f64, 3.0, 3.0, 3.0, 2.0, -1.0, 2.0, 0.0]).unwrap();
    let g = run(&m, &[x]).remove(0).to_f64_vec();
    let third = 1.0 / 3.0;
    assert_eq!(g, [0.0, third, third, third, 0.5, 0.0, 0.5, 0.0]);
}

/// A windowed reduction over the two middle (spatial) dimensions of an NHWC array.
fn pool(
    b: &mut Builder,
    x: Value,
    op: BinaryOp,
    init: f64,
    spatial: [WindowDim; 2],
) -> Result<Value, HloError> {
    let reducer = Computation::binary_reducer(op, F64)?;
    let init = b.scalar(init)?;
    let window = [WindowDim::new(1), spatial[0], spatial[1], WindowDim::new(1)];
    b.reduce_window(x, init, &window, &reducer)
}

/// Average pooling: a windowed sum divided by the window size.
fn average_pool(b: &mut Builder, x: Value, spatial: [WindowDim; 2]) -> Result<Value, HloError> {
    let sum = pool(b, x, BinaryOp::Add, 0.0, spatial)?;
    let count = (spatial[0].size * spatial[1].size) as f64;
    let divisor = b.full_like(sum, count)?;
    b.div(sum, divisor)
}

fn pooling_windows() -> Vec<(&'static str, [WindowDim; 2])> {
    let w = WindowDim::new;
    vec![
        ("valid_stride1", [w(3), w(2)]),
        (
            "same_stride2",
            [w(3).stride(2).padding(1, 1), w(3).stride(2).padding(1, 1)],
        ),
        (
            "asymmetric_pad_stride3",
            [w(2).stride(3).padding(0, 2), w(3).stride(2).padding(2, 0)],
        ),
        (
            "negative_pad",
            [w(2).padding(-1, 0), w(3).stride(2).padding(1, -1)],
        ),
        (
            "window_dilation",
            [
                w(3).window_dilation(2),
                w(2).window_dilation(3).stride(2).padding(1, 1),
            ],
        ),
        (
            "base_dilation",
            [
                w(3).base_dilation(2).stride(2).padding(1, 0),
                w(2).base_dilation(3),
            ],
        ),
    ]
}

#[test]
fn average_pooling() {
    let x = Input::random(&[2, 7, 9, 3], 2);
    for (name, window) in pooling_windows() {
        check(
            &format!("avg_pool_{name}"),
            std::slice::from_ref(&x),
            |b, p| average_pool(b, p[0], window),
        );
    }
}

#[test]
fn max_and_min_pooling() {
    let x = Input::random(&[2, 7, 9, 3], 3);
    for (name, window) in pooling_windows() {
        if window
            .iter()
            .any(|w| w.window_dilation != 1 || w.base_dilation != 1)
        {
            continue;
        }
        check(
            &format!("max_pool_{name}"),
            std::slice::from_ref(&x),
            |b, p| pool(b, p[0], BinaryOp::Maximum, f64::NEG_INFINITY, window),
        );
        check(
            &format!("min_pool_{name}"),
            std::slice::from_ref(&x),
            |b, p| pool(b, p[0], BinaryOp::Minimum, f64::INFINITY, window),
        );
    }
}

/// Max pooling sends each window's cotangent to the first maximal element (row-major order).
#[test]
fn max_pooling_gives_ties_to_the_first_maximum() {
    let m = module("pool_ties", &[Shape::array(F64, &[1, 2, 3, 1])], |b, p| {
        let y = pool(
            b,
            p[0],
            BinaryOp::Maximum,
            f64::NEG_INFINITY,
            [WindowDim::new(2), WindowDim::new(2)],
        )?;
        let loss = b.reduce_sum(y, &[0, 1, 2, 3])?;
        Ok(autodiff::grad(b, loss, &[p[0]])?[0])
    });
    // Windows: columns {0,1} with max 5 at (0,1) and (1,0); columns {1,2} with max 5 at (0,1), (1,2).
    let x = Literal::from_vec(&[1, 2, 3, 1], &[1.0f64, 5.0, 2.0, 5.0, 0.0, 5.0]).unwrap();
    let g = run(&m, &[x]).remove(0).to_f64_vec();
    assert_eq!(g, [0.0, 2.0, 0.0, 0.0, 0.0, 0.0]);
}

#[test]
fn pooling_with_dilation_has_no_max_rule() {
    let mut b = Builder::new("dilated_max");
    let x = b
        .parameter(0, Shape::array(F64, &[1, 7, 7, 1]), "x")
        .unwrap();
    let w = WindowDim::new(2).window_dilation(2);
    let y = pool(&mut b, x, BinaryOp::Maximum, f64::NEG_INFINITY, [w, w]).unwrap();
    let loss = b.reduce_sum(y, &[0, 1, 2, 3]).unwrap();
    let err = autodiff::grad(&mut b, loss, &[x]).unwrap_err();
    assert!(err.to_string().contains("dilation"), "{err}");
}

#[test]
fn the_init_value_of_a_reduction_has_no_gradient() {
    let mut b = Builder::new("init");
    let x = b.parameter(0, Shape::array(F64, &[3]), "x").unwrap();
    let init = b.parameter(1, Shape::scalar(F64), "init").unwrap();
    let add = Computation::binary_reducer(BinaryOp::Add, F64).unwrap();
    let s = b.reduce(&[x], &[init], &[0], &add).unwrap();
    let err = autodiff::grad(&mut b, s, &[x, init]).unwrap_err();
    assert!(err.to_string().contains("init value"), "{err}");
    // Differentiating with respect to the operand alone is fine.
    assert_eq!(autodiff::grad(&mut b, s, &[x]).unwrap().len(), 1);
}

#[test]
fn reductions_with_other_reducers_are_errors() {
    let mut b = Builder::new("product");
    let x = b.parameter(0, Shape::array(F64, &[3]), "x").unwrap();
    let p = b.reduce_binary(x, BinaryOp::Multiply, 1.0, &[0]).unwrap();
    let err = autodiff::grad(&mut b, p, &[x]).unwrap_err();
    assert!(err.to_string().contains("multiply"), "{err}");
}

/// The gradient of `sum_r <allreduce_sum(x_r), w_r>` with respect to `x_r` is `sum_s w_s` on
/// every replica: the all-reduce of the cotangents.
#[test]
fn all_reduce_sum_is_its_own_transpose() {
    let m = module(
        "all_reduce",
        &[Shape::array(F64, &[3]), Shape::array(F64, &[3])],
        |b, p| {
            let add = Computation::binary_reducer(BinaryOp::Add, F64)?;
            let y = b.all_reduce(p[0], &[vec![0, 1]], &add)?;
            Ok(autodiff::vjp(b, &[(y, p[1])], &[p[0]])?[0])
        },
    );
    let x = Literal::from_vec(&[3], &[1.0f64, 2.0, 3.0]).unwrap();
    let w0 = Literal::from_vec(&[3], &[0.5f64, -1.0, 2.0]).unwrap();
    let w1 = Literal::from_vec(&[3], &[0.25f64, 4.0, -3.0]).unwrap();
    let out = run_replicated(&m, &[vec![x.clone(), w0], vec![x, w1]]);
    for replica in out {
        assert_eq!(replica[0].to_f64_vec(), [0.75, 3.0, -1.0]);
    }
}
