//! Assembling one batch: decode and transform its examples on the worker pool, repair unreadable
//! examples, build labels, mix (or, for a step that augments on the device, draw the
//! augmentation and mixing for it).

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use rayon::ThreadPool;
use serde::{Deserialize, Serialize};

use super::decode::LoadedImage;
use super::device_input::{DeviceImages, DeviceMix};
use super::error::{DataError, Result};
use super::mix::{MixConfig, MixPlan};
use super::rng::{stream, Purpose};
use super::source::Source;
use super::transform::{AugmentOn, EvalTransform, Policy, TrainTransform};

/// Where a loader stands: the next example to deliver is number `position` of epoch `epoch`'s
/// order. Store it in a checkpoint and pass it to `Loader::resume`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub epoch: u64,
    pub position: usize,
}

/// An example that could not be read or decoded and was left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedImage {
    /// Index in the source.
    pub index: usize,
    /// The error, naming the file.
    pub reason: String,
}

/// One batch in the layout the train step takes.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Images `[len, image_size, image_size, 3]`.
    pub images: BatchImages,
    /// Soft labels `[len, num_classes]` (one-hot unless mixed); each row sums to 1.
    pub soft_labels: Vec<f32>,
    /// Class of each example before mixing (S32 for the accuracy computation).
    pub labels: Vec<i32>,
    /// Source index of each example.
    pub indices: Vec<usize>,
    /// Side of the images.
    pub image_size: usize,
    /// Width of a soft-label row.
    pub num_classes: usize,
    /// Epoch this batch belongs to.
    pub epoch: u64,
    /// Position in the epoch's order of the batch's first example.
    pub position: usize,
    /// Examples of this batch that were unreadable. In training their slots hold a copy of
    /// another example of the batch (so the batch keeps its size); in evaluation they are left
    /// out (so no image counts twice).
    pub skipped: Vec<SkippedImage>,
    /// Whether this is the last batch of its epoch.
    pub end_of_epoch: bool,
    /// Where the batch after this one starts: the cursor to checkpoint with the step that
    /// consumed this batch.
    pub next: Cursor,
}

/// A batch's images, in the form its step takes them ([`AugmentOn`]).
#[derive(Clone, Debug, PartialEq)]
pub enum BatchImages {
    /// `f32` NHWC, normalised as the model's spec says, augmented and mixed: every evaluation
    /// batch, and training batches augmented on the host.
    Normalised(Vec<f32>),
    /// `u8` images with their drawn augmentation and mixing, for a step that applies them
    /// (boxed: the variant's arrays are many, the enum stays small).
    Device(Box<DeviceImages>),
}

impl BatchImages {
    /// The normalised images; `None` for device inputs.
    pub fn normalised(&self) -> Option<&[f32]> {
        match self {
            BatchImages::Normalised(images) => Some(images),
            BatchImages::Device(_) => None,
        }
    }

    /// The normalised images, to change; `None` for device inputs.
    pub fn normalised_mut(&mut self) -> Option<&mut Vec<f32>> {
        match self {
            BatchImages::Normalised(images) => Some(images),
            BatchImages::Device(_) => None,
        }
    }

    /// The device inputs; `None` for normalised images.
    pub fn device(&self) -> Option<&DeviceImages> {
        match self {
            BatchImages::Normalised(_) => None,
            BatchImages::Device(images) => Some(images),
        }
    }
}

impl Batch {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch holds no example (only possible in evaluation when all were unreadable).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image tensor dimensions `[len, size, size, 3]`.
    pub fn image_dims(&self) -> [usize; 4] {
        [self.len(), self.image_size, self.image_size, 3]
    }
}

/// What the examples of a batch go through.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Recipe {
    Train {
        transform: TrainTransform,
        mix: MixConfig,
        /// Checked by the loader: [`TrainTransform::check_device`] passes for `Device`.
        on: AugmentOn,
    },
    Eval(EvalTransform),
}

impl Recipe {
    pub(crate) fn image_size(&self) -> usize {
        match self {
            Recipe::Train { transform, .. } => transform.image_size,
            Recipe::Eval(transform) => transform.image_size,
        }
    }
}

/// Where in the data a batch sits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    pub epoch: u64,
    pub position: usize,
    pub end_of_epoch: bool,
    pub next: Cursor,
}

/// Builds the batch of `indices` (source indices in batch order), made of `groups` equal
/// consecutive parts that are repaired and mixed each on its own (the shares of data-parallel
/// replicas, as the official TPU input mixes per core). Examples are processed in parallel on
/// `pool`; `stop` lets a cancelled batch finish early (its content is then garbage and must be
/// dropped by the caller).
#[allow(clippy::too_many_arguments)]
pub(crate) fn assemble(
    source: &dyn Source,
    recipe: Recipe,
    seed: u64,
    slot: Slot,
    indices: &[usize],
    groups: usize,
    pool: &ThreadPool,
    stop: &AtomicBool,
) -> Result<Batch> {
    debug_assert!(groups > 0 && indices.len().is_multiple_of(groups));
    let group = indices.len() / groups;
    let size = recipe.image_size();
    let pixels = size * size * 3;
    let augment_stream = |index: usize| stream(seed, slot.epoch, index as u64, Purpose::Augment);
    let mut indices = indices.to_vec();
    let (images, failed) = match recipe {
        Recipe::Train {
            transform,
            on: AugmentOn::Device,
            ..
        } => {
            let mut quantized = vec![0u8; indices.len() * pixels];
            let mut ops = vec![Vec::new(); indices.len()];
            let slots = quantized.par_chunks_mut(pixels).zip(ops.par_iter_mut());
            let failed = load_each(source, &indices, slots, pool, stop, |image, index, slot| {
                let drawn = transform.draw_loaded(image, &mut augment_stream(index))?;
                slot.0.copy_from_slice(drawn.image.as_raw());
                *slot.1 = drawn.ops;
                Ok(())
            });
            let repair = repair(&failed, group, slot)?;
            for &(to, from) in &repair {
                quantized.copy_within(from * pixels..(from + 1) * pixels, to * pixels);
                ops[to] = ops[from].clone();
                indices[to] = indices[from];
            }
            let layers = match transform.policy {
                Policy::RandAugment { layers } => layers,
                Policy::AutoAugmentV0 => 0,
            };
            let device = DeviceImages::new(quantized, ops, layers, size);
            (BatchImages::Device(Box::new(device)), failed)
        }
        Recipe::Train { transform, .. } => {
            let mut images = vec![0f32; indices.len() * pixels];
            let slots = images.par_chunks_mut(pixels);
            let failed = load_each(source, &indices, slots, pool, stop, |image, index, out| {
                transform.apply_loaded(image, &mut augment_stream(index), out)
            });
            for (to, from) in repair(&failed, group, slot)? {
                images.copy_within(from * pixels..(from + 1) * pixels, to * pixels);
                indices[to] = indices[from];
            }
            (BatchImages::Normalised(images), failed)
        }
        Recipe::Eval(transform) => {
            let mut images = vec![0f32; indices.len() * pixels];
            let slots = images.par_chunks_mut(pixels);
            let failed = load_each(source, &indices, slots, pool, stop, |image, _, out| {
                transform.apply(&image.decode()?, out);
                Ok(())
            });
            let failures: Vec<bool> = failed.iter().map(Option::is_some).collect();
            drop_failed(&mut images, &mut indices, &failures, pixels);
            (BatchImages::Normalised(images), failed)
        }
    };
    let mut images = images;
    let skipped: Vec<SkippedImage> = failed.into_iter().flatten().collect();
    let num_classes = source.num_classes();
    let labels: Vec<i32> = indices.iter().map(|&i| source.label(i) as i32).collect();
    let mut soft_labels = vec![0f32; labels.len() * num_classes];
    for (row, &label) in soft_labels.chunks_exact_mut(num_classes).zip(&labels) {
        row[label as usize] = 1.0;
    }
    if let Recipe::Train { mix, .. } = recipe {
        if mix.is_active() {
            let plans: Vec<MixPlan> = indices
                .chunks(group)
                .map(|part| {
                    let mut rngs: Vec<_> = part
                        .iter()
                        .map(|&i| stream(seed, slot.epoch, i as u64, Purpose::Mix))
                        .collect();
                    MixPlan::draw(size, mix, &mut rngs)
                })
                .collect();
            for (plan, labels) in plans
                .iter()
                .zip(soft_labels.chunks_mut(group * num_classes))
            {
                plan.mix_labels(labels);
            }
            match &mut images {
                // Inside the pool: the partners of a part are mixed in parallel by the workers.
                BatchImages::Normalised(images) => pool.install(|| {
                    for (plan, images) in plans.iter().zip(images.chunks_mut(group * pixels)) {
                        plan.mix_images(images);
                    }
                }),
                BatchImages::Device(device) => device.mix = DeviceMix::of_parts(&plans),
            }
        }
    }
    Ok(Batch {
        images,
        soft_labels,
        labels,
        indices,
        image_size: size,
        num_classes,
        epoch: slot.epoch,
        position: slot.position,
        skipped,
        end_of_epoch: slot.end_of_epoch,
        next: slot.next,
    })
}

/// Reads the examples of `indices` and hands each, not yet decoded, with its output slot (of
/// `slots`, in the same order) and source index to `work`, which decodes what it needs, in
/// parallel on `pool`. Returns, per slot, the failure (of the read or of `work`) that left it
/// unwritten.
fn load_each<S: Send>(
    source: &dyn Source,
    indices: &[usize],
    slots: impl IndexedParallelIterator<Item = S>,
    pool: &ThreadPool,
    stop: &AtomicBool,
    work: impl Fn(LoadedImage, usize, S) -> Result<()> + Sync,
) -> Vec<Option<SkippedImage>> {
    pool.install(|| {
        slots
            .zip(indices.par_iter())
            .map(|(slot, &index)| {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                match source
                    .read(index)
                    .and_then(|image| work(image, index, slot))
                {
                    Ok(()) => None,
                    Err(e) => Some(SkippedImage {
                        index,
                        reason: e.to_string(),
                    }),
                }
            })
            .collect()
    })
}

/// How a training batch of parts of `group` examples replaces its `failed` slots: each by the
/// next good slot of its part (cyclically), as `(slot, donor)` pairs. Fails when a part has no
/// good slot.
fn repair(
    failed: &[Option<SkippedImage>],
    group: usize,
    slot: Slot,
) -> Result<Vec<(usize, usize)>> {
    let empty = || DataError::EmptyBatch {
        epoch: slot.epoch,
        position: slot.position,
        first: failed
            .iter()
            .flatten()
            .next()
            .map_or_else(String::new, |f| f.reason.clone()),
    };
    let mut pairs = Vec::new();
    for (part, failed) in failed.chunks(group).enumerate() {
        let n = failed.len();
        for bad in (0..n).filter(|&s| failed[s].is_some()) {
            let donor = (1..n)
                .map(|d| (bad + d) % n)
                .find(|&d| failed[d].is_none())
                .ok_or_else(empty)?;
            pairs.push((part * group + bad, part * group + donor));
        }
    }
    Ok(pairs)
}

/// Removes the failed slots, keeping the order of the others.
fn drop_failed(images: &mut Vec<f32>, indices: &mut Vec<usize>, failed: &[bool], pixels: usize) {
    let mut kept = 0;
    for slot in 0..failed.len() {
        if !failed[slot] {
            images.copy_within(slot * pixels..(slot + 1) * pixels, kept * pixels);
            indices[kept] = indices[slot];
            kept += 1;
        }
    }
    images.truncate(kept * pixels);
    indices.truncate(kept);
}
