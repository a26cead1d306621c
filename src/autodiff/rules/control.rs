//! Rules of tuples and while loops.
//!
//! A while loop is differentiated when its trip count is fixed: the condition compares one
//! integer state element (a counter) with a constant, the body adds a constant to that counter,
//! and the loop starts from a `tuple` whose counter element is a constant. The rule then unrolls
//! the body (recomputing the forward iterations, which reverse mode needs) and sends the
//! cotangent back through the unrolled copy. Other loops are an error that says why.

use super::super::backward::backward;
use super::super::cotangent::Cotangent;
use super::Node;
use crate::hlo::error::{HloError, Result};
use crate::hlo::{
    Builder, ComparisonDirection, Computation, ComputationId, Instruction, Literal, Op, Value,
};

/// Unrolling beyond this many iterations would blow up the gradient graph.
const MAX_UNROLLED_ITERATIONS: i64 = 1000;

pub(super) fn tuple(n: &Node, ct: Cotangent) -> Result<Vec<Option<Cotangent>>> {
    match ct {
        Cotangent::Tuple(slots) if slots.len() == n.operands.len() => Ok(slots),
        _ => Err(HloError::new(
            "grad/tuple",
            &[],
            "internal error: a tuple received a cotangent of another structure",
        )),
    }
}

pub(super) fn get_tuple_element(
    b: &Builder,
    n: &Node,
    index: i64,
    ct: Cotangent,
) -> Result<Vec<Option<Cotangent>>> {
    let count = b
        .shape(n.operands[0])
        .tuple_elements()
        .map_or(0, <[_]>::len);
    let mut slots = vec![None; count];
    slots[index as usize] = Some(ct);
    Ok(vec![Some(Cotangent::Tuple(slots))])
}

pub(super) fn while_loop(
    b: &mut Builder,
    n: &Node,
    condition: ComputationId,
    body: ComputationId,
    ct: Cotangent,
) -> Result<Vec<Option<Cotangent>>> {
    let (cond, body) = (callee(b, condition)?, callee(b, body)?);
    let init = n.operands[0];
    let trips = trip_count(b, &cond, &body, init)?;
    let mut state = init;
    for _ in 0..trips {
        state = inline(b, &body, state)?;
    }
    backward(b, vec![(state, ct)], &[init])
}

fn callee(b: &Builder, id: ComputationId) -> Result<Computation> {
    b.callee(id).cloned().ok_or_else(|| {
        HloError::new(
            "grad/while",
            &[],
            "internal error: loop computation not registered",
        )
    })
}

fn not_fixed(message: impl Into<String>) -> HloError {
    HloError::new(
        "grad/while",
        &[],
        format!(
            "no gradient for a while loop without a fixed trip count: {}",
            message.into()
        ),
    )
}

/// The number of iterations of a counter loop (see the module documentation).
fn trip_count(b: &Builder, cond: &Computation, body: &Computation, init: Value) -> Result<i64> {
    let insts = cond.instructions();
    let root = cond.root();
    let Op::Compare { direction } = root.op else {
        return Err(not_fixed(format!(
            "the condition '{}' is not a comparison",
            cond.name()
        )));
    };
    let (a, c) = (&insts[root.operands[0]], &insts[root.operands[1]]);
    let (counter, limit, direction) = match (
        state_element(a, insts),
        constant_int(c),
        state_element(c, insts),
        constant_int(a),
    ) {
        (Some(k), Some(limit), _, _) => (k, limit, direction),
        (_, _, Some(k), Some(limit)) => (k, limit, mirrored(direction)),
        _ => {
            return Err(not_fixed(format!(
                "the condition '{}' does not compare a state element with a constant",
                cond.name()
            )))
        }
    };
    let step = counter_step(body, counter).ok_or_else(|| {
        not_fixed(format!(
            "the body '{}' does not add a constant to state element {counter}",
            body.name()
        ))
    })?;
    let start = initial_counter(b, init, counter).ok_or_else(|| {
        not_fixed(format!(
            "the initial value of state element {counter} is not a constant of a tuple"
        ))
    })?;
    let holds = |i: i64| match direction {
        ComparisonDirection::Lt => i < limit,
        ComparisonDirection::Le => i <= limit,
        ComparisonDirection::Gt => i > limit,
        ComparisonDirection::Ge => i >= limit,
        ComparisonDirection::Eq => i == limit,
        ComparisonDirection::Ne => i != limit,
    };
    let mut i = start;
    let mut trips = 0;
    while holds(i) {
        trips += 1;
        if trips > MAX_UNROLLED_ITERATIONS {
            return Err(not_fixed(format!(
                "it runs more than {MAX_UNROLLED_ITERATIONS} iterations, too many to unroll"
            )));
        }
        i += step;
    }
    Ok(trips)
}

/// `a < c` is `c > a`: the direction seen from the other operand.
fn mirrored(direction: ComparisonDirection) -> ComparisonDirection {
    match direction {
        ComparisonDirection::Lt => ComparisonDirection::Gt,
        ComparisonDirection::Le => ComparisonDirection::Ge,
        ComparisonDirection::Gt => ComparisonDirection::Lt,
        ComparisonDirection::Ge => ComparisonDirection::Le,
        other => other,
    }
}

/// The tuple index `k` when `inst` is `get-tuple-element(parameter, k)`.
fn state_element(inst: &Instruction, insts: &[Instruction]) -> Option<i64> {
    match inst.op {
        Op::GetTupleElement { index }
            if matches!(insts[inst.operands[0]].op, Op::Parameter { .. }) =>
        {
            Some(index)
        }
        _ => None,
    }
}

/// The value of an integer scalar constant.
fn constant_int(inst: &Instruction) -> Option<i64> {
    match &inst.op {
        Op::Constant(lit) => literal_int(lit),
        _ => None,
    }
}

fn literal_int(lit: &Literal) -> Option<i64> {
    let values = lit.to_f64_vec();
    (lit.shape().is_scalar() && lit.ty().is_integer()).then(|| values[0] as i64)
}

/// The constant the body adds to state element `k`.
fn counter_step(body: &Computation, k: i64) -> Option<i64> {
    let insts = body.instructions();
    let root = body.root();
    if !matches!(root.op, Op::Tuple) {
        return None;
    }
    let update = &insts[*root.operands.get(k as usize)?];
    if !matches!(update.op, Op::Binary(crate::hlo::BinaryOp::Add)) {
        return None;
    }
    let (x, y) = (&insts[update.operands[0]], &insts[update.operands[1]]);
    match (
        state_element(x, insts),
        constant_int(y),
        state_element(y, insts),
        constant_int(x),
    ) {
        (Some(i), Some(step), _, _) | (_, _, Some(i), Some(step)) if i == k => Some(step),
        _ => None,
    }
}

/// The constant that starts state element `k` when the loop's init is a `tuple` instruction.
fn initial_counter(b: &Builder, init: Value, k: i64) -> Option<i64> {
    if !matches!(b.instruction(init).op, Op::Tuple) {
        return None;
    }
    let element = *b.operands(init).get(k as usize)?;
    constant_int(b.instruction(element))
}

/// Records the instructions of `c` into `b` with its parameter replaced by `arg`; returns the
/// value of its root.
fn inline(b: &mut Builder, c: &Computation, arg: Value) -> Result<Value> {
    for callee in c.callees() {
        b.call(callee);
    }
    let mut values: Vec<Value> = Vec::with_capacity(c.instructions().len());
    for inst in c.instructions() {
        let v = match inst.op {
            Op::Parameter { .. } => arg,
            _ => {
                let operands: Vec<Value> = inst.operands.iter().map(|&o| values[o]).collect();
                b.emit(inst.op.clone(), &operands, inst.shape.clone())?
            }
        };
        values.push(v);
    }
    Ok(values[c.root_index()])
}
