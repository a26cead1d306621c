//! Assembling one batch: decode and transform its examples on the worker pool, repair unreadable
//! examples, build labels, mix.

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use rayon::ThreadPool;
use serde::{Deserialize, Serialize};

use super::error::{DataError, Result};
use super::mix::{mix_batch, MixConfig};
use super::rng::{stream, Purpose};
use super::source::Source;
use super::transform::{EvalTransform, TrainTransform};

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
    /// Images, f32 NHWC `[len, image_size, image_size, 3]`, normalised as the model's spec says.
    pub images: Vec<f32>,
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
    let mut images = vec![0f32; indices.len() * pixels];
    let failures: Vec<Option<SkippedImage>> = pool.install(|| {
        images
            .par_chunks_mut(pixels)
            .zip(indices.par_iter())
            .map(|(out, &index)| {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                let image = match source.load(index) {
                    Ok(image) => image,
                    Err(e) => {
                        return Some(SkippedImage {
                            index,
                            reason: e.to_string(),
                        })
                    }
                };
                match recipe {
                    Recipe::Train { transform, .. } => {
                        let mut rng = stream(seed, slot.epoch, index as u64, Purpose::Augment);
                        transform.apply(&image, &mut rng, out);
                    }
                    Recipe::Eval(transform) => transform.apply(&image, out),
                }
                None
            })
            .collect()
    });
    let mut indices = indices.to_vec();
    let skipped: Vec<SkippedImage> = failures.iter().flatten().cloned().collect();
    if !skipped.is_empty() {
        let failed: Vec<bool> = failures.iter().map(Option::is_some).collect();
        match recipe {
            Recipe::Train { .. } => images
                .chunks_mut(group * pixels)
                .zip(indices.chunks_mut(group))
                .zip(failed.chunks(group))
                .try_for_each(|((images, indices), failed)| {
                    fill_from_neighbours(images, indices, failed, pixels)
                })
                .ok_or_else(|| DataError::EmptyBatch {
                    epoch: slot.epoch,
                    position: slot.position,
                    first: skipped[0].reason.clone(),
                })?,
            Recipe::Eval(_) => drop_failed(&mut images, &mut indices, &failed, pixels),
        }
    }
    let num_classes = source.num_classes();
    let labels: Vec<i32> = indices.iter().map(|&i| source.label(i) as i32).collect();
    let mut soft_labels = vec![0f32; labels.len() * num_classes];
    for (row, &label) in soft_labels.chunks_exact_mut(num_classes).zip(&labels) {
        row[label as usize] = 1.0;
    }
    if let Recipe::Train { mix, .. } = recipe {
        if mix.is_active() {
            let mut rngs: Vec<_> = indices
                .iter()
                .map(|&i| stream(seed, slot.epoch, i as u64, Purpose::Mix))
                .collect();
            // Inside the pool: the partners of a group are mixed in parallel by the workers.
            pool.install(|| {
                for ((images, labels), rngs) in images
                    .chunks_mut(group * pixels)
                    .zip(soft_labels.chunks_mut(group * num_classes))
                    .zip(rngs.chunks_mut(group))
                {
                    mix_batch(images, labels, size, mix, rngs);
                }
            });
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

/// Gives every failed slot the image and index of the next good slot (cyclically). Returns `None`
/// when no slot is good.
fn fill_from_neighbours(
    images: &mut [f32],
    indices: &mut [usize],
    failed: &[bool],
    pixels: usize,
) -> Option<()> {
    let n = failed.len();
    for slot in (0..n).filter(|&s| failed[s]) {
        let donor = (1..n).map(|d| (slot + d) % n).find(|&d| !failed[d])?;
        images.copy_within(donor * pixels..(donor + 1) * pixels, slot * pixels);
        indices[slot] = indices[donor];
    }
    Some(())
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
