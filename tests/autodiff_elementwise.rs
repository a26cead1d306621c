//! Gradient rules of the elementwise ops against central finite differences (f64, CPU plugin):
//! every differentiable unary and binary op, select, clamp and convert, plus fan-out
//! accumulation and the tie conventions of maximum/minimum.

mod autodiff_fd;
mod common;

use autodiff_fd::{check, Input};
use common::{module, run};
use effnetv2::autodiff;
use effnetv2::hlo::{BinaryOp, ComparisonDirection, ElementType, Literal, Shape, UnaryOp};

const DIMS: [i64; 2] = [3, 5];

fn check_unary(op: UnaryOp, low: f64, high: f64, seed: u64) {
    let x = Input::uniform(&DIMS, low, high, seed);
    check(op.opcode(), &[x], |b, p| b.unary(op, p[0]));
}

#[test]
fn unary_math() {
    check_unary(UnaryOp::Negate, -1.0, 1.0, 1);
    check_unary(UnaryOp::Abs, 0.1, 1.0, 2);
    check_unary(UnaryOp::Abs, -1.0, -0.1, 3);
    check_unary(UnaryOp::Exp, -1.0, 1.0, 4);
    check_unary(UnaryOp::Expm1, -1.0, 1.0, 5);
    check_unary(UnaryOp::Log, 0.2, 2.0, 6);
    check_unary(UnaryOp::Log1p, -0.5, 2.0, 7);
    check_unary(UnaryOp::Sqrt, 0.2, 2.0, 8);
    check_unary(UnaryOp::Rsqrt, 0.2, 2.0, 9);
    check_unary(UnaryOp::Tanh, -2.0, 2.0, 10);
    check_unary(UnaryOp::Logistic, -3.0, 3.0, 11);
    check_unary(UnaryOp::Sin, -3.0, 3.0, 12);
    check_unary(UnaryOp::Cos, -3.0, 3.0, 13);
}

fn check_binary(op: BinaryOp, lhs: (f64, f64), rhs: (f64, f64), seed: u64) {
    let x = Input::uniform(&DIMS, lhs.0, lhs.1, seed);
    let y = Input::uniform(&DIMS, rhs.0, rhs.1, seed + 100);
    check(op.opcode(), &[x, y], |b, p| b.binary(op, p[0], p[1]));
}

#[test]
fn binary_math() {
    check_binary(BinaryOp::Add, (-1.0, 1.0), (-1.0, 1.0), 1);
    check_binary(BinaryOp::Subtract, (-1.0, 1.0), (-1.0, 1.0), 2);
    check_binary(BinaryOp::Multiply, (-1.0, 1.0), (-1.0, 1.0), 3);
    check_binary(BinaryOp::Divide, (-1.0, 1.0), (0.5, 2.0), 4);
    check_binary(BinaryOp::Maximum, (-1.0, 1.0), (-1.0, 1.0), 5);
    check_binary(BinaryOp::Minimum, (-1.0, 1.0), (-1.0, 1.0), 6);
    check_binary(BinaryOp::Power, (0.3, 2.0), (-1.5, 1.5), 7);
    check_binary(BinaryOp::Remainder, (-3.0, 3.0), (0.6, 1.4), 8);
    check_binary(BinaryOp::Atan2, (-1.0, 1.0), (-1.0, 1.0), 9);
}

#[test]
fn fan_out_sums_the_cotangents_of_every_use() {
    let x = Input::random(&DIMS, 20);
    check("fan_out", &[x], |b, p| {
        let x = p[0];
        let sq = b.mul(x, x)?;
        let s = b.sin(x)?;
        let t = b.mul(s, x)?;
        b.add(sq, t)
    });
}

#[test]
fn select_sends_the_cotangent_to_the_taken_branch() {
    let inputs = [Input::random(&DIMS, 21), Input::random(&DIMS, 22)];
    check("select", &inputs, |b, p| {
        let pred = b.compare(ComparisonDirection::Gt, p[0], p[1])?;
        let sq = b.mul(p[0], p[0])?;
        let e = b.exp(p[1])?;
        b.select(pred, sq, e)
    });
    check("select_scalar_pred", &inputs, |b, p| {
        let total = b.reduce_sum(p[0], &[0, 1])?;
        let big = b.scalar(-100.0f64)?;
        let pred = b.compare(ComparisonDirection::Gt, total, big)?;
        let e = b.exp(p[1])?;
        // The predicate holds: each select passes its first branch on, the other gets nothing.
        let first = b.select(pred, p[0], e)?;
        let second = b.select(pred, e, p[0])?;
        b.mul(first, second)
    });
}

#[test]
fn clamp_with_array_and_scalar_bounds() {
    let x = Input::random(&DIMS, 23);
    let lo = Input::uniform(&DIMS, -0.6, -0.1, 24);
    let hi = Input::uniform(&DIMS, 0.1, 0.6, 25);
    check("clamp_arrays", &[lo, x.clone(), hi], |b, p| {
        b.clamp(p[0], p[1], p[2])
    });
    let lo = Input::uniform(&[], -0.4, -0.3, 26);
    let hi = Input::uniform(&[], 0.3, 0.4, 27);
    check("clamp_scalars", &[lo, x, hi], |b, p| {
        b.clamp(p[0], p[1], p[2])
    });
}

#[test]
fn clamp_with_crossed_bounds_follows_min_of_max() {
    // lo > hi: XLA computes min(max(x, lo), hi) = hi everywhere, so only hi has a gradient.
    let x = Input::random(&DIMS, 28);
    let lo = Input::uniform(&DIMS, 2.0, 3.0, 29);
    let hi = Input::uniform(&DIMS, -3.0, -2.0, 30);
    let grads = autodiff_fd::autodiff_gradient("clamp_crossed", &[lo, x, hi.clone()], &|b, p| {
        b.clamp(p[0], p[1], p[2])
    });
    assert!(grads[0].to_f64_vec().iter().all(|&g| g == 0.0));
    assert!(grads[1].to_f64_vec().iter().all(|&g| g == 0.0));
    assert!(grads[2].to_f64_vec().iter().all(|&g| g != 0.0));
}

#[test]
fn convert_sends_the_cotangent_back_in_the_operand_type() {
    let x = Input::random(&DIMS, 31).into_f32();
    check("convert", &[x], |b, p| {
        let wide = b.convert(p[0], ElementType::F64)?;
        b.sin(wide)
    });
}

/// `maximum`/`minimum` split the cotangent evenly on ties; elsewhere the winner takes it all.
#[test]
fn max_and_min_split_ties_evenly() {
    for op in [BinaryOp::Maximum, BinaryOp::Minimum] {
        let m = module(
            "ties",
            &[
                Shape::array(ElementType::F64, &[4]),
                Shape::array(ElementType::F64, &[4]),
            ],
            |b, p| {
                let m = b.binary(op, p[0], p[1])?;
                let loss = b.reduce_sum(m, &[0])?;
                let g = autodiff::grad(b, loss, &[p[0], p[1]])?;
                b.tuple(&g)
            },
        );
        let x = Literal::from_vec(&[4], &[1.0f64, 2.0, 3.0, -1.0]).unwrap();
        let y = Literal::from_vec(&[4], &[1.0f64, 5.0, 0.0, -1.0]).unwrap();
        let out = run(&m, &[x, y]);
        let (gx, gy) = (out[0].to_f64_vec(), out[1].to_f64_vec());
        let expected_x = if op == BinaryOp::Maximum {
            [0.5, 0.0, 1.0, 0.5]
        } else {
            [0.5, 1.0, 0.0, 0.5]
        };
        assert_eq!(gx, expected_x, "{op:?} lhs");
        assert_eq!(gy, expected_x.map(|w| 1.0 - w), "{op:?} rhs");
    }
}
