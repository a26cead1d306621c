//! Timing a train step on synthetic inputs: what `effnetv2 bench` prints and what the
//! architecture search scores each candidate's step time with. The inputs are fixed patterns,
//! not data, so the time is the step's alone (no decoding or augmentation).

use std::time::Instant;

use anyhow::{ensure, Result};

use super::context::Context;
use super::device_state::DeviceState;
use super::executables::CompileEvent;
use super::init::initial_state;
use crate::hlo::{ArrayShape, ElementType, Literal};
use crate::model::Model;
use crate::train::signature::Signature;
use crate::train::state::StateLayout;
use crate::train::step::{port, train_step, StepConfig};

/// A timed train step.
#[derive(Clone, Debug)]
pub struct StepTiming {
    pub compile: CompileEvent,
    /// Wall-clock seconds per optimizer step, after one warm-up call.
    pub seconds_per_step: f64,
    /// Seconds per optimizer step of the fastest call: other processes on the machine can only
    /// slow a call down, so this is the figure that load disturbs least.
    pub fastest_seconds_per_step: f64,
    /// Examples per second over every device.
    pub examples_per_second: f64,
}

/// Compiles the train step `cfg` of `model` on `ctx` (`cfg.replicas` devices) and times at
/// least `steps` optimizer steps (whole calls of `cfg.steps_per_call`).
pub fn time_train_step(
    ctx: &Context,
    model: &Model,
    cfg: &StepConfig,
    steps: i64,
) -> Result<StepTiming> {
    ensure!(steps >= 1, "{steps} timed steps: at least one is needed");
    let layout = StateLayout::new(model);
    let graph = train_step(model, cfg)?;
    let (exe, compile) = ctx.compile(&graph)?;
    let feeds = (0..cfg.replicas as usize)
        .map(|r| ctx.upload_named_to(r, synthetic_feeds(&graph.signature, &layout)?))
        .collect::<Result<Vec<_>>>()?;
    let mut state = DeviceState::upload(ctx, &layout, &initial_state(&layout, 0))?;
    let k = cfg.steps_per_call;
    let calls = (steps + k - 1) / k;
    state.step(&exe, &feeds)?; // warm-up
    let mut seconds = 0.0;
    let mut fastest = f64::INFINITY;
    for _ in 0..calls {
        let started = Instant::now();
        state.step(&exe, &feeds)?;
        let call = started.elapsed().as_secs_f64();
        seconds += call;
        fastest = fastest.min(call);
    }
    let optimizer_steps = (calls * k) as f64;
    Ok(StepTiming {
        compile,
        seconds_per_step: seconds / optimizer_steps,
        fastest_seconds_per_step: fastest / k as f64,
        examples_per_second: optimizer_steps * (cfg.batch * cfg.replicas) as f64 / seconds,
    })
}

/// Values for every input of `signature` that is not part of the state.
fn synthetic_feeds<'s>(
    signature: &'s Signature,
    layout: &StateLayout,
) -> Result<Vec<(&'s str, Literal)>> {
    signature
        .inputs()
        .iter()
        .filter(|p| layout.index_of(&p.name).is_none())
        .map(|p| Ok((p.name.as_str(), synthetic(&p.name, &p.shape)?)))
        .collect()
}

/// A fixed pattern for one input: images spread over [-1, 1), one-hot labels, dropout 0.1,
/// every stacked batch, a small learning rate.
fn synthetic(name: &str, shape: &ArrayShape) -> Result<Literal> {
    let n = shape.element_count() as usize;
    let literal = match (name, shape.ty()) {
        (port::IMAGES, _) => Literal::from_vec(
            shape.dims(),
            &(0..n)
                .map(|i| ((i * 7919) % 255) as f32 / 128.0 - 1.0)
                .collect::<Vec<_>>(),
        ),
        (port::LABELS, _) => {
            let classes = *shape.dims().last().unwrap_or(&1) as usize;
            Literal::from_vec(
                shape.dims(),
                &(0..n)
                    .map(|i| if i % classes == 0 { 1.0f32 } else { 0.0 })
                    .collect::<Vec<_>>(),
            )
        }
        (port::DROPOUT_RATE, _) => Literal::from_vec(shape.dims(), &vec![0.1f32; n]),
        (port::STEPS, _) => Ok(Literal::scalar(i32::MAX)),
        (_, ElementType::S32) => Literal::from_vec(shape.dims(), &vec![0i32; n]),
        _ => Literal::from_vec(shape.dims(), &vec![0.01f32; n]),
    };
    literal.map_err(anyhow::Error::msg)
}
