//! Train-step and eval-step graphs: one shape-specialised module per (batch, image size).
//!
//! A train step takes the whole [`StateLayout`] plus one batch and returns the updated state
//! (every state parameter aliased to its output, so XLA updates it in place and the caller
//! donates the buffers), the loss and the number of correct predictions. With
//! `steps_per_call = K > 1` the module runs up to K steps in a `while` loop over K stacked
//! batches, as TPUEstimator's `iterations_per_loop` does, to hide the host's dispatch overhead;
//! its `steps` input says how many of the K slots to train on, so one executable also runs the
//! shorter call before a stage ends or a checkpoint is due.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::ema;
use super::loss::{l2_penalty, smooth_labels, softmax_cross_entropy};
use super::optimizer::{RmsProp, RmsSlots};
use super::signature::{Port, Signature, SignatureError, StepGraph};
use super::state::{Namespace, Role, StateLayout};
use crate::autodiff;
use crate::data::Normalization;
use crate::hlo::passes;
use crate::hlo::{
    error::Result, ArrayShape, Builder, ComparisonDirection, Computation, ElementType, HloError,
    Module, RandomAlgorithm, Shape, Value,
};
use crate::model::graph::{forward, Lowering, Mode, Weights};
use crate::model::Backend;
use crate::model::Model;
use crate::nn::augment::{self, MixArrays, RandAugmentArrays};
use crate::nn::{Replicas, Rng};

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
            backend: self.backend,
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
    pub backend: Backend,
    pub objective: Objective,
    pub rmsprop: RmsProp,
    pub steps_per_call: i64,
    /// Replicas of a data-parallel step, one per device (1: a one-device step). `batch` is each
    /// replica's share; gradients are averaged over the replicas in the graph.
    #[serde(default = "one_replica")]
    pub replicas: i64,
    /// Batch-norm statistics over the whole batch of every replica (cross-replica batch norm)
    /// instead of each replica's own share, which the official TPU training uses.
    #[serde(default)]
    pub sync_batch_norm: bool,
    /// A step whose loss or updated weights are not finite leaves the model, optimizer slots and
    /// EMA as they were (the step counter and random key still advance); its loss output shows
    /// the non-finite value, so the host can count the skipped steps.
    #[serde(default)]
    pub skip_nonfinite: bool,
    /// What the `images` input holds; absent in configurations written before device-side
    /// augmentation (and not written for the host path, so they stay as they were).
    #[serde(default, skip_serializing_if = "InputMode::is_normalised")]
    pub input: InputMode,
}

fn one_replica() -> i64 {
    1
}

/// What the train step's `images` input holds, and so which inputs the step takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum InputMode {
    /// f32 images the host augmented, normalised and mixed.
    #[default]
    Normalised,
    /// u8 images the host only cropped, resized and flipped; the step applies RandAugment,
    /// normalises and mixes them (`nn::augment`) from per-example parameters.
    DeviceAugment(DeviceAugment),
}

impl InputMode {
    pub fn is_normalised(&self) -> bool {
        *self == InputMode::Normalised
    }
}

/// The augmentation a device-augmenting train step applies to its u8 images.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceAugment {
    /// RandAugment layers (0: none, and no `augment_*` inputs).
    pub layers: i64,
    /// Whether mixup/CutMix runs (the `mix_*` inputs).
    pub mixing: bool,
    /// The model's input normalisation, per channel on the 0-255 scale.
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl DeviceAugment {
    /// `layers` RandAugment layers, mixing or not, then `normalization`.
    pub fn new(layers: i64, mixing: bool, normalization: Normalization) -> DeviceAugment {
        DeviceAugment {
            layers,
            mixing,
            mean: normalization.mean,
            std: normalization.std,
        }
    }

    pub fn normalization(&self) -> Normalization {
        Normalization {
            mean: self.mean,
            std: self.std,
        }
    }
}

/// What a train step optimises beyond the cross-entropy and how it averages: the settings a
/// training recipe chooses (the official ImageNet values, fine-tuning's, ...).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// TF1's `onehot * (1 - ls) + ls / classes`, applied after mixup and cutmix.
    pub label_smoothing: f64,
    /// The coefficient of `sum(v^2) / 2` over the decayed kernels.
    pub weight_decay: f64,
    /// The EMA's decay cap: `min(ema_decay, (1 + step) / (10 + step))`.
    pub ema_decay: f64,
}

impl Objective {
    /// The official ImageNet recipe: label smoothing 0.1, weight decay 1e-5, EMA 0.9999.
    pub const OFFICIAL: Objective = Objective {
        label_smoothing: 0.1,
        weight_decay: 1e-5,
        ema_decay: 0.9999,
    };
}

impl Default for Objective {
    fn default() -> Objective {
        Objective::OFFICIAL
    }
}

impl StepConfig {
    /// The official recipe (label smoothing 0.1, weight decay 1e-5, RMSProp 0.9/0.9/1e-3, EMA
    /// 0.9999) at this batch and image size, one step per call.
    pub fn official(
        batch: i64,
        image_size: i64,
        precision: Precision,
        backend: Backend,
    ) -> StepConfig {
        StepConfig {
            batch,
            image_size,
            precision,
            backend,
            objective: Objective::OFFICIAL,
            rmsprop: RmsProp::default(),
            steps_per_call: 1,
            replicas: 1,
            sync_batch_norm: false,
            skip_nonfinite: false,
            input: InputMode::Normalised,
        }
    }
}

/// Names of the step graphs' inputs and results besides the state (whose ports are named by
/// [`StateLayout`]) and the model variables (`ema/<param>` in the eval step).
pub mod port {
    /// f32 `[K?, B, H, W, C]`, normalised images; u8 in a device-augmenting step
    /// (`InputMode::DeviceAugment`), cropped, resized and flipped only.
    pub const IMAGES: &str = "images";
    /// A device-augmenting step's RandAugment parameters (when it has layers), one array of
    /// `EncodedLayers` each with `K?` in front: u8 `[K?, L, B, 3, 256]`.
    pub const AUGMENT_TABLE: &str = "augment_table";
    /// s32 `[K?, L, B]`.
    pub const AUGMENT_TABLE_SOURCE: &str = "augment_table_source";
    /// s32 `[K?, L, B]`.
    pub const AUGMENT_BLEND_KIND: &str = "augment_blend_kind";
    /// f32 `[K?, L, B]`.
    pub const AUGMENT_BLEND_LEVEL: &str = "augment_blend_level";
    /// f32 `[K?, L, B]`.
    pub const AUGMENT_BLEND_FACTOR: &str = "augment_blend_factor";
    /// f32 `[K?, L, B, 8]`.
    pub const AUGMENT_WARP: &str = "augment_warp";
    /// s32 `[K?, L, B, 4]`.
    pub const AUGMENT_CUTOUT: &str = "augment_cutout";
    /// The RandAugment ports in the order of `nn::augment::RandAugmentArrays::values`.
    pub const AUGMENT: [&str; 7] = [
        AUGMENT_TABLE,
        AUGMENT_TABLE_SOURCE,
        AUGMENT_BLEND_KIND,
        AUGMENT_BLEND_LEVEL,
        AUGMENT_BLEND_FACTOR,
        AUGMENT_WARP,
        AUGMENT_CUTOUT,
    ];
    /// A device-augmenting step's mixing draws (when it mixes): s32 `[K?, B]`, each example's
    /// partner as an index into the replica's own `B`.
    pub const MIX_PARTNER: &str = "mix_partner";
    /// f32 `[K?, B]`: the example's own weight (1 for CutMix).
    pub const MIX_WEIGHT: &str = "mix_weight";
    /// s32 `[K?, B, 4]`: the box pasted from the partner, `[x0, x1, y0, y1]` (empty for mixup).
    pub const MIX_PASTE: &str = "mix_paste";
    /// The mixing ports in the order of `nn::augment::MixArrays::values`.
    pub const MIX: [&str; 3] = [MIX_PARTNER, MIX_WEIGHT, MIX_PASTE];
    /// f32 `[K?, B, classes]` soft labels (after mixup/cutmix, before smoothing).
    pub const LABELS: &str = "labels";
    /// s32 `[K?, B]` class of each example (-1 for eval padding), for the accuracy counts.
    pub const CLASSES: &str = "classes";
    /// f32 `[K?]` learning rate of each step.
    pub const LEARNING_RATE: &str = "learning_rate";
    /// f32 `[]` dropout rate of the stage.
    pub const DROPOUT_RATE: &str = "dropout_rate";
    /// s32 `[]` how many of the K stacked batches to train on (only when K > 1): 1 to K.
    pub const STEPS: &str = "steps";
    /// f32 `[K?]` loss of each step.
    pub const LOSS: &str = "loss";
    /// s32 `[K?]` correct top-1 predictions of each step.
    pub const CORRECT: &str = "correct";
    /// f32 `[B, classes]` logits of a predict batch.
    pub const LOGITS: &str = "logits";
    /// s32 `[]` correct top-1 / top-5 predictions of an eval batch.
    pub const TOP1: &str = "top1";
    pub const TOP5: &str = "top5";
}

/// The per-step inputs of one optimizer step.
#[derive(Clone, Copy)]
struct StepInputs {
    images: Value,
    labels: Value,
    classes: Value,
    lr: Value,
    dropout: Value,
    /// A device-augmenting step's RandAugment parameters, when it has layers.
    augment: Option<RandAugmentArrays>,
    /// A device-augmenting step's mixing draws, when it mixes.
    mixing: Option<MixArrays>,
}

impl StepInputs {
    /// The inputs `inputs` holds for a step of `mode`.
    fn named(inputs: &HashMap<String, Value>, mode: &InputMode) -> StepInputs {
        let (augment, mixing) = device_inputs(mode);
        StepInputs {
            images: named(inputs, port::IMAGES),
            labels: named(inputs, port::LABELS),
            classes: named(inputs, port::CLASSES),
            lr: named(inputs, port::LEARNING_RATE),
            dropout: named(inputs, port::DROPOUT_RATE),
            augment: augment
                .then(|| RandAugmentArrays::from_values(port::AUGMENT.map(|p| named(inputs, p)))),
            mixing: mixing.then(|| MixArrays::from_values(port::MIX.map(|p| named(inputs, p)))),
        }
    }

    /// Every input, in a fixed order (what the step loop carries).
    fn values(&self) -> Vec<Value> {
        let augment = self.augment.iter().flat_map(|a| a.values());
        let mixing = self.mixing.iter().flat_map(|m| m.values());
        [
            self.images,
            self.labels,
            self.classes,
            self.lr,
            self.dropout,
        ]
        .into_iter()
        .chain(augment)
        .chain(mixing)
        .collect()
    }

    /// The inputs of a step of `mode` from `next`, in [`Self::values`]' order.
    fn from_values(mode: &InputMode, mut next: impl FnMut() -> Value) -> StepInputs {
        let (augment, mixing) = device_inputs(mode);
        StepInputs {
            images: next(),
            labels: next(),
            classes: next(),
            lr: next(),
            dropout: next(),
            augment: augment
                .then(|| RandAugmentArrays::from_values(std::array::from_fn(|_| next()))),
            mixing: mixing.then(|| MixArrays::from_values(std::array::from_fn(|_| next()))),
        }
    }

    /// How many values [`Self::values`] has for a step of `mode`.
    fn count(mode: &InputMode) -> usize {
        let (augment, mixing) = device_inputs(mode);
        5 + if augment { port::AUGMENT.len() } else { 0 } + if mixing { port::MIX.len() } else { 0 }
    }

    /// The f32 images the forward pass takes: the input itself, or in a device-augmenting step
    /// the u8 input augmented, normalised and mixed.
    fn model_images(&self, b: &mut Builder, mode: &InputMode) -> Result<Value> {
        let InputMode::DeviceAugment(device) = mode else {
            return Ok(self.images);
        };
        b.scoped("augment", |b| {
            let mut images = self.images;
            if let Some(arrays) = &self.augment {
                images = augment::randaugment(b, images, arrays)?;
            }
            let normalization = device.normalization();
            match &self.mixing {
                Some(arrays) => augment::mix(b, images, &normalization, arrays),
                None => augment::normalise(b, images, &normalization),
            }
        })
    }
}

/// Whether a step of `mode` takes RandAugment parameters and mixing draws.
fn device_inputs(mode: &InputMode) -> (bool, bool) {
    match mode {
        InputMode::Normalised => (false, false),
        InputMode::DeviceAugment(d) => (d.layers > 0, d.mixing),
    }
}

/// The value called `name` (a signature port the graph builder itself declared).
fn named(values: &HashMap<String, Value>, name: &str) -> Value {
    values[name]
}

/// The train step's signature: the state, then the step inputs; the new state, then the loss
/// and the correct count. `K` dimensions are present only when `steps_per_call > 1`.
pub fn train_step_signature(model: &Model, cfg: &StepConfig, layout: &StateLayout) -> Signature {
    let k = cfg.steps_per_call;
    let lead: &[i64] = if k > 1 { &[k] } else { &[] };
    let with = |dims: &[i64]| -> Vec<i64> { lead.iter().chain(dims).copied().collect() };
    let (bsz, s) = (cfg.batch, cfg.image_size);
    let c = model.spec.input.channels as i64;
    let classes = model.spec.num_classes as i64;
    let state: Vec<Port> = layout
        .entries()
        .iter()
        .map(|e| Port::new(e.name.clone(), e.shape.clone()))
        .collect();
    let array = |ty, dims: &[i64]| ArrayShape::new(ty, &with(dims));
    let steps = (k > 1).then(|| Port::new(port::STEPS, ArrayShape::scalar(ElementType::S32)));
    let stacked = |names: &[&str], shapes: &[ArrayShape]| -> Vec<Port> {
        names
            .iter()
            .zip(shapes)
            .map(|(name, shape)| Port::new(*name, array(shape.ty(), shape.dims())))
            .collect()
    };
    let (image_type, device) = match cfg.input {
        InputMode::Normalised => (ElementType::F32, Vec::new()),
        InputMode::DeviceAugment(d) => {
            let mut ports = Vec::new();
            if d.layers > 0 {
                ports.extend(stacked(
                    &port::AUGMENT,
                    &RandAugmentArrays::shapes(d.layers, bsz),
                ));
            }
            if d.mixing {
                ports.extend(stacked(&port::MIX, &MixArrays::shapes(bsz)));
            }
            (ElementType::U8, ports)
        }
    };
    let inputs = state
        .iter()
        .cloned()
        .chain([
            Port::new(port::IMAGES, array(image_type, &[bsz, s, s, c])),
            Port::new(port::LABELS, array(ElementType::F32, &[bsz, classes])),
            Port::new(port::CLASSES, array(ElementType::S32, &[bsz])),
            Port::new(port::LEARNING_RATE, array(ElementType::F32, &[])),
            Port::new(port::DROPOUT_RATE, ArrayShape::scalar(ElementType::F32)),
        ])
        .chain(device)
        .chain(steps);
    let outputs = state.iter().cloned().chain([
        Port::new(port::LOSS, array(ElementType::F32, &[])),
        Port::new(port::CORRECT, array(ElementType::S32, &[])),
    ]);
    Signature::new(
        match cfg.replicas {
            1 => format!("train_step_{}px_b{}", cfg.image_size, cfg.batch),
            r => format!("train_step_{}px_b{}x{r}", cfg.image_size, cfg.batch),
        },
        inputs.collect(),
        outputs.collect(),
    )
}

fn signature_error(e: SignatureError) -> HloError {
    HloError::new(e.graph.clone(), &[], e.problem)
}

/// Builds the train-step graph for `model` under `cfg`: see [`train_step_signature`]. Every
/// state input is aliased to its output, so the caller donates the state and XLA updates it in
/// place.
pub fn train_step(model: &Model, cfg: &StepConfig) -> Result<StepGraph> {
    if cfg.batch < 1 || cfg.image_size < 1 || cfg.steps_per_call < 1 || cfg.replicas < 1 {
        return Err(HloError::new(
            "train_step",
            &[],
            format!(
                "batch {}, image size {}, steps per call {} and replicas {} must be positive",
                cfg.batch, cfg.image_size, cfg.steps_per_call, cfg.replicas
            ),
        ));
    }
    let layout = StateLayout::new(model);
    let signature = train_step_signature(model, cfg, &layout);
    let mut b = Builder::new("train_step");
    let inputs = signature.declare_parameters(&mut b)?;
    let state: Vec<Value> = layout
        .entries()
        .iter()
        .map(|e| named(&inputs, &e.name))
        .collect();
    let step = StepInputs::named(&inputs, &cfg.input);
    let (new_state, loss, correct) = if cfg.steps_per_call == 1 {
        emit_step(&mut b, model, cfg, &layout, &state, &step)?
    } else {
        let steps = named(&inputs, port::STEPS);
        emit_step_loop(&mut b, model, cfg, &layout, &state, &step, steps)?
    };
    let mut results: HashMap<&str, Value> = layout
        .entries()
        .iter()
        .map(|e| e.name.as_str())
        .zip(new_state)
        .collect();
    results.insert(port::LOSS, loss);
    results.insert(port::CORRECT, correct);
    let root = signature.result_tuple(&mut b, &results)?;
    // The backward pass recomputes many forward expressions; merging them shrinks the module
    // (and XLA's compile time) by about a third.
    let (entry, _) = passes::eliminate_common_subexpressions(&b.build(root)?)?;
    let mut module = Module::new(signature.graph(), entry);
    for e in layout.entries() {
        let input = signature.input_position(&e.name).map_err(signature_error)?;
        let output = signature
            .output_position(&e.name)
            .map_err(signature_error)?;
        module.alias(&[output as i64], input as i64, &[])?;
    }
    Ok(StepGraph {
        module,
        signature,
        replicas: cfg.replicas as usize,
    })
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
    let replicas = Replicas::new(cfg.replicas);
    let (mut rng, next_key) = if replicas.count() > 1 {
        let (rng, next) = replica_rng(b, state[rng_index])?;
        (rng, Some(next))
    } else {
        (Rng::new(state[rng_index]), None)
    };
    let batch_norm_replicas = if cfg.sync_batch_norm {
        replicas
    } else {
        Replicas::new(1)
    };
    let images = x.model_images(b, &cfg.input)?;
    let out = b.scoped("forward", |b| {
        forward(
            b,
            model,
            &weights,
            images,
            cfg.lowering(),
            Mode::Train {
                rng: &mut rng,
                dropout_rate: x.dropout,
                batch_norm_replicas,
            },
        )
    })?;

    let loss = b.scoped("loss", |b| {
        objective_loss(b, cfg, layout, state, out.logits, x.labels)
    })?;
    let correct = b.scoped("metrics", |b| count_top_k(b, out.logits, x.classes, 1))?;

    let trainable: Vec<usize> = (0..entries.len())
        .filter(|&i| matches!(&entries[i].role, Role::Variable(p) if p.trainable()))
        .collect();
    let wrt: Vec<Value> = trainable.iter().map(|&i| state[i]).collect();
    let grads = b.scoped("backward", |b| -> Result<Vec<Value>> {
        // Each replica differentiates its own share's loss; their mean is the gradient of the
        // loss over the whole batch (through cross-replica batch norm too: the transpose of an
        // all-reduce sum is an all-reduce sum of the cotangents).
        let local = autodiff::grad(b, loss, &wrt)?;
        local.into_iter().map(|g| replicas.mean(b, g)).collect()
    })?;
    let (loss, correct) = b.scoped("metrics", |b| -> Result<(Value, Value)> {
        Ok((replicas.mean(b, loss)?, replicas.sum(b, correct)?))
    })?;

    let mut new_state = state.to_vec();
    b.scoped("optimizer", |b| -> Result<()> {
        let trained: Vec<(usize, Value)> = trainable.iter().copied().zip(grads).collect();
        rmsprop_updates(b, cfg, layout, state, &trained, x.lr, &mut new_state)?;
        let bn_replicas = (!cfg.sync_batch_norm).then_some(replicas);
        batch_norm_updates(b, layout, &out.bn_updates, bn_replicas, &mut new_state)?;
        let one = b.scalar(1i64)?;
        new_state[step_index] = b.add(state[step_index], one)?;
        let t = b.convert(new_state[step_index], ElementType::F32)?;
        let decay = ema::decay_in_graph(b, t, cfg.objective.ema_decay)?;
        ema_updates(b, layout, state, decay, &mut new_state)?;
        new_state[rng_index] = next_key.unwrap_or_else(|| rng.state());
        Ok(())
    })?;
    if cfg.skip_nonfinite {
        let kept = [step_index, rng_index];
        return b.scoped("skip_nonfinite", |b| {
            let (state, loss) = keep_unless_finite(b, state, new_state, loss, &trainable, &kept)?;
            Ok((state, loss, correct))
        });
    }
    Ok((new_state, loss, correct))
}

/// The training loss: softmax cross-entropy against the smoothed labels plus the L2 penalty on
/// the weight-decayed variables.
fn objective_loss(
    b: &mut Builder,
    cfg: &StepConfig,
    layout: &StateLayout,
    state: &[Value],
    logits: Value,
    labels: Value,
) -> Result<Value> {
    let smoothed = smooth_labels(b, labels, cfg.objective.label_smoothing)?;
    let ce = softmax_cross_entropy(b, logits, smoothed)?;
    let decayed: Vec<Value> = layout
        .entries()
        .iter()
        .zip(state)
        .filter(|(e, _)| matches!(&e.role, Role::Variable(p) if p.weight_decayed()))
        .map(|(_, &v)| v)
        .collect();
    match l2_penalty(b, &decayed, cfg.objective.weight_decay)? {
        Some(l2) => b.add(ce, l2),
        None => Ok(ce),
    }
}

/// RMSProp on each trained variable (`(state index, gradient)` pairs): its new value and its
/// two slots go into `new_state`.
fn rmsprop_updates(
    b: &mut Builder,
    cfg: &StepConfig,
    layout: &StateLayout,
    state: &[Value],
    trained: &[(usize, Value)],
    lr: Value,
    new_state: &mut [Value],
) -> Result<()> {
    for &(i, g) in trained {
        let name = match &layout.entries()[i].role {
            Role::Variable(p) => &p.name,
            _ => unreachable!("trainable indices point at variables"),
        };
        let slot = |namespace| {
            layout
                .index_in(namespace, name)
                .expect("every trainable variable has its RMSProp slots")
        };
        let (ms, mom) = (slot(Namespace::MeanSquare), slot(Namespace::Momentum));
        let slots = RmsSlots {
            mean_square: state[ms],
            momentum: state[mom],
        };
        let (var, slots) = cfg.rmsprop.update(b, state[i], g, slots, lr)?;
        new_state[i] = var;
        new_state[ms] = slots.mean_square;
        new_state[mom] = slots.momentum;
    }
    Ok(())
}

/// The batch-norm moving statistics of this step (`(variable, value)` pairs) into `new_state`.
/// Per-replica statistics (`average_over` the replicas) are averaged so that every replica keeps
/// the same state; cross-replica ones (`None`) already are the same.
fn batch_norm_updates(
    b: &mut Builder,
    layout: &StateLayout,
    updates: &[(String, Value)],
    average_over: Option<Replicas>,
    new_state: &mut [Value],
) -> Result<()> {
    for (name, v) in updates {
        let i = layout
            .index_in(Namespace::Params, name)
            .expect("BN statistics are state variables");
        new_state[i] = match average_over {
            Some(replicas) => replicas.mean(b, *v)?,
            None => *v,
        };
    }
    Ok(())
}

/// Each EMA shadow moved towards its variable's new value (in `new_state`) with `decay`.
fn ema_updates(
    b: &mut Builder,
    layout: &StateLayout,
    state: &[Value],
    decay: Value,
    new_state: &mut [Value],
) -> Result<()> {
    for (i, e) in layout.entries().iter().enumerate() {
        if let Role::Ema(name) = &e.role {
            let var = new_state[layout
                .index_in(Namespace::Params, name)
                .expect("EMA shadows a variable")];
            new_state[i] = ema::update(b, state[i], var, decay)?;
        }
    }
    Ok(())
}

/// `updated` where the step is finite, else `state` (but for the entries in `always`), and the
/// loss to report: a step is finite when its loss and every updated trainable variable
/// (`trainable` indices) are, and the reported loss is not finite exactly when the step was
/// not. A non-finite learning rate or gradient shows in the variables even when the loss is
/// finite.
fn keep_unless_finite(
    b: &mut Builder,
    state: &[Value],
    updated: Vec<Value>,
    loss: Value,
    trainable: &[usize],
    always: &[usize],
) -> Result<(Vec<Value>, Value)> {
    // x * 0 is 0 for every finite x and NaN otherwise, so the sum is finite exactly when every
    // element is (a sum of squares could overflow on large finite values).
    let zero_sum = |b: &mut Builder, x: Value| -> Result<Value> {
        let zeros = b.full_like(x, 0.0)?;
        let zeroed = b.mul(x, zeros)?;
        let rank = b.array_shape("skip_nonfinite", x)?.rank() as i64;
        let total = b.reduce_sum(zeroed, &(0..rank).collect::<Vec<_>>())?;
        b.convert(total, ElementType::F32)
    };
    let mut probe = zero_sum(b, loss)?;
    for &i in trainable {
        let total = zero_sum(b, updated[i])?;
        probe = b.add(probe, total)?;
    }
    let finite = b.is_finite(probe)?;
    // loss + 0 is the loss itself; loss + NaN reports the skip.
    let loss_type = b.array_shape("skip_nonfinite", loss)?.ty();
    let probe = b.convert(probe, loss_type)?;
    let reported = b.add(loss, probe)?;
    let chosen = updated
        .into_iter()
        .enumerate()
        .map(|(i, new)| {
            if always.contains(&i) {
                return Ok(new);
            }
            let dims = b.array_shape("skip_nonfinite", new)?.dims().to_vec();
            let pick = b.broadcast_in_dim(finite, &dims, &[])?;
            b.select(pick, new, state[i])
        })
        .collect::<Result<_>>()?;
    Ok((chosen, reported))
}

/// The `while` loop's carried tuple: the step counter and how many steps to run, the state, the
/// stacked step inputs and the per-step losses and correct counts. The one place that knows the
/// tuple's positions.
struct LoopCarry {
    counter: Value,
    steps: Value,
    state: Vec<Value>,
    inputs: StepInputs,
    losses: Value,
    corrects: Value,
}

impl LoopCarry {
    fn values(&self) -> Vec<Value> {
        [self.counter, self.steps]
            .into_iter()
            .chain(self.state.iter().copied())
            .chain(self.inputs.values())
            .chain([self.losses, self.corrects])
            .collect()
    }

    /// The elements of a carried tuple with `state_len` state entries and the inputs of a step
    /// of `mode`.
    fn unpack(
        b: &mut Builder,
        tuple: Value,
        state_len: usize,
        mode: &InputMode,
    ) -> Result<LoopCarry> {
        let len = state_len + StepInputs::count(mode) + 4;
        let mut parts = (0..len as i64)
            .map(|j| b.get_tuple_element(tuple, j))
            .collect::<Result<Vec<_>>>()?
            .into_iter();
        let mut next = || parts.next().expect("the carry has all its elements");
        Ok(LoopCarry {
            counter: next(),
            steps: next(),
            state: (0..state_len).map(|_| next()).collect(),
            inputs: StepInputs::from_values(mode, &mut next),
            losses: next(),
            corrects: next(),
        })
    }
}

/// Randomness for a data-parallel step. Each replica draws from the key with its replica index
/// folded into both words (`(index + 1) * 0x9E3779B97F4A7C15`, so streams are distinct per
/// replica yet deterministic), while the key carried to the next step advances from the
/// unfolded key, identically on every replica.
fn replica_rng(b: &mut Builder, key: Value) -> Result<(Rng, Value)> {
    let key_shape = ArrayShape::new(ElementType::U64, &[2]);
    let advanced = b.rng_bit_generator(RandomAlgorithm::ThreeFry, key, &key_shape)?;
    let next = b.get_tuple_element(advanced, 0)?;
    let index = b.replica_id()?;
    let index = b.convert(index, ElementType::U64)?;
    let one = b.scalar(1u64)?;
    let index = b.add(index, one)?;
    let golden = b.scalar(0x9E37_79B9_7F4A_7C15u64)?;
    let fold = b.mul(index, golden)?;
    let fold = b.broadcast_in_dim(fold, &[2], &[])?;
    let folded = b.xor(key, fold)?;
    Ok((Rng::new(folded), next))
}

/// `steps` (at most `steps_per_call`) steps in a `while` loop over the stacked inputs; returns
/// the final state, the losses `[K]` and the correct counts `[K]` (zero for slots not run).
fn emit_step_loop(
    b: &mut Builder,
    model: &Model,
    cfg: &StepConfig,
    layout: &StateLayout,
    state: &[Value],
    inputs: &StepInputs,
    steps: Value,
) -> Result<(Vec<Value>, Value, Value)> {
    let k = cfg.steps_per_call;
    // Clamped to 1..=K, so that no input can index past the stacked batches.
    let one = b.scalar(1i32)?;
    let most = b.scalar(k as i32)?;
    let steps = b.clamp(one, steps, most)?;
    let init = LoopCarry {
        counter: b.scalar(0i32)?,
        steps,
        state: state.to_vec(),
        inputs: *inputs,
        losses: b.full(&ArrayShape::new(ElementType::F32, &[k]), 0.0)?,
        corrects: b.full(&ArrayShape::new(ElementType::S32, &[k]), 0.0)?,
    };
    let init = b.tuple(&init.values())?;
    let loop_shape = b.shape(init).clone();

    let mut cond = Builder::new("steps_left");
    let t = cond.parameter(0, loop_shape.clone(), "loop")?;
    let carry = LoopCarry::unpack(&mut cond, t, state.len(), &cfg.input)?;
    let more = cond.compare(ComparisonDirection::Lt, carry.counter, carry.steps)?;
    let cond = cond.build(more)?;

    let body = step_loop_body(model, cfg, layout, &loop_shape)?;
    let result = b.while_loop(&cond, &body, init)?;
    let done = LoopCarry::unpack(b, result, state.len(), &cfg.input)?;
    Ok((done.state, done.losses, done.corrects))
}

fn step_loop_body(
    model: &Model,
    cfg: &StepConfig,
    layout: &StateLayout,
    loop_shape: &Shape,
) -> Result<Computation> {
    let mut b = Builder::new("train_step_body");
    let t = b.parameter(0, loop_shape.clone(), "loop")?;
    let carry = LoopCarry::unpack(&mut b, t, layout.len(), &cfg.input)?;
    let i = carry.counter;
    let zero = b.scalar(0i32)?;
    // The step-`i` slice of a `[K, ...]` input, without its leading dimension.
    let at = |b: &mut Builder, v: Value| -> Result<Value> {
        let dims = b.array_shape("train_step", v)?.dims().to_vec();
        let starts: Vec<Value> = std::iter::once(i)
            .chain(std::iter::repeat_n(zero, dims.len() - 1))
            .collect();
        let sizes: Vec<i64> = std::iter::once(1)
            .chain(dims[1..].iter().copied())
            .collect();
        let s = b.dynamic_slice(v, &starts, &sizes)?;
        b.reshape(s, &dims[1..])
    };
    let stacked = &carry.inputs;
    let step = StepInputs {
        images: at(&mut b, stacked.images)?,
        labels: at(&mut b, stacked.labels)?,
        classes: at(&mut b, stacked.classes)?,
        lr: at(&mut b, stacked.lr)?,
        dropout: stacked.dropout,
        augment: match &stacked.augment {
            Some(arrays) => Some(arrays.try_map(|v| at(&mut b, v))?),
            None => None,
        },
        mixing: match &stacked.mixing {
            Some(arrays) => Some(arrays.try_map(|v| at(&mut b, v))?),
            None => None,
        },
    };
    let (new_state, loss, correct) = emit_step(&mut b, model, cfg, layout, &carry.state, &step)?;
    let loss = b.reshape(loss, &[1])?;
    let correct = b.reshape(correct, &[1])?;
    let losses = b.dynamic_update_slice(carry.losses, loss, &[i])?;
    let corrects = b.dynamic_update_slice(carry.corrects, correct, &[i])?;
    let one = b.scalar(1i32)?;
    let next = LoopCarry {
        counter: b.add(i, one)?,
        steps: carry.steps,
        state: new_state,
        inputs: *stacked,
        losses,
        corrects,
    };
    let root = b.tuple(&next.values())?;
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

/// The inference inputs: the model variables (named `ema/<param>`, as the EMA shadows of the
/// state, which is what evaluation normally passes) and a batch of images.
fn inference_inputs(model: &Model, batch: i64, image_size: i64) -> Vec<Port> {
    let c = model.spec.input.channels as i64;
    model
        .params()
        .into_iter()
        .map(|p| {
            let dims: Vec<i64> = p.shape.iter().map(|&d| d as i64).collect();
            Port::new(
                Namespace::Ema.key(&p.name),
                ArrayShape::new(ElementType::F32, &dims),
            )
        })
        .chain([Port::new(
            port::IMAGES,
            ArrayShape::new(ElementType::F32, &[batch, image_size, image_size, c]),
        )])
        .collect()
}

/// The inference forward pass over [`inference_inputs`]: the logits.
fn inference_logits(
    b: &mut Builder,
    model: &Model,
    inputs: &HashMap<String, Value>,
    lowering: Lowering,
) -> Result<Value> {
    let mut weights = Weights::default();
    for p in model.params() {
        weights
            .0
            .insert(p.name.clone(), named(inputs, &Namespace::Ema.key(&p.name)));
    }
    let images = named(inputs, port::IMAGES);
    let out = b.scoped("forward", |b| {
        forward(b, model, &weights, images, lowering, Mode::Eval)
    })?;
    Ok(out.logits)
}

/// The eval step's signature: the model variables and images (see [`inference_inputs`]) and
/// classes; top-1 and top-5 correct counts.
pub fn eval_step_signature(model: &Model, batch: i64, image_size: i64) -> Signature {
    let mut inputs = inference_inputs(model, batch, image_size);
    inputs.push(Port::new(
        port::CLASSES,
        ArrayShape::new(ElementType::S32, &[batch]),
    ));
    let count = ArrayShape::scalar(ElementType::S32);
    Signature::new(
        format!("eval_step_{image_size}px_b{batch}"),
        inputs,
        vec![
            Port::new(port::TOP1, count.clone()),
            Port::new(port::TOP5, count),
        ],
    )
}

/// Builds the eval-step graph: see [`eval_step_signature`]; classes of -1 (batch padding) never
/// count.
pub fn eval_step(
    model: &Model,
    batch: i64,
    image_size: i64,
    lowering: Lowering,
) -> Result<StepGraph> {
    let signature = eval_step_signature(model, batch, image_size);
    let mut b = Builder::new("eval_step");
    let inputs = signature.declare_parameters(&mut b)?;
    let logits = inference_logits(&mut b, model, &inputs, lowering)?;
    let classes = named(&inputs, port::CLASSES);
    let top1 = b.scoped("metrics", |b| count_top_k(b, logits, classes, 1))?;
    let top5 = b.scoped("metrics", |b| count_top_k(b, logits, classes, 5))?;
    let results = HashMap::from([(port::TOP1, top1), (port::TOP5, top5)]);
    one_device_graph(signature, b, &results)
}

/// Builds the predict graph: the model variables and images (see [`inference_inputs`]) in,
/// the logits `[batch, classes]` out.
pub fn predict_step(
    model: &Model,
    batch: i64,
    image_size: i64,
    lowering: Lowering,
) -> Result<StepGraph> {
    let classes = model.spec.num_classes as i64;
    let signature = Signature::new(
        format!("predict_step_{image_size}px_b{batch}"),
        inference_inputs(model, batch, image_size),
        vec![Port::new(
            port::LOGITS,
            ArrayShape::new(ElementType::F32, &[batch, classes]),
        )],
    );
    let mut b = Builder::new("predict_step");
    let inputs = signature.declare_parameters(&mut b)?;
    let logits = inference_logits(&mut b, model, &inputs, lowering)?;
    let logits = b.convert(logits, ElementType::F32)?;
    let results = HashMap::from([(port::LOGITS, logits)]);
    one_device_graph(signature, b, &results)
}

/// The one-device graph `b` builds, returning `results` as `signature` orders them.
fn one_device_graph(
    signature: Signature,
    mut b: Builder,
    results: &HashMap<&str, Value>,
) -> Result<StepGraph> {
    let root = signature.result_tuple(&mut b, results)?;
    let module = Module::new(signature.graph(), b.build(root)?);
    Ok(StepGraph {
        module,
        signature,
        replicas: 1,
    })
}
