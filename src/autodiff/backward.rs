//! The reverse sweep: from seeded outputs back to the requested values, one rule per instruction.

use std::collections::HashSet;

use super::cotangent::Cotangent;
use super::rules;
use crate::hlo::error::{HloError, Result};
use crate::hlo::{Builder, CustomGradient, Shape, Value};

/// Propagates `seeds` (output, cotangent) backwards through the instructions recorded so far and
/// returns the accumulated cotangent of each `wrt` value (`None` where no path leads to it).
///
/// Instructions are visited in reverse definition order, which is a reverse topological order,
/// so every user of a value has contributed before the value's own rule runs. Only instructions
/// that depend on a `wrt` value get a rule applied, and a rule is told which of its operands
/// need a cotangent, so no gradient is computed for data inputs or constants.
pub(crate) fn backward(
    b: &mut Builder,
    seeds: Vec<(Value, Cotangent)>,
    wrt: &[Value],
) -> Result<Vec<Option<Cotangent>>> {
    let values: Vec<Value> = b.values().collect();
    let depends = dependence(b, &values, wrt);
    let mut cts: Vec<Option<Cotangent>> = vec![None; values.len()];
    for (v, ct) in seeds {
        add_into(b, &mut cts, v, ct)?;
    }
    for &node in values.iter().rev() {
        // A requested value may itself be stopped or non-differentiable: it has a cotangent, but
        // nothing flows on into its operands.
        let inst = b.instruction(node);
        if !depends[node.index()]
            || b.is_gradient_stop(node)
            || !rules::propagates_gradient(&inst.op)
        {
            continue;
        }
        let Some(ct) = cts[node.index()].clone() else {
            continue;
        };
        if let Some(custom) = b.custom_gradient(node).cloned() {
            apply_custom(b, &mut cts, &depends, node, &custom, ct)?;
            continue;
        }
        let operands = b.operands(node);
        let needs: Vec<bool> = operands.iter().map(|o| depends[o.index()]).collect();
        if !needs.contains(&true) {
            continue;
        }
        let (scope, op_type) = (
            inst.metadata.op_name.clone(),
            format!("grad/{}", inst.op.opcode()),
        );
        let contributions = with_provenance(b, &scope, op_type, |b| {
            rules::apply(b, node, &operands, &needs, ct)
        })?;
        for (operand, contribution) in operands.into_iter().zip(contributions) {
            if let Some(c) = contribution {
                add_into(b, &mut cts, operand, c)?;
            }
        }
    }
    Ok(wrt.iter().map(|w| cts[w.index()].clone()).collect())
}

/// Applies the rule attached to `node` to its cotangent `ct`, adding the results into the
/// cotangents of the rule's inputs; the instructions between those and `node` get nothing from
/// `node` (they still get whatever their other users give them).
fn apply_custom(
    b: &mut Builder,
    cts: &mut [Option<Cotangent>],
    depends: &[bool],
    node: Value,
    custom: &CustomGradient,
    ct: Cotangent,
) -> Result<()> {
    let needs: Vec<bool> = custom.inputs.iter().map(|i| depends[i.index()]).collect();
    if !needs.contains(&true) {
        return Ok(());
    }
    let op = format!("grad/{}", custom.name);
    let ct = ct.array(&op)?;
    let scope = b.instruction(node).metadata.op_name.clone();
    let contributions = with_provenance(b, &scope, op.clone(), |b| (custom.rule)(b, ct, &needs))?;
    if contributions.len() != custom.inputs.len() {
        return Err(HloError::new(
            &op,
            &[],
            format!(
                "the rule returned {} cotangents for {} inputs",
                contributions.len(),
                custom.inputs.len()
            ),
        ));
    }
    for ((&input, contribution), need) in custom.inputs.iter().zip(contributions).zip(needs) {
        let Some(c) = contribution.filter(|_| need) else {
            continue;
        };
        let (input_shape, c_shape) = (b.shape(input), b.shape(c));
        if !input_shape.compatible(c_shape) {
            return Err(HloError::new(
                &op,
                &[input_shape, c_shape],
                "a cotangent from the rule does not have its input's shape",
            ));
        }
        add_into(b, cts, input, Cotangent::Array(c))?;
    }
    Ok(())
}

/// `depends[i]`: instruction `i` is a requested value or is computed differentiably from one.
/// Stopped values, non-float values and ops without a derivative (see
/// [`rules::propagates_gradient`]) cut the dependence.
fn dependence(b: &Builder, values: &[Value], wrt: &[Value]) -> Vec<bool> {
    let requested: HashSet<Value> = wrt.iter().copied().collect();
    let mut depends = vec![false; values.len()];
    for &v in values {
        let inst = b.instruction(v);
        depends[v.index()] = requested.contains(&v)
            || (!b.is_gradient_stop(v)
                && carries_float(&inst.shape)
                && rules::propagates_gradient(&inst.op)
                && inst.operands.iter().any(|&o| depends[o]));
    }
    depends
}

/// Whether a shape holds any floating-point array (only those carry gradients).
pub(crate) fn carries_float(shape: &Shape) -> bool {
    shape.leaves().iter().any(|a| a.ty().is_float())
}

/// Adds a contribution to a value's cotangent; the sum is labelled as accumulation for that value.
fn add_into(b: &mut Builder, cts: &mut [Option<Cotangent>], v: Value, ct: Cotangent) -> Result<()> {
    let sum = match cts[v.index()].take() {
        None => ct,
        Some(prev) => {
            let scope = b.instruction(v).metadata.op_name.clone();
            with_provenance(b, &scope, "grad/accumulate".into(), |b| {
                prev.accumulate(b, ct)
            })?
        }
    };
    cts[v.index()] = Some(sum);
    Ok(())
}

/// Runs `f` with the metadata of the ops it emits set to `op_type` under the forward op's scope,
/// so the HLO text says which layer and which rule produced each gradient op.
pub(crate) fn with_provenance<T>(
    b: &mut Builder,
    scope: &str,
    op_type: String,
    f: impl FnOnce(&mut Builder) -> Result<T>,
) -> Result<T> {
    let previous = b.set_op_type(Some(op_type));
    if !scope.is_empty() {
        b.push_scope(scope);
    }
    let out = f(b);
    if !scope.is_empty() {
        b.pop_scope();
    }
    b.set_op_type(previous);
    out
}
