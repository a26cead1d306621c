//! The training state as an ordered list of named arrays: the model's variables, the optimizer
//! slots, the EMA shadows, the step counter and the RNG key.
//!
//! The order is the parameter order of every train-step graph and the output order of its
//! result tuple, so state buffers flow from one step (and one stage's executable) to the next
//! without leaving the device. The names are the checkpoint's tensor names.

use crate::hlo::{ArrayShape, ElementType};
use crate::model::{Model, Param};

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
                name: format!("params/{}", p.name),
                shape: f32_shape(p),
                role: Role::Variable(p.clone()),
            })
            .collect();
        for p in params.iter().filter(|p| p.trainable()) {
            entries.push(StateEntry {
                name: format!("opt/ms/{}", p.name),
                shape: f32_shape(p),
                role: Role::MeanSquare(p.name.clone()),
            });
            entries.push(StateEntry {
                name: format!("opt/mom/{}", p.name),
                shape: f32_shape(p),
                role: Role::Momentum(p.name.clone()),
            });
        }
        for p in &params {
            entries.push(StateEntry {
                name: format!("ema/{}", p.name),
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

    /// Total bytes of the state.
    pub fn byte_size(&self) -> usize {
        self.entries.iter().map(|e| e.shape.byte_size()).sum()
    }
}
