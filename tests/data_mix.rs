//! Mixup / CutMix of spec 6.3: label mass, partners, halves and the batch-level CutMix weight.

use effnetv2::data::mix::{cutmix_box, mix_batch, mixup_weight, MixConfig};
use effnetv2::data::rng::{stream, Purpose};
use rand_chacha::ChaCha8Rng;

const SIZE: usize = 6;
const CLASSES: usize = 5;
const PIXELS: usize = SIZE * SIZE * 3;

/// Batch of `n` images where image `i` is filled with the value `i`, labelled class `i % 5`.
fn batch(n: usize) -> (Vec<f32>, Vec<f32>) {
    let images = (0..n).flat_map(|i| vec![i as f32; PIXELS]).collect();
    let mut labels = vec![0f32; n * CLASSES];
    for i in 0..n {
        labels[i * CLASSES + i % CLASSES] = 1.0;
    }
    (images, labels)
}

fn rngs(n: usize, seed: u64) -> Vec<ChaCha8Rng> {
    (0..n as u64)
        .map(|i| stream(seed, 0, i, Purpose::Mix))
        .collect()
}

#[test]
fn label_mass_sums_to_one_per_example() {
    for (mixup, cutmix) in [(0.2, 0.0), (0.0, 0.2), (0.5, 0.5), (1.0, 0.3)] {
        for n in [1, 2, 7, 8] {
            for seed in 0..20 {
                let (mut images, mut labels) = batch(n);
                mix_batch(
                    &mut images,
                    &mut labels,
                    SIZE,
                    MixConfig { mixup, cutmix },
                    &mut rngs(n, seed),
                );
                for row in labels.chunks(CLASSES) {
                    let mass: f32 = row.iter().sum();
                    assert!(
                        (mass - 1.0).abs() < 1e-6,
                        "mass {mass} for {mixup}/{cutmix} n={n}"
                    );
                    assert!(row.iter().all(|&v| (0.0..=1.0).contains(&v)));
                }
            }
        }
    }
}

#[test]
fn mixup_blends_with_the_reversed_batch_and_keeps_the_larger_weight() {
    let n = 4; // even, and every example has its own class, so no weights merge
    let (mut images, mut labels) = batch(n);
    let config = MixConfig {
        mixup: 0.4,
        cutmix: 0.0,
    };
    mix_batch(&mut images, &mut labels, SIZE, config, &mut rngs(n, 3));
    for i in 0..n {
        let partner = n - 1 - i;
        let v = images[i * PIXELS];
        assert!(images[i * PIXELS..(i + 1) * PIXELS].iter().all(|&p| p == v));
        // v = w i + (1 - w) partner with w >= 0.5, and the label carries the same w.
        let w = (v - partner as f32) / (i as f32 - partner as f32);
        assert!((0.5..=1.0).contains(&w), "weight {w}");
        let own = labels[i * CLASSES + i % CLASSES];
        assert!(
            (own - w).abs() < 1e-5,
            "label weight {own} vs image weight {w}"
        );
    }
}

#[test]
fn cutmix_pastes_partner_boxes_and_weights_labels_by_the_batch_area() {
    let n = 4;
    let (mut images, mut labels) = batch(n);
    mix_batch(
        &mut images,
        &mut labels,
        SIZE,
        MixConfig {
            mixup: 0.0,
            cutmix: 1.0,
        },
        &mut rngs(n, 8),
    );
    let mut pasted = 0;
    for i in 0..n {
        let partner = (n - 1 - i) as f32;
        let pixels = &images[i * PIXELS..(i + 1) * PIXELS];
        assert!(pixels.iter().all(|&p| p == i as f32 || p == partner));
        pasted += pixels.iter().filter(|&&p| p == partner).count() / 3;
    }
    // Quirk: one mixed area for the whole batch, so every example gets the same partner weight.
    let mix_area = pasted as f32 / (n * SIZE * SIZE) as f32;
    for i in 0..n {
        let partner_class = (n - 1 - i) % CLASSES;
        assert!((labels[i * CLASSES + partner_class] - mix_area).abs() < 1e-6);
    }
}

#[test]
fn both_alphas_split_the_batch_in_halves() {
    let n = 8;
    let (mut images, mut labels) = batch(n);
    mix_batch(
        &mut images,
        &mut labels,
        SIZE,
        MixConfig {
            mixup: 0.5,
            cutmix: 0.5,
        },
        &mut rngs(n, 4),
    );
    // First half (0..4): mixup with partners 3 - i, constant images with values between i and
    // the partner. Second half (4..8): cutmix with partners 11 - i, values from {i, partner}.
    for i in 0..4 {
        let (lo, hi) = (i.min(3 - i) as f32, i.max(3 - i) as f32);
        let v = images[i * PIXELS];
        assert!(
            (lo..=hi).contains(&v) && images[i * PIXELS..(i + 1) * PIXELS].iter().all(|&p| p == v)
        );
    }
    for i in 4..8 {
        let partner = (11 - i) as f32;
        assert!(images[i * PIXELS..(i + 1) * PIXELS]
            .iter()
            .all(|&p| p == i as f32 || p == partner));
    }
}

#[test]
fn cutmix_boxes_follow_the_official_geometry() {
    // Box half-extents are int(sqrt(1 - area) * size) // 2 around a centre in [0, size); the box
    // is clipped, so its sides never exceed 2 * (size // 2) and it stays inside the image.
    let size = 9;
    for i in 0..2000 {
        let b = cutmix_box(size, 1.0, &mut stream(1, 0, i, Purpose::Mix));
        assert!(
            b.x0 <= b.x1 && b.x1 <= size && b.y0 <= b.y1 && b.y1 <= size,
            "{b:?}"
        );
        assert!(b.x1 - b.x0 <= 8 && b.y1 - b.y0 <= 8, "{b:?}");
    }
}

#[test]
fn inactive_config_leaves_the_batch_alone() {
    let (mut images, mut labels) = batch(4);
    let (before_images, before_labels) = (images.clone(), labels.clone());
    mix_batch(
        &mut images,
        &mut labels,
        SIZE,
        MixConfig {
            mixup: 0.0,
            cutmix: 0.0,
        },
        &mut rngs(4, 1),
    );
    assert_eq!((images, labels), (before_images, before_labels));
    assert!(MixConfig {
        mixup: -1.0,
        cutmix: 0.0
    }
    .validate()
    .is_err());
    assert!(MixConfig {
        mixup: 0.0,
        cutmix: f32::NAN
    }
    .validate()
    .is_err());
}

/// The mixing written one example at a time from the definition, reading unmixed copies:
/// mixup `own * w + partner * (1 - w)` with `w = mixup_weight`, CutMix the partner's pixels
/// inside the example's own `cutmix_box`.
fn reference_mix(images: &[f32], n: usize, config: MixConfig, rngs: &mut [ChaCha8Rng]) -> Vec<f32> {
    let mut out = images.to_vec();
    let (mixup, cutmix) = match (config.mixup > 0.0, config.cutmix > 0.0) {
        (true, true) => (0..n / 2, n / 2..n),
        (true, false) => (0..n, n..n),
        (false, true) => (0..0, 0..n),
        (false, false) => (0..0, 0..0),
    };
    for range in [mixup.clone(), cutmix.clone()] {
        for i in range.clone() {
            let partner = range.start + range.end - 1 - i;
            let (own, other) = (
                &images[i * PIXELS..][..PIXELS],
                &images[partner * PIXELS..][..PIXELS],
            );
            let target = &mut out[i * PIXELS..][..PIXELS];
            if mixup.contains(&i) {
                let w = mixup_weight(config.mixup, &mut rngs[i]);
                for ((o, &a), &b) in target.iter_mut().zip(own).zip(other) {
                    *o = a * w + b * (1.0 - w);
                }
            } else {
                let b = cutmix_box(SIZE, config.cutmix, &mut rngs[i]);
                for y in b.y0..b.y1 {
                    let row = (y * SIZE + b.x0) * 3..(y * SIZE + b.x1) * 3;
                    target[row.clone()].copy_from_slice(&other[row]);
                }
            }
        }
    }
    out
}

/// Partners are mixed pairwise in place and in parallel; the images must equal the
/// one-example-at-a-time definition exactly, for even and odd (half-)batches, with boxes that
/// overlap their partner's.
#[test]
fn parallel_in_place_mixing_equals_the_definition_exactly() {
    for (mixup, cutmix) in [(0.2, 0.0), (0.0, 1.0), (0.5, 0.5)] {
        for n in [1, 2, 5, 7, 8, 9] {
            for seed in 0..10 {
                let config = MixConfig { mixup, cutmix };
                let images: Vec<f32> = (0..n * PIXELS).map(|v| (v * 7919 % 1000) as f32).collect();
                let expected = reference_mix(&images, n, config, &mut rngs(n, seed));
                let (mut mixed, mut labels) = (images, batch(n).1);
                mix_batch(&mut mixed, &mut labels, SIZE, config, &mut rngs(n, seed));
                assert!(mixed == expected, "{mixup}/{cutmix} n={n} seed={seed}");
            }
        }
    }
}
