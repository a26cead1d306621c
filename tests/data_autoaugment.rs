//! AutoAugment policy v0 (the official B0–B3 augmentation) on real photos: every one of the 25
//! sub-policies against an independent transcription of the official policy whose arguments were
//! worked out by hand from `level_to_arg` (cutout_const 100, translate_const 250); outputs are
//! deterministic, keep their size, and each step runs with its probability.

mod data_support;

use effnetv2::data::rng::{stream, Purpose};
use effnetv2::data::transform::autoaugment::{apply_sub_policy, autoaugment_v0, POLICY_V0};
use effnetv2::data::transform::randaugment::{Op, OpKind, PixelConsts};
use effnetv2::data::transform::{resize_bilinear, CropBox};
use effnetv2::data::{decode_rgb, AugmentSettings, Policy};
use image::RgbImage;
use rand::Rng;

/// The official AutoAugment constants.
const AUTOAUGMENT: PixelConsts = PixelConsts {
    translate: 250.0,
    cutout: 100.0,
};

/// A fixture photo, centre-cropped to a square and shrunk to 48 px (as the pipeline hands the
/// policy a small `u8` image).
fn photo(name: &str) -> RgbImage {
    let path = data_support::sklearn_images().join(name);
    let image = decode_rgb(&std::fs::read(&path).unwrap(), name).unwrap();
    let crop = CropBox {
        x: 106,
        y: 0,
        width: 427,
        height: 427,
    };
    let pixels = resize_bilinear(&image, crop, 48);
    RgbImage::from_raw(48, 48, pixels.iter().map(|&v| v as u8).collect()).unwrap()
}

/// The argument of `kind` at `level` under AutoAugment's constants, random sign removed.
fn argument(kind: OpKind, level: f32) -> Option<f64> {
    let mut rng = stream(1, 0, 0, Purpose::Augment);
    data_support::op_argument(kind.resolve(level, AUTOAUGMENT, 300, 300, &mut rng))
}

#[test]
fn level_to_argument_of_every_autoaugment_operation() {
    use OpKind::*;
    // Levels 0, 2, 5, 7, 9, 10; by hand from level / 10 * const, truncated where the official
    // code applies int(): Posterize int(L * 0.4), Solarize int(L * 25.6), SolarizeAdd
    // int(L * 11), Cutout int(L * 10); Rotate L * 3 degrees, enhancements L * 0.18 + 0.1,
    // shears L * 0.03, translations L * 25 px.
    let table: [(OpKind, [f64; 6]); 12] = [
        (Rotate, [0.0, 6.0, 15.0, 21.0, 27.0, 30.0]),
        (Posterize, [0.0, 0.0, 2.0, 2.0, 3.0, 4.0]),
        (Solarize, [0.0, 51.0, 128.0, 179.0, 230.0, 256.0]),
        (SolarizeAdd, [0.0, 22.0, 55.0, 77.0, 99.0, 110.0]),
        (Color, [0.1, 0.46, 1.0, 1.36, 1.72, 1.9]),
        (Contrast, [0.1, 0.46, 1.0, 1.36, 1.72, 1.9]),
        (Brightness, [0.1, 0.46, 1.0, 1.36, 1.72, 1.9]),
        (Sharpness, [0.1, 0.46, 1.0, 1.36, 1.72, 1.9]),
        (ShearX, [0.0, 0.06, 0.15, 0.21, 0.27, 0.3]),
        (ShearY, [0.0, 0.06, 0.15, 0.21, 0.27, 0.3]),
        (TranslateY, [0.0, 50.0, 125.0, 175.0, 225.0, 250.0]),
        (Cutout, [0.0, 20.0, 50.0, 70.0, 90.0, 100.0]),
    ];
    for (kind, expected) in table {
        for (level, want) in [0.0, 2.0, 5.0, 7.0, 9.0, 10.0].into_iter().zip(expected) {
            let got = argument(kind, level).expect("takes an argument");
            assert!(
                (got - want).abs() < 1e-5,
                "{kind:?} at level {level}: {got} != {want}"
            );
        }
    }
    // TranslateX shares TranslateY's table; the argument-free operations take none.
    assert_eq!(argument(TranslateX, 9.0), Some(225.0));
    for kind in [AutoContrast, Equalize, Invert] {
        assert_eq!(argument(kind, 7.0), None);
    }
    // The settings give these constants under AutoAugment unless a recipe sets others.
    assert_eq!(
        AugmentSettings::default().pixel_consts(Policy::AutoAugmentV0),
        AUTOAUGMENT
    );
}

#[test]
fn posterize_with_zero_bits_keeps_the_top_bit_like_tensorflow() {
    // ('Posterize', 0.8, 2) gives int(0.8) = 0 bits: TensorFlow shifts by 8 - 0 = 8, which its
    // CPU kernel clamps to 7, so (v >> 7) << 7.
    let image = RgbImage::from_fn(4, 1, |x, _| image::Rgb([[0, 127, 128, 255][x as usize]; 3]));
    let out = Op::Posterize { bits: 0 }.apply(&image);
    let red: Vec<u8> = out.pixels().map(|p| p[0]).collect();
    assert_eq!(red, [0, 0, 128, 128]);
    assert_eq!(Op::Posterize { bits: 1 }.apply(&image), out);
}

/// One step of the hand transcription: its probability and the operations it can run (both
/// signs of a signed argument, each half the time).
struct Expected {
    probability: f64,
    variants: Vec<Op>,
}

fn plain(probability: f64, op: Op) -> Expected {
    Expected {
        probability,
        variants: vec![op],
    }
}

fn signed(probability: f64, make: impl Fn(f32) -> Op, value: f32) -> Expected {
    Expected {
        probability,
        variants: vec![make(value), make(-value)],
    }
}

fn rotate(p: f64, degrees: f32) -> Expected {
    signed(p, |degrees| Op::Rotate { degrees }, degrees)
}

fn shear_x(p: f64, level: f32) -> Expected {
    signed(p, |level| Op::ShearX { level }, level)
}

fn shear_y(p: f64, level: f32) -> Expected {
    signed(p, |level| Op::ShearY { level }, level)
}

fn color(p: f64, factor: f32) -> Expected {
    plain(p, Op::Color { factor })
}

fn solarize(p: f64, threshold: u32) -> Expected {
    plain(p, Op::Solarize { threshold })
}

fn solarize_add(p: f64, addition: i32) -> Expected {
    plain(p, Op::SolarizeAdd { addition })
}

fn posterize(p: f64, bits: u32) -> Expected {
    plain(p, Op::Posterize { bits })
}

fn equalize(p: f64) -> Expected {
    plain(p, Op::Equalize)
}

fn autocontrast(p: f64) -> Expected {
    plain(p, Op::AutoContrast)
}

/// The official `policy_v0()`, each (op, probability, level) turned into its argument by hand.
fn expected_policy() -> Vec<[Expected; 2]> {
    vec![
        [equalize(0.8), shear_y(0.8, 0.12)],
        [color(0.4, 1.72), equalize(0.6)],
        [color(0.4, 0.28), rotate(0.6, 24.0)],
        [solarize(0.8, 76), equalize(0.4)],
        [solarize(0.4, 51), solarize(0.6, 51)],
        [color(0.2, 0.1), equalize(0.8)],
        [equalize(0.4), solarize_add(0.8, 33)],
        [shear_x(0.2, 0.27), rotate(0.6, 24.0)],
        [color(0.6, 0.28), equalize(1.0)],
        [plain(0.4, Op::Invert), rotate(0.6, 0.0)],
        [equalize(1.0), shear_y(0.6, 0.09)],
        [color(0.4, 1.36), equalize(0.6)],
        [posterize(0.4, 2), autocontrast(0.4)],
        [solarize(0.6, 204), color(0.6, 1.72)],
        [solarize(0.2, 102), rotate(0.8, 27.0)],
        [
            rotate(1.0, 21.0),
            signed(0.8, |pixels| Op::TranslateY { pixels }, 225.0),
        ],
        [shear_x(0.0, 0.0), solarize(0.8, 102)],
        [shear_y(0.8, 0.0), color(0.6, 0.82)],
        [color(1.0, 0.1), rotate(0.6, 6.0)],
        [equalize(0.8), equalize(0.0)],
        [equalize(1.0), autocontrast(0.6)],
        [shear_y(0.4, 0.21), solarize_add(0.6, 77)],
        [posterize(0.8, 0), solarize(0.6, 256)],
        [solarize(0.6, 204), equalize(0.6)],
        [color(0.8, 1.18), rotate(0.4, 15.0)],
    ]
}

/// Every image a sub-policy can produce from `image`, with its probability; identical images are
/// merged (a rotation by 0 degrees in either direction, a skipped no-op step, ...).
fn outcomes(image: &RgbImage, steps: &[Expected; 2]) -> Vec<(RgbImage, f64)> {
    let mut paths = vec![(image.clone(), 1.0)];
    for step in steps {
        let mut next = Vec::new();
        for (current, p) in paths {
            let share = step.probability / step.variants.len() as f64;
            for op in &step.variants {
                next.push((op.apply(&current), p * share));
            }
            next.push((current, p * (1.0 - step.probability)));
        }
        paths = next;
    }
    let mut merged: Vec<(RgbImage, f64)> = Vec::new();
    for (image, p) in paths {
        match merged.iter_mut().find(|(other, _)| *other == image) {
            Some(entry) => entry.1 += p,
            None => merged.push((image, p)),
        }
    }
    merged.retain(|(_, p)| *p > 0.0);
    merged
}

#[test]
fn every_sub_policy_on_real_photos_follows_the_official_policy() {
    let expected = expected_policy();
    assert_eq!(expected.len(), POLICY_V0.len());
    let draws = 600u64;
    for name in ["china.jpg", "flower.jpg"] {
        let image = photo(name);
        for (index, (sub_policy, steps)) in POLICY_V0.iter().zip(&expected).enumerate() {
            for (step, want) in sub_policy.iter().zip(steps) {
                assert_eq!(
                    f64::from(step.probability),
                    f64::from(want.probability as f32),
                    "sub-policy {index}: {step:?}"
                );
            }
            let possible = outcomes(&image, steps);
            let mut counts = vec![0u64; possible.len()];
            for draw in 0..draws {
                let run = |seed| {
                    let mut rng = stream(seed, index as u64, draw, Purpose::Augment);
                    apply_sub_policy(image.clone(), sub_policy, AUTOAUGMENT, &mut rng)
                };
                let out = run(31);
                assert_eq!(
                    out,
                    run(31),
                    "{name}, sub-policy {index}: not deterministic"
                );
                assert_eq!(out.dimensions(), (48, 48));
                let Some(k) = possible.iter().position(|(o, _)| *o == out) else {
                    panic!("{name}, sub-policy {index}, draw {draw}: an output the policy cannot produce");
                };
                counts[k] += 1;
            }
            // Each distinct outcome occurs with its probability (within 4.5 standard deviations).
            for ((_, p), &count) in possible.iter().zip(&counts) {
                let mean = p * draws as f64;
                let sd = (draws as f64 * p * (1.0 - p)).sqrt();
                assert!(
                    (count as f64 - mean).abs() <= 4.5 * sd + 1.0,
                    "{name}, sub-policy {index}: an outcome of probability {p} came {count} times of {draws}"
                );
            }
        }
    }
}

#[test]
fn steps_that_always_run_change_the_photo() {
    // The steps with probability 1: Equalize (sub-policies 8, 10, 20), Rotate 21 degrees (15) and
    // Color 0.1 (18), and more generally every step except the official no-ops (rotations and
    // shears at level 0, Solarize at level 10) and the two that never run.
    for name in ["china.jpg", "flower.jpg"] {
        let image = photo(name);
        let mut always = 0;
        for (index, sub_policy) in POLICY_V0.iter().enumerate() {
            for step in sub_policy {
                let no_op = step.probability == 0.0
                    || (step.level == 0 && matches!(step.kind, OpKind::Rotate | OpKind::ShearY))
                    || (step.kind == OpKind::Solarize && step.level == 10);
                if no_op {
                    continue;
                }
                let mut rng = stream(5, 0, index as u64, Purpose::Augment);
                let op = step
                    .kind
                    .resolve(f32::from(step.level), AUTOAUGMENT, 48, 48, &mut rng);
                assert_ne!(
                    op.apply(&image),
                    image,
                    "{name}: {step:?} of sub-policy {index}"
                );
                always += usize::from(step.probability == 1.0);
            }
        }
        assert_eq!(always, 5);
    }
}

#[test]
fn the_policy_picks_a_sub_policy_uniformly_then_runs_it() {
    let image = photo("china.jpg");
    let mut picked = [0u32; 25];
    for draw in 0..5000 {
        let mut rng = stream(40, 0, draw, Purpose::Augment);
        let out = autoaugment_v0(image.clone(), AUTOAUGMENT, &mut rng);
        let mut by_hand = stream(40, 0, draw, Purpose::Augment);
        let index = by_hand.gen_range(0..25);
        let want = apply_sub_policy(image.clone(), &POLICY_V0[index], AUTOAUGMENT, &mut by_hand);
        assert_eq!(out, want, "draw {draw}");
        picked[index] += 1;
    }
    // 200 expected each; 4.5 standard deviations (sd 14) either side.
    assert!(
        picked.iter().all(|&n| (137..=263).contains(&n)),
        "{picked:?}"
    );
}
