//! Mixup and CutMix over a batch, as the official `ImageNetInput.mixing` does (spec 6.3).
//!
//! With both alphas positive the first `n / 2` examples get mixup and the rest CutMix; otherwise
//! the whole batch gets whichever is positive. Partners are the same (half-)batch reversed.
//! The draws form a [`MixPlan`], which the host applies ([`mix_batch`]) or hands to a step that
//! mixes on the device.
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
    /// The box of no pixel.
    pub const EMPTY: CutBox = CutBox {
        x0: 0,
        y0: 0,
        x1: 0,
        y1: 0,
    };

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
    if rngs.is_empty() || !config.is_active() {
        return;
    }
    let plan = MixPlan::draw(size, config, rngs);
    plan.mix_labels(labels);
    plan.mix_images(images);
}

/// How the examples of a batch (or of one replica's share) mix, drawn from their mixing streams:
/// with both alphas positive the first `n / 2` examples get mixup and the rest CutMix, else the
/// whole batch the one that is positive; partners are the same (half-)batch reversed.
///
/// Example `k`'s image becomes its partner's inside `paste[k]`, and
/// `own * weight[k] + partner * (1 - weight[k])` elsewhere: mixup examples have an empty box and
/// their drawn weight, CutMix examples weight 1 and their box, unmixed ones (mixing off) weight
/// 1 and no box. Its label becomes `own * label_weights[k].0 + partner * label_weights[k].1`.
#[derive(Clone, Debug, PartialEq)]
pub struct MixPlan {
    /// Side of the images.
    pub size: usize,
    /// Each example's partner, an index among the plan's examples.
    pub partner: Vec<usize>,
    pub weight: Vec<f32>,
    pub paste: Vec<CutBox>,
    pub label_weights: Vec<(f32, f32)>,
}

impl MixPlan {
    /// The plan that mixes nothing.
    fn identity(examples: usize, size: usize) -> MixPlan {
        MixPlan {
            size,
            partner: (0..examples).collect(),
            weight: vec![1.0; examples],
            paste: vec![CutBox::EMPTY; examples],
            label_weights: vec![(1.0, 0.0); examples],
        }
    }

    /// The plan of `rngs.len()` examples of `size` x `size` under `config`, `rngs[i]` being
    /// example `i`'s mixing stream: each example draws its mixup weight or its CutMix box.
    pub fn draw<R: Rng>(size: usize, config: MixConfig, rngs: &mut [R]) -> MixPlan {
        let n = rngs.len();
        let mut plan = MixPlan::identity(n, size);
        match (config.mixup > 0.0, config.cutmix > 0.0) {
            (true, true) => {
                let half = n / 2;
                plan.mixup(0..half, config.mixup, rngs);
                plan.cutmix(half..n, config.cutmix, rngs);
            }
            (true, false) => plan.mixup(0..n, config.mixup, rngs),
            (false, true) => plan.cutmix(0..n, config.cutmix, rngs),
            (false, false) => {}
        }
        plan
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.partner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.partner.is_empty()
    }

    /// Pairs each example of `range` with its mirror in the range.
    fn pair_within(&mut self, range: &Range<usize>) {
        for (k, i) in range.clone().enumerate() {
            self.partner[i] = range.end - 1 - k;
        }
    }

    fn mixup<R: Rng>(&mut self, range: Range<usize>, alpha: f32, rngs: &mut [R]) {
        self.pair_within(&range);
        for i in range {
            let w = mixup_weight(alpha, &mut rngs[i]);
            self.weight[i] = w;
            self.label_weights[i] = (w, 1.0 - w);
        }
    }

    fn cutmix<R: Rng>(&mut self, range: Range<usize>, alpha: f32, rngs: &mut [R]) {
        self.pair_within(&range);
        for i in range.clone() {
            self.paste[i] = cutmix_box(self.size, alpha, &mut rngs[i]);
        }
        let pasted: usize = self.paste[range.clone()].iter().map(CutBox::area).sum();
        let mix_area = pasted as f32 / (range.len() * self.size * self.size) as f32;
        for i in range {
            self.label_weights[i] = (1.0 - mix_area, mix_area);
        }
    }

    /// Mixes `labels` (`[n, classes]`) as planned, each from the unmixed rows.
    pub fn mix_labels(&self, labels: &mut [f32]) {
        let classes = labels.len() / self.len().max(1);
        let originals = labels.to_vec();
        let row = |i: usize| &originals[i * classes..][..classes];
        for (i, out) in labels.chunks_exact_mut(classes).enumerate() {
            let (w_own, w_partner) = self.label_weights[i];
            for ((o, &a), &b) in out.iter_mut().zip(row(i)).zip(row(self.partner[i])) {
                *o = a * w_own + b * w_partner;
            }
        }
    }

    /// Mixes `images` (`[n, size, size, 3]`) in place as planned, on the current rayon pool:
    /// partners are pairs (each is the other's partner), so the pairs are disjoint and are
    /// mixed in parallel, both images read before either is written.
    pub fn mix_images(&self, images: &mut [f32]) {
        let pixels = self.size * self.size * 3;
        let mut slots: Vec<Option<&mut [f32]>> = images.chunks_mut(pixels).map(Some).collect();
        let mut pairs = Vec::new();
        for k in 0..slots.len() {
            let p = self.partner[k];
            if p < k {
                continue;
            }
            let own = slots[k].take().expect("each example is in one pair");
            let other = (p != k).then(|| slots[p].take().expect("partners are pairs"));
            pairs.push((k, own, other));
        }
        pairs
            .into_par_iter()
            .for_each(|(k, own, other)| match other {
                Some(other) => self.mix_pair((k, own), (self.partner[k], other)),
                None => self.mix_alone(k, own),
            });
    }

    /// Example `k` and its partner `p` mixed with each other.
    fn mix_pair(&self, (k, own): (usize, &mut [f32]), (p, other): (usize, &mut [f32])) {
        let size = self.size;
        let into_own = self.paste[k]
            .rows(size)
            .map(|row| other[row].to_vec())
            .collect::<Vec<_>>();
        let into_other = self.paste[p]
            .rows(size)
            .map(|row| own[row].to_vec())
            .collect::<Vec<_>>();
        let (w_own, w_other) = (self.weight[k], self.weight[p]);
        if w_own != 1.0 || w_other != 1.0 {
            for (a, b) in own.iter_mut().zip(other.iter_mut()) {
                let (original_a, original_b) = (*a, *b);
                *a = original_a * w_own + original_b * (1.0 - w_own);
                *b = original_b * w_other + original_a * (1.0 - w_other);
            }
        }
        for (row, values) in self.paste[k].rows(size).zip(into_own) {
            own[row].copy_from_slice(&values);
        }
        for (row, values) in self.paste[p].rows(size).zip(into_other) {
            other[row].copy_from_slice(&values);
        }
    }

    /// Example `k`, its own partner (the middle of an odd range): its pasted box is its own.
    fn mix_alone(&self, k: usize, image: &mut [f32]) {
        let w = self.weight[k];
        if w != 1.0 {
            for v in image {
                *v = *v * w + *v * (1.0 - w);
            }
        }
    }
}

impl CutBox {
    /// The value ranges of the box's rows in a row-major `[size, size, 3]` image.
    fn rows(self, size: usize) -> impl Iterator<Item = Range<usize>> {
        (self.y0..self.y1).map(move |y| (y * size + self.x0) * 3..(y * size + self.x1) * 3)
    }
}
