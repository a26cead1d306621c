//! Gradient checks against central finite differences computed through the CPU plugin.
//!
//! A case is a function of some inputs built with the HLO builder. [`check`] differentiates it
//! with `autodiff::vjp` for a random cotangent `w`, runs that gradient module once, and compares
//! it with central differences of the scalar `sum(f(inputs) * w)`, evaluated in f64 by one
//! compiled loss module executed twice per input element. Inputs are f64 (or f32, to test
//! conversions; the difference quotient then divides by the actual f32 step).
#![allow(dead_code)]

use effnetv2::autodiff;
use effnetv2::hlo::{ArrayShape, Builder, ElementType, HloError, Literal, Module, Shape, Value};

use crate::common::{compile, execute, random, run};

/// The relative error every gradient must meet: `|ad - fd| / |fd|` (Euclidean norms per input).
pub const TOLERANCE: f64 = 1e-6;

/// Central-difference step: the truncation error is `O(h^2)`, rounding `O(eps / h)`, both far
/// below [`TOLERANCE`] for inputs of order one.
const STEP: f64 = 1e-5;
/// The f32 step is a power of two so that `x +- h` stays close to representable.
const STEP_F32: f64 = 1.0 / 4096.0;

/// One input of a case: element type, dimensions and values (row-major).
#[derive(Clone, Debug)]
pub struct Input {
    pub ty: ElementType,
    pub dims: Vec<i64>,
    pub values: Vec<f64>,
}

impl Input {
    /// f64 values uniform in `[low, high]`, reproducible from `seed`.
    pub fn uniform(dims: &[i64], low: f64, high: f64, seed: u64) -> Input {
        let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
        let values = random(&shape, low, high, seed).into_raw_vec_and_offset().0;
        Input {
            ty: ElementType::F64,
            dims: dims.to_vec(),
            values,
        }
    }

    /// f64 values uniform in `[-1, 1]`.
    pub fn random(dims: &[i64], seed: u64) -> Input {
        Input::uniform(dims, -1.0, 1.0, seed)
    }

    /// The same values rounded to f32.
    pub fn into_f32(self) -> Input {
        let values = self.values.iter().map(|&v| v as f32 as f64).collect();
        Input {
            ty: ElementType::F32,
            values,
            ..self
        }
    }

    pub fn shape(&self) -> ArrayShape {
        ArrayShape::new(self.ty, &self.dims)
    }

    pub fn literal(&self) -> Literal {
        literal(self.ty, &self.dims, &self.values)
    }
}

fn literal(ty: ElementType, dims: &[i64], values: &[f64]) -> Literal {
    match ty {
        ElementType::F64 => Literal::from_vec(dims, values).unwrap(),
        ElementType::F32 => {
            Literal::from_vec(dims, &values.iter().map(|&v| v as f32).collect::<Vec<_>>()).unwrap()
        }
        other => panic!("finite differences need float inputs, not {other}"),
    }
}

/// Rounds `v` to what an element of `ty` holds.
fn round_to(ty: ElementType, v: f64) -> f64 {
    match ty {
        ElementType::F32 => v as f32 as f64,
        _ => v,
    }
}

/// Declares one parameter per input and builds `f` on them.
fn build_case<F>(b: &mut Builder, inputs: &[Input], f: &F) -> (Vec<Value>, Value)
where
    F: Fn(&mut Builder, &[Value]) -> Result<Value, HloError>,
{
    let params: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, x)| b.parameter(i as i64, x.shape(), format!("x{i}")).unwrap())
        .collect();
    let out = f(b, &params).unwrap_or_else(|e| panic!("building the case: {e}"));
    (params, out)
}

/// A fixed random cotangent for an output of `shape` (values exactly representable in its type).
fn cotangent(shape: &ArrayShape) -> Input {
    let dims = shape.dims().to_vec();
    let mut w = Input::uniform(&dims, -1.0, 1.0, 0x5eed);
    w.values
        .iter_mut()
        .for_each(|v| *v = round_to(shape.ty(), *v));
    w.ty = shape.ty();
    w
}

/// The gradient of `sum(f(inputs) * w)` by autodiff, one literal per input.
pub fn autodiff_gradient<F>(name: &str, inputs: &[Input], f: &F) -> Vec<Literal>
where
    F: Fn(&mut Builder, &[Value]) -> Result<Value, HloError>,
{
    let mut b = Builder::new(name);
    let (params, out) = build_case(&mut b, inputs, f);
    let w = cotangent(b.array_shape("test", out).unwrap());
    let w = b.constant(w.literal()).unwrap();
    let grads = autodiff::vjp(&mut b, &[(out, w)], &params)
        .unwrap_or_else(|e| panic!("{name}: vjp failed: {e}"));
    let root = b.tuple(&grads).unwrap();
    let module = Module::new(format!("{name}_grad"), b.build(root).unwrap());
    run(
        &module,
        &inputs.iter().map(Input::literal).collect::<Vec<_>>(),
    )
}

/// The module computing `sum(f64(f(inputs)) * w)`.
pub fn loss_module<F>(name: &str, inputs: &[Input], f: &F) -> Module
where
    F: Fn(&mut Builder, &[Value]) -> Result<Value, HloError>,
{
    let mut b = Builder::new(name);
    let (_, out) = build_case(&mut b, inputs, f);
    let shape = b.array_shape("test", out).unwrap().clone();
    let w = cotangent(&shape);
    let loss = (|| {
        let w = b.constant(literal(ElementType::F64, &w.dims, &w.values))?;
        let out = if shape.ty() == ElementType::F64 {
            out
        } else {
            b.convert(out, ElementType::F64)?
        };
        let weighted = b.mul(out, w)?;
        let all: Vec<i64> = (0..shape.rank() as i64).collect();
        b.reduce_sum(weighted, &all)
    })()
    .unwrap();
    Module::new(format!("{name}_loss"), b.build(loss).unwrap())
}

/// Central differences of the compiled loss with respect to every element of every input.
pub fn finite_differences(loss: &Module, inputs: &[Input]) -> Vec<Vec<f64>> {
    let exe = compile(loss);
    let mut args: Vec<Literal> = inputs.iter().map(Input::literal).collect();
    let mut eval = |i: usize, values: &[f64]| {
        let original =
            std::mem::replace(&mut args[i], literal(inputs[i].ty, &inputs[i].dims, values));
        let value = execute(&exe, &args)[0].to_f64_vec()[0];
        args[i] = original;
        value
    };
    inputs
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let step = if x.ty == ElementType::F32 {
                STEP_F32
            } else {
                STEP
            };
            (0..x.values.len())
                .map(|k| {
                    let mut values = x.values.clone();
                    let mut at = |v: f64| {
                        values[k] = round_to(x.ty, v);
                        (values[k], eval(i, &values))
                    };
                    let (hi, f_hi) = at(x.values[k] + step);
                    let (lo, f_lo) = at(x.values[k] - step);
                    (f_hi - f_lo) / (hi - lo)
                })
                .collect()
        })
        .collect()
}

/// Relative error of `actual` against `expected` in the Euclidean norm.
pub fn relative_error(actual: &[f64], expected: &[f64]) -> f64 {
    let diff: f64 = actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = expected.iter().map(|e| e * e).sum::<f64>().sqrt();
    diff / norm
}

/// Compares autodiff gradients with finite differences, input by input. Every input must have a
/// non-zero gradient (so that the comparison can fail) and meet [`TOLERANCE`].
#[track_caller]
pub fn check<F>(name: &str, inputs: &[Input], f: F)
where
    F: Fn(&mut Builder, &[Value]) -> Result<Value, HloError>,
{
    let ad = autodiff_gradient(name, inputs, &f);
    let fd = finite_differences(&loss_module(name, inputs, &f), inputs);
    compare(name, inputs, &ad, &fd);
}

#[track_caller]
pub fn compare(name: &str, inputs: &[Input], ad: &[Literal], fd: &[Vec<f64>]) {
    assert_eq!(ad.len(), inputs.len(), "{name}: one gradient per input");
    for (i, ((x, g), fd)) in inputs.iter().zip(ad).zip(fd).enumerate() {
        assert_eq!(
            g.shape(),
            &x.shape(),
            "{name}: gradient {i} has the input's shape and type"
        );
        let g = g.to_f64_vec();
        let norm: f64 = fd.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(norm > 1e-3, "{name}: input {i} has a vanishing finite-difference gradient {fd:?}; the case cannot test it");
        let err = relative_error(&g, fd);
        assert!(
            err < TOLERANCE,
            "{name}: input {i}: relative error {err:e}\nautodiff {g:?}\nfinite differences {fd:?}"
        );
    }
}

/// An array shape of f64 elements.
pub fn f64s(dims: &[i64]) -> Shape {
    Shape::array(ElementType::F64, dims)
}
