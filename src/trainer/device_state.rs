//! The training state as device buffers, threaded through train-step executions.

use anyhow::Result;

use super::context::{Context, StepExecutable};
use crate::hlo::Literal;
use crate::runtime::{Arg, Buffer};
use crate::train::state::{Role, StateLayout};
use crate::train::step::port;

/// State buffers with their [`StateLayout`] names. A train step consumes (donates) them and
/// returns their successors, so the model never leaves the device between steps or stages.
pub struct DeviceState {
    names: Vec<String>,
    roles: Vec<Role>,
    buffers: Vec<Buffer>,
}

/// What one train-step execution reports (the first step's, for K steps per call).
#[derive(Clone, Copy, Debug)]
pub struct StepOutcome {
    pub loss: f32,
    pub correct: i32,
}

impl DeviceState {
    /// Uploads `literals`, one per layout entry in layout order (as checkpoints and
    /// [`super::init::initial_state`] give them).
    pub fn upload(
        ctx: &Context,
        layout: &StateLayout,
        literals: &[Literal],
    ) -> Result<DeviceState> {
        anyhow::ensure!(
            literals.len() == layout.len(),
            "{} state tensors for a layout of {}",
            literals.len(),
            layout.len()
        );
        Ok(DeviceState {
            names: layout.entries().iter().map(|e| e.name.clone()).collect(),
            roles: layout.entries().iter().map(|e| e.role.clone()).collect(),
            buffers: literals
                .iter()
                .map(|l| ctx.upload(l))
                .collect::<Result<_>>()?,
        })
    }

    /// Copies every state tensor to the host, with its name (for checkpoints).
    pub fn download(&self) -> Result<Vec<(String, Literal)>> {
        self.names
            .iter()
            .zip(&self.buffers)
            .map(|(name, b)| Ok((name.clone(), b.to_literal()?)))
            .collect()
    }

    /// Runs one train-step executable: the state is donated, the named `feeds` borrowed.
    pub fn step(&mut self, exe: &StepExecutable, feeds: &[(&str, Buffer)]) -> Result<StepOutcome> {
        let state = std::mem::take(&mut self.buffers);
        let args = self
            .names
            .iter()
            .map(String::as_str)
            .zip(state.into_iter().map(Arg::Donated))
            .chain(feeds.iter().map(|(name, b)| (*name, Arg::Borrowed(b))));
        let mut outputs = exe.run(args)?;
        self.buffers = outputs.take_all(self.names.iter().map(String::as_str))?;
        let first = |b: Buffer| -> Result<f64> {
            Ok(b.to_literal()?
                .to_f64_vec()
                .first()
                .copied()
                .unwrap_or(f64::NAN))
        };
        Ok(StepOutcome {
            loss: first(outputs.take(port::LOSS)?)? as f32,
            correct: first(outputs.take(port::CORRECT)?)? as i32,
        })
    }

    /// The EMA shadows of the model variables, by name (`ema/<param>`, the eval step's inputs).
    pub fn ema(&self) -> Vec<(&str, &Buffer)> {
        self.names
            .iter()
            .zip(&self.roles)
            .zip(&self.buffers)
            .filter(|((_, role), _)| matches!(role, Role::Ema(_)))
            .map(|((name, _), b)| (name.as_str(), b))
            .collect()
    }
}
