//! Crop statistics and the train / eval transforms of spec 6.1.

use effnetv2::data::rng::{stream, Purpose};
use effnetv2::data::transform::crop::{random_crop, AREA_RANGE, ASPECT_RANGE};
use effnetv2::data::transform::{eval_transform, resize_bilinear, CropBox, RandAugment};
use effnetv2::data::{AugmentSettings, TrainTransform};
use image::{Rgb, RgbImage};

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
    eval_transform(&img, size, 32.0, &mut out);
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
    eval_transform(&img, size, 32.0, &mut out);
    // Whole image squeezed to 320x320: the left half is black, the right half white.
    assert_eq!(out[0], -1.0);
    assert_eq!(out[(size - 1) * 3], (255.0 - 128.0) / 128.0);
}

#[test]
fn train_transform_output_is_normalised_and_deterministic() {
    let img = gradient();
    let transform = TrainTransform {
        image_size: 24,
        randaugment: RandAugment {
            layers: 2,
            magnitude: 15.0,
        },
        settings: AugmentSettings::default(),
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
        randaugment: RandAugment {
            layers: 0,
            magnitude: 0.0,
        },
        settings: AugmentSettings::default(),
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
