//! Tuples, while loops, `stop_gradient`, values without a path, gradients with respect to
//! intermediate values, tuple cotangents, and the errors of the autodiff API.

mod autodiff_fd;
mod common;

use autodiff_fd::{check, Input};
use common::{module, run};
use effnetv2::autodiff;
use effnetv2::hlo::{
    Builder, ComparisonDirection, Computation, ElementType, HloError, Literal, Shape, Value,
};

const F64: ElementType = ElementType::F64;
const S32: ElementType = ElementType::S32;

#[test]
fn tuples_and_their_elements() {
    let inputs = [Input::random(&[3, 5], 1), Input::random(&[3, 5], 2)];
    check("tuple", &inputs, |b, p| {
        let prod = b.mul(p[0], p[1])?;
        let s = b.sin(p[0])?;
        let t = b.tuple(&[prod, s, p[1]])?;
        let nested = b.tuple(&[t, p[0]])?;
        let inner = b.get_tuple_element(nested, 0)?;
        let a = b.get_tuple_element(inner, 0)?;
        let c = b.get_tuple_element(inner, 1)?;
        // Element 2 and the outer element 1 are never used: their cotangents stay empty.
        b.add(a, c)
    });
}

/// Loop state `(i, x, w)`: `x <- x * w + sin(x)`; the counter runs as `count` says.
fn counter_loop(
    b: &mut Builder,
    x: Value,
    w: Value,
    count: CounterLoop,
) -> Result<Value, HloError> {
    let state = Shape::Tuple(vec![
        Shape::scalar(S32),
        Shape::array(F64, &[3]),
        Shape::array(F64, &[3]),
    ]);
    let cond = {
        let mut c = Builder::new("cond");
        let s = c.parameter(0, state.clone(), "state")?;
        let i = c.get_tuple_element(s, 0)?;
        let limit = c.scalar(count.limit)?;
        let p = if count.limit_first {
            c.compare(count.direction, limit, i)?
        } else {
            c.compare(count.direction, i, limit)?
        };
        c.build(p)?
    };
    let body = {
        let mut c = Builder::new("body");
        let s = c.parameter(0, state.clone(), "state")?;
        let i = c.get_tuple_element(s, 0)?;
        let x = c.get_tuple_element(s, 1)?;
        let w = c.get_tuple_element(s, 2)?;
        let step = c.scalar(count.step)?;
        let next = c.add(step, i)?;
        let xw = c.mul(x, w)?;
        let sx = c.sin(x)?;
        let x = c.add(xw, sx)?;
        let t = c.tuple(&[next, x, w])?;
        c.build(t)?
    };
    let start = b.scalar(count.start)?;
    let init = b.tuple(&[start, x, w])?;
    let out = b.while_loop(&cond, &body, init)?;
    b.get_tuple_element(out, 1)
}

#[derive(Clone, Copy)]
struct CounterLoop {
    start: i32,
    step: i32,
    limit: i32,
    direction: ComparisonDirection,
    /// Whether the condition reads `limit <dir> i` instead of `i <dir> limit`.
    limit_first: bool,
}

#[test]
fn while_loops_with_a_fixed_trip_count() {
    let inputs = [Input::random(&[3], 3), Input::uniform(&[3], 0.5, 1.0, 4)];
    let up = CounterLoop {
        start: 0,
        step: 1,
        limit: 4,
        direction: ComparisonDirection::Lt,
        limit_first: false,
    };
    check("while_up", &inputs, |b, p| counter_loop(b, p[0], p[1], up));
    // 10, 7, 4 pass `2 < i`: three trips, with the limit on the left.
    let down = CounterLoop {
        start: 10,
        step: -3,
        limit: 2,
        direction: ComparisonDirection::Lt,
        limit_first: true,
    };
    check("while_down", &inputs, |b, p| {
        counter_loop(b, p[0], p[1], down)
    });
}

#[test]
fn while_loops_without_a_fixed_trip_count_are_errors() {
    let mut b = Builder::new("unbounded");
    let x = b.parameter(0, Shape::array(F64, &[3]), "x").unwrap();
    let cond = {
        let mut c = Builder::new("cond");
        let s = c.parameter(0, Shape::array(F64, &[3]), "x").unwrap();
        let total = c.reduce_sum(s, &[0]).unwrap();
        let limit = c.scalar(10.0f64).unwrap();
        let p = c.compare(ComparisonDirection::Lt, total, limit).unwrap();
        c.build(p).unwrap()
    };
    let body = {
        let mut c = Builder::new("body");
        let s = c.parameter(0, Shape::array(F64, &[3]), "x").unwrap();
        let d = c.add(s, s).unwrap();
        c.build(d).unwrap()
    };
    let y = b.while_loop(&cond, &body, x).unwrap();
    let loss = b.reduce_sum(y, &[0]).unwrap();
    let err = autodiff::grad(&mut b, loss, &[x]).unwrap_err();
    assert!(err.to_string().contains("fixed trip count"), "{err}");
}

#[test]
fn conditionals_have_no_rule() {
    let mut b = Builder::new("cond");
    let x = b.parameter(0, Shape::array(F64, &[3]), "x").unwrap();
    let branch = |name: &str| {
        let mut c = Builder::new(name);
        let p = c.parameter(0, Shape::array(F64, &[3]), "x").unwrap();
        let s = c.sin(p).unwrap();
        c.build(s).unwrap()
    };
    let pred = b.scalar(true).unwrap();
    let y = b
        .conditional(pred, &[branch("a"), branch("b")], &[x, x])
        .unwrap();
    let loss = b.reduce_sum(y, &[0]).unwrap();
    let err = autodiff::grad(&mut b, loss, &[x]).unwrap_err();
    assert!(
        err.op == "grad/conditional" && err.to_string().contains("no gradient rule"),
        "{err}"
    );
}

/// Runs `f` on `x` and returns `grad(f)(x)` and the loss.
fn grad_of(
    x: &[f64],
    f: impl FnOnce(&mut Builder, Value) -> Result<(Value, Vec<Value>), HloError>,
) -> Vec<Literal> {
    let m = module(
        "grad_of",
        &[Shape::array(F64, &[x.len() as i64])],
        |b, p| {
            let (loss, wrt) = f(b, p[0])?;
            let mut outs = vec![loss];
            outs.extend(autodiff::grad(b, loss, &wrt)?);
            b.tuple(&outs)
        },
    );
    run(&m, &[Literal::from_vec(&[x.len() as i64], x).unwrap()])
}

#[test]
fn stop_gradient_blocks_only_the_marked_use() {
    let x = [0.5, -2.0, 3.0];
    // loss = sum(x * stop(x)): the value is sum(x^2), the gradient is stop(x) = x, not 2x.
    let out = grad_of(&x, |b, x| {
        let frozen = autodiff::stop_gradient(b, x)?;
        let prod = b.mul(x, frozen)?;
        Ok((b.reduce_sum(prod, &[0])?, vec![x, frozen]))
    });
    assert_eq!(out[0].to_f64_vec(), [0.25 + 4.0 + 9.0]);
    assert_eq!(out[1].to_f64_vec(), x);
    // The stopped value itself still has a gradient: x, the other factor.
    assert_eq!(out[2].to_f64_vec(), x);
}

#[test]
fn a_custom_vjp_replaces_the_derived_gradient_of_its_value_only() {
    let x = [0.5, -2.0, 3.0];
    // y = sin(x)^2 with the rule dy -> 3 dy (deliberately not its derivative); sin(x) is also
    // used directly, so loss = sum(y + sin(x)) has the gradient 3 + cos(x).
    let out = grad_of(&x, |b, x| {
        let h = b.sin(x)?;
        let y = b.mul(h, h)?;
        autodiff::custom_vjp(b, "triple", y, &[x], |b, ct, needs| {
            assert_eq!(needs, [true]);
            let three = b.full_like(ct, 3.0)?;
            Ok(vec![Some(b.mul(ct, three)?)])
        })?;
        let sum = b.add(y, h)?;
        Ok((b.reduce_sum(sum, &[0])?, vec![x]))
    });
    let expected: Vec<f64> = x.iter().map(|v| 3.0 + v.cos()).collect();
    assert_eq!(out[1].to_f64_vec(), expected);
}

#[test]
fn a_custom_vjp_that_returns_the_wrong_cotangents_is_an_error() {
    type Rule = fn(&mut Builder, Value) -> Result<Vec<Option<Value>>, HloError>;
    let build = |rule: Rule| {
        let mut b = Builder::new("custom");
        let x = b.parameter(0, Shape::array(F64, &[3]), "x").unwrap();
        let y = b.sin(x).unwrap();
        autodiff::custom_vjp(&mut b, "broken", y, &[x], move |b, ct, _| rule(b, ct)).unwrap();
        let loss = b.reduce_sum(y, &[0]).unwrap();
        autodiff::grad(&mut b, loss, &[x]).unwrap_err().to_string()
    };
    let err = build(|_, ct| Ok(vec![Some(ct), None]));
    assert!(err.contains("returned 2 cotangents for 1 inputs"), "{err}");
    let err = build(|b, ct| Ok(vec![Some(b.reduce_sum(ct, &[0])?)]));
    assert!(err.contains("does not have its input's shape"), "{err}");

    let mut b = Builder::new("custom");
    let i = b.parameter(0, Shape::array(S32, &[3]), "i").unwrap();
    let x = b.convert(i, F64).unwrap();
    let err = autodiff::custom_vjp(&mut b, "int", x, &[i], |_, _, _| Ok(vec![None])).unwrap_err();
    assert!(
        err.to_string().contains("must be a floating-point array"),
        "{err}"
    );
}

#[test]
fn piecewise_constant_ops_and_comparisons_stop_the_gradient() {
    let x = [0.5, -2.5, 3.25];
    // loss = sum(floor(x) * x + select(x > 0, x, 0)): gradient floor(x) + [x > 0].
    let out = grad_of(&x, |b, x| {
        let fl = b.floor(x)?;
        let a = b.mul(fl, x)?;
        let zero = b.full_like(x, 0.0)?;
        let positive = b.compare(ComparisonDirection::Gt, x, zero)?;
        let c = b.select(positive, x, zero)?;
        let s = b.add(a, c)?;
        Ok((b.reduce_sum(s, &[0])?, vec![x, fl]))
    });
    assert_eq!(out[1].to_f64_vec(), [1.0, -3.0, 4.0]);
    // The floor's own output has a gradient (x); it just does not flow on into x.
    assert_eq!(out[2].to_f64_vec(), x);
}

#[test]
fn values_without_a_path_get_zeros_and_intermediates_get_their_gradient() {
    let x = [0.5, -2.0, 3.0];
    let out = grad_of(&x, |b, x| {
        let unrelated = b.full(&effnetv2::hlo::ArrayShape::new(F64, &[2, 2]), 7.0)?;
        let h = b.sin(x)?;
        let sq = b.mul(h, h)?;
        Ok((b.reduce_sum(sq, &[0])?, vec![unrelated, h, x]))
    });
    assert_eq!(out[1].shape().dims(), [2, 2]);
    assert_eq!(out[1].to_f64_vec(), [0.0; 4]);
    let h: Vec<f64> = x.iter().map(|v| v.sin()).collect();
    assert_eq!(
        out[2].to_f64_vec(),
        h.iter().map(|h| 2.0 * h).collect::<Vec<_>>()
    );
    let dx: Vec<f64> = x.iter().map(|v| 2.0 * v.sin() * v.cos()).collect();
    for (g, e) in out[3].to_f64_vec().iter().zip(dx) {
        assert!((g - e).abs() < 1e-14, "{g} vs {e}");
    }
}

#[test]
fn vjp_takes_tuple_cotangents() {
    let m = module(
        "vjp_tuple",
        &[
            Shape::array(F64, &[2]),
            Shape::array(F64, &[2]),
            Shape::array(F64, &[2]),
        ],
        |b, p| {
            let two = b.full_like(p[0], 2.0)?;
            let three = b.full_like(p[0], 3.0)?;
            let a = b.mul(p[0], two)?;
            let c = b.mul(p[0], three)?;
            let out = b.tuple(&[a, c])?;
            let ct = b.tuple(&[p[1], p[2]])?;
            Ok(autodiff::vjp(b, &[(out, ct)], &[p[0]])?[0])
        },
    );
    let lit = |v: [f64; 2]| Literal::from_vec(&[2], &v).unwrap();
    let out = run(&m, &[lit([1.0, 1.0]), lit([1.0, -1.0]), lit([0.5, 2.0])]);
    assert_eq!(out[0].to_f64_vec(), [2.0 + 1.5, -2.0 + 6.0]);
}

#[test]
fn api_errors_name_the_problem() {
    let mut b = Builder::new("errors");
    let x = b.parameter(0, Shape::array(F64, &[3]), "x").unwrap();
    let n = b.parameter(1, Shape::array(S32, &[3]), "n").unwrap();
    let nf = b.convert(n, F64).unwrap();
    let y = b.mul(x, nf).unwrap();
    let loss = b.reduce_sum(y, &[0]).unwrap();

    let err = autodiff::grad(&mut b, loss, &[n]).unwrap_err();
    assert!(
        err.to_string().contains("s32") && err.to_string().contains("floating-point"),
        "{err}"
    );
    let err = autodiff::grad(&mut b, y, &[x]).unwrap_err();
    assert!(err.to_string().contains("scalar"), "{err}");
    let t = b.tuple(&[x, x]).unwrap();
    let err = autodiff::grad(&mut b, loss, &[t]).unwrap_err();
    assert!(err.to_string().contains("tuple"), "{err}");
    let wrong = b
        .full(&effnetv2::hlo::ArrayShape::new(F64, &[4]), 1.0)
        .unwrap();
    let err = autodiff::vjp(&mut b, &[(y, wrong)], &[x]).unwrap_err();
    assert!(err.to_string().contains("shape of its output"), "{err}");
    let count = b.reduce_sum(n, &[0]).unwrap();
    let one = b.scalar(1i32).unwrap();
    let err = autodiff::vjp(&mut b, &[(count, one)], &[x]).unwrap_err();
    assert!(err.to_string().contains("no floating-point"), "{err}");
    let mut other = Builder::new("other");
    let foreign = other.parameter(0, Shape::array(F64, &[3]), "z").unwrap();
    assert!(autodiff::grad(&mut b, loss, &[foreign]).is_err());
    // The integer input still gets no gradient, while x's gradient is n.
    assert_eq!(autodiff::grad(&mut b, loss, &[x]).unwrap().len(), 1);
}

/// Two reductions sharing one reducer computation differentiate and compile.
#[test]
fn gradients_compile_when_a_reducer_is_shared() {
    let add = Computation::binary_reducer(effnetv2::hlo::BinaryOp::Add, F64).unwrap();
    let m = module("shared", &[Shape::array(F64, &[3, 2])], |b, p| {
        let zero = b.scalar(0.0f64)?;
        let rows = b.reduce(&[p[0]], &[zero], &[1], &add)?;
        let sq = b.mul(rows, rows)?;
        let total = b.reduce(&[sq], &[zero], &[0], &add)?;
        Ok(autodiff::grad(b, total, &[p[0]])?[0])
    });
    let x = Literal::from_vec(&[3, 2], &[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    assert_eq!(
        run(&m, &[x]).remove(0).to_f64_vec(),
        [6.0, 6.0, 14.0, 14.0, 22.0, 22.0]
    );
}
