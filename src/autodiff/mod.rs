//! Reverse-mode automatic differentiation of HLO graphs under construction.
//!
//! [`grad`] and [`vjp`] walk the instructions of a [`Builder`] backwards from the outputs and emit
//! the gradient ops into the same builder, one rule per opcode (`rules`), so a training step is
//! one computation holding the forward pass, its gradient and the update. Cotangents of values
//! used several times are summed. Every emitted op carries `op_type = "grad/<forward opcode>"`
//! (or `grad/accumulate`, `grad/seed`, `grad/zeros`) and the forward op's scope as its name
//! (under the scope `grad` is called in, if any), so the HLO text says which layer and which
//! rule produced it.
//!
//! What stops a gradient: [`stop_gradient`], non-float values (comparisons, indices, integer
//! math) and ops with a zero derivative (`sign`, `floor`, `ceil`, `round`). Differentiable ops
//! without a rule (conditional, select-and-scatter, variadic reduce, reductions with other
//! reducers, while loops without a fixed trip count) are errors that name the op, but only when
//! a requested gradient actually flows through them.
//!
//! A value can carry its own rule instead ([`custom_vjp`], JAX's `custom_vjp`): the sweep applies
//! it to the value's cotangent and skips the instructions that computed the value. The model uses
//! one to order the sums of a layer's gradient so that accelerator compilers fuse them.
//!
//! The rules document their conventions at kinks: ties of elementwise `maximum`/`minimum` and of
//! `reduce` max/min split the cotangent evenly, max/min pooling sends it to the first extreme
//! element of each window, `clamp` gives it to the operand on the bounds.

mod backward;
mod cotangent;
mod rules;

use std::sync::Arc;

use backward::{carries_float, with_provenance};
use cotangent::{materialize, Cotangent};

use crate::hlo::error::{HloError, Result};
use crate::hlo::{Builder, CustomGradient, Value};

/// Gradients of the floating-point scalar `output` with respect to each of `wrt` (parameters or
/// any other float array values of `b`), in order. Values `output` does not depend on get zeros.
pub fn grad(b: &mut Builder, output: Value, wrt: &[Value]) -> Result<Vec<Value>> {
    b.check("grad", output)?;
    let shape = b.shape(output);
    match shape.as_array() {
        Some(a) if a.is_scalar() && a.ty().is_float() => {}
        _ => {
            return Err(HloError::new(
                "grad",
                &[shape],
                "the output must be a floating-point scalar (use vjp for other outputs)",
            ))
        }
    }
    let scope = b.instruction(output).metadata.op_name.clone();
    let ty = b.array_shape("grad", output)?.ty();
    let seed = with_provenance(b, &scope, "grad/seed".into(), |b| b.scalar_of(ty, 1.0))?;
    vjp(b, &[(output, seed)], wrt)
}

/// Vector-Jacobian products: the gradient of `sum_i <outputs_i, cotangents_i>` with respect to
/// each of `wrt`, for `(output, cotangent)` pairs of equal shapes (arrays or tuples). This is
/// [`grad`] with arbitrary cotangents, e.g. for loss scaling or several heads.
pub fn vjp(b: &mut Builder, cotangents: &[(Value, Value)], wrt: &[Value]) -> Result<Vec<Value>> {
    let mut seeds = Vec::with_capacity(cotangents.len());
    for &(output, ct) in cotangents {
        b.check("vjp", output)?;
        b.check("vjp", ct)?;
        let (os, cs) = (b.shape(output), b.shape(ct));
        if !os.compatible(cs) {
            return Err(HloError::new(
                "vjp",
                &[os, cs],
                "each cotangent must have the shape of its output",
            ));
        }
        if !carries_float(os) {
            return Err(HloError::new(
                "vjp",
                &[os],
                "the output holds no floating-point values, so it has no gradient",
            ));
        }
        seeds.push((output, Cotangent::from_value(b, ct)?));
    }
    for &w in wrt {
        b.check("grad", w)?;
        let shape = b.shape(w);
        match shape.as_array() {
            Some(a) if a.ty().is_float() => {}
            Some(a) => {
                return Err(HloError::new(
                    "grad",
                    &[shape],
                    format!("cannot differentiate with respect to a {} value: only floating-point values have gradients", a.ty()),
                ))
            }
            None => {
                return Err(HloError::new(
                    "grad",
                    &[shape],
                    "cannot differentiate with respect to a tuple: ask for its elements (get-tuple-element) instead",
                ))
            }
        }
    }
    let cts = backward::backward(b, seeds, wrt)?;
    wrt.iter()
        .zip(cts)
        .map(|(&w, ct)| {
            let scope = b.instruction(w).metadata.op_name.clone();
            let shape = b.shape(w).clone();
            match ct {
                Some(ct) => ct.array("grad"),
                None => with_provenance(b, &scope, "grad/zeros".into(), |b| {
                    materialize(b, None, &shape)
                }),
            }
        })
        .collect()
}

/// `x` unchanged, but a constant for differentiation: no gradient flows back through the returned
/// value into `x` (other uses of `x` are unaffected). Emitted as an identity reshape labelled
/// `stop_gradient`, which XLA removes.
pub fn stop_gradient(b: &mut Builder, x: Value) -> Result<Value> {
    b.check("stop_gradient", x)?;
    let dims = b.array_shape("stop_gradient", x)?.dims().to_vec();
    let previous = b.set_op_type(Some("stop_gradient".into()));
    let y = b.reshape(x, &dims);
    b.set_op_type(previous);
    let y = y?;
    b.mark_gradient_stop(y)?;
    Ok(y)
}

/// Gives `output` a gradient rule instead of the one autodiff would derive (JAX's `custom_vjp`):
/// the reverse sweep calls `rule(b, cotangent, needs)`, where `needs[i]` says whether `inputs[i]`
/// needs a cotangent, and adds the returned cotangents (one per input, shaped like it; `None`
/// for none) into the inputs. The instructions between `inputs` and `output` get no gradient
/// from `output`. The rule may use any value built before it runs (the forward pass's
/// intermediates are its residuals) and may call [`vjp`] on parts of the forward pass.
///
/// For a rule that computes the same derivative as autodiff in another order: e.g. sums that a
/// compiler cannot fuse in the derived form.
pub fn custom_vjp(
    b: &mut Builder,
    name: &str,
    output: Value,
    inputs: &[Value],
    rule: impl Fn(&mut Builder, Value, &[bool]) -> Result<Vec<Option<Value>>> + Send + Sync + 'static,
) -> Result<()> {
    b.check("custom_vjp", output)?;
    if b.array_shape("custom_vjp", output).is_err() {
        return Err(HloError::new(
            "custom_vjp",
            &[b.shape(output)],
            "only an array value can have a custom gradient",
        ));
    }
    for &input in inputs {
        b.check("custom_vjp", input)?;
        if !b.shape(input).as_array().is_some_and(|a| a.ty().is_float()) {
            return Err(HloError::new(
                "custom_vjp",
                &[b.shape(input)],
                "every input of a custom gradient must be a floating-point array",
            ));
        }
    }
    b.set_custom_gradient(
        output,
        CustomGradient {
            name: name.to_owned(),
            inputs: inputs.to_vec(),
            rule: Arc::new(rule),
        },
    )
}
