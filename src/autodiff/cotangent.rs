//! Cotangents: the gradient flowing backwards into one value, shaped like that value.

use crate::hlo::error::{HloError, Result};
use crate::hlo::{Builder, Shape, Value};

/// The cotangent of an array value is an array of its shape; the cotangent of a tuple value keeps
/// one optional cotangent per element, so that using a single element of a big tuple (a loop
/// state, a variadic result) does not materialize zeros for all the others.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cotangent {
    Array(Value),
    Tuple(Vec<Option<Cotangent>>),
}

impl Cotangent {
    /// Splits a tuple-shaped cotangent value into per-element cotangents (arrays stay as they are).
    pub fn from_value(b: &mut Builder, v: Value) -> Result<Cotangent> {
        let Some(count) = b.shape(v).tuple_elements().map(<[Shape]>::len) else {
            return Ok(Cotangent::Array(v));
        };
        let elements = (0..count)
            .map(|i| {
                let e = b.get_tuple_element(v, i as i64)?;
                Cotangent::from_value(b, e).map(Some)
            })
            .collect::<Result<_>>()?;
        Ok(Cotangent::Tuple(elements))
    }

    /// The array cotangent of an array-shaped value; `op` names the rule asking.
    pub fn array(self, op: &str) -> Result<Value> {
        match self {
            Cotangent::Array(v) => Ok(v),
            Cotangent::Tuple(_) => Err(HloError::new(
                op,
                &[],
                "internal error: a tuple cotangent reached an array-valued op",
            )),
        }
    }

    /// Adds `other` into `self` (gradient accumulation when a value has several users).
    pub fn accumulate(self, b: &mut Builder, other: Cotangent) -> Result<Cotangent> {
        match (self, other) {
            (Cotangent::Array(x), Cotangent::Array(y)) => Ok(Cotangent::Array(b.add(x, y)?)),
            (Cotangent::Tuple(xs), Cotangent::Tuple(ys)) if xs.len() == ys.len() => {
                let sums = xs
                    .into_iter()
                    .zip(ys)
                    .map(|(x, y)| match (x, y) {
                        (Some(x), Some(y)) => x.accumulate(b, y).map(Some),
                        (x, y) => Ok(x.or(y)),
                    })
                    .collect::<Result<_>>()?;
                Ok(Cotangent::Tuple(sums))
            }
            _ => Err(HloError::new(
                "grad/accumulate",
                &[],
                "internal error: cotangents of different structure",
            )),
        }
    }
}

/// A value of `shape` holding the cotangent, with zeros where there is none.
pub(crate) fn materialize(b: &mut Builder, ct: Option<Cotangent>, shape: &Shape) -> Result<Value> {
    match (ct, shape) {
        (Some(Cotangent::Array(v)), _) => Ok(v),
        (None, Shape::Array(a)) => b.full(a, 0.0),
        (ct, Shape::Tuple(shapes)) => {
            let mut slots = match ct {
                Some(Cotangent::Tuple(slots)) if slots.len() == shapes.len() => slots,
                None => vec![None; shapes.len()],
                Some(_) => {
                    return Err(HloError::new(
                        "grad",
                        &[shape],
                        "internal error: cotangent does not match the tuple shape",
                    ))
                }
            };
            let elements = slots
                .iter_mut()
                .zip(shapes)
                .map(|(slot, s)| materialize(b, slot.take(), s))
                .collect::<Result<Vec<_>>>()?;
            b.tuple(&elements)
        }
        (Some(Cotangent::Tuple(_)), Shape::Array(_)) => Err(HloError::new(
            "grad",
            &[shape],
            "internal error: tuple cotangent for an array value",
        )),
    }
}
