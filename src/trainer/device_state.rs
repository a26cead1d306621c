//! The training state as device buffers, threaded through train-step executions.

use anyhow::{bail, Context, Result};

use crate::hlo::Literal;
use crate::runtime::{Arg, Buffer, Client, Device, LoadedExecutable};
use crate::train::state::{Role, StateLayout};

/// State buffers in [`StateLayout`] order. A train step consumes (donates) them and returns
/// their successors, so the model never leaves the device between steps or between stages.
pub struct DeviceState {
    buffers: Vec<Buffer>,
}

/// What one train step reports.
#[derive(Clone, Copy, Debug)]
pub struct StepOutcome {
    pub loss: f32,
    pub correct: i32,
}

impl DeviceState {
    pub fn upload(client: &Client, device: &Device, literals: &[Literal]) -> Result<DeviceState> {
        let buffers = literals
            .iter()
            .map(|l| client.buffer_from_literal(l, device))
            .collect::<Result<_, _>>()?;
        Ok(DeviceState { buffers })
    }

    /// Copies every state tensor to the host (for checkpoints).
    pub fn download(&self) -> Result<Vec<Literal>> {
        self.buffers
            .iter()
            .map(|b| b.to_literal().map_err(Into::into))
            .collect()
    }

    /// Runs one train-step executable: state buffers are donated, `inputs` borrowed.
    pub fn step(&mut self, exe: &LoadedExecutable, inputs: &[Buffer]) -> Result<StepOutcome> {
        let n = self.buffers.len();
        let args: Vec<Arg> = std::mem::take(&mut self.buffers)
            .into_iter()
            .map(Arg::Donated)
            .chain(inputs.iter().map(Arg::Borrowed))
            .collect();
        let mut outputs = exe.execute(args).context("executing the train step")?;
        if outputs.len() != n + 2 {
            bail!("the train step returned {} outputs, expected {} state tensors + loss + correct count", outputs.len(), n);
        }
        let correct = outputs.pop().expect("checked length").to_literal()?;
        let loss = outputs.pop().expect("checked length").to_literal()?;
        self.buffers = outputs;
        let scalar = |l: &Literal| l.to_f64_vec().first().copied().unwrap_or(f64::NAN);
        Ok(StepOutcome {
            loss: scalar(&loss) as f32,
            correct: scalar(&correct) as i32,
        })
    }

    /// The EMA shadows of the model variables, in [`crate::model::Model::params`] order.
    pub fn ema_buffers<'a>(&'a self, layout: &StateLayout) -> Vec<&'a Buffer> {
        layout
            .entries()
            .iter()
            .zip(&self.buffers)
            .filter(|(e, _)| matches!(e.role, Role::Ema(_)))
            .map(|(_, b)| b)
            .collect()
    }

    /// The model variables (raw, not averaged), in [`crate::model::Model::params`] order.
    pub fn variable_buffers<'a>(&'a self, layout: &StateLayout) -> Vec<&'a Buffer> {
        layout
            .entries()
            .iter()
            .zip(&self.buffers)
            .filter(|(e, _)| matches!(e.role, Role::Variable(_)))
            .map(|(_, b)| b)
            .collect()
    }
}
