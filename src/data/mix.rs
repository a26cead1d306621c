//! Mixup and CutMix over a batch, as the official `ImageNetInput.mixing` does (spec 6.3).
//!
//! With both alphas positive the first `n / 2` examples get mixup and the rest CutMix; otherwise
//! the whole batch gets whichever is positive. Partners are the same (half-)batch reversed.
//! Quirk kept: the CutMix label weight is the mixed area of the *whole* CutMix half (one scalar),
//! not each example's own box area.

use std::ops::Range;

use rand::Rng;
use rand_distr::{Beta, Distribution};
use rayon::prelude::*;

use super::error::{DataError, Result};

/// Mixing strengths; 0 disables a method.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MixConfig {
    /// Beta(α, α) parameter of mixup.
    pub mixup: f32,
    /// Beta(α, α) parameter of CutMix.
    pub cutmix: f32,
}

impl MixConfig {
    /// Checks that both alphas are finite and non-negative.
    pub fn validate(&self) -> Result<()> {
        for (name, alpha) in [("mixup", self.mixup), ("cutmix", self.cutmix)] {
            if !alpha.is_finite() || alpha < 0.0 {
                return Err(DataError::Config(format!(
                    "{name} alpha must be a finite number >= 0, got {alpha}"
                )));
            }
        }
        Ok(())
    }

    /// Whether any mixing happens.
    pub fn is_active(&self) -> bool {
        self.mixup > 0.0 || self.cutmix > 0.0
    }
}

/// A pasted rectangle: rows `y0..y1`, columns `x0..x1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CutBox {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

impl CutBox {
    /// Number of pixels inside.
    pub fn area(&self) -> usize {
        (self.x1 - self.x0) * (self.y1 - self.y0)
    }
}

/// A Beta(α, α) draw; `alpha` must be positive (checked by [`MixConfig::validate`]).
fn beta(alpha: f32, rng: &mut impl Rng) -> f32 {
    Beta::new(alpha, alpha)
        .expect("alpha was validated positive")
        .sample(rng)
}

/// The mixup weight of one example: `w ~ Beta(α, α)`, then `max(w, 1 - w)` so the example itself
/// dominates.
pub fn mixup_weight(alpha: f32, rng: &mut impl Rng) -> f32 {
    let w = beta(alpha, rng);
    w.max(1.0 - w)
}

/// The CutMix box of one `size` x `size` example: a uniform centre, `area ~ Beta(α, α)`, sides
/// `int(sqrt(1 - area) * size)`, half-extents rounded down, clipped to the image.
pub fn cutmix_box(size: usize, alpha: f32, rng: &mut impl Rng) -> CutBox {
    let cx = rng.gen_range(0..size) as i64;
    let cy = rng.gen_range(0..size) as i64;
    let ratio = (1.0 - beta(alpha, rng)).sqrt();
    let half = (ratio * size as f32) as i64 / 2;
    let clip = |v: i64| v.clamp(0, size as i64) as usize;
    CutBox {
        x0: clip(cx - half),
        y0: clip(cy - half),
        x1: clip(cx + half),
        y1: clip(cy + half),
    }
}

/// Mixes a batch in place. `images` is `[n, size, size, 3]`, `labels` is `[n, classes]` (one-hot
/// on entry, soft on exit), and `rngs[i]` is example `i`'s mixing stream. Pairs of
/// partners are mixed in parallel on the current rayon pool (the global one outside the loader).
pub fn mix_batch<R: Rng>(
    images: &mut [f32],
    labels: &mut [f32],
    size: usize,
    config: MixConfig,
    rngs: &mut [R],
) {
    let n = rngs.len();
    if n == 0 {
        return;
    }
    let classes = labels.len() / n;
    let mut batch = Views {
        images,
        labels,
        pixels: size * size * 3,
        classes,
    };
    match (config.mixup > 0.0, config.cutmix > 0.0) {
        (true, true) => {
            let half = n / 2;
            batch.mixup(0..half, config.mixup, rngs);
            batch.cutmix(half..n, size, config.cutmix, rngs);
        }
        (true, false) => batch.mixup(0..n, config.mixup, rngs),
        (false, true) => batch.cutmix(0..n, size, config.cutmix, rngs),
        (false, false) => {}
    }
}

/// The images of example `k` and of its partner `n - 1 - k`.
type Pair<'a> = (&'a mut [f32], &'a mut [f32]);

/// Mutable views of a batch with the per-example lengths.
struct Views<'a> {
    images: &'a mut [f32],
    labels: &'a mut [f32],
    pixels: usize,
    classes: usize,
}

impl Views<'_> {
    /// The images of `range` as pairs of partners `(k, len - 1 - k)` for `k < len / 2`, and the
    /// middle image of an odd-length range (its own partner). The pairs are disjoint, so they are
    /// mixed in place and in parallel (on the current rayon pool: the loader's workers) with the
    /// same arithmetic as one example at a time.
    fn partners(
        &mut self,
        range: &Range<usize>,
    ) -> (
        impl IndexedParallelIterator<Item = (usize, Pair<'_>)>,
        Option<&mut [f32]>,
    ) {
        let pixels = self.pixels;
        let images = &mut self.images[range.start * pixels..range.end * pixels];
        let (front, back) = images.split_at_mut(range.len() / 2 * pixels);
        let (middle, back) = back.split_at_mut(if range.len() % 2 == 1 { pixels } else { 0 });
        let pairs = front
            .par_chunks_mut(pixels)
            .zip(back.par_chunks_mut(pixels).rev())
            .enumerate();
        (pairs, (!middle.is_empty()).then_some(middle))
    }

    /// A copy of the labels of `range`, so partners read unmixed values.
    fn original_labels(&self, range: &Range<usize>) -> Vec<f32> {
        self.labels[range.start * self.classes..range.end * self.classes].to_vec()
    }

    fn mixup<R: Rng>(&mut self, range: Range<usize>, alpha: f32, rngs: &mut [R]) {
        let labels = self.original_labels(&range);
        let weights: Vec<f32> = range
            .clone()
            .map(|i| mixup_weight(alpha, &mut rngs[i]))
            .collect();
        let len = range.len();
        for (k, &w) in weights.iter().enumerate() {
            self.mix_labels(range.start + k, &labels, (k, w), (len - 1 - k, 1.0 - w));
        }
        let (pairs, middle) = self.partners(&range);
        pairs.for_each(|(k, (own, other))| {
            let (w_own, w_other) = (weights[k], weights[len - 1 - k]);
            for (a, b) in own.iter_mut().zip(other.iter_mut()) {
                let (original_a, original_b) = (*a, *b);
                *a = original_a * w_own + original_b * (1.0 - w_own);
                *b = original_b * w_other + original_a * (1.0 - w_other);
            }
        });
        if let Some(middle) = middle {
            let w = weights[len / 2];
            for v in middle {
                *v = *v * w + *v * (1.0 - w);
            }
        }
    }

    fn cutmix<R: Rng>(&mut self, range: Range<usize>, size: usize, alpha: f32, rngs: &mut [R]) {
        let labels = self.original_labels(&range);
        let boxes: Vec<CutBox> = range
            .clone()
            .map(|i| cutmix_box(size, alpha, &mut rngs[i]))
            .collect();
        let pasted: usize = boxes.iter().map(CutBox::area).sum();
        let mix_area = pasted as f32 / (range.len() * size * size) as f32;
        let len = range.len();
        for k in 0..len {
            let own = (k, 1.0 - mix_area);
            self.mix_labels(range.start + k, &labels, own, (len - 1 - k, mix_area));
        }
        // The middle image of an odd range pastes its own pixels: nothing changes.
        let (pairs, _) = self.partners(&range);
        pairs.for_each(|(k, (own, other))| {
            let (own_box, other_box) = (boxes[k], boxes[len - 1 - k]);
            // Both boxes are read from the unmixed images before either is written.
            let into_own = own_box
                .rows(size)
                .map(|row| other[row].to_vec())
                .collect::<Vec<_>>();
            let into_other = other_box
                .rows(size)
                .map(|row| own[row].to_vec())
                .collect::<Vec<_>>();
            for (row, values) in own_box.rows(size).zip(into_own) {
                own[row].copy_from_slice(&values);
            }
            for (row, values) in other_box.rows(size).zip(into_other) {
                other[row].copy_from_slice(&values);
            }
        });
    }

    /// `labels[i] = w_own * labels[own] + w_partner * labels[partner]`, from the unmixed copies.
    fn mix_labels(
        &mut self,
        i: usize,
        originals: &[f32],
        (own, w_own): (usize, f32),
        (partner, w_partner): (usize, f32),
    ) {
        let own = &originals[own * self.classes..][..self.classes];
        let other = &originals[partner * self.classes..][..self.classes];
        let out = &mut self.labels[i * self.classes..][..self.classes];
        for ((o, &a), &b) in out.iter_mut().zip(own).zip(other) {
            *o = a * w_own + b * w_partner;
        }
    }
}

impl CutBox {
    /// The value ranges of the box's rows in a row-major `[size, size, 3]` image.
    fn rows(self, size: usize) -> impl Iterator<Item = Range<usize>> {
        (self.y0..self.y1).map(move |y| (y * size + self.x0) * 3..(y * size + self.x1) * 3)
    }
}
