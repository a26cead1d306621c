"""RandAugment as the official EfficientNetV2 code runs it (spec section 6.2), in TensorFlow ops,
for the tf.data reference pipeline (tools/input_reference.py).

Written from the spec and TensorFlow's public API, not taken from the official repository. Per
layer one of the 16 operations of `OPS` is picked uniformly and always applied at the magnitude
(a float; `MAX_LEVEL` = 10); `tf.switch_case` runs only the chosen branch, as the official chain
of one `tf.cond` per operation does. The arguments follow the official `level_to_arg` table
(`arguments`); the operations act on uint8 HWC images and reproduce the official quirks:
- `blend` computes `image1 + factor * (image2 - image1)` in float32 and truncates to uint8,
  clipping to [0, 255] (the official code clips only when extrapolating: an interpolation lies
  between two uint8 images, so the clip changes nothing there and one formula covers both);
- `contrast` blends with a grey level of sum(histogram) / 256, the pixel count / 256 clipped to
  255, not the mean intensity;
- `sharpness` smooths with PIL's SMOOTH kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 in float32,
  truncates and keeps the one-pixel border;
- `equalize` maps each channel through the table (cumulative histogram + step // 2) // step
  shifted by one, step = (pixels - count of the largest value present) // 255, and leaves a
  channel whose step is 0 as it is;
- rotations, shears and translations are projective transforms sampled at the nearest pixel
  with uncovered pixels filled with 128 (`ImageProjectiveTransformV3`, NEAREST, fill 128: the
  official code wraps an alpha channel around a zero-filling transform and replaces the pixels
  whose alpha came out 0, which with nearest sampling is the same image); translations are in
  pixels whatever the image size;
- `Solarize`'s threshold int(M / 10 * 256) is 256 from M = 10 on: no pixel reaches it (no-op).
Knowingly dropped: the per-operation probability U(0.2, 0.8) that the official code draws and no
operation reads.
"""
import math

import tensorflow as tf

# Level scale of the official code (`_MAX_LEVEL`).
MAX_LEVEL = 10.0
# RandAugment's half side of the cutout square and translation in pixels, at MAX_LEVEL.
CUTOUT_CONST = 40.0
TRANSLATE_CONST = 100.0
# Grey value of uncovered and cut-out pixels.
REPLACE = 128
# Threshold of SolarizeAdd.
SOLARIZE_ADD_THRESHOLD = 128
# PIL's SMOOTH kernel, the degenerate image of `sharpness`.
SMOOTH = [[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]


def blend(image1, image2, factor):
    """`image1 + factor * (image2 - image1)` in float32, clipped and truncated to uint8."""
    image1 = tf.cast(image1, tf.float32)
    image2 = tf.cast(image2, tf.float32)
    blended = image1 + tf.constant(factor, tf.float32) * (image2 - image1)
    return tf.cast(tf.clip_by_value(blended, 0.0, 255.0), tf.uint8)


def auto_contrast(image):
    """Each channel stretched linearly from its [min, max] to [0, 255]; a constant channel kept."""
    pixels = tf.cast(image, tf.float32)
    low = tf.reduce_min(pixels, axis=[0, 1])
    high = tf.reduce_max(pixels, axis=[0, 1])
    scale = 255.0 / (high - low)
    offset = -low * scale
    stretched = tf.cast(tf.clip_by_value(pixels * scale + offset, 0.0, 255.0), tf.uint8)
    return tf.where(high > low, stretched, image)


def equalize_channel(channel):
    """One uint8 channel through its equalisation table (module doc)."""
    values = tf.cast(channel, tf.int32)
    histogram = tf.math.bincount(values, minlength=256, maxlength=256)
    present = tf.gather(histogram, tf.where(histogram > 0)[:, 0])
    step = (tf.reduce_sum(present) - present[-1]) // 255

    def mapped():
        table = (tf.cumsum(histogram) + step // 2) // step
        table = tf.clip_by_value(tf.concat([[0], table[:-1]], 0), 0, 255)
        return tf.cast(tf.gather(table, values), tf.uint8)

    return tf.cond(step > 0, mapped, lambda: channel)


def equalize(image):
    """Histogram equalisation of each channel."""
    return tf.stack([equalize_channel(image[:, :, c]) for c in range(3)], axis=-1)


def invert(image):
    return 255 - image


def posterize(image, bits):
    """The `bits` high bits of each value kept."""
    shift = tf.constant(8 - bits, tf.uint8)
    return tf.bitwise.left_shift(tf.bitwise.right_shift(image, shift), shift)


def solarize(image, threshold):
    """Values at or above `threshold` inverted; a threshold past 255 changes nothing."""
    if threshold > 255:
        return image
    return tf.where(image < tf.constant(threshold, tf.uint8), image, 255 - image)


def solarize_add(image, addition):
    """`addition` added (saturating) to the values below 128."""
    added = tf.clip_by_value(tf.cast(image, tf.int32) + addition, 0, 255)
    return tf.where(image < SOLARIZE_ADD_THRESHOLD, tf.cast(added, tf.uint8), image)


def grey(image):
    """TensorFlow's luma (`rgb_to_grayscale`), one uint8 channel."""
    return tf.image.rgb_to_grayscale(image)


def color(image, factor):
    return blend(tf.image.grayscale_to_rgb(grey(image)), image, factor)


def contrast(image, factor):
    """Blend with a constant grey of sum(luma histogram) / 256 (the pixel-count quirk)."""
    histogram = tf.histogram_fixed_width(tf.cast(grey(image), tf.int32), [0, 255], nbins=256)
    level = tf.reduce_sum(tf.cast(histogram, tf.float32)) / 256.0
    degenerate = tf.cast(tf.clip_by_value(level, 0.0, 255.0), tf.uint8)
    return blend(tf.fill(tf.shape(image), degenerate), image, factor)


def brightness(image, factor):
    return blend(tf.zeros_like(image), image, factor)


def sharpness(image, factor):
    """Blend with the SMOOTH-filtered image (truncated to uint8), whose border is the image's."""
    kernel = tf.tile(tf.constant(SMOOTH, tf.float32)[:, :, None, None] / 13.0, [1, 1, 3, 1])
    smooth = tf.nn.depthwise_conv2d(tf.cast(image, tf.float32)[None], kernel,
                                    strides=[1, 1, 1, 1], padding="VALID")[0]
    smooth = tf.cast(tf.clip_by_value(smooth, 0.0, 255.0), tf.uint8)
    border = [[1, 1], [1, 1], [0, 0]]
    inside = tf.pad(tf.ones_like(smooth, tf.bool), border)
    degenerate = tf.where(inside, tf.pad(smooth, border), image)
    return blend(degenerate, image, factor)


def projective(image, transform):
    """Output pixel (x, y) = input pixel nearest to ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k),
    k = c0 x + c1 y + 1, for `transform` [a0, a1, a2, b0, b1, b2, c0, c1]; 128 outside."""
    transform = tf.cast(tf.reshape(tf.stack(transform), [1, 8]), tf.float32)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transform, output_shape=tf.shape(image)[:2],
        fill_value=float(REPLACE), interpolation="NEAREST", fill_mode="CONSTANT")[0]


def rotate(image, degrees):
    """Rotation by `degrees` about the image centre (TensorFlow Addons' angle-to-transform rule)."""
    radians = tf.cast(degrees, tf.float32) * (math.pi / 180.0)
    height = tf.cast(tf.shape(image)[0], tf.float32)
    width = tf.cast(tf.shape(image)[1], tf.float32)
    cos, sin = tf.cos(radians), tf.sin(radians)
    x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2.0
    y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2.0
    return projective(image, [cos, -sin, x_offset, sin, cos, y_offset, 0.0, 0.0])


def shear_x(image, level):
    return projective(image, [1.0, level, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])


def shear_y(image, level):
    return projective(image, [1.0, 0.0, 0.0, level, 1.0, 0.0, 0.0, 0.0])


def translate_x(image, pixels):
    """Output x reads input x + `pixels` (the official `translate(image, [-pixels, 0])`)."""
    return projective(image, [1.0, 0.0, pixels, 0.0, 1.0, 0.0, 0.0, 0.0])


def translate_y(image, pixels):
    return projective(image, [1.0, 0.0, 0.0, 0.0, 1.0, pixels, 0.0, 0.0])


def cutout(image, pad, center_y, center_x):
    """Rows [cy - pad, cy + pad) x columns [cx - pad, cx + pad), clipped to the image, set to 128."""
    rows = tf.range(tf.shape(image)[0])
    cols = tf.range(tf.shape(image)[1])
    in_rows = (rows >= center_y - pad) & (rows < center_y + pad)
    in_cols = (cols >= center_x - pad) & (cols < center_x + pad)
    square = (in_rows[:, None] & in_cols[None, :])[:, :, None]
    return tf.where(square, tf.constant(REPLACE, tf.uint8), image)


def random_sign(value):
    """`value` or `-value`, each with probability 1/2."""
    return tf.where(tf.random.uniform([]) < 0.5, -value, value)


def arguments(name, image, magnitude):
    """The official `level_to_arg` of operation `name` at `magnitude` (spec 6.2): the random
    signs and the cutout centre are drawn here."""
    level = magnitude / MAX_LEVEL
    enhance = level * 1.8 + 0.1
    if name in ("AutoContrast", "Equalize", "Invert"):
        return ()
    if name == "Rotate":
        return (random_sign(level * 30.0),)
    if name == "Posterize":
        return (int(level * 4),)
    if name == "Solarize":
        return (int(level * 256),)
    if name == "SolarizeAdd":
        return (int(level * 110),)
    if name in ("Color", "Contrast", "Brightness", "Sharpness"):
        return (enhance,)
    if name in ("ShearX", "ShearY"):
        return (random_sign(level * 0.3),)
    if name in ("TranslateX", "TranslateY"):
        return (random_sign(level * TRANSLATE_CONST),)
    assert name == "Cutout", name
    center_y = tf.random.uniform([], 0, tf.shape(image)[0], dtype=tf.int32)
    center_x = tf.random.uniform([], 0, tf.shape(image)[1], dtype=tf.int32)
    return (int(level * CUTOUT_CONST), center_y, center_x)


# The 16 operations in the official order (the uniform pick indexes this list).
OPS = {
    "AutoContrast": auto_contrast, "Equalize": equalize, "Invert": invert, "Rotate": rotate,
    "Posterize": posterize, "Solarize": solarize, "Color": color, "Contrast": contrast,
    "Brightness": brightness, "Sharpness": sharpness, "ShearX": shear_x, "ShearY": shear_y,
    "TranslateX": translate_x, "TranslateY": translate_y, "Cutout": cutout,
    "SolarizeAdd": solarize_add,
}


def rand_augment(image, layers, magnitude):
    """`layers` operations, each picked uniformly from `OPS` and applied at `magnitude`, to a
    uint8 HWC image; only the picked operation of each layer runs."""
    for _ in range(layers):
        choice = tf.random.uniform([], 0, len(OPS), dtype=tf.int32)
        branches = [lambda op=op, name=name, image=image: op(image,
                                                             *arguments(name, image, magnitude))
                    for name, op in OPS.items()]
        image = tf.switch_case(choice, branches)
    return image
