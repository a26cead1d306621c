//! Train-step and eval-step graphs: one shape-specialised module per (batch, image size).
//!
//! A train step takes the whole [`StateLayout`] plus one batch and returns the updated state
//! (every state parameter aliased to its output, so XLA updates it in place and the caller
//! donates the buffers), the loss and the number of correct predictions. With
//! `steps_per_call > 1` the module runs that many steps in a `while` loop over stacked batches,
//! as TPUEstimator's `iterations_per_loop` does, to hide the host's dispatch overhead.

use serde::{Deserialize, Serialize};

use super::ema;
use super::loss::{l2_penalty, smooth_labels, softmax_cross_entropy};
use super::optimizer::{RmsProp, RmsSlots};
use super::state::{Role, StateLayout};
use crate::autodiff;
use crate::hlo::passes;
use crate::hlo::{
    error::Result, ArrayShape, Builder, ComparisonDirection, Computation, ElementType, HloError,
    Module, Shape, Value,
};
use crate::model::graph::{forward, Lowering, Mode, Weights};
use crate::model::Model;
use crate::nn::DepthwiseImpl;
use crate::nn::Rng;

/// Arithmetic precision of the forward and backward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    /// bf16 activations and convolutions with f32 master weights, f32 batch-norm statistics and
    /// f32 optimizer state (the TPU `mixed_bfloat16` recipe).
    Bf16,
}

impl StepConfig {
    pub fn lowering(&self) -> Lowering {
        Lowering {
            compute: self.precision.compute_type(),
            depthwise: self.depthwise,
        }
    }
}

impl Precision {
    pub fn compute_type(self) -> ElementType {
        match self {
            Precision::F32 => ElementType::F32,
            Precision::Bf16 => ElementType::Bf16,
        }
    }
}

/// Everything that shapes a train-step graph besides the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepConfig {
    pub batch: i64,
    pub image_size: i64,
    pub precision: Precision,
    pub depthwise: DepthwiseImpl,
    pub label_smoothing: f64,
    pub weight_decay: f64,
    pub rmsprop: RmsProp,
    pub ema_decay: f64,
    pub steps_per_call: i64,
}

impl StepConfig {
    /// The official recipe (label smoothing 0.1, weight decay 1e-5, RMSProp 0.9/0.9/1e-3, EMA
    /// 0.9999) at this batch and image size, one step per call.
    pub fn official(
        batch: i64,
        image_size: i64,
        precision: Precision,
        depthwise: DepthwiseImpl,
    ) -> StepConfig {
        StepConfig {
            batch,
            image_size,
            precision,
            depthwise,
            label_smoothing: 0.1,
            weight_decay: 1e-5,
            rmsprop: RmsProp::default(),
            ema_decay: 0.9999,
            steps_per_call: 1,
        }
    }
}

/// The per-step inputs that follow the state parameters, in order.
struct StepInputs {
    /// f32 `[B, H, W, C]`, normalised.
    images: Value,
    /// f32 `[B, classes]` soft labels (after mixup/cutmix, before smoothing).
    labels: Value,
    /// s32 `[B]` class of each example, for the accuracy count.
    classes: Value,
    /// f32 scalars.
    lr: Value,
    dropout: Value,
}

/// Builds the train-step module for `model` under `cfg`.
///
/// Parameters: the state (in [`StateLayout`] order), then images f32 `[K?, B, H, W, C]`, soft
/// labels f32 `[K?, B, classes]`, classes s32 `[K?, B]`, learning rates f32 `[K?]` and the dropout
/// rate f32 `[]`, where the `K` dimension is present only when `steps_per_call > 1`. Result: the
/// new state, then the loss f32 `[K?]` and the correct count s32 `[K?]`.
pub fn train_step_module(model: &Model, cfg: &StepConfig) -> Result<Module> {
    if cfg.batch < 1 || cfg.image_size < 1 || cfg.steps_per_call < 1 {
        return Err(HloError::new(
            "train_step",
            &[],
            format!(
                "batch {}, image size {} and steps per call {} must be positive",
                cfg.batch, cfg.image_size, cfg.steps_per_call
            ),
        ));
    }
    let layout = StateLayout::new(model);
    let mut b = Builder::new("train_step");
    let state: Vec<Value> = layout
        .entries()
        .iter()
        .enumerate()
        .map(|(i, e)| b.parameter(i as i64, e.shape.clone(), e.name.clone()))
        .collect::<Result<_>>()?;
    let k = cfg.steps_per_call;
    let lead: &[i64] = if k > 1 { &[k] } else { &[] };
    let input_shapes = step_input_shapes(model, cfg, lead);
    let n = state.len() as i64;
    let inputs: Vec<Value> = input_shapes
        .iter()
        .enumerate()
        .map(|(i, (name, shape))| b.parameter(n + i as i64, shape.clone(), *name))
        .collect::<Result<_>>()?;
    let outputs = if k == 1 {
        let step = StepInputs {
            images: inputs[0],
            labels: inputs[1],
            classes: inputs[2],
            lr: inputs[3],
            dropout: inputs[4],
        };
        let (mut new_state, loss, correct) = emit_step(&mut b, model, cfg, &layout, &state, &step)?;
        new_state.extend([loss, correct]);
        new_state
    } else {
        emit_step_loop(&mut b, model, cfg, &layout, &state, &inputs)?
    };
    let root = b.tuple(&outputs)?;
    // The backward pass recomputes many forward expressions; merging them shrinks the module
    // (and XLA's compile time) by about a third.
    let (entry, _) = passes::eliminate_common_subexpressions(&b.build(root)?)?;
    let mut module = Module::new(
        format!("train_step_{}px_b{}", cfg.image_size, cfg.batch),
        entry,
    );
    for i in 0..layout.len() as i64 {
        module.alias(&[i], i, &[])?;
    }
    Ok(module)
}

fn step_input_shapes(
    model: &Model,
    cfg: &StepConfig,
    lead: &[i64],
) -> Vec<(&'static str, ArrayShape)> {
    let with = |dims: &[i64]| -> Vec<i64> { lead.iter().chain(dims).copied().collect() };
    let (bsz, s) = (cfg.batch, cfg.image_size);
    let c = model.spec.input.channels as i64;
    let classes = model.spec.num_classes as i64;
    vec![
        (
            "images",
            ArrayShape::new(ElementType::F32, &with(&[bsz, s, s, c])),
        ),
        (
            "labels",
            ArrayShape::new(ElementType::F32, &with(&[bsz, classes])),
        ),
        ("classes", ArrayShape::new(ElementType::S32, &with(&[bsz]))),
        (
            "learning_rate",
            ArrayShape::new(ElementType::F32, &with(&[])),
        ),
        ("dropout_rate", ArrayShape::scalar(ElementType::F32)),
    ]
}

/// One optimizer step: forward, loss, gradients, RMSProp, BN statistics, EMA, step and key.
fn emit_step(
    b: &mut Builder,
    model: &Model,
    cfg: &StepConfig,
    layout: &StateLayout,
    state: &[Value],
    x: &StepInputs,
) -> Result<(Vec<Value>, Value, Value)> {
    let entries = layout.entries();
    let find = |role: &dyn Fn(&Role) -> bool| {
        entries
            .iter()
            .position(|e| role(&e.role))
            .expect("the layout has every role")
    };
    let mut weights = Weights::default();
    for (e, &v) in entries.iter().zip(state) {
        if let Role::Variable(p) = &e.role {
            weights.0.insert(p.name.clone(), v);
        }
    }
    let step_index = find(&|r| *r == Role::Step);
    let rng_index = find(&|r| *r == Role::RngKey);
    let mut rng = Rng::new(state[rng_index]);
    let out = b.scoped("forward", |b| {
        forward(
            b,
            model,
            &weights,
            x.images,
            cfg.lowering(),
            Mode::Train {
                rng: &mut rng,
                dropout_rate: x.dropout,
            },
        )
    })?;

    let loss = b.scoped("loss", |b| -> Result<Value> {
        let smoothed = smooth_labels(b, x.labels, cfg.label_smoothing)?;
        let ce = softmax_cross_entropy(b, out.logits, smoothed)?;
        let decayed: Vec<Value> = entries
            .iter()
            .zip(state)
            .filter(|(e, _)| matches!(&e.role, Role::Variable(p) if p.weight_decayed()))
            .map(|(_, &v)| v)
            .collect();
        match l2_penalty(b, &decayed, cfg.weight_decay)? {
            Some(l2) => b.add(ce, l2),
            None => Ok(ce),
        }
    })?;
    let correct = b.scoped("metrics", |b| count_top_k(b, out.logits, x.classes, 1))?;

    let trainable: Vec<usize> = (0..entries.len())
        .filter(|&i| matches!(&entries[i].role, Role::Variable(p) if p.trainable()))
        .collect();
    let wrt: Vec<Value> = trainable.iter().map(|&i| state[i]).collect();
    let grads = b.scoped("backward", |b| autodiff::grad(b, loss, &wrt))?;

    let mut new_state = state.to_vec();
    b.scoped("optimizer", |b| -> Result<()> {
        for (&i, &g) in trainable.iter().zip(&grads) {
            let name = match &entries[i].role {
                Role::Variable(p) => &p.name,
                _ => unreachable!("trainable indices point at variables"),
            };
            let ms = find(&|r| *r == Role::MeanSquare(name.clone()));
            let mom = find(&|r| *r == Role::Momentum(name.clone()));
            let slots = RmsSlots {
                mean_square: state[ms],
                momentum: state[mom],
            };
            let (var, slots) = cfg.rmsprop.update(b, state[i], g, slots, x.lr)?;
            new_state[i] = var;
            new_state[ms] = slots.mean_square;
            new_state[mom] = slots.momentum;
        }
        for (name, v) in &out.bn_updates {
            let i = layout
                .index_of(&format!("params/{name}"))
                .expect("BN statistics are state variables");
            new_state[i] = *v;
        }
        let one = b.scalar(1i64)?;
        new_state[step_index] = b.add(state[step_index], one)?;
        let t = b.convert(new_state[step_index], ElementType::F32)?;
        let decay = ema::decay_in_graph(b, t, cfg.ema_decay)?;
        for (i, e) in entries.iter().enumerate() {
            if let Role::Ema(name) = &e.role {
                let var = new_state[layout
                    .index_of(&format!("params/{name}"))
                    .expect("EMA shadows a variable")];
                new_state[i] = ema::update(b, state[i], var, decay)?;
            }
        }
        new_state[rng_index] = rng.state();
        Ok(())
    })?;
    Ok((new_state, loss, correct))
}

/// `steps_per_call` steps in a `while` loop; returns the final state, losses `[K]` and correct
/// counts `[K]`.
fn emit_step_loop(
    b: &mut Builder,
    model: &Model,
    cfg: &StepConfig,
    layout: &StateLayout,
    state: &[Value],
    inputs: &[Value],
) -> Result<Vec<Value>> {
    let k = cfg.steps_per_call;
    let n = state.len();
    let counter = b.scalar(0i32)?;
    let losses = b.full(&ArrayShape::new(ElementType::F32, &[k]), 0.0)?;
    let corrects = b.full(&ArrayShape::new(ElementType::S32, &[k]), 0.0)?;
    let init: Vec<Value> = std::iter::once(counter)
        .chain(state.iter().copied())
        .chain(inputs.iter().copied())
        .chain([losses, corrects])
        .collect();
    let init = b.tuple(&init)?;
    let loop_shape = b.shape(init).clone();

    let mut cond = Builder::new("steps_left");
    let t = cond.parameter(0, loop_shape.clone(), "loop")?;
    let i = cond.get_tuple_element(t, 0)?;
    let limit = cond.scalar(k as i32)?;
    let more = cond.compare(ComparisonDirection::Lt, i, limit)?;
    let cond = cond.build(more)?;

    let body = step_loop_body(model, cfg, layout, &loop_shape)?;
    let result = b.while_loop(&cond, &body, init)?;
    let mut outputs = Vec::with_capacity(n + 2);
    for j in 0..n {
        outputs.push(b.get_tuple_element(result, 1 + j as i64)?);
    }
    let tail = 1 + n as i64 + inputs.len() as i64;
    outputs.push(b.get_tuple_element(result, tail)?);
    outputs.push(b.get_tuple_element(result, tail + 1)?);
    Ok(outputs)
}

fn step_loop_body(
    model: &Model,
    cfg: &StepConfig,
    layout: &StateLayout,
    loop_shape: &Shape,
) -> Result<Computation> {
    let n = layout.len();
    let mut b = Builder::new("train_step_body");
    let t = b.parameter(0, loop_shape.clone(), "loop")?;
    let elements = loop_shape.tuple_elements().map_or(0, <[Shape]>::len);
    let parts: Vec<Value> = (0..elements as i64)
        .map(|j| b.get_tuple_element(t, j))
        .collect::<Result<_>>()?;
    let i = parts[0];
    let state = &parts[1..1 + n];
    let inputs = &parts[1 + n..1 + n + 5];
    let (losses, corrects) = (parts[1 + n + 5], parts[1 + n + 6]);
    let zero = b.scalar(0i32)?;
    // The step-`i` slice of a `[K, ...]` input, without its leading dimension.
    let at = |b: &mut Builder, v: Value| -> Result<Value> {
        let dims = b.array_shape("train_step", v)?.dims().to_vec();
        let starts: Vec<Value> = std::iter::once(i)
            .chain(std::iter::repeat(zero).take(dims.len() - 1))
            .collect();
        let sizes: Vec<i64> = std::iter::once(1)
            .chain(dims[1..].iter().copied())
            .collect();
        let s = b.dynamic_slice(v, &starts, &sizes)?;
        b.reshape(s, &dims[1..])
    };
    let step = StepInputs {
        images: at(&mut b, inputs[0])?,
        labels: at(&mut b, inputs[1])?,
        classes: at(&mut b, inputs[2])?,
        lr: at(&mut b, inputs[3])?,
        dropout: inputs[4],
    };
    let (new_state, loss, correct) = emit_step(&mut b, model, cfg, layout, state, &step)?;
    let loss = b.reshape(loss, &[1])?;
    let correct = b.reshape(correct, &[1])?;
    let losses = b.dynamic_update_slice(losses, loss, &[i])?;
    let corrects = b.dynamic_update_slice(corrects, correct, &[i])?;
    let one = b.scalar(1i32)?;
    let next = b.add(i, one)?;
    let out: Vec<Value> = std::iter::once(next)
        .chain(new_state)
        .chain(inputs.iter().copied())
        .chain([losses, corrects])
        .collect();
    let root = b.tuple(&out)?;
    b.build(root)
}

/// How many examples have their class among the `k` largest logits (ties count against the
/// prediction); examples with a negative class (batch padding) never count. Returns an s32 scalar.
pub fn count_top_k(b: &mut Builder, logits: Value, classes: Value, k: i64) -> Result<Value> {
    let dims = b.array_shape("top_k", logits)?.dims().to_vec();
    let class_ids = b.iota(&ArrayShape::new(ElementType::S32, &dims), 1)?;
    let targets = b.broadcast_in_dim(classes, &dims, &[0])?;
    let is_target = b.compare(ComparisonDirection::Eq, class_ids, targets)?;
    let zeros = b.full(&ArrayShape::new(ElementType::F32, &dims), 0.0)?;
    let picked = b.select(is_target, logits, zeros)?;
    let target_logit = b.reduce_sum(picked, &[1])?;
    let target_logit = b.broadcast_in_dim(target_logit, &dims, &[0])?;
    let above = b.compare(ComparisonDirection::Gt, logits, target_logit)?;
    let above = b.convert(above, ElementType::S32)?;
    let rank = b.reduce_sum(above, &[1])?;
    let limit = b.full(&ArrayShape::new(ElementType::S32, &[dims[0]]), k as f64)?;
    let in_top = b.compare(ComparisonDirection::Lt, rank, limit)?;
    let zero = b.full(&ArrayShape::new(ElementType::S32, &[dims[0]]), 0.0)?;
    let valid = b.compare(ComparisonDirection::Ge, classes, zero)?;
    let hit = b.and(in_top, valid)?;
    let hit = b.convert(hit, ElementType::S32)?;
    b.reduce_sum(hit, &[0])
}

/// Builds the eval-step module: parameters are the model variables (in [`Model::params`] order;
/// the caller passes the EMA shadows), images f32 `[B, S, S, C]` and classes s32 `[B]` (-1 for
/// padding). Result: `(top1 s32[], top5 s32[])` correct counts.
pub fn eval_step_module(
    model: &Model,
    batch: i64,
    image_size: i64,
    lowering: Lowering,
) -> Result<Module> {
    let mut b = Builder::new("eval_step");
    let mut weights = Weights::default();
    let params = model.params();
    for (i, p) in params.iter().enumerate() {
        let dims: Vec<i64> = p.shape.iter().map(|&d| d as i64).collect();
        let v = b.parameter(
            i as i64,
            ArrayShape::new(ElementType::F32, &dims),
            format!("ema/{}", p.name),
        )?;
        weights.0.insert(p.name.clone(), v);
    }
    let n = params.len() as i64;
    let c = model.spec.input.channels as i64;
    let images = b.parameter(
        n,
        ArrayShape::new(ElementType::F32, &[batch, image_size, image_size, c]),
        "images",
    )?;
    let classes = b.parameter(
        n + 1,
        ArrayShape::new(ElementType::S32, &[batch]),
        "classes",
    )?;
    let out = b.scoped("forward", |b| {
        forward(b, model, &weights, images, lowering, Mode::Eval)
    })?;
    let top1 = b.scoped("metrics", |b| count_top_k(b, out.logits, classes, 1))?;
    let top5 = b.scoped("metrics", |b| count_top_k(b, out.logits, classes, 5))?;
    let root = b.tuple(&[top1, top5])?;
    Ok(Module::new(
        format!("eval_step_{image_size}px_b{batch}"),
        b.build(root)?,
    ))
}
