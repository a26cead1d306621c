//! Elementwise ops compiled on the official CPU plugin and checked against Rust references:
//! constants and parameters of every element type, iota, conversions, unary and binary math,
//! comparisons, logic, select and clamp. Integer results are exact; float results meet tight
//! tolerances (a few ulp for transcendental functions, correctly rounded for `+ - * /`).

mod common;

use std::fmt::Debug;

use common::{
    assert_close, assert_exact, assert_same_literal, lit, module, random, random_f32, run,
    run_with, shapes_of,
};
use effnetv2::hlo::{
    BinaryOp, ComparisonDirection, ElementType, Literal, NativeType, Shape, UnaryOp,
};
use effnetv2::runtime::{CompileOptions, OptionOverride};
use half::{bf16, f16};
use ndarray::{arr1, ArrayD, IxDyn, Zip};
use ElementType::{Pred, F32, F64, S32, S64, U8};

/// Relative tolerance of correctly rounded f32 arithmetic (one ulp is at most 2^-23 relative).
const F32_ROUNDED: f64 = 1.2e-7;
/// Relative tolerance of XLA's f32 transcendental functions: 3 ulp (measured worst: 1.6 ulp).
const F32_MATH: f64 = 3.6e-7;
/// Relative tolerance of XLA's f64 transcendental functions (measured worst: 2e-15, log1p).
const F64_MATH: f64 = 1e-14;

/// `f` applied elementwise to `x`, as a new array.
fn map<T: Copy, U>(x: &ArrayD<T>, f: impl Fn(T) -> U) -> ArrayD<U> {
    x.map(|&v| f(v))
}

/// `f` applied elementwise to `x` and `y` (same dimensions), as a new array.
fn zip<T: Copy, U: Copy, V>(x: &ArrayD<T>, y: &ArrayD<U>, f: impl Fn(T, U) -> V) -> ArrayD<V> {
    Zip::from(x).and(y).map_collect(|&a, &b| f(a, b))
}

/// A random vector with `specials` appended, so edge cases sit next to ordinary values.
fn with_specials<T: Copy + rand::distributions::uniform::SampleUniform>(
    n: usize,
    low: T,
    high: T,
    seed: u64,
    specials: &[T],
) -> ArrayD<T> {
    let mut values = random(&[n], low, high, seed).into_raw_vec_and_offset().0;
    values.extend_from_slice(specials);
    ArrayD::from_shape_vec(IxDyn(&[values.len()]), values).unwrap()
}

#[test]
fn constants_of_every_element_type_are_encoded_bit_exactly() {
    let tiny_f16 = f16::from_bits(1);
    let tiny_bf16 = bf16::from_bits(1);
    let literals = vec![
        Literal::scalar(true),
        Literal::from_vec(&[3], &[true, false, true]).unwrap(),
        Literal::scalar(-128i8),
        Literal::from_vec(&[2, 2], &[i8::MIN, -1, 0, i8::MAX]).unwrap(),
        Literal::scalar(-7i32),
        Literal::from_vec(&[2, 2], &[i32::MIN, -1, 0, i32::MAX]).unwrap(),
        Literal::scalar(i64::MIN),
        Literal::from_vec(&[3], &[i64::MIN, 1 << 40, i64::MAX]).unwrap(),
        Literal::scalar(200u8),
        Literal::from_vec(&[2], &[0u8, u8::MAX]).unwrap(),
        Literal::scalar(u32::MAX),
        Literal::from_vec(&[2], &[1u32 << 31, u32::MAX]).unwrap(),
        Literal::scalar(u64::MAX),
        Literal::from_vec(&[2], &[1u64 << 63, u64::MAX]).unwrap(),
        Literal::scalar(f16::from_f32(-2.5)),
        Literal::from_vec(
            &[5],
            &[
                f16::MAX,
                f16::NEG_INFINITY,
                f16::NEG_ZERO,
                tiny_f16,
                f16::from_f32(0.1),
            ],
        )
        .unwrap(),
        Literal::scalar(bf16::from_f32(3.140625)),
        Literal::from_vec(
            &[5],
            &[
                bf16::MAX,
                bf16::INFINITY,
                bf16::NEG_ZERO,
                tiny_bf16,
                bf16::from_f32(0.1),
            ],
        )
        .unwrap(),
        Literal::scalar(0.1f32),
        Literal::from_vec(
            &[2, 3],
            &[
                f32::MAX,
                f32::NEG_INFINITY,
                -0.0,
                f32::from_bits(1),
                f32::MIN_POSITIVE,
                -1.5,
            ],
        )
        .unwrap(),
        Literal::scalar(0.1f64),
        Literal::from_vec(&[2, 2], &[f64::MIN, f64::INFINITY, -0.0, f64::from_bits(1)]).unwrap(),
    ];
    let m = module("constants", &[], |b, _| {
        let values = literals
            .iter()
            .map(|l| b.constant(l.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        b.tuple(&values)
    });
    let outputs = run(&m, &[]);
    assert_eq!(outputs.len(), literals.len());
    for (out, expected) in outputs.iter().zip(&literals) {
        assert_same_literal(&format!("constant {}", expected.shape()), out, expected);
    }
}

#[test]
fn parameters_of_every_element_type_pass_through_in_order() {
    let args = vec![
        Literal::from_vec(&[2], &[true, false]).unwrap(),
        Literal::from_vec(&[3], &[-5i8, 0, 7]).unwrap(),
        Literal::from_vec(&[2, 2], &[1i32, -2, 3, -4]).unwrap(),
        Literal::from_vec(&[1], &[-(1i64 << 50)]).unwrap(),
        Literal::from_vec(&[2], &[9u8, 250]).unwrap(),
        Literal::from_vec(&[2], &[3u32, 1 << 31]).unwrap(),
        Literal::from_vec(&[2], &[5u64, 1 << 63]).unwrap(),
        Literal::from_vec(&[2], &[f16::from_f32(0.5), f16::from_f32(-65504.0)]).unwrap(),
        Literal::from_vec(&[2], &[bf16::from_f32(1.5), bf16::from_f32(-1e30)]).unwrap(),
        Literal::from_vec(&[2, 1], &[1.25f32, -0.0]).unwrap(),
        Literal::from_vec(&[2], &[1e-300f64, -2.5]).unwrap(),
    ];
    // The result lists the parameters in reverse, so a mixed-up parameter numbering shows.
    let m = module("parameters", &shapes_of(&args), |b, p| {
        let reversed: Vec<_> = p.iter().rev().copied().collect();
        b.tuple(&reversed)
    });
    let outputs = run(&m, &args);
    for (out, expected) in outputs.iter().zip(args.iter().rev()) {
        assert_same_literal(&format!("parameter {}", expected.shape()), out, expected);
    }
}

#[test]
fn iota_counts_along_its_dimension() {
    let m = module("iota", &[], |b, _| {
        let values = [
            b.iota_of(S32, &[3, 4], 0)?,
            b.iota_of(S32, &[3, 4], 1)?,
            b.iota_of(F32, &[5], 0)?,
            b.iota_of(U8, &[2, 3], 1)?,
            b.iota_of(S64, &[2, 2, 3], 2)?,
        ];
        b.tuple(&values)
    });
    let out = run(&m, &[]);
    let counting = |dims: &[usize], d: usize| ArrayD::from_shape_fn(IxDyn(dims), |ix| ix[d]);
    assert_exact(
        "s32 dim 0",
        &out[0],
        &counting(&[3, 4], 0).mapv(|v| v as i32),
    );
    assert_exact(
        "s32 dim 1",
        &out[1],
        &counting(&[3, 4], 1).mapv(|v| v as i32),
    );
    assert_exact("f32", &out[2], &counting(&[5], 0).mapv(|v| v as f32));
    assert_exact("u8", &out[3], &counting(&[2, 3], 1).mapv(|v| v as u8));
    assert_exact("s64", &out[4], &counting(&[2, 2, 3], 2).mapv(|v| v as i64));
}

#[test]
fn convert_casts_values_between_types() {
    let x = with_specials(24, -100.0f32, 100.0, 1, &[-2.7, 2.7, -0.5, 0.0, 1e-3]);
    let n = with_specials(24, i32::MIN, i32::MAX, 2, &[-129, 128, 255, 16_777_217]);
    let p = arr1(&[true, false, true]).into_dyn();
    let d = with_specials(8, -1e6f64, 1e6, 3, &[0.1, 1.0 + f64::EPSILON]);
    let h = map(&x, f16::from_f32);
    let g = map(&x, bf16::from_f32);
    let args = [lit(&x), lit(&n), lit(&p), lit(&d), lit(&h), lit(&g)];
    let m = module("convert", &shapes_of(&args), |b, v| {
        let values = [
            b.convert(v[0], S32)?,
            b.convert(v[0], ElementType::F16)?,
            b.convert(v[0], ElementType::Bf16)?,
            b.convert(v[0], F64)?,
            b.convert(v[0], Pred)?,
            b.convert(v[1], F32)?,
            b.convert(v[1], ElementType::S8)?,
            b.convert(v[1], ElementType::U32)?,
            b.convert(v[1], S64)?,
            b.convert(v[2], S32)?,
            b.convert(v[2], F32)?,
            b.convert(v[3], F32)?,
            b.convert(v[4], F32)?,
            b.convert(v[5], F32)?,
        ];
        b.tuple(&values)
    });
    let out = run(&m, &args);
    // Float to integer truncates toward zero; integer to integer wraps (two's complement);
    // narrowing floats round to nearest even.
    assert_exact("f32->s32", &out[0], &map(&x, |v| v as i32));
    assert_exact("f32->f16", &out[1], &h);
    assert_exact("f32->bf16", &out[2], &g);
    assert_exact("f32->f64", &out[3], &map(&x, f64::from));
    assert_exact("f32->pred", &out[4], &map(&x, |v| v != 0.0));
    assert_exact("s32->f32", &out[5], &map(&n, |v| v as f32));
    assert_exact("s32->s8", &out[6], &map(&n, |v| v as i8));
    assert_exact("s32->u32", &out[7], &map(&n, |v| v as u32));
    assert_exact("s32->s64", &out[8], &map(&n, i64::from));
    assert_exact("pred->s32", &out[9], &map(&p, i32::from));
    assert_exact("pred->f32", &out[10], &map(&p, |v| f32::from(u8::from(v))));
    assert_exact("f64->f32", &out[11], &map(&d, |v| v as f32));
    assert_exact("f16->f32", &out[12], &map(&h, f32::from));
    assert_exact("bf16->f32", &out[13], &map(&g, f32::from));
}

#[test]
fn bitcast_convert_reinterprets_bits() {
    let x = with_specials(16, -1e3f32, 1e3, 4, &[-0.0, f32::INFINITY]);
    let bits = map(&random(&[16], -1e3f32, 1e3, 5), f32::to_bits);
    let d = with_specials(8, -1e9f64, 1e9, 6, &[-0.0]);
    let s = with_specials(8, i8::MIN, i8::MAX, 7, &[-1, i8::MIN]);
    let args = [lit(&x), lit(&bits), lit(&d), lit(&s)];
    let m = module("bitcast_convert", &shapes_of(&args), |b, v| {
        let values = [
            b.bitcast_convert(v[0], ElementType::U32)?,
            b.bitcast_convert(v[1], F32)?,
            b.bitcast_convert(v[2], S64)?,
            b.bitcast_convert(v[3], U8)?,
        ];
        b.tuple(&values)
    });
    let out = run(&m, &args);
    assert_exact("f32->u32", &out[0], &map(&x, f32::to_bits));
    assert_exact("u32->f32", &out[1], &map(&bits, f32::from_bits));
    assert_exact("f64->s64", &out[2], &map(&d, |v| v.to_bits() as i64));
    assert_exact("s8->u8", &out[3], &map(&s, |v| v as u8));
}

/// Which inputs a unary float op is tested on; the discriminant indexes the input list.
#[derive(Clone, Copy)]
enum Domain {
    Any,
    Positive,
    AboveMinusOne,
}

/// XLA's `sign`: -1, 0 or 1, with zeros (of either sign) and NaN passed through.
fn sign(x: f64) -> f64 {
    if x == 0.0 || x.is_nan() {
        x
    } else {
        x.signum()
    }
}

/// A float unary op with its f64 reference and input domain.
type UnaryCase = (UnaryOp, fn(f64) -> f64, Domain);

/// The float unary ops with their f64 references and input domains.
const FLOAT_UNARY: [UnaryCase; 16] = [
    (UnaryOp::Negate, |x| -x, Domain::Any),
    (UnaryOp::Abs, f64::abs, Domain::Any),
    (UnaryOp::Sign, sign, Domain::Any),
    (UnaryOp::Exp, f64::exp, Domain::Any),
    (UnaryOp::Expm1, f64::exp_m1, Domain::Any),
    (UnaryOp::Log, f64::ln, Domain::Positive),
    (UnaryOp::Log1p, f64::ln_1p, Domain::AboveMinusOne),
    (UnaryOp::Sqrt, f64::sqrt, Domain::Positive),
    (UnaryOp::Rsqrt, |x| 1.0 / x.sqrt(), Domain::Positive),
    (UnaryOp::Tanh, f64::tanh, Domain::Any),
    (UnaryOp::Logistic, |x| 1.0 / (1.0 + (-x).exp()), Domain::Any),
    (UnaryOp::Floor, f64::floor, Domain::Any),
    (UnaryOp::Ceil, f64::ceil, Domain::Any),
    (UnaryOp::Round, f64::round, Domain::Any),
    (UnaryOp::Cos, f64::cos, Domain::Any),
    (UnaryOp::Sin, f64::sin, Domain::Any),
];

/// Runs every op of [`FLOAT_UNARY`] on f32 or f64 inputs and compares with the f64 reference
/// rounded to the element type.
fn check_float_unary<T>(ty: ElementType, from_f64: fn(f64) -> T, rtol: f64, atol: f64)
where
    T: NativeType + Into<f64> + Debug,
{
    // Halves check round-half-away-from-zero; tiny magnitudes check expm1/log1p accuracy.
    let specials = [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -0.0, 0.0, 1e-5, -1e-5, 3.0];
    let inputs = [
        with_specials(32, -4.0, 4.0, 10, &specials),
        with_specials(32, 0.01, 10.0, 11, &[1.0, 1e-4, 100.0]),
        with_specials(32, -0.99, 4.0, 12, &[1e-6, -1e-6, 0.0]),
    ]
    .map(|a| map(&a, from_f64));
    let args = inputs.clone().map(|a| lit(&a));
    let m = module(&format!("unary_{ty}"), &shapes_of(&args), |b, p| {
        let values = FLOAT_UNARY
            .iter()
            .map(|&(op, _, domain)| b.unary(op, p[domain as usize]))
            .collect::<Result<Vec<_>, _>>()?;
        b.tuple(&values)
    });
    let out = run(&m, &args);
    for ((op, reference, domain), got) in FLOAT_UNARY.iter().zip(&out) {
        let expected = map(&inputs[*domain as usize], |v| from_f64(reference(v.into())));
        assert_close(&format!("{} {ty}", op.opcode()), got, &expected, rtol, atol);
    }
}

#[test]
fn unary_float_math_matches_f64_references() {
    check_float_unary(F32, |v| v as f32, F32_MATH, 1e-7);
    check_float_unary(F64, |v| v, F64_MATH, 1e-15);
}

#[test]
fn unary_ops_follow_ieee_on_infinities_and_nan() {
    let x = arr1(&[
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MAX,
        -0.0,
        0.0,
    ])
    .into_dyn();
    let ops = [
        UnaryOp::IsFinite,
        UnaryOp::Sign,
        UnaryOp::Abs,
        UnaryOp::Exp,
        UnaryOp::Tanh,
        UnaryOp::Logistic,
        UnaryOp::Floor,
        UnaryOp::Log,
    ];
    let m = module("ieee_unary", &[Shape::array(F32, &[6])], |b, p| {
        let values = ops
            .iter()
            .map(|&op| b.unary(op, p[0]))
            .collect::<Result<Vec<_>, _>>()?;
        b.tuple(&values)
    });
    let out = run(&m, &[lit(&x)]);
    let inf = f32::INFINITY;
    let nan = f32::NAN;
    assert_exact(
        "is-finite",
        &out[0],
        &arr1(&[false, false, false, true, true, true]),
    );
    let expected: [[f32; 6]; 7] = [
        [1.0, -1.0, nan, 1.0, -0.0, 0.0],
        [inf, inf, nan, f32::MAX, 0.0, 0.0],
        [inf, 0.0, nan, inf, 1.0, 1.0],
        [1.0, -1.0, nan, 1.0, -0.0, 0.0],
        [1.0, 0.0, nan, 1.0, 0.5, 0.5],
        [inf, -inf, nan, f32::MAX, -0.0, 0.0],
        [inf, nan, nan, f32::MAX.ln(), -inf, -inf],
    ];
    for ((op, got), e) in ops[1..].iter().zip(&out[1..]).zip(expected) {
        assert_close(op.opcode(), got, &arr1(&e), F32_MATH, 0.0);
    }
}

#[test]
fn unary_integer_and_logical_ops_are_exact() {
    let n = with_specials(20, -1000i32, 1000, 20, &[0, -1, 1]);
    let u = random(&[10], 0u8, 255, 21);
    let p = arr1(&[true, false]).into_dyn();
    let args = [lit(&n), lit(&u), lit(&p)];
    let m = module("unary_int", &shapes_of(&args), |b, v| {
        let values = [
            b.neg(v[0])?,
            b.abs(v[0])?,
            b.sign(v[0])?,
            b.not(v[0])?,
            b.not(v[1])?,
            b.not(v[2])?,
            b.neg(v[1])?,
        ];
        b.tuple(&values)
    });
    let out = run(&m, &args);
    assert_exact("negate s32", &out[0], &map(&n, |v| -v));
    assert_exact("abs s32", &out[1], &map(&n, i32::abs));
    assert_exact("sign s32", &out[2], &map(&n, i32::signum));
    assert_exact("not s32", &out[3], &map(&n, |v| !v));
    assert_exact("not u8", &out[4], &map(&u, |v| !v));
    assert_exact("not pred", &out[5], &arr1(&[false, true]));
    assert_exact("negate u8", &out[6], &map(&u, u8::wrapping_neg));
}

/// A binary op with its exact reference.
type ExactCase<T> = (BinaryOp, fn(T, T) -> T);

/// Builds `op(x, y)` for every case in one module and compares each result exactly.
fn check_binary_exact<T>(name: &str, x: &ArrayD<T>, y: &ArrayD<T>, cases: &[ExactCase<T>])
where
    T: NativeType + PartialEq + Debug,
{
    let args = [lit(x), lit(y)];
    let m = module(&format!("binary_{name}"), &shapes_of(&args), |b, p| {
        let values = cases
            .iter()
            .map(|&(op, _)| b.binary(op, p[0], p[1]))
            .collect::<Result<Vec<_>, _>>()?;
        b.tuple(&values)
    });
    let out = run(&m, &args);
    for ((op, reference), got) in cases.iter().zip(&out) {
        assert_exact(
            &format!("{name} {}", op.opcode()),
            got,
            &zip(x, y, reference),
        );
    }
}

#[test]
fn binary_integer_ops_are_exact_and_wrap() {
    let x = with_specials(40, i32::MIN, i32::MAX, 30, &[7, -7, 7, -7, i32::MAX]);
    let y = with_specials(40, i32::MIN, i32::MAX, 31, &[2, 2, -2, -2, 1]);
    check_binary_exact(
        "s32",
        &x,
        &y,
        &[
            (BinaryOp::Add, i32::wrapping_add),
            (BinaryOp::Subtract, i32::wrapping_sub),
            (BinaryOp::Multiply, i32::wrapping_mul),
            (BinaryOp::Maximum, i32::max),
            (BinaryOp::Minimum, i32::min),
            (BinaryOp::And, |a, b| a & b),
            (BinaryOp::Or, |a, b| a | b),
            (BinaryOp::Xor, |a, b| a ^ b),
        ],
    );
    // Division truncates toward zero and the remainder takes the dividend's sign, as in Rust.
    let divisor = map(
        &with_specials(40, -1000i32, 1000, 32, &[2, 2, -2, -2, 1]),
        |v| if v == 0 { 3 } else { v },
    );
    check_binary_exact(
        "s32_div",
        &x,
        &divisor,
        &[
            (BinaryOp::Divide, |a, b| a / b),
            (BinaryOp::Remainder, |a, b| a % b),
        ],
    );
    let base = random(&[30], -9i32, 9, 33);
    let exponent = random(&[30], 0i32, 6, 34);
    check_binary_exact(
        "s32_pow",
        &base,
        &exponent,
        &[(BinaryOp::Power, |a, b| a.pow(b as u32))],
    );
    let shift = random(&[40], 0i32, 31, 35);
    check_binary_exact(
        "s32_shift",
        &x.slice(ndarray::s![..40]).to_owned().into_dyn(),
        &shift,
        &[
            (BinaryOp::ShiftLeft, |a, s| a << s),
            (BinaryOp::ShiftRightLogical, |a, s| ((a as u32) >> s) as i32),
        ],
    );

    let ux = with_specials(20, 0u32, u32::MAX, 36, &[1 << 31, 5]);
    let uy = with_specials(20, 1u32, u32::MAX, 37, &[1, u32::MAX]);
    check_binary_exact(
        "u32",
        &ux,
        &uy,
        &[
            (BinaryOp::Add, u32::wrapping_add),
            (BinaryOp::Subtract, u32::wrapping_sub),
            (BinaryOp::Multiply, u32::wrapping_mul),
            (BinaryOp::Divide, |a, b| a / b),
            (BinaryOp::Remainder, |a, b| a % b),
            (BinaryOp::Maximum, u32::max),
            (BinaryOp::Minimum, u32::min),
        ],
    );
    let lx = with_specials(10, i64::MIN, i64::MAX, 38, &[1 << 40]);
    let ly = with_specials(10, i64::MIN, i64::MAX, 39, &[1 << 30]);
    check_binary_exact(
        "s64",
        &lx,
        &ly,
        &[
            (BinaryOp::Add, i64::wrapping_add),
            (BinaryOp::Multiply, i64::wrapping_mul),
            (BinaryOp::Minimum, i64::min),
        ],
    );
    let bx = random(&[16], 0u8, 255, 40);
    let by = random(&[16], 0u8, 255, 41);
    check_binary_exact(
        "u8",
        &bx,
        &by,
        &[
            (BinaryOp::Add, u8::wrapping_add),
            (BinaryOp::Maximum, u8::max),
            (BinaryOp::Xor, |a, b| a ^ b),
        ],
    );
    let px = arr1(&[false, false, true, true]).into_dyn();
    let py = arr1(&[false, true, false, true]).into_dyn();
    check_binary_exact(
        "pred",
        &px,
        &py,
        &[
            (BinaryOp::And, |a, b| a & b),
            (BinaryOp::Or, |a, b| a | b),
            (BinaryOp::Xor, |a, b| a ^ b),
        ],
    );
}

/// A binary float op with its f64 reference and relative tolerance.
type FloatCase = (BinaryOp, fn(f64, f64) -> f64, f64);

/// Builds `op(x, y)` for every case in one module and compares each with an f64 reference.
fn check_binary_float(name: &str, x: &ArrayD<f32>, y: &ArrayD<f32>, cases: &[FloatCase]) {
    let args = [lit(x), lit(y)];
    let m = module(&format!("binary_{name}"), &shapes_of(&args), |b, p| {
        let values = cases
            .iter()
            .map(|&(op, _, _)| b.binary(op, p[0], p[1]))
            .collect::<Result<Vec<_>, _>>()?;
        b.tuple(&values)
    });
    let out = run(&m, &args);
    for ((op, reference, rtol), got) in cases.iter().zip(&out) {
        let expected = zip(x, y, |a, b| reference(a.into(), b.into()) as f32);
        assert_close(
            &format!("{name} {}", op.opcode()),
            got,
            &expected,
            *rtol,
            0.0,
        );
    }
}

#[test]
fn binary_float_ops_match_references() {
    let x = with_specials(
        40,
        -4.0f32,
        4.0,
        50,
        &[1.0, -1.0, 0.0, f32::NAN, 2.0, 5.5, -5.5],
    );
    let y = with_specials(
        40,
        -4.0f32,
        4.0,
        51,
        &[0.0, 0.0, 0.0, 1.0, f32::NAN, 2.0, 2.0],
    );
    check_binary_float(
        "f32",
        &x,
        &y,
        &[
            (BinaryOp::Add, |a, b| a + b, F32_ROUNDED),
            (BinaryOp::Subtract, |a, b| a - b, F32_ROUNDED),
            (BinaryOp::Multiply, |a, b| a * b, F32_ROUNDED),
            (BinaryOp::Divide, |a, b| a / b, F32_ROUNDED),
            (BinaryOp::Remainder, |a, b| a % b, 0.0),
            (BinaryOp::Atan2, f64::atan2, F32_MATH),
        ],
    );
    // NaN-free operands: see `maximum_and_minimum_propagate_nan_without_fast_min_max`.
    let (x, y) = (random_f32(&[20], 54), random_f32(&[20], 55));
    check_binary_float(
        "f32_minmax",
        &x,
        &y,
        &[
            (BinaryOp::Maximum, f64::max, 0.0),
            (BinaryOp::Minimum, f64::min, 0.0),
        ],
    );
    let base = with_specials(30, 0.05f32, 4.0, 52, &[-2.0, -2.0, 0.0, 4.0]);
    let exponent = with_specials(30, -3.0f32, 3.0, 53, &[3.0, 2.0, 2.0, 0.5]);
    check_binary_float(
        "f32_pow",
        &base,
        &exponent,
        &[(BinaryOp::Power, f64::powf, F32_MATH)],
    );
}

/// XLA defines `maximum`/`minimum` to propagate NaN from either side, but the official CPU
/// plugin compiles with `xla_cpu_enable_fast_min_max` on by default, which returns the lhs when
/// only the rhs is NaN (measured: `max(2, NaN) = 2`). With the option off the defined semantics hold.
#[test]
fn maximum_and_minimum_propagate_nan_without_fast_min_max() {
    let x = arr1(&[2.0f32, f32::NAN, 1.0, f32::NAN]).into_dyn();
    let y = arr1(&[f32::NAN, 2.0, 3.0, f32::NAN]).into_dyn();
    let args = [lit(&x), lit(&y)];
    let m = module("nan_min_max", &shapes_of(&args), |b, p| {
        let values = [b.max(p[0], p[1])?, b.min(p[0], p[1])?];
        b.tuple(&values)
    });
    let options = CompileOptions::default()
        .with_override("xla_cpu_enable_fast_min_max", OptionOverride::Bool(false));
    let out = run_with(&m, &args, &options);
    let nan = f32::NAN;
    assert_close("maximum", &out[0], &arr1(&[nan, nan, 3.0, nan]), 0.0, 0.0);
    assert_close("minimum", &out[1], &arr1(&[nan, nan, 1.0, nan]), 0.0, 0.0);
}

/// A comparison direction with the Rust operator that implements it.
type Direction<T> = (ComparisonDirection, fn(&T, &T) -> bool);

/// Compares `x` and `y` in every direction and checks the pred results against Rust's operators.
fn check_compare<T: NativeType + PartialOrd + Debug>(name: &str, x: &ArrayD<T>, y: &ArrayD<T>) {
    let directions: [Direction<T>; 6] = [
        (ComparisonDirection::Eq, T::eq),
        (ComparisonDirection::Ne, T::ne),
        (ComparisonDirection::Lt, T::lt),
        (ComparisonDirection::Le, T::le),
        (ComparisonDirection::Gt, T::gt),
        (ComparisonDirection::Ge, T::ge),
    ];
    let args = [lit(x), lit(y)];
    let m = module(&format!("compare_{name}"), &shapes_of(&args), |b, p| {
        let values = directions
            .iter()
            .map(|&(d, _)| b.compare(d, p[0], p[1]))
            .collect::<Result<Vec<_>, _>>()?;
        b.tuple(&values)
    });
    let out = run(&m, &args);
    for ((direction, reference), got) in directions.iter().zip(&out) {
        assert_exact(
            &format!("{name} {}", direction.name()),
            got,
            &zip(x, y, |a, b| reference(&a, &b)),
        );
    }
}

#[test]
fn compare_in_every_direction_with_the_operand_types_semantics() {
    // NaN is unordered (only NE holds) and -0 equals +0.
    let fx = arr1(&[1.0f32, 2.0, -3.0, f32::NAN, 1.0, -0.0, f32::NEG_INFINITY]).into_dyn();
    let fy = arr1(&[1.0f32, -2.0, 3.0, 1.0, f32::NAN, 0.0, -1e30]).into_dyn();
    check_compare("f32", &fx, &fy);
    check_compare(
        "s32",
        &random(&[30], -3i32, 3, 60),
        &random(&[30], -3i32, 3, 61),
    );
    // Above 2^31 a signed comparison would give the opposite answer.
    let ux = arr1(&[0u32, 1, 1 << 31, u32::MAX, 7]).into_dyn();
    let uy = arr1(&[1u32 << 31, 1, 1, 0, 7]).into_dyn();
    check_compare("u32", &ux, &uy);
    check_compare(
        "bf16",
        &map(&random(&[12], -2i32, 2, 62), |v| bf16::from_f32(v as f32)),
        &map(&random(&[12], -2i32, 2, 63), |v| bf16::from_f32(v as f32)),
    );
}

#[test]
fn select_picks_by_predicate_array_or_scalar() {
    let p = random(&[3, 4], 0u8, 1, 70).mapv(|v| v == 1);
    let x = random_f32(&[3, 4], 71);
    let y = random_f32(&[3, 4], 72);
    let n = random(&[3, 4], -50i32, 50, 73);
    let args = [lit(&p), lit(&x), lit(&y), Literal::scalar(false), lit(&n)];
    let m = module("select", &shapes_of(&args), |b, v| {
        let zeros = b.full_like(v[4], 0.0)?;
        let values = [
            b.select(v[0], v[1], v[2])?,
            b.select(v[3], v[1], v[2])?,
            b.select(v[0], v[4], zeros)?,
        ];
        b.tuple(&values)
    });
    let out = run(&m, &args);
    assert_exact(
        "array predicate",
        &out[0],
        &Zip::from(&p)
            .and(&x)
            .and(&y)
            .map_collect(|&c, &a, &b| if c { a } else { b }),
    );
    assert_exact("scalar predicate", &out[1], &y);
    assert_exact("s32", &out[2], &zip(&p, &n, |c, a| if c { a } else { 0 }));
}

#[test]
fn clamp_with_scalar_and_array_bounds() {
    let x = random(&[10], -3.0f32, 3.0, 80);
    let n = random(&[10], -100i32, 100, 81);
    let lo = random(&[10], -60i32, 0, 82);
    let hi = random(&[10], 0i32, 60, 83);
    let args = [lit(&x), lit(&n), lit(&lo), lit(&hi)];
    let m = module("clamp", &shapes_of(&args), |b, v| {
        let (low, high) = (b.scalar(-1.0f32)?, b.scalar(0.5f32)?);
        let values = [b.clamp(low, v[0], high)?, b.clamp(v[2], v[1], v[3])?];
        b.tuple(&values)
    });
    let out = run(&m, &args);
    assert_exact("scalar bounds", &out[0], &map(&x, |v| v.clamp(-1.0, 0.5)));
    let expected = Zip::from(&n)
        .and(&lo)
        .and(&hi)
        .map_collect(|&v, &l, &h| v.clamp(l, h));
    assert_exact("array bounds", &out[1], &expected);
}

#[test]
fn elementwise_ops_on_half_types_round_like_the_half_crate() {
    let x = map(&random(&[16], -8.0f32, 8.0, 90), bf16::from_f32);
    let y = map(&random(&[16], -8.0f32, 8.0, 91), bf16::from_f32);
    let h = map(&random(&[16], -8.0f32, 8.0, 92), f16::from_f32);
    let args = [lit(&x), lit(&y), lit(&h)];
    let m = module("half", &shapes_of(&args), |b, v| {
        let values = [b.add(v[0], v[1])?, b.mul(v[0], v[1])?, b.mul(v[2], v[2])?];
        b.tuple(&values)
    });
    let out = run(&m, &args);
    // The exact product/sum of two bf16 (or f16) values fits in f32, so rounding it once is the
    // correctly rounded half-precision result.
    assert_exact(
        "bf16 add",
        &out[0],
        &zip(&x, &y, |a, b| bf16::from_f32(f32::from(a) + f32::from(b))),
    );
    assert_exact(
        "bf16 multiply",
        &out[1],
        &zip(&x, &y, |a, b| bf16::from_f32(f32::from(a) * f32::from(b))),
    );
    assert_exact(
        "f16 multiply",
        &out[2],
        &map(&h, |a| f16::from_f32(f32::from(a) * f32::from(a))),
    );
}
