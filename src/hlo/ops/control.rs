//! Tuples, control flow, random bits and the replica id.

use crate::hlo::builder::{Builder, Computation, Value};
use crate::hlo::element::ElementType;
use crate::hlo::error::{HloError, Result};
use crate::hlo::op::{Op, RandomAlgorithm};
use crate::hlo::shape::{ArrayShape, Shape};

impl Builder {
    pub fn tuple(&mut self, elements: &[Value]) -> Result<Value> {
        for &v in elements {
            self.check("tuple", v)?;
        }
        let shape = Shape::Tuple(elements.iter().map(|&v| self.shape(v).clone()).collect());
        self.emit(Op::Tuple, elements, shape)
    }

    pub fn get_tuple_element(&mut self, t: Value, index: i64) -> Result<Value> {
        self.check("get-tuple-element", t)?;
        let shape = match self.shape(t) {
            Shape::Tuple(elems) if index >= 0 && (index as usize) < elems.len() => {
                elems[index as usize].clone()
            }
            other => {
                return Err(HloError::new(
                    "get-tuple-element",
                    &[other],
                    format!("index {index} does not name an element of a tuple"),
                ))
            }
        };
        self.emit(Op::GetTupleElement { index }, &[t], shape)
    }

    /// Random bits of `shape` from a `u64` key state; returns `(new_state, bits)` as a tuple.
    pub fn rng_bit_generator(
        &mut self,
        algorithm: RandomAlgorithm,
        state: Value,
        shape: &ArrayShape,
    ) -> Result<Value> {
        self.check("rng-bit-generator", state)?;
        let st = self.array_shape("rng-bit-generator", state)?.clone();
        if st.ty() != ElementType::U64 || st.rank() != 1 {
            return Err(HloError::new(
                "rng-bit-generator",
                &[self.shape(state)],
                "the state must be a rank-1 u64 array",
            ));
        }
        // Unsigned only, as JAX's `rng_bit_generator` requires: XLA's CPU compiler fails its own
        // verifier on an s32 result (its expander produces u32); bitcast-convert for signed bits.
        if !matches!(
            shape.ty(),
            ElementType::U8 | ElementType::U32 | ElementType::U64
        ) {
            return Err(HloError::new(
                "rng-bit-generator",
                &[self.shape(state)],
                format!(
                    "cannot generate bits of type {} (u8, u32 or u64 only)",
                    shape.ty()
                ),
            ));
        }
        let result = Shape::Tuple(vec![st.into(), shape.clone().into()]);
        self.emit(Op::RngBitGenerator { algorithm }, &[state], result)
    }

    /// `while cond(x) { x = body(x) }` starting from `init`; the condition returns a pred scalar
    /// and the body returns a value of `init`'s shape.
    pub fn while_loop(
        &mut self,
        condition: &Computation,
        body: &Computation,
        init: Value,
    ) -> Result<Value> {
        self.check("while", init)?;
        let shape = self.shape(init).clone();
        let takes_state = |c: &Computation| {
            c.parameter_shapes().len() == 1 && c.parameter_shapes()[0].compatible(&shape)
        };
        if !takes_state(condition)
            || !condition
                .result_shape()
                .compatible(&Shape::scalar(ElementType::Pred))
        {
            return Err(HloError::new(
                "while",
                &[&shape],
                format!(
                    "condition '{}' must map the loop state to pred[]",
                    condition.name()
                ),
            ));
        }
        if !takes_state(body) || !body.result_shape().compatible(&shape) {
            return Err(HloError::new(
                "while",
                &[&shape],
                format!(
                    "body '{}' must map the loop state to itself, got {}",
                    body.name(),
                    body.result_shape()
                ),
            ));
        }
        let (condition, body) = (self.call(condition), self.call(body));
        self.emit(Op::While { condition, body }, &[init], shape)
    }

    /// Runs `branches[index]` on `operands[index]`. `selector` is a pred scalar (two branches:
    /// true first, as XLA orders them) or an s32 scalar branch index.
    pub fn conditional(
        &mut self,
        selector: Value,
        branches: &[Computation],
        operands: &[Value],
    ) -> Result<Value> {
        self.check("conditional", selector)?;
        for &v in operands {
            self.check("conditional", v)?;
        }
        let sel = self.array_shape("conditional", selector)?.clone();
        let shapes: Vec<&Shape> = std::iter::once(selector)
            .chain(operands.iter().copied())
            .map(|v| self.shape(v))
            .collect();
        let selector_ok = sel.is_scalar()
            && (sel.ty() == ElementType::S32
                || (sel.ty() == ElementType::Pred && branches.len() == 2));
        if !selector_ok || branches.is_empty() || branches.len() != operands.len() {
            return Err(HloError::new("conditional", &shapes, "needs a pred selector with 2 branches or an s32 selector, and one operand per branch"));
        }
        let result = branches[0].result_shape().clone();
        for (b, &v) in branches.iter().zip(operands) {
            let params = b.parameter_shapes();
            if params.len() != 1
                || !params[0].compatible(self.shape(v))
                || !b.result_shape().compatible(&result)
            {
                return Err(HloError::new(
                    "conditional",
                    &shapes,
                    format!(
                        "branch '{}' must take its operand and return {result}",
                        b.name()
                    ),
                ));
            }
        }
        let ids = branches.iter().map(|b| self.call(b)).collect();
        let values: Vec<Value> = std::iter::once(selector)
            .chain(operands.iter().copied())
            .collect();
        self.emit(Op::Conditional { branches: ids }, &values, result)
    }

    /// The index of the replica running the program, a u32 scalar (0 in a one-replica program).
    pub fn replica_id(&mut self) -> Result<Value> {
        self.emit(Op::ReplicaId, &[], Shape::scalar(ElementType::U32))
    }
}
