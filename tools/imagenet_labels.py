#!/usr/bin/env python3
"""Writes graphs/labels/imagenet-1k.txt: the ImageNet-1k class names in class-index order, one per
line, as timm names them (its `ImageNetInfo` descriptions: the WordNet lemmas of each synset).

Usage: tools/imagenet_labels.py [TIMM_INFO_DIR] [--out FILE]
TIMM_INFO_DIR is timm's `timm/data/_info` folder, holding `imagenet_synsets.txt` (the 1000
synsets in class-index order) and `imagenet_synset_to_lemma.txt` (synset<TAB>lemmas, for all of
ImageNet-21k). Default: that folder of the `timm` importable by this Python, else of the timm
virtual environment the tests install (~/.cache/effnetv2/timm-venv).
Only the standard library is needed.
"""
import argparse
import glob
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def default_info_dir():
    try:
        import timm  # noqa: F401

        return pathlib.Path(timm.__file__).parent / "data" / "_info"
    except ImportError:
        pass
    cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache"))
    found = glob.glob(str(cache / "effnetv2/timm-venv/lib/python*/site-packages/timm/data/_info"))
    if not found:
        sys.exit("no timm found: pass timm's data/_info folder")
    return pathlib.Path(found[0])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("info_dir", nargs="?", type=pathlib.Path)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "graphs/labels/imagenet-1k.txt")
    args = parser.parse_args()
    info = args.info_dir or default_info_dir()
    synsets = (info / "imagenet_synsets.txt").read_text().split()
    lemmas = {}
    for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines():
        synset, lemma = line.split("\t", 1)
        lemmas[synset] = lemma.strip()
    assert len(synsets) == 1000 and len(set(synsets)) == 1000, "expected 1000 distinct synsets"
    names = [lemmas[s] for s in synsets]
    assert all(names) and all("\n" not in n for n in names)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(n + "\n" for n in names))
    print(f"wrote {len(names)} class names from {info} to {args.out}")


if __name__ == "__main__":
    main()
