//! RandAugment operations against hand-computed outputs on small images (spec 6.2), including
//! the official code's quirks.

mod data_support;

use effnetv2::data::rng::{stream, Purpose};
use effnetv2::data::transform::randaugment::color::grey_level;
use effnetv2::data::transform::randaugment::{Op, OpKind, PixelConsts, RandAugment};
use effnetv2::data::{AugmentSettings, Policy};

/// RandAugment's official pixel constants.
const RANDAUGMENT: PixelConsts = PixelConsts {
    translate: 100.0,
    cutout: 40.0,
};
use image::{Rgb, RgbImage};

/// An image from rows of RGB triples.
fn image(rows: &[&[[u8; 3]]]) -> RgbImage {
    RgbImage::from_fn(rows[0].len() as u32, rows.len() as u32, |x, y| {
        Rgb(rows[y as usize][x as usize])
    })
}

/// A single-channel-valued image (all three channels equal) from rows of values.
fn grey(rows: &[&[u8]]) -> RgbImage {
    RgbImage::from_fn(rows[0].len() as u32, rows.len() as u32, |x, y| {
        Rgb([rows[y as usize][x as usize]; 3])
    })
}

/// Channel 0 of every pixel, row by row.
fn red(image: &RgbImage) -> Vec<Vec<u8>> {
    (0..image.height())
        .map(|y| {
            (0..image.width())
                .map(|x| image.get_pixel(x, y)[0])
                .collect()
        })
        .collect()
}

#[test]
fn invert_posterize_solarize() {
    let img = grey(&[&[0, 63, 100, 127], &[128, 130, 200, 255]]);
    assert_eq!(
        red(&Op::Invert.apply(&img)),
        [[255, 192, 155, 128], [127, 125, 55, 0]]
    );
    // bits 2 keeps the top two bits: mask 0b1100_0000.
    assert_eq!(
        red(&Op::Posterize { bits: 2 }.apply(&img)),
        [[0, 0, 64, 64], [128, 128, 192, 192]]
    );
    assert_eq!(Op::Posterize { bits: 8 }.apply(&img), img);
    assert_eq!(
        red(&Op::Solarize { threshold: 128 }.apply(&img)),
        [[0, 63, 100, 127], [127, 125, 55, 0]]
    );
    assert_eq!(Op::Solarize { threshold: 256 }.apply(&img), img);
}

#[test]
fn solarize_add_only_touches_values_below_128_and_clips() {
    let img = grey(&[&[0, 90, 127, 128, 200]]);
    assert_eq!(
        red(&Op::SolarizeAdd { addition: 55 }.apply(&img)),
        [[55, 145, 182, 128, 200]]
    );
    assert_eq!(
        red(&Op::SolarizeAdd { addition: 220 }.apply(&img)),
        [[220, 255, 255, 128, 200]]
    );
}

#[test]
fn brightness_extrapolates_with_clipping_and_truncates() {
    let img = grey(&[&[0, 33, 101, 140]]);
    // 1.9 * v: 0, 62.7, 191.9, 266 -> 0, 62, 191, 255 (clipped).
    assert_eq!(
        red(&Op::Brightness { factor: 1.9 }.apply(&img)),
        [[0, 62, 191, 255]]
    );
    // Interpolation truncates: 0.5 * 33 = 16.5 -> 16, 0.5 * 101 = 50.5 -> 50.
    assert_eq!(
        red(&Op::Brightness { factor: 0.5 }.apply(&img)),
        [[0, 16, 50, 70]]
    );
    assert_eq!(
        red(&Op::Brightness { factor: 0.0 }.apply(&img)),
        [[0, 0, 0, 0]]
    );
    assert_eq!(Op::Brightness { factor: 1.0 }.apply(&img), img);
}

#[test]
fn greyscale_uses_tensorflow_conversion() {
    // (200*0.2989 + 100*0.587 + 50*0.114) / 255 * 255.5 = 124.42 -> 124.
    assert_eq!(grey_level(200, 100, 50), 124);
    // Quirk of the `* 255.5` conversion: weights sum to 0.9999, so white stays 255 (a plain
    // weighted sum would give 254.97 -> 254).
    assert_eq!(grey_level(255, 255, 255), 255);
}

#[test]
fn color_blends_with_the_grey_image() {
    let img = image(&[&[[200, 100, 50]]]);
    // grey 124; 124 + 1.9 * (200 - 124, 100 - 124, 50 - 124) = 268.4, 78.4, -16.6.
    let out = Op::Color { factor: 1.9 }.apply(&img);
    assert_eq!(out.get_pixel(0, 0).0, [255, 78, 0]);
}

#[test]
fn contrast_uses_the_pixel_count_quirk() {
    // 32x32 = 1024 pixels -> "mean" 1024 / 256 = 4, whatever the intensities; 4 + 1.9 * 31 = 62.9.
    let img = RgbImage::from_pixel(32, 32, Rgb([35, 35, 35]));
    let out = Op::Contrast { factor: 1.9 }.apply(&img);
    assert!(out.pixels().all(|p| p.0 == [62, 62, 62]));
    // 4x4 = 16 pixels -> 16 / 256 = 0.0625 -> grey level 0: contrast acts like brightness.
    let small = RgbImage::from_pixel(4, 4, Rgb([33, 33, 33]));
    assert_eq!(
        Op::Contrast { factor: 1.9 }.apply(&small),
        Op::Brightness { factor: 1.9 }.apply(&small)
    );
}

#[test]
fn sharpness_smooths_the_interior_keeps_the_border_and_truncates() {
    let img = grey(&[&[10, 10, 10], &[10, 60, 10], &[10, 10, 10]]);
    // Smoothed centre (8 * 10 + 5 * 60) / 13 = 29.23 -> 29; border kept at 10.
    // Blend 1.9: centre 29 + 1.9 * (60 - 29) = 87.9 -> 87; border 10 + 1.9 * 0 = 10.
    let out = Op::Sharpness { factor: 1.9 }.apply(&img);
    assert_eq!(red(&out), [[10, 10, 10], [10, 87, 10], [10, 10, 10]]);
    // factor 0 returns the smoothed image itself.
    assert_eq!(
        red(&Op::Sharpness { factor: 0.0 }.apply(&img)),
        [[10, 10, 10], [10, 29, 10], [10, 10, 10]]
    );
}

#[test]
fn equalize_uses_the_official_lookup_table() {
    // Red: 512 x 10 and 512 x 20 -> step (1024 - 512) // 255 = 2; lut[10] = (0 + 1) // 2 = 0,
    //      lut[20] = (512 + 1) // 2 = 256 -> 255.
    // Green: 256 x 0, 512 x 100, 256 x 200 -> step (1024 - 256) // 255 = 3; lut[0] = 0,
    //        lut[100] = (256 + 1) // 3 = 85, lut[200] = (768 + 1) // 3 = 256 -> 255.
    // Blue: all 7 -> step 0 -> unchanged.
    let img = RgbImage::from_fn(32, 32, |x, y| {
        let i = y * 32 + x;
        let r = if i < 512 { 10 } else { 20 };
        let g = match i {
            0..256 => 0,
            256..768 => 100,
            _ => 200,
        };
        Rgb([r, g, 7])
    });
    let out = Op::Equalize.apply(&img);
    assert_eq!(out.get_pixel(0, 0).0, [0, 0, 7]);
    assert_eq!(out.get_pixel(0, 10).0, [0, 85, 7]);
    assert_eq!(out.get_pixel(0, 20).0, [255, 85, 7]);
    assert_eq!(out.get_pixel(0, 31).0, [255, 255, 7]);
}

#[test]
fn autocontrast_stretches_each_channel() {
    // Red 20..120: scale 2.55, offset -51: 45 -> 63.75 -> 63. Green flat: unchanged.
    let img = image(&[&[[20, 80, 0], [45, 80, 255], [120, 80, 128]]]);
    let out = Op::AutoContrast.apply(&img);
    let pixels: Vec<[u8; 3]> = out.pixels().map(|p| p.0).collect();
    assert_eq!(pixels, [[0, 80, 0], [63, 80, 255], [255, 80, 128]]);
}

/// 3x3 image with value 10 * y + x.
fn coordinates3() -> RgbImage {
    grey(&[&[0, 1, 2], &[10, 11, 12], &[20, 21, 22]])
}

#[test]
fn rotate_is_counter_clockwise_about_the_centre_with_grey_fill() {
    // 90 degrees: output (x, y) samples input (2 - y, x).
    let out = Op::Rotate { degrees: 90.0 }.apply(&coordinates3());
    assert_eq!(red(&out), [[2, 12, 22], [1, 11, 21], [0, 10, 20]]);
    // 45 degrees on 5x5: corners map outside (filled with 128), the centre stays.
    let img = RgbImage::from_fn(5, 5, |x, y| Rgb([(10 * y + x) as u8; 3]));
    let out = Op::Rotate { degrees: 45.0 }.apply(&img);
    assert_eq!(out.get_pixel(0, 0).0, [128; 3]);
    assert_eq!(out.get_pixel(4, 4).0, [128; 3]);
    assert_eq!(out.get_pixel(2, 2).0, [22; 3]);
}

#[test]
fn shear_samples_the_nearest_pixel_rounding_half_away_from_zero() {
    let img = grey(&[&[0, 1, 2, 3], &[10, 11, 12, 13], &[20, 21, 22, 23]]);
    // ShearX 0.5: row y samples x + 0.5 y; 0.5 -> 1, 1.5 -> 2, 2.5 -> 3 (not 2), 3.5 -> outside.
    assert_eq!(
        red(&Op::ShearX { level: 0.5 }.apply(&img)),
        [[0, 1, 2, 3], [11, 12, 13, 128], [21, 22, 23, 128]]
    );
    // -0.5 on row 1: -0.5 -> -1 (outside), 0.5 -> 1, 1.5 -> 2, 2.5 -> 3.
    assert_eq!(
        red(&Op::ShearX { level: -0.5 }.apply(&img))[1],
        [128, 11, 12, 13]
    );
    // ShearY 0.5: column x samples row y + 0.5 x.
    assert_eq!(
        red(&Op::ShearY { level: 0.5 }.apply(&img)),
        [[0, 11, 12, 23], [10, 21, 22, 128], [20, 128, 128, 128]]
    );
}

#[test]
fn translate_moves_content_by_whole_pixels() {
    let img = coordinates3();
    assert_eq!(
        red(&Op::TranslateX { pixels: 1.0 }.apply(&img)),
        [[1, 2, 128], [11, 12, 128], [21, 22, 128]]
    );
    assert_eq!(
        red(&Op::TranslateX { pixels: -1.0 }.apply(&img)),
        [[128, 0, 1], [128, 10, 11], [128, 20, 21]]
    );
    assert_eq!(
        red(&Op::TranslateY { pixels: 2.0 }.apply(&img)),
        [[20, 21, 22], [128, 128, 128], [128, 128, 128]]
    );
    // Translations are in pixels: 100 px moves everything out of a small image.
    assert!(Op::TranslateX { pixels: 100.0 }
        .apply(&img)
        .pixels()
        .all(|p| p.0 == [128; 3]));
}

#[test]
fn cutout_fills_a_clipped_square() {
    let img = RgbImage::from_pixel(4, 4, Rgb([7, 7, 7]));
    let out = Op::Cutout {
        pad: 1,
        center_x: 1,
        center_y: 1,
    }
    .apply(&img);
    assert_eq!(
        red(&out),
        [
            [128, 128, 7, 7],
            [128, 128, 7, 7],
            [7, 7, 7, 7],
            [7, 7, 7, 7]
        ]
    );
    let out = Op::Cutout {
        pad: 2,
        center_x: 3,
        center_y: 0,
    }
    .apply(&img);
    assert_eq!(
        red(&out),
        [
            [7, 128, 128, 128],
            [7, 128, 128, 128],
            [7, 7, 7, 7],
            [7, 7, 7, 7]
        ]
    );
}

/// The argument of `kind` at magnitude `m` with the official constants, random sign removed.
fn argument(kind: OpKind, m: f32) -> f64 {
    argument_with(kind, m, &AugmentSettings::default())
}

/// The argument of `kind` at magnitude `m` under `settings`, with the random sign removed.
fn argument_with(kind: OpKind, m: f32, settings: &AugmentSettings) -> f64 {
    let mut rng = stream(1, 0, 0, Purpose::Augment);
    let consts = settings.pixel_consts(Policy::RandAugment { layers: 2 });
    let op = kind.resolve(m, consts, 64, 64, &mut rng);
    data_support::op_argument(op).unwrap_or_else(|| panic!("{op:?} takes no argument"))
}

#[test]
fn level_to_argument_table_of_spec_6_2() {
    let table: [(OpKind, [f64; 4]); 13] = [
        (OpKind::Rotate, [15.0, 30.0, 45.0, 60.0]),
        (OpKind::Posterize, [2.0, 4.0, 6.0, 8.0]),
        (OpKind::Solarize, [128.0, 256.0, 384.0, 512.0]),
        (OpKind::SolarizeAdd, [55.0, 110.0, 165.0, 220.0]),
        (OpKind::Color, [1.0, 1.9, 2.8, 3.7]),
        (OpKind::Contrast, [1.0, 1.9, 2.8, 3.7]),
        (OpKind::Brightness, [1.0, 1.9, 2.8, 3.7]),
        (OpKind::Sharpness, [1.0, 1.9, 2.8, 3.7]),
        (OpKind::ShearX, [0.15, 0.3, 0.45, 0.6]),
        (OpKind::ShearY, [0.15, 0.3, 0.45, 0.6]),
        (OpKind::TranslateX, [50.0, 100.0, 150.0, 200.0]),
        (OpKind::TranslateY, [50.0, 100.0, 150.0, 200.0]),
        (OpKind::Cutout, [20.0, 40.0, 60.0, 80.0]),
    ];
    for (kind, expected) in table {
        for (m, want) in [5.0, 10.0, 15.0, 20.0].into_iter().zip(expected) {
            let got = argument(kind, m);
            assert!(
                (got - want).abs() < 1e-5,
                "{kind:?} at M={m}: {got} != {want}"
            );
        }
    }
    // A float magnitude of the official stage schedule is used as is: M = 6.667 gives
    // int(2.667) = 2 bits, int(170.7) = 170, 66.67 px.
    assert_eq!(argument(OpKind::Posterize, 6.667), 2.0);
    assert_eq!(argument(OpKind::Solarize, 6.667), 170.0);
    assert!((argument(OpKind::TranslateX, 6.667) - 66.67).abs() < 1e-3);
}

#[test]
fn configured_constants_scale_translations_and_cutouts() {
    // 28 px settings: 12.5 px translation and a 5 px cutout half side at M = 10, so
    // M / 10 * const at other magnitudes; the other operations do not change.
    let small = AugmentSettings {
        crop_area_min: Some(0.35),
        translate_const: Some(12.5),
        cutout_const: Some(5.0),
        ..AugmentSettings::default()
    };
    for (m, translate, pad) in [(2.0, 2.5, 1.0), (5.0, 6.25, 2.0), (10.0, 12.5, 5.0)] {
        for kind in [OpKind::TranslateX, OpKind::TranslateY] {
            let got = argument_with(kind, m, &small);
            assert!((got - translate).abs() < 1e-6, "{kind:?} at M={m}: {got}");
        }
        // int(0.5 * 5.0) = 2: the pad is truncated like the official `int(level * 40)`.
        assert_eq!(argument_with(OpKind::Cutout, m, &small), pad, "M={m}");
        assert_eq!(
            argument_with(OpKind::Rotate, m, &small),
            argument(OpKind::Rotate, m)
        );
    }
}

#[test]
fn signed_arguments_are_negative_about_half_the_time() {
    let negatives = (0..2000)
        .filter(|&i| {
            let mut rng = stream(9, 0, i, Purpose::Augment);
            matches!(OpKind::Rotate.resolve(10.0, RANDAUGMENT, 8, 8, &mut rng), Op::Rotate { degrees } if degrees < 0.0)
        })
        .count();
    assert!(
        (900..1100).contains(&negatives),
        "{negatives} of 2000 negative"
    );
}

#[test]
fn cutout_centres_cover_the_image() {
    let mut seen = [[false; 5]; 3];
    for i in 0..500 {
        let mut rng = stream(2, 0, i, Purpose::Augment);
        let Op::Cutout {
            center_x, center_y, ..
        } = OpKind::Cutout.resolve(5.0, RANDAUGMENT, 5, 3, &mut rng)
        else {
            unreachable!("Cutout resolves to Op::Cutout")
        };
        seen[center_y as usize][center_x as usize] = true;
    }
    assert!(seen.iter().flatten().all(|&s| s));
}

#[test]
fn policy_applies_two_uniformly_chosen_ops() {
    // At magnitude 10 only Solarize (threshold 256) and Equalize (step 0 on 256 pixels) leave
    // this image unchanged, so most two-op draws change it; a fixed stream repeats exactly.
    let img = RgbImage::from_fn(16, 16, |x, y| Rgb([(x * 16) as u8, (y * 16) as u8, 77]));
    let policy = RandAugment {
        layers: 2,
        magnitude: 10.0,
    };
    let a = policy.apply(
        img.clone(),
        &AugmentSettings::default(),
        &mut stream(4, 0, 0, Purpose::Augment),
    );
    let b = policy.apply(
        img.clone(),
        &AugmentSettings::default(),
        &mut stream(4, 0, 0, Purpose::Augment),
    );
    assert_eq!(a, b);
    let changed = (0..200)
        .filter(|&i| {
            policy.apply(
                img.clone(),
                &AugmentSettings::default(),
                &mut stream(4, 0, i, Purpose::Augment),
            ) != img
        })
        .count();
    assert!(changed > 150, "only {changed} of 200 outputs changed");
    let none = RandAugment {
        layers: 0,
        magnitude: 10.0,
    };
    assert_eq!(
        none.apply(
            img.clone(),
            &AugmentSettings::default(),
            &mut stream(4, 0, 0, Purpose::Augment)
        ),
        img
    );
}
