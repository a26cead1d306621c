//! Crop statistics and the train / eval transforms of spec 6.1, for the standard pipeline and the
//! legacy B0–B3 one (its bicubic resize against a reference written from the kernel's definition).

mod data_support;

use effnetv2::data::rng::{stream, Purpose};
use effnetv2::data::transform::autoaugment::autoaugment_v0;
use effnetv2::data::transform::crop::{
    random_crop, AREA_RANGE, ASPECT_RANGE, LEGACY_AREA_MIN, LEGACY_ASPECT_RANGE,
};
use effnetv2::data::transform::randaugment::PixelConsts;
use effnetv2::data::transform::{
    legacy_eval_crop, legacy_random_crop, resize_bicubic, resize_bilinear, CropBox,
};
use effnetv2::data::{
    AugmentSettings, EvalTransform, Normalization, Policy, Preprocessing, TrainTransform,
};
use image::{Rgb, RgbImage};
use rand::Rng;

#[test]
fn random_crops_respect_area_and_aspect_ranges() {
    for (w, h) in [(640u32, 427u32), (512, 512), (100, 300), (28, 28)] {
        let image_area = (w * h) as f32;
        let (mut smallest, mut largest) = (f32::MAX, 0f32);
        let mut whole = 0;
        for i in 0..5000 {
            let crop = random_crop(w, h, AREA_RANGE.0, &mut stream(11, 0, i, Purpose::Augment));
            assert!(
                crop.x + crop.width <= w && crop.y + crop.height <= h,
                "{crop:?} outside {w}x{h}"
            );
            if crop == CropBox::whole(w, h) {
                whole += 1;
            }
            let area = (crop.width * crop.height) as f32 / image_area;
            assert!(
                (AREA_RANGE.0..=AREA_RANGE.1).contains(&area),
                "area {area} of {crop:?}"
            );
            // width = round(height * ratio), so the realised ratio is within 0.5 / height of it.
            let aspect = crop.width as f32 / crop.height as f32;
            let slack = 0.5 / crop.height as f32;
            assert!(
                aspect >= ASPECT_RANGE.0 - slack && aspect <= ASPECT_RANGE.1 + slack,
                "aspect {aspect} of {crop:?} in {w}x{h}"
            );
            smallest = smallest.min(area);
            largest = largest.max(area);
        }
        // The whole range is reached: down to the minimum area, and up to the largest area an
        // allowed aspect ratio fits; the whole-image fallback stays rare.
        let (wf, hf) = (w as f32, h as f32);
        let reachable = wf.min(ASPECT_RANGE.1 * hf) * hf.min(wf / ASPECT_RANGE.0) / image_area;
        assert!(smallest < 0.07, "{w}x{h}: smallest area {smallest}");
        assert!(
            largest > 0.95 * reachable.min(1.0),
            "{w}x{h}: largest area {largest} of {reachable}"
        );
        assert!(whole < 500, "{w}x{h}: {whole} whole-image crops of 5000");
    }
}

#[test]
fn random_crops_respect_a_configured_area_floor() {
    // The tiny model's floor: no crop below 35 % of the image, and the floor is reached.
    let floor = 0.35;
    for (w, h) in [(28u32, 28u32), (640, 427)] {
        let image_area = (w * h) as f32;
        let smallest = (0..3000)
            .map(|i| {
                let crop = random_crop(w, h, floor, &mut stream(13, 0, i, Purpose::Augment));
                (crop.width * crop.height) as f32 / image_area
            })
            .fold(f32::MAX, f32::min);
        assert!(
            (floor..floor + 0.05).contains(&smallest),
            "{w}x{h}: smallest area {smallest}"
        );
    }
}

#[test]
fn crop_positions_are_uniform_over_the_free_range() {
    // Mean offset of x over many draws is about half the free width on average.
    let (w, h) = (400u32, 400u32);
    let n = 4000;
    let (mut offset_fraction, mut counted) = (0f64, 0);
    for i in 0..n {
        let c = random_crop(w, h, AREA_RANGE.0, &mut stream(12, 0, i, Purpose::Augment));
        if c.width < w {
            offset_fraction += f64::from(c.x) / f64::from(w - c.width - 1).max(1.0);
            counted += 1;
        }
    }
    let mean = offset_fraction / f64::from(counted);
    assert!((mean - 0.5).abs() < 0.03, "mean relative x offset {mean}");
}

/// The standard evaluation transform at `size` with the official padding.
fn standard_eval(size: usize) -> EvalTransform {
    EvalTransform {
        image_size: size,
        preprocessing: Preprocessing::Standard,
        crop_padding: 32.0,
        normalization: Normalization::CENTRED,
    }
}

/// A 64x48 test photo-like image with smooth gradients.
fn gradient() -> RgbImage {
    RgbImage::from_fn(64, 48, |x, y| {
        Rgb([(x * 4) as u8, (y * 5) as u8, ((x + y) * 2) as u8])
    })
}

#[test]
fn eval_transform_centre_crops_below_320_and_normalises() {
    let img = gradient();
    let size = 16;
    let mut out = vec![0f32; size * size * 3];
    standard_eval(size).apply(&img, &mut out);
    // Crop side int(16 / 48 * 48) = 16 at offsets ((64 - 16) + 1) // 2 = 24, (32 + 1) // 2 = 16:
    // a 1:1 copy of that window.
    let expected: Vec<f32> = resize_bilinear(
        &img,
        CropBox {
            x: 24,
            y: 16,
            width: 16,
            height: 16,
        },
        16,
    )
    .iter()
    .map(|v| (v - 128.0) / 128.0)
    .collect();
    assert_eq!(out, expected);
    assert_eq!(
        out[0],
        (f32::from(img.get_pixel(24, 16)[0]) - 128.0) / 128.0
    );
}

#[test]
fn eval_transform_resizes_the_whole_image_from_320() {
    let img = RgbImage::from_fn(640, 320, |x, _| Rgb([if x < 320 { 0 } else { 255 }; 3]));
    let size = 320;
    let mut out = vec![0f32; size * size * 3];
    standard_eval(size).apply(&img, &mut out);
    // Whole image squeezed to 320x320: the left half is black, the right half white.
    assert_eq!(out[0], -1.0);
    assert_eq!(out[(size - 1) * 3], (255.0 - 128.0) / 128.0);
}

#[test]
fn train_transform_output_is_normalised_and_deterministic() {
    let img = gradient();
    let transform = TrainTransform {
        image_size: 24,
        preprocessing: Preprocessing::Standard,
        policy: Policy::RandAugment { layers: 2 },
        magnitude: 15.0,
        settings: AugmentSettings::default(),
        normalization: Normalization::CENTRED,
    };
    let mut a = vec![0f32; 24 * 24 * 3];
    let mut b = a.clone();
    transform.apply(&img, &mut stream(5, 2, 9, Purpose::Augment), &mut a);
    transform.apply(&img, &mut stream(5, 2, 9, Purpose::Augment), &mut b);
    assert_eq!(a, b);
    // After the u8 round trip every value is (k - 128) / 128 for an integer k in 0..=255.
    for v in &a {
        let k = v * 128.0 + 128.0;
        assert!((0.0..=255.0).contains(&k) && k.fract() == 0.0, "{v}");
    }
    transform.apply(&img, &mut stream(5, 2, 10, Purpose::Augment), &mut b);
    assert_ne!(a, b);
}

#[test]
fn train_transform_flips_about_half_the_time() {
    // A left-dark, right-bright image stays so through crop and resize unless flipped.
    let img = RgbImage::from_fn(64, 64, |x, _| Rgb([if x < 32 { 0 } else { 255 }; 3]));
    let transform = TrainTransform {
        image_size: 8,
        preprocessing: Preprocessing::Standard,
        policy: Policy::RandAugment { layers: 0 },
        magnitude: 0.0,
        settings: AugmentSettings::default(),
        normalization: Normalization::CENTRED,
    };
    let mut out = vec![0f32; 8 * 8 * 3];
    let mut flipped = 0;
    let mut decided = 0;
    for i in 0..1000 {
        transform.apply(&img, &mut stream(6, 0, i, Purpose::Augment), &mut out);
        let (left, right) = (out[0], out[7 * 3]);
        if left != right {
            decided += 1;
            if left > right {
                flipped += 1;
            }
        }
    }
    let share = flipped as f64 / decided as f64;
    assert!(
        decided > 500 && (share - 0.5).abs() < 0.06,
        "{flipped} of {decided} flipped"
    );
}

#[test]
fn greyscale_sources_become_three_equal_channels() {
    let png = {
        let mut bytes = Vec::new();
        let grey = image::GrayImage::from_fn(5, 4, |x, y| image::Luma([(x * 40 + y) as u8]));
        grey.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .expect("encode png");
        bytes
    };
    let rgb = effnetv2::data::decode_rgb(&png, "grey.png").expect("decode");
    assert_eq!(rgb.dimensions(), (5, 4));
    assert_eq!(rgb.get_pixel(3, 2).0, [122, 122, 122]);
}

/// TensorFlow's legacy bicubic resize (`resize_bicubic`, `half_pixel_centers=False`) written
/// directly from its definition, in f64 over the 4x4 neighbourhood: output pixel `i` sits at input
/// `i * in / out` (that product taken in f32, as TensorFlow computes it), the fractional offset is
/// rounded to TensorFlow's table resolution of 1/1024, the Keys cubic with `a = -0.75` weighs the
/// four taps at distances `1 + t, t, 1 - t, 2 - t`, and taps beyond the crop read its edge pixel.
fn reference_bicubic(image: &RgbImage, crop: CropBox, size: usize) -> Vec<f64> {
    let a = -0.75f64;
    let cubic = |d: f64| {
        let d = d.abs();
        if d <= 1.0 {
            ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
        } else if d < 2.0 {
            ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a
        } else {
            0.0
        }
    };
    let taps = |len: u32, start: u32, i: usize| -> Vec<(u32, f64)> {
        let pos = f64::from(i as f32 * (len as f32 / size as f32));
        let base = pos.floor();
        let t = ((pos - base) * 1024.0).round_ties_even() / 1024.0;
        (-1i64..=2)
            .map(|k| {
                let index = (base as i64 + k).clamp(0, i64::from(len) - 1) as u32;
                (start + index, cubic(k as f64 - t))
            })
            .collect()
    };
    let mut out = Vec::with_capacity(size * size * 3);
    for y in 0..size {
        let rows = taps(crop.height, crop.y, y);
        for x in 0..size {
            let columns = taps(crop.width, crop.x, x);
            for c in 0..3 {
                let mut sum = 0.0;
                for &(row, wy) in &rows {
                    for &(column, wx) in &columns {
                        sum += wy * wx * f64::from(image.get_pixel(column, row)[c]);
                    }
                }
                out.push(sum);
            }
        }
    }
    out
}

fn china() -> RgbImage {
    let path = data_support::sklearn_images().join("china.jpg");
    effnetv2::data::decode_rgb(&std::fs::read(&path).unwrap(), "china.jpg").unwrap()
}

/// TensorFlow's bilinear resize (`half_pixel_centers=True`, no antialiasing) written per output
/// value from its definition, in f32 as TensorFlow computes it: source position
/// `(i + 0.5) * in / out - 0.5`, taps `max(floor, 0)` and `min(ceil, in - 1)`, then
/// `top + (bottom - top) * y_lerp` of the two row interpolations.
fn reference_bilinear(image: &RgbImage, crop: CropBox, size: usize) -> Vec<f32> {
    let tap = |i: usize, len: u32, offset: u32| {
        let pos = (i as f32 + 0.5) * (len as f32 / size as f32) - 0.5;
        let last = len - 1;
        let lower = (pos.floor().max(0.0) as u32).min(last) + offset;
        let upper = (pos.ceil().max(0.0) as u32).min(last) + offset;
        (lower, upper, pos - pos.floor())
    };
    let mut out = Vec::with_capacity(size * size * 3);
    for i in 0..size {
        let (top, bottom, y_lerp) = tap(i, crop.height, crop.y);
        for j in 0..size {
            let (left, right, x_lerp) = tap(j, crop.width, crop.x);
            for c in 0..3 {
                let at = |x: u32, y: u32| f32::from(image.get_pixel(x, y)[c]);
                let t = at(left, top) + (at(right, top) - at(left, top)) * x_lerp;
                let b = at(left, bottom) + (at(right, bottom) - at(left, bottom)) * x_lerp;
                out.push(t + (b - t) * y_lerp);
            }
        }
    }
    out
}

/// The row-at-a-time bilinear resize (separable, source rows reused between output rows, flip
/// by reversed taps) equals the per-value definition exactly: same f32 operations in the same
/// order. Shrinking by up to 9x and enlarging, whole-image, thin and one-pixel crops.
#[test]
fn bilinear_resize_equals_the_per_value_definition_exactly() {
    let photo = china();
    let crops = [
        CropBox::whole(640, 427),
        CropBox {
            x: 101,
            y: 37,
            width: 333,
            height: 290,
        },
        CropBox {
            x: 0,
            y: 400,
            width: 640,
            height: 27,
        },
        CropBox {
            x: 639,
            y: 0,
            width: 1,
            height: 427,
        },
        CropBox {
            x: 300,
            y: 200,
            width: 1,
            height: 1,
        },
        CropBox {
            x: 5,
            y: 9,
            width: 70,
            height: 90,
        },
    ];
    for crop in crops {
        for size in [1, 7, 71, 128, 300] {
            let expected = reference_bilinear(&photo, crop, size);
            assert!(
                resize_bilinear(&photo, crop, size) == expected,
                "{crop:?} at {size} px"
            );
        }
    }
    // Through the train transform without a policy: the drawn crop, resized, flipped when drawn,
    // normalised; the same steps by hand from the same stream.
    let size = 57;
    let transform = TrainTransform {
        image_size: size,
        preprocessing: Preprocessing::Standard,
        policy: Policy::RandAugment { layers: 0 },
        magnitude: 0.0,
        settings: AugmentSettings::default(),
        normalization: Normalization::CENTRED,
    };
    let mut out = vec![0f32; size * size * 3];
    let mut flips = 0;
    for i in 0..20 {
        transform.apply(&photo, &mut stream(4, 0, i, Purpose::Augment), &mut out);
        let mut rng = stream(4, 0, i, Purpose::Augment);
        let crop = random_crop(640, 427, AREA_RANGE.0, &mut rng);
        let flipped = rng.gen::<f32>() < 0.5;
        flips += usize::from(flipped);
        let resized = reference_bilinear(&photo, crop, size);
        for (k, &o) in out.iter().enumerate() {
            let (y, x, c) = (k / (size * 3), k / 3 % size, k % 3);
            let from = if flipped { size - 1 - x } else { x };
            let want = (resized[(y * size + from) * 3 + c] - 128.0) / 128.0;
            assert_eq!(o, want, "draw {i}, value {k}");
        }
    }
    assert!((5..=15).contains(&flips), "{flips} flips of 20");
}

#[test]
fn bicubic_resize_matches_the_reference_kernel_on_a_photo() {
    let photo = china();
    let cases = [
        // Downscaling a square crop by a non-integer ratio, as the legacy eval crop does.
        (CropBox::whole(640, 427), 37),
        (
            CropBox {
                x: 107,
                y: 0,
                width: 427,
                height: 427,
            },
            64,
        ),
        // Upscaling a small off-centre, non-square crop (the taps run over its edges).
        (
            CropBox {
                x: 300,
                y: 200,
                width: 20,
                height: 13,
            },
            48,
        ),
        (
            CropBox {
                x: 639,
                y: 426,
                width: 1,
                height: 1,
            },
            3,
        ),
    ];
    for (crop, size) in cases {
        let got = resize_bicubic(&photo, crop, size);
        let want = reference_bicubic(&photo, crop, size);
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (f64::from(*g) - w).abs() < 2e-3,
                "{crop:?} -> {size}: value {i} is {g}, the reference {w}"
            );
        }
    }
}

#[test]
fn bicubic_resize_has_no_half_pixel_shift_and_is_not_clipped() {
    // Halving samples input 2i exactly (weights 0, 1, 0, 0): a copy of every other pixel, where
    // a half-pixel kernel would blend pixels 2i and 2i + 1.
    let image = RgbImage::from_fn(8, 8, |x, y| Rgb([(x * 30) as u8, (y * 30) as u8, 7]));
    let out = resize_bicubic(&image, CropBox::whole(8, 8), 4);
    for y in 0..4u32 {
        for x in 0..4u32 {
            let at = ((y * 4 + x) * 3) as usize;
            let source = image.get_pixel(2 * x, 2 * y);
            assert_eq!(
                [out[at], out[at + 1], out[at + 2]],
                source.0.map(f32::from),
                "({x}, {y})"
            );
        }
    }
    // Upscaling a black-white step: the cubic's lobes overshoot both ends and are kept.
    let step = RgbImage::from_fn(4, 1, |x, _| Rgb([if x < 2 { 0 } else { 255 }; 3]));
    let out = resize_bicubic(&step, CropBox::whole(4, 1), 16);
    let (low, high) = out
        .iter()
        .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    assert!(low < -1.0 && high > 256.0, "range {low}..{high}");
}

/// An `RngCore` that counts the 32-bit draws (each uniform float of the crop is one).
struct CountingRng<R> {
    inner: R,
    draws: usize,
}

impl<R: rand::RngCore> rand::RngCore for CountingRng<R> {
    fn next_u32(&mut self) -> u32 {
        self.draws += 1;
        self.inner.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.draws += 2;
        self.inner.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.draws += dest.len().div_ceil(4);
        self.inner.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

#[test]
fn legacy_crop_gives_up_after_ten_attempts_and_takes_the_centre_crop() {
    // 1000x10: a crop with an aspect ratio in [3/4, 4/3] is at most 13x10 = 1.3 % of the image,
    // far below the 8 % floor, so every attempt fails after drawing only its aspect ratio.
    let mut rng = CountingRng {
        inner: stream(21, 0, 0, Purpose::Augment),
        draws: 0,
    };
    let crop = legacy_random_crop(1000, 10, LEGACY_AREA_MIN, 224, 32.0, &mut rng);
    assert_eq!(rng.draws, 10);
    // The centre crop of the eval transform: side int(224 / 256 * 10) = 8, offsets
    // (1000 - 8 + 1) // 2 = 496 and (10 - 8 + 1) // 2 = 1.
    assert_eq!(
        crop,
        CropBox {
            x: 496,
            y: 1,
            width: 8,
            height: 8
        }
    );
    // The standard crop tries 100 times and then takes the whole image.
    rng.draws = 0;
    let crop = random_crop(1000, 10, AREA_RANGE.0, &mut rng);
    assert_eq!((rng.draws, crop), (100, CropBox::whole(1000, 10)));
}

#[test]
fn legacy_crops_cover_ten_percent_keep_the_aspect_range_and_never_the_whole_image() {
    for (w, h) in [(640u32, 427u32), (512, 512), (100, 300), (10, 10)] {
        let image_area = (w * h) as f32;
        let centre = legacy_eval_crop(w, h, 224, 32.0);
        let (mut smallest, mut fallbacks) = (f32::MAX, 0);
        for i in 0..4000 {
            let crop = legacy_random_crop(
                w,
                h,
                LEGACY_AREA_MIN,
                224,
                32.0,
                &mut stream(22, 0, i, Purpose::Augment),
            );
            assert!(crop.x + crop.width <= w && crop.y + crop.height <= h);
            // A drawn crop equal to the whole image is replaced by the centre crop too.
            assert_ne!(crop, CropBox::whole(w, h), "{w}x{h}");
            if crop == centre {
                fallbacks += 1;
                continue;
            }
            // min_object_covered = 0.1 rejects the drawn crops of 8-10 % of the image.
            let area = (crop.width * crop.height) as f32 / image_area;
            assert!((0.1..=1.0).contains(&area), "area {area} of {crop:?}");
            let aspect = crop.width as f32 / crop.height as f32;
            let slack = 0.5 / crop.height as f32;
            assert!(
                aspect >= LEGACY_ASPECT_RANGE.0 - slack && aspect <= LEGACY_ASPECT_RANGE.1 + slack,
                "aspect {aspect} of {crop:?} in {w}x{h}"
            );
            smallest = smallest.min(area);
        }
        // The floor is reached (on 10x10 the smallest allowed crop is 3x4).
        let floor = if w * h > 100 { 0.115 } else { 0.125 };
        assert!(smallest < floor, "{w}x{h}: smallest area {smallest}");
        assert!(fallbacks < 400, "{w}x{h}: {fallbacks} centre crops of 4000");
    }
}

#[test]
fn legacy_train_transform_is_crop_bicubic_flip_autoaugment_and_imagenet_normalisation() {
    let photo = china();
    let size = 40;
    let transform = TrainTransform {
        image_size: size,
        preprocessing: Preprocessing::Legacy,
        policy: Policy::AutoAugmentV0,
        magnitude: 0.0,
        settings: AugmentSettings::default(),
        normalization: Normalization::IMAGENET,
    };
    let consts = PixelConsts {
        translate: 250.0,
        cutout: 100.0,
    };
    let mut out = vec![0f32; size * size * 3];
    let mut changed_by_policy = 0;
    for i in 0..40 {
        transform.apply(&photo, &mut stream(8, 1, i, Purpose::Augment), &mut out);
        // The same steps by hand, from the same stream.
        let mut rng = stream(8, 1, i, Purpose::Augment);
        let crop = legacy_random_crop(640, 427, 0.08, size, 32.0, &mut rng);
        let mut pixels = resize_bicubic(&photo, crop, size);
        if rng.gen::<f32>() < 0.5 {
            for row in pixels.chunks_exact_mut(size * 3) {
                let mirrored: Vec<f32> = row.chunks_exact(3).rev().flatten().copied().collect();
                row.copy_from_slice(&mirrored);
            }
        }
        let quantized: Vec<u8> = pixels.iter().map(|v| v.clamp(0.0, 255.0) as u8).collect();
        let quantized = RgbImage::from_raw(size as u32, size as u32, quantized).unwrap();
        let augmented = autoaugment_v0(quantized.clone(), consts, &mut rng);
        if augmented != quantized {
            changed_by_policy += 1;
        }
        let mean = [0.485f32 * 255.0, 0.456 * 255.0, 0.406 * 255.0];
        let std = [0.229f32 * 255.0, 0.224 * 255.0, 0.225 * 255.0];
        for (j, (&o, &v)) in out.iter().zip(augmented.as_raw()).enumerate() {
            let want = (f32::from(v) - mean[j % 3]) / std[j % 3];
            assert!(
                (o - want).abs() < 1e-5,
                "draw {i}, value {j}: {o} vs {want}"
            );
        }
    }
    // Most draws run at least one step that changes the image.
    assert!(changed_by_policy > 20, "{changed_by_policy} of 40");
}

#[test]
fn legacy_eval_transform_centre_crops_at_every_size_bicubic_without_clipping() {
    let photo = china();
    for size in [24, 320] {
        let eval = EvalTransform {
            image_size: size,
            preprocessing: Preprocessing::Legacy,
            crop_padding: 32.0,
            normalization: Normalization::IMAGENET,
        };
        let mut out = vec![0f32; size * size * 3];
        eval.apply(&photo, &mut out);
        // Side int(size / (size + 32) * 427), centred; no whole-image resize from 320 px on.
        let side = (size as f32 / (size as f32 + 32.0) * 427.0) as u32;
        let crop = CropBox {
            x: (640 - side).div_ceil(2),
            y: (427 - side).div_ceil(2),
            width: side,
            height: side,
        };
        let resized = resize_bicubic(&photo, crop, size);
        let n = Normalization::IMAGENET;
        for (j, (&o, &v)) in out.iter().zip(&resized).enumerate() {
            assert_eq!(
                o,
                (v - n.mean[j % 3]) / n.std[j % 3],
                "size {size}, value {j}"
            );
        }
    }
    // The legacy eval keeps bicubic overshoot: a step image gives values beyond (255 - mean) / std.
    let step = RgbImage::from_fn(64, 64, |x, _| Rgb([if x < 32 { 0 } else { 255 }; 3]));
    let eval = EvalTransform {
        image_size: 100,
        preprocessing: Preprocessing::Legacy,
        crop_padding: 32.0,
        normalization: Normalization::CENTRED,
    };
    let mut out = vec![0f32; 100 * 100 * 3];
    eval.apply(&step, &mut out);
    assert!(out.iter().any(|&v| v > 1.0) && out.iter().any(|&v| v < -1.0));
}

#[test]
fn legacy_transforms_take_degenerate_images() {
    // One-pixel and one-line images: every crop falls back to a 1-pixel centre crop, which the
    // bicubic resize stretches over the output.
    for (w, h) in [(1u32, 1u32), (1, 300), (300, 1), (2, 3)] {
        let image = RgbImage::from_fn(w, h, |x, y| Rgb([(x * 7 + y) as u8, 90, 200]));
        let mut out = vec![0f32; 12 * 12 * 3];
        let train = TrainTransform {
            image_size: 12,
            preprocessing: Preprocessing::Legacy,
            policy: Policy::AutoAugmentV0,
            magnitude: 0.0,
            settings: AugmentSettings::default(),
            normalization: Normalization::IMAGENET,
        };
        for i in 0..50 {
            train.apply(&image, &mut stream(3, 0, i, Purpose::Augment), &mut out);
            assert!(out.iter().all(|v| v.is_finite()), "{w}x{h}");
        }
        EvalTransform {
            image_size: 12,
            preprocessing: Preprocessing::Legacy,
            crop_padding: 32.0,
            normalization: Normalization::IMAGENET,
        }
        .apply(&image, &mut out);
        assert!(out.iter().all(|v| v.is_finite()), "{w}x{h}");
    }
}

/// The fine-tuning pipeline's reference output without its cutout: the whole image resized
/// bilinearly (no crop), flipped or not, normalised to `(x - 128) / 128`.
fn finetune_reference(image: &RgbImage, size: usize, flipped: bool) -> Vec<f32> {
    let (w, h) = image.dimensions();
    let resized = resize_bilinear(image, CropBox::whole(w, h), size);
    let mut out = vec![0f32; size * size * 3];
    for y in 0..size {
        for x in 0..size {
            let from = if flipped { size - 1 - x } else { x };
            for c in 0..3 {
                out[(y * size + x) * 3 + c] = (resized[(y * size + from) * 3 + c] - 128.0) / 128.0;
            }
        }
    }
    out
}

#[test]
fn finetune_train_transform_is_whole_image_flip_and_a_noise_cutout_of_half_the_side() {
    let img = gradient();
    let size = 24;
    let transform = TrainTransform {
        image_size: size,
        preprocessing: Preprocessing::Finetune,
        policy: Policy::RandAugment { layers: 0 },
        magnitude: 0.0,
        settings: AugmentSettings::default(),
        normalization: Normalization::CENTRED,
    };
    let mut flips = 0;
    for example in 0..40 {
        let mut out = vec![0f32; size * size * 3];
        transform.apply(&img, &mut stream(1, 0, example, Purpose::Augment), &mut out);
        // Exactly one of the two references matches outside the cutout.
        let differing = |flipped: bool| -> Vec<(usize, usize)> {
            let reference = finetune_reference(&img, size, flipped);
            (0..size * size)
                .filter(|&p| out[p * 3..p * 3 + 3] != reference[p * 3..p * 3 + 3])
                .map(|p| (p % size, p / size))
                .collect()
        };
        let (plain, flipped) = (differing(false), differing(true));
        let cut = if plain.len() <= flipped.len() {
            plain
        } else {
            flips += 1;
            flipped
        };
        // The cutout: a box of at most 2 * (24 / 4) = 12 pixels a side, values in [0, 1).
        let (xs, ys): (Vec<usize>, Vec<usize>) = cut.iter().copied().unzip();
        let width = xs.iter().max().unwrap() - xs.iter().min().unwrap() + 1;
        let height = ys.iter().max().unwrap() - ys.iter().min().unwrap() + 1;
        assert!(width <= 12 && height <= 12, "{width} x {height}");
        assert!(
            cut.len() >= 6 * 6,
            "a cutout clipped to at least a quarter: {}",
            cut.len()
        );
        for (x, y) in cut {
            let at = (y * size + x) * 3;
            assert!(out[at..at + 3].iter().all(|v| (0.0..1.0).contains(v)));
        }
    }
    assert!((8..=32).contains(&flips), "{flips} flips in 40");
}

#[test]
fn finetune_eval_transform_resizes_the_whole_image_without_crop() {
    let img = gradient();
    let transform = EvalTransform {
        image_size: 16,
        preprocessing: Preprocessing::Finetune,
        crop_padding: 32.0,
        normalization: Normalization::CENTRED,
    };
    let mut out = vec![0f32; 16 * 16 * 3];
    transform.apply(&img, &mut out);
    assert_eq!(out, finetune_reference(&img, 16, false));
}

/// `--augment none`: the train transform is the evaluation transform (the whole image resized
/// to the size, normalised, never flipped) and draws nothing from its random stream; an image
/// already at the size passes through unchanged but for the normalisation.
#[test]
fn the_deterministic_train_transform_is_the_eval_transform_and_draws_nothing() {
    let img = gradient();
    let size = 24;
    let transform = TrainTransform {
        image_size: size,
        preprocessing: Preprocessing::Deterministic,
        policy: Policy::RandAugment { layers: 2 },
        magnitude: 15.0,
        settings: AugmentSettings::default(),
        normalization: Normalization::CENTRED,
    };
    let eval = EvalTransform {
        image_size: size,
        preprocessing: Preprocessing::Deterministic,
        crop_padding: 32.0,
        normalization: Normalization::CENTRED,
    };
    let mut expected = vec![0f32; size * size * 3];
    eval.apply(&img, &mut expected);
    assert_eq!(expected, finetune_reference(&img, size, false));
    for example in 0..40 {
        let mut rng = stream(1, 0, example, Purpose::Augment);
        let mut out = vec![0f32; size * size * 3];
        transform.apply(&img, &mut rng, &mut out);
        assert_eq!(out, expected, "example {example}");
        assert_eq!(
            rng.get_word_pos(),
            0,
            "example {example} drew from its stream"
        );
    }
    let at_size = RgbImage::from_fn(size as u32, size as u32, |x, y| {
        Rgb([(x * 10) as u8, (y * 10) as u8, ((x * y) % 256) as u8])
    });
    let mut out = vec![0f32; size * size * 3];
    transform.apply(&at_size, &mut stream(1, 0, 0, Purpose::Augment), &mut out);
    let normalised: Vec<f32> = at_size
        .as_raw()
        .iter()
        .map(|&v| (f32::from(v) - 128.0) / 128.0)
        .collect();
    assert_eq!(out, normalised);
}

/// `--augment none` as the trainer builds its loader: every epoch delivers the same batches (the
/// examples in the data set's order, each the evaluation transform of its image, no mixing).
#[test]
fn with_augmentation_off_two_epochs_deliver_identical_batches_in_data_set_order() {
    use effnetv2::data::{ImageFolder, Loader, Source, Stage};
    use effnetv2::model::load_spec;
    use effnetv2::trainer::input::InputPipeline;
    use effnetv2::trainer::recipe::Augmentation;

    let dir = tempfile::tempdir().unwrap();
    for (class, count) in [("a", 3u32), ("b", 4), ("c", 3)] {
        std::fs::create_dir_all(dir.path().join(class)).unwrap();
        for i in 0..count {
            let image = RgbImage::from_fn(20 + i, 16, |x, y| {
                Rgb([(x * 9 + i * 40) as u8, (y * 13) as u8, class.as_bytes()[0]])
            });
            image
                .save(dir.path().join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let source = std::sync::Arc::new(ImageFolder::open(dir.path()).unwrap());
    let pipeline = InputPipeline::for_spec(&load_spec("tiny").unwrap())
        .unwrap()
        .with_augmentation(Augmentation::Off);
    assert!(!pipeline.shuffle);
    let size = 12;
    let stage = Stage {
        image_size: size,
        magnitude: 0.0,
        mixup: 0.0,
        cutmix: 0.0,
    };
    let mut loader = Loader::new(source.clone(), pipeline.loader_config(4, stage, 5, 2)).unwrap();
    // 10 examples, batch 4, the last 2 dropped: epochs of two batches.
    let batches: Vec<_> = (0..4).map(|_| loader.next().unwrap().unwrap()).collect();
    assert_eq!(batches[2].epoch, 1);
    for (first, second) in batches[..2].iter().zip(&batches[2..]) {
        assert_eq!(first.indices, second.indices);
        assert_eq!(first.soft_labels, second.soft_labels);
        assert!(first.images == second.images, "epochs differ");
    }
    assert_eq!(batches[0].indices, [0, 1, 2, 3]);
    assert_eq!(batches[1].indices, [4, 5, 6, 7]);
    let eval = EvalTransform {
        image_size: size,
        preprocessing: pipeline.preprocessing,
        crop_padding: 32.0,
        normalization: pipeline.normalization,
    };
    let pixels = size * size * 3;
    for (slot, &index) in batches[1].indices.iter().enumerate() {
        let mut expected = vec![0f32; pixels];
        eval.apply(&source.load(index).unwrap(), &mut expected);
        assert!(
            batches[1].images.normalised().unwrap()[slot * pixels..(slot + 1) * pixels]
                == expected[..]
        );
    }
}
