//! Graph hygiene on finished computations: common-subexpression elimination (CSE) followed by
//! dead-code removal.
//!
//! Builders emit freely (every `reduce_sum` makes its own `add` reducer, every rule its own zero
//! constant), and gradient rules may repeat what the forward pass already computed. CSE
//! hash-conses instructions with equal opcode, attributes, operands and shape, so each distinct
//! value is computed once, and merges structurally equal callees first so that reductions with
//! twin reducers merge too. Parameters and side-effecting ops are never merged. Operand order
//! is ignored for commutative ops. The first instruction of a merged group keeps its metadata,
//! which for a gradient graph is the forward op.

use std::collections::HashMap;

use super::builder::{Builder, Computation, Instruction, Value};
use super::error::Result;
use super::op::{ComputationId, Op};
use super::shape::Shape;

/// Sizes of a computation and of everything it calls, before and after a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassStats {
    /// Instructions of the computation itself.
    pub before: usize,
    pub after: usize,
    /// Instructions of the computation and all distinct computations it calls (what a module
    /// built from it holds).
    pub total_before: usize,
    pub total_after: usize,
}

impl PassStats {
    fn new(before: &Computation, after: &Computation) -> PassStats {
        PassStats {
            before: before.instructions().len(),
            after: after.instructions().len(),
            total_before: total_instructions(before),
            total_after: total_instructions(after),
        }
    }
}

/// Instructions of `c` and of every distinct computation it calls, transitively.
pub fn total_instructions(c: &Computation) -> usize {
    let mut seen = HashMap::new();
    fn visit(c: &Computation, seen: &mut HashMap<ComputationId, usize>) {
        if seen.insert(c.id(), c.instructions().len()).is_none() {
            c.callees().iter().for_each(|callee| visit(callee, seen));
        }
    }
    visit(c, &mut seen);
    seen.values().sum()
}

/// Merges equal instructions and equal callees, then drops the instructions that merging left
/// unused (a [`Builder::build`] already drops everything its root does not use, so a built
/// computation has no other dead code). Returns the new computation and its sizes.
pub fn eliminate_common_subexpressions(c: &Computation) -> Result<(Computation, PassStats)> {
    let out = rebuild(c)?;
    let stats = PassStats::new(c, &out);
    Ok((out, stats))
}

/// Re-records `c` into a fresh builder, hash-consing instructions; the builder's `build` drops
/// what the root does not use.
fn rebuild(c: &Computation) -> Result<Computation> {
    let callees = canonical_callees(c);
    let mut b = Builder::new(c.name());
    let mut values: Vec<Value> = Vec::with_capacity(c.instructions().len());
    let mut table: HashMap<Key, Vec<Value>> = HashMap::new();
    for inst in c.instructions() {
        let op = inst
            .op
            .with_callees(|id| callees.get(&id).map_or(id, Computation::id));
        for id in op.called_computations() {
            if let Some(callee) = callees.get(&id) {
                b.call(callee);
            }
        }
        b.set_op_type(Some(inst.metadata.op_type.clone()));
        b.push_scope(inst.metadata.op_name.clone());
        let operands: Vec<Value> = inst.operands.iter().map(|&o| values[o]).collect();
        let value = match &op {
            Op::Parameter { number, name } => {
                b.parameter(*number, inst.shape.clone(), name.clone())?
            }
            _ if op.has_side_effects() => b.emit(op, &operands, inst.shape.clone())?,
            _ => {
                let key = Key::new(&op, &operands, &inst.shape);
                let existing = table
                    .get(&key)
                    .and_then(|vs| vs.iter().copied().find(|&v| b.instruction(v).op == op));
                match existing {
                    Some(v) => v,
                    None => {
                        let v = b.emit(op, &operands, inst.shape.clone())?;
                        table.entry(key).or_default().push(v);
                        v
                    }
                }
            }
        };
        b.pop_scope();
        values.push(value);
    }
    b.build(values[c.root_index()])
}

/// The hashable part of an instruction's identity; ops with equal keys are compared in full.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    opcode: &'static str,
    operands: Vec<Value>,
    shape: Shape,
}

impl Key {
    fn new(op: &Op, operands: &[Value], shape: &Shape) -> Key {
        let mut operands = operands.to_vec();
        if is_commutative(op) {
            operands.sort_unstable();
        }
        Key {
            opcode: op.opcode(),
            operands,
            shape: shape.clone(),
        }
    }
}

fn is_commutative(op: &Op) -> bool {
    matches!(op, Op::Binary(b) if b.is_commutative())
}

/// Opcodes, operands and shapes of a computation's instructions: equal for equal computations.
type Outline = Vec<(&'static str, Vec<usize>, Shape)>;

/// Maps every direct callee of `c` to the first structurally equal one.
fn canonical_callees(c: &Computation) -> HashMap<ComputationId, Computation> {
    let mut representatives: HashMap<Outline, Vec<Computation>> = HashMap::new();
    let mut canonical = HashMap::new();
    for callee in c.callees() {
        let outline = callee
            .instructions()
            .iter()
            .map(|i| (i.op.opcode(), i.operands.clone(), i.shape.clone()))
            .collect();
        let group = representatives.entry(outline).or_default();
        let representative = match group.iter().find(|r| same_structure(r, callee)) {
            Some(r) => r.clone(),
            None => {
                group.push(callee.clone());
                callee.clone()
            }
        };
        canonical.insert(callee.id(), representative);
    }
    canonical
}

/// Equal instructions (metadata aside), root and parameters: the two compute the same function.
fn same_structure(a: &Computation, b: &Computation) -> bool {
    let same = |x: &Instruction, y: &Instruction| {
        x.op == y.op && x.operands == y.operands && x.shape == y.shape
    };
    a.root_index() == b.root_index()
        && a.parameter_indices() == b.parameter_indices()
        && a.instructions().len() == b.instructions().len()
        && a.instructions()
            .iter()
            .zip(b.instructions())
            .all(|(x, y)| same(x, y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlo::{BinaryOp, ElementType, Module};

    fn f32s(dims: &[i64]) -> Shape {
        Shape::array(ElementType::F32, dims)
    }

    #[test]
    fn merges_equal_instructions_commuted_operands_and_twin_reducers() {
        let mut b = Builder::new("f");
        let x = b.parameter(0, f32s(&[3]), "x").unwrap();
        let y = b.parameter(1, f32s(&[3]), "y").unwrap();
        let a1 = b.add(x, y).unwrap();
        let a2 = b.add(y, x).unwrap();
        // Each reduce_sum brings its own zero constant and its own `add` reducer.
        let s1 = b.reduce_sum(a1, &[0]).unwrap();
        let s2 = b.reduce_sum(a2, &[0]).unwrap();
        let d1 = b.sub(x, y).unwrap();
        let d2 = b.sub(y, x).unwrap();
        let t = b.tuple(&[s1, s2, d1, d2]).unwrap();
        let c = b.build(t).unwrap();
        let (out, stats) = eliminate_common_subexpressions(&c).unwrap();
        // 2 parameters, 2 adds, 2 zeros, 2 reduces, 2 subtracts, 1 tuple; reducers 3 each.
        assert_eq!(
            stats,
            PassStats {
                before: 11,
                after: 8,
                total_before: 17,
                total_after: 11
            }
        );
        assert_eq!(out.callees().len(), 1);
        let root = out.root();
        assert_eq!(root.operands[0], root.operands[1], "the two sums merged");
        assert_ne!(
            root.operands[2], root.operands[3],
            "subtract is not commutative"
        );
        assert_eq!(out.parameter_names(), ["x", "y"]);
    }

    #[test]
    fn never_merges_parameters_or_side_effecting_ops() {
        let mut b = Builder::new("f");
        let x = b.parameter(0, f32s(&[2]), "x").unwrap();
        let twin = b.parameter(1, f32s(&[2]), "x").unwrap();
        let add = Computation::binary_reducer(BinaryOp::Add, ElementType::F32).unwrap();
        let r1 = b.all_reduce(x, &[vec![0, 1]], &add).unwrap();
        let r2 = b.all_reduce(x, &[vec![0, 1]], &add).unwrap();
        let t = b.tuple(&[r1, r2, twin]).unwrap();
        let c = b.build(t).unwrap();
        let (out, stats) = eliminate_common_subexpressions(&c).unwrap();
        assert_eq!(stats.after, stats.before);
        assert_eq!(out.parameter_indices().len(), 2);
    }

    #[test]
    fn keeps_the_metadata_of_the_first_instance() {
        let mut b = Builder::new("f");
        let x = b.parameter(0, f32s(&[2]), "x").unwrap();
        b.set_op_type(Some("forward".into()));
        let e1 = b.scoped("layer", |b| b.exp(x)).unwrap();
        b.set_op_type(Some("grad/exp".into()));
        let e2 = b.exp(x).unwrap();
        let m = b.mul(e1, e2).unwrap();
        let c = b.build(m).unwrap();
        let (out, _) = eliminate_common_subexpressions(&c).unwrap();
        let exp = &out.instructions()[1];
        assert_eq!(
            (exp.metadata.op_type.as_str(), exp.metadata.op_name.as_str()),
            ("forward", "layer")
        );
        let text = Module::new("m", out).to_text();
        assert!(
            text.contains("multiply(f32[2]{0} %exponential.2, f32[2]{0} %exponential.2)"),
            "{text}"
        );
    }
}
