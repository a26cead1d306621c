//! Timing a train step on synthetic inputs: what `effnetv2 bench` prints and what the
//! architecture search scores each candidate's step time with. The inputs are fixed patterns,
//! not data, so the time is the step's alone (no decoding or augmentation).

use std::time::Instant;

use anyhow::{ensure, Result};

use super::init::initial_state;
use crate::hlo::{ArrayShape, ElementType, Literal};
use crate::model::Model;
use crate::program::context::{Context, StepExecutable};
use crate::program::device_state::DeviceState;
use crate::program::executables::CompileEvent;
use crate::runtime::Buffer;
use crate::step::graphs::{port, train_step, StepConfig};
use crate::step::signature::Signature;
use crate::step::state::StateLayout;

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

/// Calls of one step timed in a row before the next step's turn.
const CALLS_PER_TURN: i64 = 4;

/// Compiles the train steps `benches` (a model and step config each) on `ctx` and times at
/// least `steps` optimizer steps of each (whole calls of its `steps_per_call`), in turns of
/// [`CALLS_PER_TURN`] calls. Whatever slows the machine meanwhile slows them all alike, so
/// their ratios hold on a busy machine where separate timings drift apart by 10-20%. The first
/// call of a turn finds the caches full of the other step's data; the fastest call, the figure
/// to compare, is a later one.
pub fn time_train_steps(
    ctx: &Context,
    benches: &[(&Model, &StepConfig)],
    steps: i64,
) -> Result<Vec<StepTiming>> {
    ensure!(steps >= 1, "{steps} timed steps: at least one is needed");
    let layouts: Vec<StateLayout> = benches.iter().map(|(m, _)| StateLayout::new(m)).collect();
    let graphs = benches
        .iter()
        .map(|(model, cfg)| Ok(train_step(model, cfg)?))
        .collect::<Result<Vec<_>>>()?;
    let mut prepared = Vec::new();
    for ((graph, layout), (_, cfg)) in graphs.iter().zip(&layouts).zip(benches) {
        let (exe, compile) = ctx.compile(graph)?;
        let feeds = (0..cfg.replicas as usize)
            .map(|r| ctx.upload_named_to(r, synthetic_feeds(&graph.signature, layout)?))
            .collect::<Result<Vec<_>>>()?;
        let mut state = DeviceState::upload(ctx, layout, &initial_state(layout, 0))?;
        state.step(&exe, &feeds)?; // warm-up
        prepared.push(Prepared {
            exe,
            compile,
            feeds,
            state,
            calls: (steps + cfg.steps_per_call - 1) / cfg.steps_per_call,
            total: 0.0,
            fastest: f64::INFINITY,
        });
    }
    let most = prepared.iter().map(|p| p.calls).max().unwrap_or(0);
    for turn_start in (0..most).step_by(CALLS_PER_TURN as usize) {
        for p in &mut prepared {
            for _ in turn_start..p.calls.min(turn_start + CALLS_PER_TURN) {
                let started = Instant::now();
                p.state.step(&p.exe, &p.feeds)?;
                let call = started.elapsed().as_secs_f64();
                p.total += call;
                p.fastest = p.fastest.min(call);
            }
        }
    }
    Ok(prepared
        .into_iter()
        .zip(benches)
        .map(|(p, (_, cfg))| {
            let optimizer_steps = (p.calls * cfg.steps_per_call) as f64;
            StepTiming {
                compile: p.compile,
                seconds_per_step: p.total / optimizer_steps,
                fastest_seconds_per_step: p.fastest / cfg.steps_per_call as f64,
                examples_per_second: optimizer_steps * (cfg.batch * cfg.replicas) as f64 / p.total,
            }
        })
        .collect())
}

/// One step of [`time_train_steps`], loaded and warmed up, and its calls timed so far.
struct Prepared<'g> {
    exe: StepExecutable,
    compile: CompileEvent,
    feeds: Vec<Vec<(&'g str, Buffer)>>,
    state: DeviceState,
    calls: i64,
    total: f64,
    fastest: f64,
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

/// A fixed pattern for one input: images spread over [-1, 1) (or over 0-255 in `u8`), one-hot
/// labels, dropout 0.1, every stacked batch, a small learning rate.
fn synthetic(name: &str, shape: &ArrayShape) -> Result<Literal> {
    let n = shape.element_count() as usize;
    let literal = match (name, shape.ty()) {
        (port::IMAGES, ElementType::U8) => Literal::from_vec(
            shape.dims(),
            &(0..n).map(|i| (i * 7919 % 256) as u8).collect::<Vec<_>>(),
        ),
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
        // A device-augmenting step's value tables: the identity. Its other parameters are
        // zeros and small numbers; the step's work does not depend on them (no branching).
        (_, ElementType::U8) => Literal::from_vec(
            shape.dims(),
            &(0..n).map(|i| (i % 256) as u8).collect::<Vec<_>>(),
        ),
        _ => Literal::from_vec(shape.dims(), &vec![0.01f32; n]),
    };
    literal.map_err(anyhow::Error::msg)
}
