//! The training state as device buffers, one copy per replica, threaded through train-step
//! executions.

use anyhow::{ensure, Result};

use super::context::{Context, StepExecutable};
use crate::hlo::Literal;
use crate::runtime::{Arg, Buffer};
use crate::step::graphs::port;
use crate::step::state::{Role, StateLayout};

/// State buffers with their [`StateLayout`] names, one copy on each local device of a
/// data-parallel run (every device on one host; this host's on a multi-host slice). A train step consumes (donates) them and returns their successors, so the model never
/// leaves the devices between steps or stages. The copies stay identical: every replica applies
/// the same averaged update.
pub struct DeviceState {
    names: Vec<String>,
    roles: Vec<Role>,
    /// `replicas[r][i]`: entry `i` on device `r`.
    replicas: Vec<Vec<Buffer>>,
}

/// What one optimizer step reports, over all replicas.
#[derive(Clone, Copy, Debug)]
pub struct StepOutcome {
    pub loss: f32,
    pub correct: i32,
}

impl DeviceState {
    /// Uploads `literals`, one per layout entry in layout order (as checkpoints and the
    /// trainer's initial state give them), to every device of the context.
    pub fn upload(
        ctx: &Context,
        layout: &StateLayout,
        literals: &[Literal],
    ) -> Result<DeviceState> {
        ensure!(
            literals.len() == layout.len(),
            "{} state tensors for a layout of {}",
            literals.len(),
            layout.len()
        );
        let replicas = (0..ctx.local_devices())
            .map(|r| literals.iter().map(|l| ctx.upload_to(r, l)).collect())
            .collect::<Result<_>>()?;
        Ok(DeviceState {
            names: layout.entries().iter().map(|e| e.name.clone()).collect(),
            roles: layout.entries().iter().map(|e| e.role.clone()).collect(),
            replicas,
        })
    }

    /// How many copies this process holds.
    pub fn replicas(&self) -> usize {
        self.replicas.len()
    }

    /// Copies replica `r`'s state tensors to the host, with their names.
    pub fn download_replica(&self, r: usize) -> Result<Vec<(String, Literal)>> {
        self.names
            .iter()
            .zip(&self.replicas[r])
            .map(|(name, b)| Ok((name.clone(), b.to_literal()?)))
            .collect()
    }

    /// Copies the state to the host (replica 0's: all are equal), for checkpoints.
    pub fn download(&self) -> Result<Vec<(String, Literal)>> {
        self.download_replica(0)
    }

    /// Runs one train-step executable on every local replica: the state is donated, local
    /// replica `r`'s named `feeds[r]` borrowed. Returns the outcome of each of the call's step
    /// slots (K of them for K steps per call; slots the call skipped report zeros).
    pub fn step(
        &mut self,
        exe: &StepExecutable,
        feeds: &[Vec<(&str, Buffer)>],
    ) -> Result<Vec<StepOutcome>> {
        ensure!(
            feeds.len() == self.replicas.len(),
            "{} feed lists for {} replicas",
            feeds.len(),
            self.replicas.len()
        );
        let names = &self.names;
        let args: Vec<Vec<(&str, Arg)>> = std::mem::take(&mut self.replicas)
            .into_iter()
            .zip(feeds)
            .map(|(state, feed)| {
                names
                    .iter()
                    .map(String::as_str)
                    .zip(state.into_iter().map(Arg::Donated))
                    .chain(feed.iter().map(|(name, b)| (*name, Arg::Borrowed(b))))
                    .collect()
            })
            .collect();
        let mut outputs = exe.run_replicated(args)?;
        self.replicas = outputs
            .iter_mut()
            .map(|o| o.take_all(names.iter().map(String::as_str)))
            .collect::<Result<_, _>>()?;
        // Loss and correct count are already reduced over the replicas: replica 0's will do.
        let replica0 = &mut outputs[0];
        let losses = replica0.take(port::LOSS)?.to_literal()?.to_f64_vec();
        let corrects = replica0.take(port::CORRECT)?.to_literal()?.to_f64_vec();
        Ok(losses
            .into_iter()
            .zip(corrects)
            .map(|(loss, correct)| StepOutcome {
                loss: loss as f32,
                correct: correct as i32,
            })
            .collect())
    }

    /// The EMA shadows of the model variables on the first device, by name (`ema/<param>`, the
    /// eval step's inputs).
    pub fn ema(&self) -> Vec<(&str, &Buffer)> {
        self.names
            .iter()
            .zip(&self.roles)
            .zip(&self.replicas[0])
            .filter(|((_, role), _)| matches!(role, Role::Ema(_)))
            .map(|((name, _), b)| (name.as_str(), b))
            .collect()
    }
}
