#!/usr/bin/env python3
"""ImageNet-like JPEGs for the input-pipeline measurements, made from photos that PyPI wheels ship.

Usage: tools/imagenet_like_jpegs.py --out DIR
Writes DIR/photos/*.jpg (one class folder, so `effnetv2 bench --data DIR` and the reference
pipelines read the same files): 25 baseline (not progressive) 4:2:0 JPEGs of 450x400 px, Pillow
quality 96, about 90 KiB each, close to an ImageNet training photo (most are baseline 4:2:0, and
the mean is about 470x390 px and 110 KiB: 138 GB for 1.28 million files). The photos come from the wheels
tests/data_support fetches into the user cache: scikit-learn 1.5.2's `china.jpg` and
`flower.jpg` and foolbox 3.3.4's 20 ImageNet JPEGs: a square photo (512x512) is resized to 480x480
with Lanczos and its centre 450x400 kept; an oblong one (640x427, 1024x683) gives two 450x400
windows, its top-left and bottom-right corners. Run any data test once first (for
example `cargo test --test data_fixtures`) so that the cache holds them.
Needs Pillow (the timm reference environment has it).
"""
import argparse
import pathlib

from PIL import Image

from effnetv2_cache import cache_dir

SIZE = (450, 400)
QUALITY = 96


def windows(image):
    """Crops of SIZE from the photo: the centre of a 480x480 resize of a square photo, the
    top-left and bottom-right corners of an oblong one."""
    w, h = SIZE
    if image.width == image.height:
        image = image.resize((480, 480), Image.Resampling.LANCZOS)
        x, y = (480 - w) // 2, (480 - h) // 2
        return [image.crop((x, y, x + w, y + h))]
    return [image.crop((0, 0, w, h)),
            image.crop((image.width - w, image.height - h, image.width, image.height))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    fixtures = cache_dir() / "fixtures"
    sklearn = fixtures / "scikit-learn-1.5.2/sklearn/datasets/images"
    foolbox = fixtures / "foolbox-3.3.4/foolbox/data"
    photos = [sklearn / "china.jpg", sklearn / "flower.jpg"]
    photos += sorted(foolbox.glob("imagenet_*.jpg"))
    missing = [p for p in photos if not p.is_file()]
    if missing or len(photos) != 22:
        raise SystemExit(f"fixture photos missing in {fixtures} (run `cargo test --test "
                         f"data_fixtures` once): {missing or 'foolbox ImageNet JPEGs'}")
    out = pathlib.Path(args.out) / "photos"
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for photo in photos:
        for k, window in enumerate(windows(Image.open(photo).convert("RGB"))):
            window.save(out / f"{photo.stem}_{k}.jpg", quality=QUALITY, subsampling=2,
                        progressive=False)
            count += 1
    print(f"wrote {count} JPEGs of {SIZE[0]}x{SIZE[1]} px to {out}")


if __name__ == "__main__":
    main()
