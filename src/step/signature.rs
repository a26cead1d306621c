//! Named step signatures: the parameters and results of a step graph by name, built together
//! with the module (as JAX's flattened in_tree/out_tree). Everything that uploads arguments or
//! unpacks results goes through a [`Signature`], so the positions of a graph's inputs and outputs
//! are written in exactly one place: where the graph is built.

use std::collections::HashMap;
use std::fmt;

use crate::hlo::{ArrayShape, Builder, HloError, Module, Value};

/// One named parameter or result of a step graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Port {
    pub name: String,
    pub shape: ArrayShape,
}

impl Port {
    pub fn new(name: impl Into<String>, shape: ArrayShape) -> Port {
        Port {
            name: name.into(),
            shape,
        }
    }
}

/// A mismatch between named values and a signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureError {
    pub graph: String,
    pub problem: String,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.graph, self.problem)
    }
}

impl std::error::Error for SignatureError {}

/// The ordered, named parameters and results of one step graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Signature {
    graph: String,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
    input_index: HashMap<String, usize>,
    output_index: HashMap<String, usize>,
}

impl Signature {
    /// A signature of `graph` (its name, for errors). Port names must be unique per side.
    pub fn new(graph: impl Into<String>, inputs: Vec<Port>, outputs: Vec<Port>) -> Signature {
        let index = |ports: &[Port]| {
            ports
                .iter()
                .enumerate()
                .map(|(i, p)| (p.name.clone(), i))
                .collect()
        };
        Signature {
            graph: graph.into(),
            input_index: index(&inputs),
            output_index: index(&outputs),
            inputs,
            outputs,
        }
    }

    /// The graph's name (its module's).
    pub fn graph(&self) -> &str {
        &self.graph
    }

    pub fn inputs(&self) -> &[Port] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[Port] {
        &self.outputs
    }

    fn error(&self, problem: String) -> SignatureError {
        SignatureError {
            graph: self.graph.clone(),
            problem,
        }
    }

    /// The parameter number of the input called `name` (for the graph builder).
    pub fn input_position(&self, name: &str) -> Result<usize, SignatureError> {
        self.input_index
            .get(name)
            .copied()
            .ok_or_else(|| self.error(format!("has no input `{name}`")))
    }

    /// The result position of the output called `name` (for the graph builder).
    pub fn output_position(&self, name: &str) -> Result<usize, SignatureError> {
        self.output_index
            .get(name)
            .copied()
            .ok_or_else(|| self.error(format!("has no output `{name}`")))
    }

    /// Declares one builder parameter per input, in order; returns them by name.
    pub fn declare_parameters(&self, b: &mut Builder) -> Result<HashMap<String, Value>, HloError> {
        self.inputs
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Ok((
                    p.name.clone(),
                    b.parameter(i as i64, p.shape.clone(), &p.name)?,
                ))
            })
            .collect()
    }

    /// The root tuple of a graph with this signature: the named `results` in output order.
    pub fn result_tuple(
        &self,
        b: &mut Builder,
        results: &HashMap<&str, Value>,
    ) -> Result<Value, HloError> {
        let outputs = self
            .outputs
            .iter()
            .map(|p| {
                results.get(p.name.as_str()).copied().ok_or_else(|| {
                    HloError::new(
                        &self.graph,
                        &[],
                        format!("no result for output `{}`", p.name),
                    )
                })
            })
            .collect::<Result<Vec<Value>, HloError>>()?;
        b.tuple(&outputs)
    }

    /// Puts named arguments into parameter order. Every parameter must be given exactly once
    /// and nothing else; the error names what is missing, unknown or repeated.
    pub fn arrange<T>(
        &self,
        named: impl IntoIterator<Item = (impl AsRef<str>, T)>,
    ) -> Result<Vec<T>, SignatureError> {
        let mut slots: Vec<Option<T>> = self.inputs.iter().map(|_| None).collect();
        for (name, value) in named {
            let name = name.as_ref();
            let &i = self
                .input_index
                .get(name)
                .ok_or_else(|| self.error(format!("has no input `{name}`")))?;
            if slots[i].replace(value).is_some() {
                return Err(self.error(format!("input `{name}` was given twice")));
            }
        }
        let missing: Vec<&str> = self
            .inputs
            .iter()
            .zip(&slots)
            .filter(|(_, slot)| slot.is_none())
            .map(|(p, _)| p.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(self.error(format!("missing inputs {}", list(&missing))));
        }
        Ok(slots.into_iter().flatten().collect())
    }

    /// Names a graph's results, which come back in output order.
    pub fn name_outputs<T>(&self, values: Vec<T>) -> Result<Outputs<'_, T>, SignatureError> {
        if values.len() != self.outputs.len() {
            return Err(self.error(format!(
                "returned {} results, its signature has {}",
                values.len(),
                self.outputs.len()
            )));
        }
        Ok(Outputs {
            signature: self,
            values: values.into_iter().map(Some).collect(),
        })
    }
}

/// A graph's results by name; each is taken out once.
#[derive(Debug)]
pub struct Outputs<'s, T> {
    signature: &'s Signature,
    values: Vec<Option<T>>,
}

impl<T> Outputs<'_, T> {
    /// Takes the result called `name`.
    pub fn take(&mut self, name: &str) -> Result<T, SignatureError> {
        self.signature
            .output_index
            .get(name)
            .and_then(|&i| self.values[i].take())
            .ok_or_else(|| self.signature.error(format!("has no result `{name}` left")))
    }

    /// Takes every result whose name is in `names`, in the order of `names`.
    pub fn take_all<'n>(
        &mut self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Result<Vec<T>, SignatureError> {
        names.into_iter().map(|n| self.take(n)).collect()
    }
}

/// A step graph and its signature, built together.
#[derive(Clone, Debug)]
pub struct StepGraph {
    pub module: Module,
    /// The inputs and results of one replica.
    pub signature: Signature,
    /// Replicas the graph runs as (one per device); it must be compiled for as many.
    pub replicas: usize,
}

fn list(names: &[&str]) -> String {
    const SHOWN: usize = 5;
    let mut text: Vec<String> = names.iter().take(SHOWN).map(|n| format!("`{n}`")).collect();
    if names.len() > SHOWN {
        text.push(format!("and {} more", names.len() - SHOWN));
    }
    text.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlo::ElementType;

    fn signature() -> Signature {
        let scalar = ArrayShape::scalar(ElementType::F32);
        Signature::new(
            "step",
            vec![
                Port::new("w", scalar.clone()),
                Port::new("x", scalar.clone()),
                Port::new("lr", scalar.clone()),
            ],
            vec![Port::new("w", scalar.clone()), Port::new("loss", scalar)],
        )
    }

    #[test]
    fn named_arguments_are_put_in_parameter_order() {
        let s = signature();
        assert_eq!(
            s.arrange([("lr", 3), ("w", 1), ("x", 2)]).unwrap(),
            [1, 2, 3]
        );
        assert_eq!(s.input_position("x").unwrap(), 1);
        assert_eq!(s.output_position("loss").unwrap(), 1);
    }

    #[test]
    fn missing_unknown_and_repeated_arguments_are_named() {
        let s = signature();
        let err = |named: Vec<(&str, i32)>| s.arrange(named).unwrap_err().to_string();
        assert_eq!(err(vec![("w", 1)]), "step: missing inputs `x`, `lr`");
        assert_eq!(
            err(vec![("w", 1), ("x", 2), ("lr", 3), ("momentum", 4)]),
            "step: has no input `momentum`"
        );
        assert_eq!(
            err(vec![("w", 1), ("w", 1)]),
            "step: input `w` was given twice"
        );
    }

    #[test]
    fn results_are_taken_by_name_once() {
        let s = signature();
        let mut out = s.name_outputs(vec!["new w", "0.5"]).unwrap();
        assert_eq!(out.take("loss").unwrap(), "0.5");
        assert_eq!(
            out.take("loss").unwrap_err().to_string(),
            "step: has no result `loss` left"
        );
        assert_eq!(out.take_all(["w"]).unwrap(), ["new w"]);
        assert_eq!(
            s.name_outputs(vec![1]).unwrap_err().to_string(),
            "step: returned 1 results, its signature has 2"
        );
    }
}
