//! Real JPEG / PNG fixtures from PyPI decode correctly, a truncated JPEG is rejected, and
//! Fashion-MNIST loads from its Debian package.
//!
//! Reference means and pixels were computed with Pillow 13.0 (libjpeg-turbo), an independent
//! decoder; JPEG decoders may differ by a few levels per pixel (IDCT and chroma upsampling), so
//! the comparisons allow small tolerances.

mod data_support;

use data_support::{files, foolbox_data, sklearn_images};
use effnetv2::data::{decode_rgb, DataError, FashionMnist, Source, Split};
use image::RgbImage;

fn decode_file(path: &std::path::Path) -> RgbImage {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    decode_rgb(&bytes, &path.display().to_string()).unwrap_or_else(|e| panic!("{e}"))
}

fn channel_means(image: &RgbImage) -> [f64; 3] {
    let mut sums = [0f64; 3];
    for p in image.pixels() {
        for c in 0..3 {
            sums[c] += f64::from(p[c]);
        }
    }
    sums.map(|s| s / f64::from(image.width() * image.height()))
}

/// Checks size, channel means (within 1 level) and two pixels (within 4 levels) against Pillow.
fn check(image: &RgbImage, size: (u32, u32), means: [f64; 3], pixels: [((u32, u32), [u8; 3]); 2]) {
    assert_eq!(image.dimensions(), size);
    let got = channel_means(image);
    for c in 0..3 {
        assert!(
            (got[c] - means[c]).abs() < 1.0,
            "means {got:?} vs {means:?}"
        );
    }
    for ((x, y), want) in pixels {
        let have = image.get_pixel(x, y).0;
        for c in 0..3 {
            assert!(
                have[c].abs_diff(want[c]) <= 4,
                "pixel ({x},{y}) {have:?} vs {want:?}"
            );
        }
    }
}

#[test]
fn baseline_jpegs_decode_like_libjpeg() {
    let dir = sklearn_images();
    let china = decode_file(&dir.join("china.jpg"));
    check(
        &china,
        (640, 427),
        [144.720, 145.469, 140.919],
        [((20, 10), [179, 204, 234]), ((200, 100), [123, 47, 11])],
    );
    let flower = decode_file(&dir.join("flower.jpg"));
    check(
        &flower,
        (640, 427),
        [55.134, 73.579, 57.0],
        [((20, 10), [36, 47, 39]), ((200, 100), [5, 21, 21])],
    );
}

#[test]
fn progressive_jpegs_decode_like_libjpeg() {
    let dir = foolbox_data();
    let first = decode_file(&dir.join("imagenet_00_243.jpg"));
    check(
        &first,
        (512, 512),
        [115.034, 111.356, 84.289],
        [((20, 10), [197, 177, 140]), ((200, 100), [189, 132, 115])],
    );
    let eighth = decode_file(&dir.join("imagenet_07_609.jpg"));
    check(
        &eighth,
        (512, 512),
        [76.45, 80.654, 81.645],
        [((20, 10), [33, 33, 21]), ((200, 100), [83, 85, 63])],
    );
    // All 20 decode; sizes per Pillow: 512x512 except imagenet_10_541.jpg (1024x683).
    let all = files(&dir, "imagenet_", ".jpg");
    assert_eq!(all.len(), 20);
    for path in all {
        let expected = if path.ends_with("imagenet_10_541.jpg") {
            (1024, 683)
        } else {
            (512, 512)
        };
        assert_eq!(
            decode_file(&path).dimensions(),
            expected,
            "{}",
            path.display()
        );
    }
}

/// JPEGs are decoded by zune-jpeg directly rather than through `image` (which wraps the same
/// decoder): the pixels must be exactly those of `image`'s route, for baseline 4:2:0 and
/// progressive photos, a 4:4:4 JPEG and a greyscale one (replicated into RGB).
#[test]
fn direct_jpeg_decoding_equals_the_image_crate_route_exactly() {
    let mut jpegs: Vec<Vec<u8>> = files(&foolbox_data(), "imagenet_", ".jpg")
        .into_iter()
        .chain(["china.jpg", "flower.jpg"].map(|name| sklearn_images().join(name)))
        .map(|path| std::fs::read(path).unwrap())
        .collect();
    let photo = image::load_from_memory(&jpegs[0]).unwrap();
    for encoded in [
        photo.clone(),
        image::DynamicImage::ImageLuma8(photo.to_luma8()),
    ] {
        let mut bytes = Vec::new();
        encoded
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        jpegs.push(bytes);
    }
    for (i, bytes) in jpegs.iter().enumerate() {
        let reference = image::load_from_memory(bytes).unwrap().into_rgb8();
        assert!(
            decode_rgb(bytes, "fixture").unwrap() == reference,
            "JPEG {i} differs"
        );
    }
}

#[test]
fn cifar_pngs_decode_exactly() {
    let dir = foolbox_data();
    let cifar = decode_file(&dir.join("cifar10_00_3.png"));
    check(
        &cifar,
        (32, 32),
        [110.024, 110.768, 104.366],
        [
            ((20, 10), [175, 165, 154]),
            ((8, 4), cifar.get_pixel(8, 4).0),
        ],
    );
    assert_eq!(
        cifar.get_pixel(20, 10).0,
        [175, 165, 154],
        "PNG is lossless"
    );
    assert_eq!(files(&dir, "cifar10_", ".png").len(), 20);
}

#[test]
fn truncated_jpegs_are_rejected_not_filled_with_grey() {
    for path in [
        foolbox_data().join("imagenet_03_990.jpg"),
        sklearn_images().join("china.jpg"),
    ] {
        let bytes = std::fs::read(&path).unwrap();
        for cut in [bytes.len() / 2, bytes.len() - 2] {
            match decode_rgb(&bytes[..cut], "cut.jpg") {
                Err(DataError::Truncated { what }) => assert_eq!(what, "cut.jpg"),
                other => panic!("{} cut at {cut}: {other:?}", path.display()),
            }
        }
    }
    let png = std::fs::read(foolbox_data().join("cifar10_01_8.png")).unwrap();
    assert!(matches!(
        decode_rgb(&png[..png.len() / 2], "cut.png"),
        Err(DataError::Decode { .. })
    ));
}

#[test]
fn fashion_mnist_loads_from_the_debian_package() {
    let train = FashionMnist::load(Split::Train).unwrap_or_else(|e| panic!("{e}"));
    let test = FashionMnist::load(Split::Test).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!(train.num_classes(), 10);
    assert_eq!(train.class_names()[9], "Ankle boot");
    // Both splits are balanced: 6,000 and 1,000 images per class.
    for (source, per_class) in [(&train, 6000), (&test, 1000)] {
        let mut counts = [0usize; 10];
        for i in 0..source.len() {
            counts[source.label(i)] += 1;
        }
        assert_eq!(counts, [per_class; 10]);
    }
    // The first 20 test images ship as PNGs in the foolbox wheel, named <nn>_<label>.png: an
    // independent copy of the pixels and labels.
    let foolbox = foolbox_data();
    let pngs = files(&foolbox, "fashionMNIST_", ".png");
    assert_eq!(pngs.len(), 20);
    for (i, path) in pngs.iter().enumerate() {
        let name = path.file_stem().unwrap().to_string_lossy();
        let label: usize = name.rsplit('_').next().unwrap().parse().unwrap();
        assert_eq!(test.label(i), label, "{name}");
        let reference = decode_file(path);
        assert_eq!(test.load(i).unwrap(), reference, "{name}");
    }
}
