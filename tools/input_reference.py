#!/usr/bin/env python3
"""The official EfficientNetV2-S training transform, one image at a time on one core, in three
reference implementations, to measure our input pipeline against (tools/input_bench.py runs it).

Usage: tools/input_reference.py --impl {tfdata,timm,dali} --data DIR --stages 128:5,300:10
    [--images 256] [--layers 2]
DIR holds the JPEGs (searched recursively). For each stage SIZE:MAGNITUDE the transform reads a
file, decodes it, takes a random crop of 5-100 % of the area with aspect 3/4-4/3, resizes it
bilinearly to SIZE x SIZE, flips it at random, applies RandAugment (`--layers` layers, 2 by
default, 0 for none, at MAGNITUDE of 10) and normalises to float32; after a warm-up it times `--images` images and prints one JSON line
per stage: {"impl", "size", "images", "seconds" (wall), "cpu_seconds" (this process)}. The
ratio cpu_seconds / seconds shows whether an implementation stayed on one core.

Each implementation is written from its library's public API (no code taken from the official
repository):
- tfdata: tf.data as the official preprocessing does it: `tf.io.read_file`,
  `tf.image.sample_distorted_bounding_box` (100 attempts, the whole image on failure) and
  `tf.image.decode_and_crop_jpeg` (libjpeg-turbo decodes only the window), `tf.image.resize`
  (bilinear), `random_flip_left_right`, a uint8 cast, RandAugment, `(x - 128) / 128`.
  RandAugment is the official one (16 operations, the official argument rules, only the picked
  operation of each layer run through `tf.switch_case`), written in TensorFlow ops from the spec
  in tools/tf_randaugment.py (checked against numpy by tools/tf_randaugment_check.py). One
  thread: `tf.config.threading` intra/inter = 1, a private thread pool of 1 and sequential
  `map`, no prefetch.
- timm: Pillow (libjpeg-turbo) + timm's `RandomResizedCropAndInterpolation(scale=(0.05, 1))`,
  `RandomHorizontalFlip`, `rand_augment_transform('rand-mM-n2')` (timm takes whole
  magnitudes: M rounded) and `ToTensor` + `Normalize`, `torch.set_num_threads(1)`.
- dali: NVIDIA DALI on the CPU (`device_id=None`, `num_threads=1`, batches of 16):
  `fn.readers.file`, `fn.decoders.image_random_crop` (decodes only the window),
  `fn.resize(INTERP_LINEAR, antialias=False)`, `fn.auto_aug.rand_augment(n=2,
  m=round(3 * MAGNITUDE), num_magnitude_bins=31)` and `fn.crop_mirror_normalize` with a random
  mirror (the flip after the augmentation: the two commute in distribution).
Needs tensorflow-cpu 2.21.0 (tfdata), timm 1.0.31 with torch (timm), nvidia-dali-cuda130 2.4.0
(dali); tools/input_bench.py installs them into virtual environments in the user cache.
"""
import argparse
import json
import os
import pathlib
import time

WARM_UP = 16
DALI_BATCH = 16
AREA = (0.05, 1.0)
ASPECT = (3 / 4, 4 / 3)


def stages(text):
    """`128:5,300:10` -> [(128, 5.0), (300, 10.0)]."""
    return [(int(s.split(":")[0]), float(s.split(":")[1])) for s in text.split(",")]


def timed(run, images):
    """Runs `run(images)` and returns (wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    run(images)
    return time.perf_counter() - wall, time.process_time() - cpu


def tfdata(paths, size, magnitude, layers):
    import tensorflow as tf
    from tf_randaugment import rand_augment

    def transform(path):
        encoded = tf.io.read_file(path)
        shape = tf.image.extract_jpeg_shape(encoded)
        begin, crop_size, _ = tf.image.sample_distorted_bounding_box(
            shape, bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
            min_object_covered=0.0, aspect_ratio_range=ASPECT, area_range=AREA,
            max_attempts=100, use_image_if_no_bounding_boxes=True)
        window = tf.stack([begin[0], begin[1], crop_size[0], crop_size[1]])
        image = tf.image.decode_and_crop_jpeg(encoded, window, channels=3)
        image = tf.image.resize(image, [size, size], method="bilinear")
        image = tf.image.random_flip_left_right(image)
        image = tf.cast(tf.clip_by_value(image, 0.0, 255.0), tf.uint8)
        if layers:
            image = rand_augment(image, layers, magnitude)
        return (tf.cast(image, tf.float32) - 128.0) / 128.0

    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    options.autotune.enabled = False
    dataset = (tf.data.Dataset.from_tensor_slices([str(p) for p in paths]).repeat()
               .map(transform).with_options(options))
    iterator = iter(dataset)

    def run(images):
        for _ in range(images):
            next(iterator)

    return run


def timm(paths, size, magnitude, layers):
    import torch
    from PIL import Image
    from timm.data.auto_augment import rand_augment_transform
    from timm.data.transforms import RandomResizedCropAndInterpolation
    from torchvision import transforms

    torch.set_num_threads(1)
    augment = [rand_augment_transform(f"rand-m{round(magnitude)}-n{layers}",
                                      {"translate_const": int(size * 0.45),
                                       "img_mean": (128, 128, 128)})] if layers else []
    pipeline = transforms.Compose([
        RandomResizedCropAndInterpolation(size, scale=AREA, ratio=ASPECT,
                                          interpolation="bilinear"),
        transforms.RandomHorizontalFlip(),
        *augment,
        transforms.ToTensor(),
        transforms.Normalize([128 / 255] * 3, [128 / 255] * 3),
    ])
    state = {"next": 0}

    def run(images):
        for _ in range(images):
            path = paths[state["next"] % len(paths)]
            state["next"] += 1
            with Image.open(path) as image:
                pipeline(image.convert("RGB"))

    return run


def dali(paths, size, magnitude, layers):
    from nvidia.dali import fn, pipeline_def, types
    from nvidia.dali.auto_aug import rand_augment

    @pipeline_def(enable_conditionals=True)
    def pipeline():
        encoded, _ = fn.readers.file(files=[str(p) for p in paths], name="files")
        image = fn.decoders.image_random_crop(encoded, device="cpu", output_type=types.RGB,
                                              random_area=list(AREA),
                                              random_aspect_ratio=list(ASPECT),
                                              num_attempts=100)
        image = fn.resize(image, resize_x=size, resize_y=size,
                          interp_type=types.INTERP_LINEAR, antialias=False)
        if layers:
            image = rand_augment.rand_augment(image, n=layers, m=round(3 * magnitude),
                                              num_magnitude_bins=31)
        return fn.crop_mirror_normalize(image, dtype=types.FLOAT, output_layout="HWC",
                                        mean=[128.0] * 3, std=[128.0] * 3,
                                        mirror=fn.random.coin_flip())

    pipe = pipeline(batch_size=DALI_BATCH, num_threads=1, device_id=None,
                    prefetch_queue_depth=1, seed=0)
    pipe.build()

    def run(images):
        for _ in range(-(-images // DALI_BATCH)):
            pipe.run()

    return run


IMPLEMENTATIONS = {"tfdata": tfdata, "timm": timm, "dali": dali}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", required=True, choices=sorted(IMPLEMENTATIONS))
    parser.add_argument("--data", required=True)
    parser.add_argument("--stages", required=True, type=stages)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args()
    if args.impl == "tfdata":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    paths = sorted(p for p in pathlib.Path(args.data).rglob("*")
                   if p.suffix.lower() in (".jpg", ".jpeg"))
    if not paths:
        raise SystemExit(f"no JPEGs under {args.data}")
    images = args.images
    if args.impl == "dali":
        images = -(-images // DALI_BATCH) * DALI_BATCH
    for size, magnitude in args.stages:
        run = IMPLEMENTATIONS[args.impl](paths, size, magnitude, args.layers)
        run(WARM_UP)
        seconds, cpu_seconds = timed(run, images)
        print(json.dumps({"impl": args.impl, "size": size, "layers": args.layers,
                          "images": images,
                          "seconds": seconds, "cpu_seconds": cpu_seconds}), flush=True)


if __name__ == "__main__":
    main()
