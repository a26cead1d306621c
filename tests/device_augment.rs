//! Device-side augmentation (`nn::augment`) on the CPU plugin against the host path it replaces:
//! each RandAugment operation through the encoded stage chain against `Op::apply` on the same
//! `u8` image (crops of real photos and edge cases), two layers of mixed operations against the
//! host chain, normalisation plus mixup/CutMix against `Normalization::write` and `mix_batch`
//! with the same draws, and the whole train step augmenting on the device against the step fed
//! the host-augmented images.

mod common;
mod data_support;

use common::{module, run1};
use effnetv2::data::mix::{cutmix_box, mix_batch, mixup_weight, MixConfig};
use effnetv2::data::rng::{stream, Purpose};
use effnetv2::data::transform::randaugment::encoded::{EncodedLayers, EncodedOp};
use effnetv2::data::transform::randaugment::{Op, OpKind, PixelConsts};
use effnetv2::data::Normalization;
use effnetv2::hlo::{ElementType, Literal, Shape};
use effnetv2::nn::augment::{self, MixArrays, RandAugmentArrays};
use effnetv2::program::device_state::DeviceState;
use effnetv2::step::graphs::{port, train_step, DeviceAugment, InputMode, Precision, StepConfig};
use effnetv2::step::state::StateLayout;
use effnetv2::trainer::init::initial_state;
use image::RgbImage;
use rand::Rng;

/// RandAugment's official pixel constants.
const RANDAUGMENT: PixelConsts = PixelConsts {
    translate: 100.0,
    cutout: 40.0,
};

/// `w` x `h` crops of the two scikit-learn photos at spread-out places, `count` of them.
fn photo_crops(w: u32, h: u32, count: usize) -> Vec<RgbImage> {
    let dir = data_support::sklearn_images();
    let photos: Vec<RgbImage> = ["china.jpg", "flower.jpg"]
        .iter()
        .map(|name| image::open(dir.join(name)).unwrap().to_rgb8())
        .collect();
    (0..count)
        .map(|i| {
            let photo = &photos[i % 2];
            let x = (i as u32 * 97) % (photo.width() - w);
            let y = (i as u32 * 61) % (photo.height() - h);
            image::imageops::crop_imm(photo, x, y, w, h).to_image()
        })
        .collect()
}

/// Images of one size as a u8 `[B, H, W, 3]` literal.
fn batch_literal(images: &[RgbImage]) -> Literal {
    let (w, h) = images[0].dimensions();
    let bytes: Vec<u8> = images.iter().flat_map(|i| i.as_raw().clone()).collect();
    Literal::from_vec(&[images.len() as i64, h as i64, w as i64, 3], &bytes).unwrap()
}

/// A u8 `[B, H, W, 3]` literal back as images.
fn images_of(literal: &Literal, w: u32, h: u32) -> Vec<RgbImage> {
    let bytes = literal.to_vec::<u8>().unwrap();
    bytes
        .chunks_exact((w * h * 3) as usize)
        .map(|c| RgbImage::from_raw(w, h, c.to_vec()).unwrap())
        .collect()
}

/// The encoded layers' arrays as literals, in `RandAugmentArrays::values` order.
fn layer_literals(layers: &EncodedLayers) -> Vec<Literal> {
    let (l, n) = (layers.layers as i64, layers.examples as i64);
    vec![
        Literal::from_vec(&[l, n, 3, 256], &layers.table).unwrap(),
        Literal::from_vec(&[l, n], &layers.table_source).unwrap(),
        Literal::from_vec(&[l, n], &layers.blend_kind).unwrap(),
        Literal::from_vec(&[l, n], &layers.blend_level).unwrap(),
        Literal::from_vec(&[l, n], &layers.blend_factor).unwrap(),
        Literal::from_vec(&[l, n, 8], &layers.warp).unwrap(),
        Literal::from_vec(&[l, n, 4], &layers.cutout).unwrap(),
    ]
}

/// `ops[l][e]` (layer `l` of example `e`) applied on the device.
fn device_randaugment(images: &[RgbImage], ops: &[Vec<Op>]) -> Vec<RgbImage> {
    let (w, h) = images[0].dimensions();
    let mut layers = EncodedLayers::identity(ops.len(), images.len());
    for (l, layer) in ops.iter().enumerate() {
        for (e, op) in layer.iter().enumerate() {
            layers.set(l, e, &EncodedOp::of(op, w, h));
        }
    }
    let args: Vec<Literal> = std::iter::once(batch_literal(images))
        .chain(layer_literals(&layers))
        .collect();
    let shapes: Vec<Shape> = args
        .iter()
        .map(|a| Shape::Array(a.shape().clone()))
        .collect();
    let m = module("randaugment", &shapes, |b, p| {
        let arrays = RandAugmentArrays::from_values(p[1..8].try_into().unwrap());
        augment::randaugment(b, p[0], &arrays)
    });
    images_of(&run1(&m, &args), w, h)
}

/// The same on the host: `Op::apply` layer by layer.
fn host_randaugment(images: &[RgbImage], ops: &[Vec<Op>]) -> Vec<RgbImage> {
    images
        .iter()
        .enumerate()
        .map(|(e, image)| {
            ops.iter()
                .fold(image.clone(), |image, layer| layer[e].apply(&image))
        })
        .collect()
}

/// Values that differ between `device` and `host`, and the largest difference; panics on a
/// difference above `max_diff` or on more than `max_share` of the values differing.
#[track_caller]
fn compare(what: &str, device: &RgbImage, host: &RgbImage, max_diff: u8, max_share: f64) {
    let (count, worst) = device
        .as_raw()
        .iter()
        .zip(host.as_raw())
        .filter(|(d, h)| d != h)
        .fold((0usize, 0u8), |(n, worst), (d, h)| {
            (n + 1, worst.max(d.abs_diff(*h)))
        });
    let share = count as f64 / host.as_raw().len() as f64;
    assert!(
        worst <= max_diff && share <= max_share,
        "{what}: {count} values differ ({share:.5} of them), by up to {worst}"
    );
}

/// How far the device may be from the host for `op`: table ops, the warp's sampling and the
/// cutout exactly; the blends (and the smoothing and greyscale inside them) by one level on a
/// small share of values, where XLA's CPU backend fuses a multiply and an add into one rounding
/// and a value within an ulp of an integer truncates the other way.
fn tolerance(op: &Op) -> (u8, f64) {
    match op {
        Op::Color { .. } | Op::Contrast { .. } | Op::Brightness { .. } | Op::Sharpness { .. } => {
            (1, 0.02)
        }
        _ => (0, 0.0),
    }
}

/// Every operation at magnitudes 0, 5 and 10, with both signs where it has one.
fn every_op(width: u32, height: u32) -> Vec<Op> {
    let mut rng = stream(7, 0, 0, Purpose::Augment);
    let mut ops = Vec::new();
    for kind in OpKind::ALL {
        for magnitude in [0.0, 5.0, 10.0] {
            // Signs and cutout centres are drawn: eight draws give both signs with probability
            // 127/128 (always the same seeded draws); distinct ones are kept.
            let mut seen = Vec::new();
            for _ in 0..8 {
                let op = kind.resolve(magnitude, RANDAUGMENT, width, height, &mut rng);
                if !seen.contains(&op) && seen.len() < 2 {
                    seen.push(op);
                }
            }
            ops.extend(seen);
        }
    }
    ops
}

#[test]
fn every_operation_on_photos_matches_the_host() {
    let (w, h) = (48, 40);
    let ops = every_op(w, h);
    let images = photo_crops(w, h, ops.len());
    let layers = vec![ops.clone()];
    let device = device_randaugment(&images, &layers);
    let host = host_randaugment(&images, &layers);
    for (e, op) in ops.iter().enumerate() {
        let (max_diff, max_share) = tolerance(op);
        compare(
            &format!("{op:?}"),
            &device[e],
            &host[e],
            max_diff,
            max_share,
        );
    }
}

/// Rotations over the whole circle (on square images; on others up to the 60 degrees the warp
/// supports there), shears and translations up to magnitude 20 and beyond, at angles and
/// offsets that land on half pixels.
fn geometric_ops(square: bool) -> Vec<Op> {
    let mut degrees: Vec<f32> = (-24..=24).map(|i| i as f32 * 7.5).collect();
    degrees.extend([
        0.3, -0.3, 44.9, 45.1, -45.1, 59.9, 60.0, 67.5, 89.9, 135.2, 180.0, -179.0,
    ]);
    let mut ops: Vec<Op> = degrees
        .into_iter()
        .filter(|d| square || d.abs() <= 60.0)
        .map(|degrees| Op::Rotate { degrees })
        .collect();
    for level in [0.05f32, 0.15, 0.25, 0.3, 0.45, 0.6, 0.9] {
        for level in [level, -level] {
            ops.extend([Op::ShearX { level }, Op::ShearY { level }]);
        }
    }
    for pixels in [0.5f32, 1.5, 2.5, 13.3, 50.0, 100.0, 200.0] {
        for pixels in [pixels, -pixels] {
            ops.extend([Op::TranslateX { pixels }, Op::TranslateY { pixels }]);
        }
    }
    ops
}

#[test]
fn geometric_operations_match_the_host_exactly_at_every_angle() {
    for (w, h) in [(33, 33), (48, 40), (29, 52)] {
        let ops = geometric_ops(w == h);
        let images = photo_crops(w, h, ops.len());
        let layers = vec![ops.clone()];
        let device = device_randaugment(&images, &layers);
        let host = host_randaugment(&images, &layers);
        for (e, op) in ops.iter().enumerate() {
            compare(&format!("{op:?} on {w}x{h}"), &device[e], &host[e], 0, 0.0);
        }
    }
}

#[test]
fn value_statistics_of_flat_and_tiny_images_match_the_host() {
    // A flat image, one flat channel, two values only, and a photo crop: AutoContrast and
    // Equalize leave flat channels alone and stretch the others.
    let (w, h) = (5, 4);
    let photo = photo_crops(w, h, 1).remove(0);
    let flat = RgbImage::from_pixel(w, h, image::Rgb([77, 77, 77]));
    let one_flat = RgbImage::from_fn(w, h, |x, y| image::Rgb([9, (x * 40) as u8, (y * 60) as u8]));
    let two_values = RgbImage::from_fn(w, h, |x, _| image::Rgb([if x < 2 { 3 } else { 250 }; 3]));
    let images = [photo, flat, one_flat, two_values];
    for op in [
        Op::AutoContrast,
        Op::Equalize,
        Op::Sharpness { factor: 1.9 },
    ] {
        let layers = vec![vec![op; images.len()]];
        let device = device_randaugment(&images, &layers);
        let host = host_randaugment(&images, &layers);
        for (e, (d, h)) in device.iter().zip(&host).enumerate() {
            let (max_diff, max_share) = tolerance(&op);
            compare(&format!("{op:?} on image {e}"), d, h, max_diff, max_share);
        }
    }
    // Images too small for the smoothing kernel, and a single pixel.
    for (w, h) in [(2, 5), (5, 2), (1, 1)] {
        let ops = every_op(w, h);
        let images = vec![photo_crops(w, h, 1).remove(0); ops.len()];
        let layers = vec![ops.clone()];
        let device = device_randaugment(&images, &layers);
        let host = host_randaugment(&images, &layers);
        for (e, op) in ops.iter().enumerate() {
            let (max_diff, max_share) = tolerance(op);
            let what = format!("{op:?} on {w}x{h}");
            // One value in a tiny image is a large share: allow one value off for blends.
            let max_share = if max_diff > 0 { 1.0 } else { max_share };
            compare(&what, &device[e], &host[e], max_diff, max_share);
        }
    }
}

#[test]
fn two_layers_of_drawn_operations_match_the_host_chain() {
    let (w, h) = (32, 24);
    let n = 24;
    let images = photo_crops(w, h, n);
    let mut layers = vec![Vec::new(), Vec::new()];
    for e in 0..n {
        let mut rng = stream(3, 1, e as u64, Purpose::Augment);
        for layer in layers.iter_mut() {
            let kind = OpKind::ALL[rng.gen_range(0..OpKind::ALL.len())];
            layer.push(kind.resolve(9.0, RANDAUGMENT, w, h, &mut rng));
        }
    }
    let device = device_randaugment(&images, &layers);
    let host = host_randaugment(&images, &layers);
    for e in 0..n {
        let ops = [layers[0][e], layers[1][e]];
        // A blend in either layer may put a value one level off, which the other layer's
        // operation may carry (a table maps it, a warp moves it) or a second blend scale by its
        // factor (below 2) and be off by one itself: three levels at most.
        let blends = ops.iter().filter(|op| tolerance(op).0 > 0).count();
        let (max_diff, max_share) = match blends {
            0 => (0, 0.0),
            1 => (1, 0.02),
            _ => (3, 0.02),
        };
        compare(
            &format!("{ops:?}"),
            &device[e],
            &host[e],
            max_diff,
            max_share,
        );
    }
}

/// The mixing arrays `mix_batch` draws for `n` examples of `size` from `rngs` (cloned, so the
/// host draws the same): partners, weights and paste boxes.
fn mixing_draws(
    n: usize,
    size: usize,
    config: MixConfig,
    rngs: &[rand_chacha::ChaCha8Rng],
) -> (Vec<i32>, Vec<f32>, Vec<i32>) {
    let mut partner: Vec<i32> = (0..n as i32).collect();
    let mut weight = vec![1.0f32; n];
    let mut paste = vec![0i32; n * 4];
    let half = n / 2;
    let (mixup, cutmix) = match (config.mixup > 0.0, config.cutmix > 0.0) {
        (true, true) => (0..half, half..n),
        (true, false) => (0..n, n..n),
        (false, true) => (0..0, 0..n),
        (false, false) => (0..0, 0..0),
    };
    for range in [mixup.clone(), cutmix.clone()] {
        for k in range.clone() {
            partner[k] = (range.start + range.end - 1 - k) as i32;
        }
    }
    for k in mixup {
        weight[k] = mixup_weight(config.mixup, &mut rngs[k].clone());
    }
    for k in cutmix {
        let b = cutmix_box(size, config.cutmix, &mut rngs[k].clone());
        paste[k * 4..][..4].copy_from_slice(&[b.x0, b.x1, b.y0, b.y1].map(|v| v as i32));
    }
    (partner, weight, paste)
}

#[test]
fn normalisation_and_mixing_match_the_host() {
    let size = 20;
    let classes = 3;
    for (n, config, normalization) in [
        (
            7,
            MixConfig {
                mixup: 0.8,
                cutmix: 1.0,
            },
            Normalization::IMAGENET,
        ),
        (
            5,
            MixConfig {
                mixup: 0.0,
                cutmix: 1.0,
            },
            Normalization::CENTRED,
        ),
        (
            6,
            MixConfig {
                mixup: 0.2,
                cutmix: 0.0,
            },
            Normalization::CENTRED,
        ),
    ] {
        let images = photo_crops(size as u32, size as u32, n);
        let mut host = vec![0f32; n * size * size * 3];
        for (image, out) in images.iter().zip(host.chunks_exact_mut(size * size * 3)) {
            normalization.write(image.as_raw(), out);
        }
        let normalised = host.clone();
        let mut rngs: Vec<_> = (0..n as u64)
            .map(|i| stream(5, 0, i, Purpose::Mix))
            .collect();
        let (partner, weight, paste) = mixing_draws(n, size, config, &rngs);
        let mut labels = vec![0f32; n * classes];
        mix_batch(&mut host, &mut labels, size, config, &mut rngs);

        let dims = [n as i64, size as i64, size as i64, 3];
        let args = [
            batch_literal(&images),
            Literal::from_vec(&[n as i64], &partner).unwrap(),
            Literal::from_vec(&[n as i64], &weight).unwrap(),
            Literal::from_vec(&[n as i64, 4], &paste).unwrap(),
        ];
        let shapes: Vec<Shape> = args
            .iter()
            .map(|a| Shape::Array(a.shape().clone()))
            .collect();
        let normalised_only = module("normalise", &shapes[..1], |b, p| {
            augment::normalise(b, p[0], &normalization)
        });
        let device = run1(&normalised_only, &args[..1]);
        assert_eq!(device.ty(), ElementType::F32);
        assert_eq!(device.shape().dims(), dims);
        // XLA may divide by a constant as a multiplication by its reciprocal: within an ulp.
        let device = device.to_vec::<f32>().unwrap();
        for (i, (d, h)) in device.iter().zip(&normalised).enumerate() {
            assert!(
                (d - h).abs() <= f32::EPSILON * h.abs(),
                "{normalization:?}: value {i} is {d} on the device, {h} on the host"
            );
        }
        let mixed = module("mix", &shapes, |b, p| {
            augment::mix(
                b,
                p[0],
                &normalization,
                &MixArrays::from_values([p[1], p[2], p[3]]),
            )
        });
        let device = run1(&mixed, &args).to_vec::<f32>().unwrap();
        // The normalised values within an ulp, and `a * w + b * (1 - w)` perhaps one fused
        // multiply-add on the device: within a few ulps of the larger of `a` and `b` (about 2).
        for (i, (d, h)) in device.iter().zip(&host).enumerate() {
            assert!(
                (d - h).abs() <= 4.0 * f32::EPSILON * h.abs().max(2.0),
                "{config:?}: value {i} is {d} on the device, {h} on the host"
            );
        }
    }
}

/// One batch of the step test: u8 crops, the drawn RandAugment operations (two layers), the
/// mixing draws and the one-hot labels mixed as the host mixes them.
struct StepBatch {
    images: Vec<RgbImage>,
    ops: Vec<Vec<Op>>,
    partner: Vec<i32>,
    weight: Vec<f32>,
    paste: Vec<i32>,
    labels: Vec<f32>,
    classes: Vec<i32>,
    /// The host path's images: the operations, normalisation and mixing on the host.
    host_images: Vec<f32>,
}

const STEP_BATCH: usize = 6;
const STEP_SIZE: usize = 16;
const STEP_CLASSES: usize = 10;
const MIXING: MixConfig = MixConfig {
    mixup: 0.8,
    cutmix: 1.0,
};

fn step_batch(seed: u64) -> StepBatch {
    let (n, size) = (STEP_BATCH, STEP_SIZE);
    let images = photo_crops(size as u32, size as u32, n + seed as usize)[seed as usize..].to_vec();
    // Operations the device reproduces exactly (the blends are checked op by op above), so
    // that both paths train on the same images.
    let exact: Vec<OpKind> = OpKind::ALL
        .into_iter()
        .filter(|k| {
            !matches!(
                k,
                OpKind::Color | OpKind::Contrast | OpKind::Brightness | OpKind::Sharpness
            )
        })
        .collect();
    let mut ops = vec![Vec::new(), Vec::new()];
    for e in 0..n {
        let mut rng = stream(seed, 0, e as u64, Purpose::Augment);
        for layer in ops.iter_mut() {
            let kind = exact[rng.gen_range(0..exact.len())];
            layer.push(kind.resolve(10.0, RANDAUGMENT, size as u32, size as u32, &mut rng));
        }
    }
    let augmented = host_randaugment(&images, &ops);
    let normalization = Normalization::CENTRED;
    let mut host_images = vec![0f32; n * size * size * 3];
    for (image, out) in augmented
        .iter()
        .zip(host_images.chunks_exact_mut(size * size * 3))
    {
        normalization.write(image.as_raw(), out);
    }
    let classes: Vec<i32> = (0..n)
        .map(|e| ((e as u64 * 3 + seed) % 10) as i32)
        .collect();
    let mut labels: Vec<f32> = classes
        .iter()
        .flat_map(|&c| (0..STEP_CLASSES as i32).map(move |k| f32::from(k == c)))
        .collect();
    let mut rngs: Vec<_> = (0..n as u64)
        .map(|i| stream(seed, 0, i, Purpose::Mix))
        .collect();
    let (partner, weight, paste) = mixing_draws(n, size, MIXING, &rngs);
    mix_batch(&mut host_images, &mut labels, size, MIXING, &mut rngs);
    StepBatch {
        images,
        ops,
        partner,
        weight,
        paste,
        labels,
        classes,
        host_images,
    }
}

/// Loss and correct count of each step of one call of the train step under `input` on
/// `batches` (stacked when there are several), from the same initial state.
fn train_call(
    ctx: &effnetv2::program::context::Context,
    model: &effnetv2::model::Model,
    batches: &[StepBatch],
    input: InputMode,
) -> Vec<(f32, i32)> {
    let k = batches.len();
    let cfg = StepConfig {
        steps_per_call: k as i64,
        input,
        ..StepConfig::official(
            STEP_BATCH as i64,
            STEP_SIZE as i64,
            Precision::F32,
            ctx.backend(),
        )
    };
    let (exe, _) = ctx.compile(&train_step(model, &cfg).unwrap()).unwrap();
    let layout = StateLayout::new(model);
    let mut state = DeviceState::upload(ctx, &layout, &initial_state(&layout, 3)).unwrap();
    let lead: Vec<i64> = if k > 1 { vec![k as i64] } else { vec![] };
    let stacked = |dims: &[i64], part: &dyn Fn(&StepBatch) -> Literal| -> Literal {
        let dims = [lead.as_slice(), dims].concat();
        let bytes: Vec<u8> = batches.iter().flat_map(|b| part(b).into_bytes()).collect();
        let ty = part(&batches[0]).ty();
        Literal::from_bytes(effnetv2::hlo::ArrayShape::new(ty, &dims), bytes).unwrap()
    };
    let (n, s, c) = (STEP_BATCH as i64, STEP_SIZE as i64, STEP_CLASSES as i64);
    let mut feeds: Vec<(&str, Literal)> = vec![
        (
            port::LABELS,
            stacked(&[n, c], &|b| Literal::from_vec(&[n, c], &b.labels).unwrap()),
        ),
        (
            port::CLASSES,
            stacked(&[n], &|b| Literal::from_vec(&[n], &b.classes).unwrap()),
        ),
        (
            port::LEARNING_RATE,
            stacked(&[], &|_| Literal::scalar(0.05f32)),
        ),
        (port::DROPOUT_RATE, Literal::scalar(0.0f32)),
    ];
    if k > 1 {
        feeds.push((port::STEPS, Literal::scalar(k as i32)));
    }
    match input {
        InputMode::Normalised => feeds.push((
            port::IMAGES,
            stacked(&[n, s, s, 3], &|b| {
                Literal::from_vec(&[n, s, s, 3], &b.host_images).unwrap()
            }),
        )),
        InputMode::DeviceAugment(_) => {
            feeds.push((
                port::IMAGES,
                stacked(&[n, s, s, 3], &|b| batch_literal(&b.images)),
            ));
            let encoded = |b: &StepBatch| {
                let mut layers = EncodedLayers::identity(b.ops.len(), b.images.len());
                for (l, layer) in b.ops.iter().enumerate() {
                    for (e, op) in layer.iter().enumerate() {
                        layers.set(l, e, &EncodedOp::of(op, s as u32, s as u32));
                    }
                }
                layer_literals(&layers)
            };
            for (i, name) in port::AUGMENT.iter().enumerate() {
                let dims = encoded(&batches[0])[i].shape().dims().to_vec();
                feeds.push((name, stacked(&dims, &|b| encoded(b).swap_remove(i))));
            }
            feeds.push((
                port::MIX_PARTNER,
                stacked(&[n], &|b| Literal::from_vec(&[n], &b.partner).unwrap()),
            ));
            feeds.push((
                port::MIX_WEIGHT,
                stacked(&[n], &|b| Literal::from_vec(&[n], &b.weight).unwrap()),
            ));
            feeds.push((
                port::MIX_PASTE,
                stacked(&[n, 4], &|b| Literal::from_vec(&[n, 4], &b.paste).unwrap()),
            ));
        }
    }
    let feeds = ctx.upload_named(feeds).unwrap();
    let outcomes = state.step(&exe, std::slice::from_ref(&feeds)).unwrap();
    outcomes.iter().map(|o| (o.loss, o.correct)).collect()
}

#[test]
fn the_train_step_augmenting_on_the_device_trains_as_on_host_augmented_images() {
    let ctx = effnetv2::program::context::Context::open(
        effnetv2::runtime::provision::PluginKind::DEFAULT,
        None,
    )
    .unwrap();
    let model = effnetv2::model::Model::new(effnetv2::model::load_spec("tiny").unwrap()).unwrap();
    let device = InputMode::DeviceAugment(DeviceAugment::new(2, true, Normalization::CENTRED));
    for k in [1, 2] {
        let batches: Vec<StepBatch> = (0..k).map(|i| step_batch(20 + i as u64)).collect();
        let host = train_call(&ctx, &model, &batches, InputMode::Normalised);
        let on_device = train_call(&ctx, &model, &batches, device);
        assert_eq!(host.len(), k);
        for ((host_loss, host_correct), (loss, correct)) in host.iter().zip(&on_device) {
            assert!(host_loss.is_finite() && *host_loss > 0.0, "{host:?}");
            // The same images up to the mixing's last-ulp rounding (see above).
            assert!(
                (loss - host_loss).abs() <= 1e-5 * host_loss.abs(),
                "K={k}: loss {loss} on device-augmented images, {host_loss} on the host's"
            );
            assert_eq!(correct, host_correct, "K={k}");
        }
    }
}
