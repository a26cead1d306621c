//! The training state as an ordered list of named arrays: the model's variables, the optimizer
//! slots, the EMA shadows, the step counter and the RNG key.
//!
//! The order is the parameter order of every train-step graph and the output order of its
//! result tuple, so state buffers flow from one step (and one stage's executable) to the next
//! without leaving the device. The names are the checkpoint's tensor names: a variable's
//! entries are named by [`Namespace::key`], so checkpoints, pretrained weights, prediction and
//! the step graphs agree on them.

use crate::hlo::{ArrayShape, ElementType};
use crate::model::{Model, Param};

/// The namespaces of the per-variable state entries. A variable's entry in a namespace is named
/// `<prefix><variable name>` (`params/stem/conv/kernel`, `ema/stem/conv/kernel`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namespace {
    /// The variables themselves.
    Params,
    /// RMSProp mean-square slots.
    MeanSquare,
    /// RMSProp momentum slots.
    Momentum,
    /// EMA shadows.
    Ema,
}

impl Namespace {
    fn prefix(self) -> &'static str {
        match self {
            Namespace::Params => "params/",
            Namespace::MeanSquare => "opt/ms/",
            Namespace::Momentum => "opt/mom/",
            Namespace::Ema => "ema/",
        }
    }

    /// The state name of `variable`'s entry in this namespace.
    pub fn key(self, variable: &str) -> String {
        format!("{}{variable}", self.prefix())
    }

    /// The variable a state name belongs to, if the name is in this namespace.
    pub fn variable(self, name: &str) -> Option<&str> {
        name.strip_prefix(self.prefix())
    }
}

/// What one state entry holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Role {
    /// A model variable (trainable, or a BN moving statistic).
    Variable(Param),
    /// RMSProp mean-square slot of the named trainable variable.
    MeanSquare(String),
    /// RMSProp momentum slot of the named trainable variable.
    Momentum(String),
    /// EMA shadow of the named variable (trainable ones and BN statistics).
    Ema(String),
    /// The global step (s64 scalar), incremented by every train step.
    Step,
    /// The `u64[2]` key of the in-graph random number generator.
    RngKey,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StateEntry {
    pub name: String,
    pub shape: ArrayShape,
    pub role: Role,
}

/// The ordered state of a training run for one model.
#[derive(Clone, Debug, PartialEq)]
pub struct StateLayout {
    entries: Vec<StateEntry>,
}

impl StateLayout {
    pub fn new(model: &Model) -> StateLayout {
        let params = model.params();
        let f32_shape = |p: &Param| {
            ArrayShape::new(
                ElementType::F32,
                &p.shape.iter().map(|&d| d as i64).collect::<Vec<_>>(),
            )
        };
        let mut entries: Vec<StateEntry> = params
            .iter()
            .map(|p| StateEntry {
                name: Namespace::Params.key(&p.name),
                shape: f32_shape(p),
                role: Role::Variable(p.clone()),
            })
            .collect();
        for p in params.iter().filter(|p| p.trainable()) {
            entries.push(StateEntry {
                name: Namespace::MeanSquare.key(&p.name),
                shape: f32_shape(p),
                role: Role::MeanSquare(p.name.clone()),
            });
            entries.push(StateEntry {
                name: Namespace::Momentum.key(&p.name),
                shape: f32_shape(p),
                role: Role::Momentum(p.name.clone()),
            });
        }
        for p in &params {
            entries.push(StateEntry {
                name: Namespace::Ema.key(&p.name),
                shape: f32_shape(p),
                role: Role::Ema(p.name.clone()),
            });
        }
        entries.push(StateEntry {
            name: "step".into(),
            shape: ArrayShape::scalar(ElementType::S64),
            role: Role::Step,
        });
        entries.push(StateEntry {
            name: "rng".into(),
            shape: ArrayShape::new(ElementType::U64, &[2]),
            role: Role::RngKey,
        });
        StateLayout { entries }
    }

    pub fn entries(&self) -> &[StateEntry] {
        &self.entries
    }

    /// `values` (one per entry, in layout order) paired with their entries' names, as checkpoints
    /// store them.
    pub fn named<T>(&self, values: impl IntoIterator<Item = T>) -> Vec<(String, T)> {
        self.entries
            .iter()
            .map(|e| e.name.clone())
            .zip(values)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Position of the entry with this name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.name == name)
    }

    /// Position of `variable`'s entry in `namespace`.
    pub fn index_in(&self, namespace: Namespace, variable: &str) -> Option<usize> {
        self.index_of(&namespace.key(variable))
    }

    /// Total bytes of the state.
    pub fn byte_size(&self) -> usize {
        self.entries.iter().map(|e| e.shape.byte_size()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::load_spec;

    /// The names are the checkpoints' tensor names: changing them breaks every checkpoint.
    #[test]
    fn entries_are_named_as_checkpoints_name_them() {
        let layout = StateLayout::new(&Model::new(load_spec("tiny").unwrap()).unwrap());
        let variable = match &layout.entries()[0].role {
            Role::Variable(p) => p.name.clone(),
            role => panic!("the first entry is {role:?}"),
        };
        for (namespace, name) in [
            (Namespace::Params, format!("params/{variable}")),
            (Namespace::MeanSquare, format!("opt/ms/{variable}")),
            (Namespace::Momentum, format!("opt/mom/{variable}")),
            (Namespace::Ema, format!("ema/{variable}")),
        ] {
            assert_eq!(namespace.key(&variable), name);
            assert_eq!(namespace.variable(&name), Some(variable.as_str()));
            let index = layout.index_in(namespace, &variable).unwrap();
            assert_eq!(layout.entries()[index].name, name);
        }
        assert_eq!(Namespace::Ema.variable(&format!("params/{variable}")), None);
    }
}
