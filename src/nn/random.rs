//! In-graph randomness for dropout and stochastic depth.
//!
//! A train step takes a `u64[2]` key and threads it through every random draw with
//! `rng-bit-generator`, returning the final state as the next step's key: the whole run is
//! reproducible from one seed, and a checkpoint only needs the key.

use crate::hlo::{error::Result, ArrayShape, Builder, ElementType, RandomAlgorithm, Value};

/// The threaded random state of one graph.
#[derive(Clone, Copy, Debug)]
pub struct Rng {
    state: Value,
}

impl Rng {
    /// Starts from a `u64[2]` key value of the graph.
    pub fn new(state: Value) -> Rng {
        Rng { state }
    }

    /// The state after every draw so far (what the next step should start from).
    pub fn state(&self) -> Value {
        self.state
    }

    /// Uniform f32 samples in `[0, 1)` of shape `dims`: 23 random mantissa bits under the
    /// exponent of 1.0 give a float in `[1, 2)`, minus one.
    pub fn uniform(&mut self, b: &mut Builder, dims: &[i64]) -> Result<Value> {
        let out = b.rng_bit_generator(
            RandomAlgorithm::ThreeFry,
            self.state,
            &ArrayShape::new(ElementType::U32, dims),
        )?;
        self.state = b.get_tuple_element(out, 0)?;
        let bits = b.get_tuple_element(out, 1)?;
        let shape = ArrayShape::new(ElementType::U32, dims);
        let nine = b.full(&shape, 9.0)?;
        let mantissa = b.shift_right_logical(bits, nine)?;
        let one_bits = b.full(&shape, f64::from(1.0f32.to_bits()))?;
        let with_exponent = b.or(mantissa, one_bits)?;
        let in_one_two = b.bitcast_convert(with_exponent, ElementType::F32)?;
        let one = b.full(&shape.with_ty(ElementType::F32), 1.0)?;
        b.sub(in_one_two, one)
    }
}

/// Stochastic depth (`drop_connect`): keeps each example's residual branch with probability
/// `survival` and rescales it by `1/survival`; `x` is NHWC.
pub fn drop_connect(b: &mut Builder, rng: &mut Rng, x: Value, survival: f64) -> Result<Value> {
    let shape = b.array_shape("drop_connect", x)?.clone();
    let batch = shape.dims()[0];
    let u = rng.uniform(b, &[batch])?;
    let keep = b.full(&ArrayShape::new(ElementType::F32, &[batch]), survival)?;
    let r = b.add(keep, u)?;
    let binary = b.floor(r)?;
    let scale = b.full(&ArrayShape::new(ElementType::F32, &[batch]), 1.0 / survival)?;
    let mask = b.mul(binary, scale)?;
    let mask = b.convert(mask, shape.ty())?;
    let mask = b.broadcast_in_dim(mask, shape.dims(), &[0])?;
    b.mul(x, mask)
}

/// Dropout with a runtime `rate` (an f32 scalar, so one graph serves every stage's rate):
/// keeps each element with probability `1 - rate` and rescales by `1/(1 - rate)`.
pub fn dropout(b: &mut Builder, rng: &mut Rng, x: Value, rate: Value) -> Result<Value> {
    let shape = b.array_shape("dropout", x)?.clone();
    let u = rng.uniform(b, shape.dims())?;
    let f32_shape = shape.with_ty(ElementType::F32);
    let rate = b.broadcast_in_dim(rate, shape.dims(), &[])?;
    let kept = b.compare(crate::hlo::ComparisonDirection::Ge, u, rate)?;
    let one = b.full(&f32_shape, 1.0)?;
    let keep_prob = b.sub(one, rate)?;
    let scale = b.div(one, keep_prob)?;
    let zero = b.full(&f32_shape, 0.0)?;
    let mask = b.select(kept, scale, zero)?;
    let mask = b.convert(mask, shape.ty())?;
    b.mul(x, mask)
}
