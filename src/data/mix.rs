//! Mixup and CutMix over a batch, as the official `ImageNetInput.mixing` does (spec 6.3).
//!
//! With both alphas positive the first `n / 2` examples get mixup and the rest CutMix; otherwise
//! the whole batch gets whichever is positive. Partners are the same (half-)batch reversed.
//! Quirk kept: the CutMix label weight is the mixed area of the *whole* CutMix half (one scalar),
//! not each example's own box area.

use std::ops::Range;

use rand::Rng;
use rand_distr::{Beta, Distribution};

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
/// on entry, soft on exit), and `rngs[i]` is example `i`'s mixing stream.
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

/// Mutable views of a batch with the per-example lengths.
struct Views<'a> {
    images: &'a mut [f32],
    labels: &'a mut [f32],
    pixels: usize,
    classes: usize,
}

impl Views<'_> {
    /// Copies of the images and labels of `range`, so partners read unmixed values.
    fn originals(&self, range: &Range<usize>) -> (Vec<f32>, Vec<f32>) {
        (
            self.images[range.start * self.pixels..range.end * self.pixels].to_vec(),
            self.labels[range.start * self.classes..range.end * self.classes].to_vec(),
        )
    }

    fn mixup<R: Rng>(&mut self, range: Range<usize>, alpha: f32, rngs: &mut [R]) {
        let (images, labels) = self.originals(&range);
        let len = range.len();
        for (k, i) in range.clone().enumerate() {
            let partner = len - 1 - k;
            let w = mixup_weight(alpha, &mut rngs[i]);
            let own = &images[k * self.pixels..][..self.pixels];
            let other = &images[partner * self.pixels..][..self.pixels];
            let out = &mut self.images[i * self.pixels..][..self.pixels];
            for ((o, &a), &b) in out.iter_mut().zip(own).zip(other) {
                *o = a * w + b * (1.0 - w);
            }
            self.mix_labels(i, &labels, (k, w), (partner, 1.0 - w));
        }
    }

    fn cutmix<R: Rng>(&mut self, range: Range<usize>, size: usize, alpha: f32, rngs: &mut [R]) {
        let (images, labels) = self.originals(&range);
        let boxes: Vec<CutBox> = range
            .clone()
            .map(|i| cutmix_box(size, alpha, &mut rngs[i]))
            .collect();
        let pasted: usize = boxes.iter().map(CutBox::area).sum();
        let mix_area = pasted as f32 / (range.len() * size * size) as f32;
        let len = range.len();
        for (k, i) in range.enumerate() {
            let partner = len - 1 - k;
            let b = boxes[k];
            let other = &images[partner * self.pixels..][..self.pixels];
            let out = &mut self.images[i * self.pixels..][..self.pixels];
            for y in b.y0..b.y1 {
                let row = (y * size + b.x0) * 3..(y * size + b.x1) * 3;
                out[row.clone()].copy_from_slice(&other[row]);
            }
            self.mix_labels(i, &labels, (k, 1.0 - mix_area), (partner, mix_area));
        }
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
