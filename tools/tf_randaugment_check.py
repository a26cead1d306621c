#!/usr/bin/env python3
"""Checks tools/tf_randaugment.py: each of the 16 TensorFlow operations, with fixed parameters,
on u8 photo crops, against the operation written out in numpy from the spec (section 6.2).

Usage: tools/tf_randaugment_check.py [--photo PATH]
Prints one row per operation, parameters and image: the pixels that differ, how many of them lie
where the formula sits on a rounding boundary, and the largest difference of a value. The value
operations and blends must agree exactly. The warps round source coordinates (float32 in
TensorFlow, float64 here) to the nearest pixel and `sharpness` truncates a float32 convolution
(exact integer arithmetic here), so they may differ where a coordinate ends in .5 or a smoothed
value is a whole number; a difference anywhere else fails, as does a `sharpness` difference
above 1. Exits non-zero on a failure.
Runs in the tf.data reference environment (tools/input_bench.py makes it:
~/.cache/effnetv2/input-reference-venv/bin/python). The default photo is scikit-learn's
`china.jpg` (640x427) in the user cache (`cargo test --test data_fixtures` fetches it).
"""
import argparse
import math
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

import tf_randaugment as ra  # noqa: E402
from effnetv2_cache import cache_dir  # noqa: E402

PHOTO = "fixtures/scikit-learn-1.5.2/sklearn/datasets/images/china.jpg"
# A source coordinate this close to a half lies on the warps' rounding boundary.
HALF_TOLERANCE = 1e-4


def blend(image1, image2, factor):
    """Spec: image1 + f (image2 - image1) in float32, clipped when extrapolating, truncated."""
    image1, image2 = image1.astype(np.float32), image2.astype(np.float32)
    blended = image1 + np.float32(factor) * (image2 - image1)
    if not 0.0 <= factor <= 1.0:
        blended = np.clip(blended, 0.0, 255.0)
    return blended.astype(np.uint8)


def grey(image):
    """TensorFlow's luma: (x / 255) . (0.2989, 0.5870, 0.1140) in float32, times 255.5, truncated."""
    unit = image.astype(np.float32) * np.float32(1.0 / 255.0)
    luma = unit @ np.array([0.2989, 0.5870, 0.1140], np.float32)
    return np.clip(luma * np.float32(255.5), 0, 255).astype(np.uint8)[:, :, None]


def auto_contrast(image):
    out = image.copy()
    for c in range(3):
        low, high = np.float32(image[:, :, c].min()), np.float32(image[:, :, c].max())
        if high > low:
            scale = np.float32(255.0) / (high - low)
            stretched = image[:, :, c].astype(np.float32) * scale + (-low * scale)
            out[:, :, c] = np.clip(stretched, 0, 255).astype(np.uint8)
    return out


def equalize(image):
    out = image.copy()
    for c in range(3):
        channel = image[:, :, c].astype(np.int64)
        histogram = np.bincount(channel.ravel(), minlength=256)
        largest = channel.max()
        step = (histogram.sum() - histogram[largest]) // 255
        if step == 0:
            continue
        table = (np.cumsum(histogram) + step // 2) // step
        table = np.clip(np.concatenate([[0], table[:-1]]), 0, 255)
        out[:, :, c] = table[channel]
    return out


def posterize(image, bits):
    return (image >> (8 - bits)) << (8 - bits)


def solarize(image, threshold):
    return np.where(image.astype(int) < threshold, image, 255 - image).astype(np.uint8)


def solarize_add(image, addition):
    added = np.clip(image.astype(int) + addition, 0, 255)
    return np.where(image < 128, added, image).astype(np.uint8)


def color(image, factor):
    return blend(np.repeat(grey(image), 3, axis=-1), image, factor)


def contrast(image, factor):
    """The grey level is the pixel count / 256 (the luma histogram's sum), clipped to 255."""
    level = min(image.shape[0] * image.shape[1] / 256.0, 255.0)
    return blend(np.full_like(image, int(level)), image, factor)


def brightness(image, factor):
    return blend(np.zeros_like(image), image, factor)


def sharpness(image, factor):
    """Inside the border: (3x3 neighbourhood sum + 4 x centre) // 13, the exact SMOOTH filter;
    with the pixels where a smoothed value is a whole number (float32 may truncate it to one
    less)."""
    wide = image.astype(np.int64)
    h, w = image.shape[:2]
    total = sum(wide[dy:h - 2 + dy, dx:w - 2 + dx] for dy in range(3) for dx in range(3))
    total += 4 * wide[1:-1, 1:-1]
    degenerate = image.copy()
    degenerate[1:-1, 1:-1] = total // 13
    boundary = np.zeros((h, w), bool)
    boundary[1:-1, 1:-1] = (total % 13 == 0).any(axis=-1)
    return blend(degenerate, image, factor), boundary


def warp(image, source):
    """Output (x, y) = input at the nearest pixel (halves away from 0) to source(x, y), else 128;
    with the pixels whose source coordinate ends in .5."""
    h, w = image.shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    sx, sy = source(x, y)
    ix = (np.sign(sx) * np.floor(np.abs(sx) + 0.5)).astype(np.int64)
    iy = (np.sign(sy) * np.floor(np.abs(sy) + 0.5)).astype(np.int64)
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    out = np.full_like(image, 128)
    out[inside] = image[iy[inside], ix[inside]]
    half = [np.abs(np.abs(v) % 1.0 - 0.5) < HALF_TOLERANCE for v in (sx, sy)]
    return out, half[0] | half[1]


def rotate(image, degrees):
    """Rotation about the centre ((w - 1) / 2, (h - 1) / 2) of the pixel grid."""
    h, w = image.shape[:2]
    cx, cy = (w - 1) / 2, (h - 1) / 2
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return warp(image, lambda x, y: (cos * (x - cx) - sin * (y - cy) + cx,
                                     sin * (x - cx) + cos * (y - cy) + cy))


def cutout(image, pad, center_y, center_x):
    out = image.copy()
    out[max(0, center_y - pad):center_y + pad, max(0, center_x - pad):center_x + pad] = 128
    return out


# (operation, arguments, numpy formula) with fixed parameters: the arguments of magnitudes 2 to
# 10 with both signs; Solarize also at M = 5 (from M = 10 on it is a no-op).
CASES = [
    ("AutoContrast", (), auto_contrast),
    ("Equalize", (), equalize),
    ("Invert", (), lambda im: 255 - im),
    ("Rotate", (30.0,), rotate),
    ("Rotate", (-15.0,), rotate),
    ("Posterize", (4,), posterize),
    ("Posterize", (2,), posterize),
    ("Solarize", (128,), solarize),
    ("Solarize", (256,), solarize),
    ("SolarizeAdd", (110,), solarize_add),
    ("SolarizeAdd", (55,), solarize_add),
    *[(name, (factor,), formula)
      for name, formula in [("Color", color), ("Contrast", contrast),
                            ("Brightness", brightness), ("Sharpness", sharpness)]
      for factor in (1.9, 0.46)],
    ("ShearX", (0.3,), lambda im, s: warp(im, lambda x, y: (x + s * y, y))),
    ("ShearX", (-0.15,), lambda im, s: warp(im, lambda x, y: (x + s * y, y))),
    ("ShearY", (0.3,), lambda im, s: warp(im, lambda x, y: (x, s * x + y))),
    ("ShearY", (-0.15,), lambda im, s: warp(im, lambda x, y: (x, s * x + y))),
    ("TranslateX", (100.0,), lambda im, p: warp(im, lambda x, y: (x + p, y))),
    ("TranslateX", (-33.3,), lambda im, p: warp(im, lambda x, y: (x + p, y))),
    ("TranslateY", (100.0,), lambda im, p: warp(im, lambda x, y: (x, y + p))),
    ("TranslateY", (-33.3,), lambda im, p: warp(im, lambda x, y: (x, y + p))),
    ("Cutout", (40, 20, 150), cutout),
    ("Cutout", (20, 100, 5), cutout),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--photo", default=str(cache_dir() / PHOTO))
    args = parser.parse_args()
    photo = tf.io.decode_jpeg(tf.io.read_file(args.photo), channels=3).numpy()
    images = {
        "224x224 crop": photo[100:324, 200:424],
        "171x300 crop, values x/2+60": photo[200:371, 50:350] // 2 + 60,
    }
    assert set(name for name, _, _ in CASES) == set(ra.OPS), "every operation checked"
    failures = 0
    print(f"{'operation':<13} {'arguments':<14} {'image':<28} {'pixels':>6} {'differ':>6} "
          f"{'share':>7} {'at .5/whole':>11} {'max':>4}")
    for name, arguments, formula in CASES:
        for label, image in images.items():
            ours = ra.OPS[name](tf.constant(image), *arguments).numpy()
            expected = formula(image, *arguments)
            expected, boundary = expected if isinstance(expected, tuple) else (
                expected, np.zeros(image.shape[:2], bool))
            assert ours.shape == expected.shape and ours.dtype == np.uint8
            difference = np.abs(ours.astype(int) - expected.astype(int))
            differ = difference.max(axis=-1) > 0
            failed = (differ & ~boundary).any() or (name == "Sharpness" and difference.max() > 1)
            failures += failed
            print(f"{name:<13} {str(arguments):<14} {label:<28} {differ.size:>6} "
                  f"{differ.sum():>6} {differ.mean():>7.3%} {(differ & boundary).sum():>11} "
                  f"{difference.max():>4}{'  FAIL' if failed else ''}")
    augmented = ra.rand_augment(tf.constant(images["224x224 crop"]), layers=2, magnitude=10.0)
    assert augmented.shape == (224, 224, 3) and augmented.dtype == tf.uint8
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
