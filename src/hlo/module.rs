//! A module: the entry computation, every computation it calls (callee first) and the
//! input/output aliasing that lets a train step update its state in place.

use std::collections::{HashMap, HashSet};

use super::builder::Computation;
use super::error::{HloError, Result};
use super::op::{ComputationId, Op};
use super::shape::Shape;

/// Output `output_index` (a tuple index path, empty for a non-tuple result) reuses the buffer of
/// parameter `parameter` at `parameter_index`: the input is donated to the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputOutputAlias {
    pub output_index: Vec<i64>,
    pub parameter: i64,
    pub parameter_index: Vec<i64>,
}

#[derive(Clone, Debug)]
pub struct Module {
    name: String,
    computations: Vec<Computation>,
    aliases: Vec<InputOutputAlias>,
    /// Unique printable names, by computation id and by (computation id, instruction index).
    computation_names: HashMap<ComputationId, String>,
    instruction_names: HashMap<(ComputationId, usize), String>,
}

impl Module {
    /// Collects `entry` and every computation reachable from it, callees before callers.
    pub fn new(name: impl Into<String>, entry: Computation) -> Module {
        let mut computations = Vec::new();
        let mut seen = HashSet::new();
        fn visit(c: &Computation, seen: &mut HashSet<ComputationId>, out: &mut Vec<Computation>) {
            if !seen.insert(c.id()) {
                return;
            }
            for callee in c.callees() {
                visit(callee, seen, out);
            }
            out.push(c.clone());
        }
        visit(&entry, &mut seen, &mut computations);
        let mut module = Module {
            name: sanitize(&name.into()),
            computations,
            aliases: Vec::new(),
            computation_names: HashMap::new(),
            instruction_names: HashMap::new(),
        };
        module.assign_names();
        module
    }

    /// Gives every computation and instruction a unique, stable name: computations keep their
    /// builder name (suffixed on collisions); instructions are `<opcode or parameter name>.<n>`
    /// numbered through the module in order.
    fn assign_names(&mut self) {
        let mut used = HashSet::new();
        let mut counter = 0usize;
        for c in &self.computations {
            let base = sanitize(c.name());
            let mut name = base.clone();
            let mut k = 1;
            while !used.insert(name.clone()) {
                name = format!("{base}.{k}");
                k += 1;
            }
            self.computation_names.insert(c.id(), name);
            for (i, inst) in c.instructions().iter().enumerate() {
                counter += 1;
                let base = match &inst.op {
                    Op::Parameter { name, .. } => sanitize(name),
                    op => op.opcode().to_string(),
                };
                self.instruction_names
                    .insert((c.id(), i), format!("{base}.{counter}"));
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The entry computation (the last one: callers follow their callees).
    pub fn entry(&self) -> &Computation {
        self.computations
            .last()
            .expect("a module always has its entry computation")
    }

    /// All computations, callees first, entry last.
    pub fn computations(&self) -> &[Computation] {
        &self.computations
    }

    pub fn aliases(&self) -> &[InputOutputAlias] {
        &self.aliases
    }

    pub fn computation_name(&self, id: ComputationId) -> &str {
        &self.computation_names[&id]
    }

    pub fn instruction_name(&self, computation: ComputationId, index: usize) -> &str {
        &self.instruction_names[&(computation, index)]
    }

    /// Total instruction count over all computations.
    pub fn instruction_count(&self) -> usize {
        self.computations
            .iter()
            .map(|c| c.instructions().len())
            .sum()
    }

    /// Declares that output `output_index` reuses (donates) the buffer of parameter `parameter`.
    /// Shapes must be equal; each parameter and each output may be aliased once.
    pub fn alias(
        &mut self,
        output_index: &[i64],
        parameter: i64,
        parameter_index: &[i64],
    ) -> Result<()> {
        let entry = self.entry();
        let err = |msg: String| Err(HloError::new("input_output_alias", &[], msg));
        let params = entry.parameter_shapes();
        let Some(param_shape) = usize::try_from(parameter).ok().and_then(|p| params.get(p)) else {
            return err(format!(
                "parameter {parameter} does not exist (the entry has {})",
                params.len()
            ));
        };
        let (Some(out), Some(inp)) = (
            subshape(entry.result_shape(), output_index),
            subshape(param_shape, parameter_index),
        ) else {
            return err(format!("output index {output_index:?} or parameter index {parameter_index:?} does not exist"));
        };
        if out != inp {
            return err(format!("output {output_index:?} has shape {out} but parameter {parameter} {parameter_index:?} has {inp}"));
        }
        if self.aliases.iter().any(|a| {
            a.output_index == output_index
                || (a.parameter == parameter && a.parameter_index == parameter_index)
        }) {
            return err(format!(
                "output {output_index:?} or parameter {parameter} is already aliased"
            ));
        }
        self.aliases.push(InputOutputAlias {
            output_index: output_index.to_vec(),
            parameter,
            parameter_index: parameter_index.to_vec(),
        });
        Ok(())
    }
}

/// The subshape at a tuple index path.
pub fn subshape<'a>(shape: &'a Shape, index: &[i64]) -> Option<&'a Shape> {
    index.iter().try_fold(shape, |s, &i| {
        s.tuple_elements()?.get(usize::try_from(i).ok()?)
    })
}

/// HLO names allow letters, digits, `_`, `-` and `.`; anything else becomes `_`.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{s}")
    } else {
        s
    }
}
