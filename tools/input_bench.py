#!/usr/bin/env python3
"""Our input pipeline against tf.data, Pillow + timm and DALI on the same JPEGs, per core, in
alternating turns; optionally also ours on `data pack --max-side N` shards against the originals.

Usage: tools/input_bench.py --data DIR [--sizes 128,171,224,300] [--turns 2] [--images 256]
    [--plain] [--max-sides 256,320] [--binary target/release/effnetv2]
DIR is a folder of class folders of JPEGs (tools/imagenet_like_jpegs.py makes one). Build the
binary first with `cargo build --release`. Each turn runs, in an order that rotates from turn
to turn: `effnetv2 bench --data DIR --model s --workers 1 --sizes SIZES` (its per-core
column: S's whole official transform at each size, RandAugment at magnitude 10) and
tools/input_reference.py for tf.data, timm and DALI at the same sizes and magnitude; one
untimed turn comes first (page cache, Python imports). With --plain, the references also run
without RandAugment, against ours' decode + crop-resize columns (the same transform without
the policy, measured in the same `bench` run). With --max-sides, DIR is packed into zip shards as they are and at each
`--max-side N`, and ours runs on each pack in the same turns. Prints images/s per core per size,
the mean over the turns, and the ratios against tf.data (and against the original pack) from
the same run; the machine's load drifts, so only such ratios compare.

Needs only Python 3's standard library. The reference environments are virtual environments in
the user cache with pinned packages, created on first use under a lock (the same layout as
tests/python_env, so `timm-venv` is the one the timm tests install): tensorflow-cpu 2.21.0 and
nvidia-dali-cuda130 2.4.0 (run on the CPU only) in `input-reference-venv`, torch 2.15.0 +
timm 1.0.31 (with Pillow 13 and its libjpeg-turbo) in `timm-venv`.
"""
import argparse
import fcntl
import json
import pathlib
import subprocess
import sys
import tempfile

from effnetv2_cache import cache_dir

TOOLS = pathlib.Path(__file__).resolve().parent
# name -> (virtual environment, pinned requirements); the timm pins are tests/timm_common's.
ENVIRONMENTS = {
    "input-reference-venv": ["tensorflow-cpu==2.21.0", "nvidia-dali-cuda130==2.4.0"],
    "timm-venv": ["torch==2.15.0", "timm==1.0.31", "safetensors==0.8.0"],
}
REFERENCES = {"tfdata": "input-reference-venv", "timm": "timm-venv",
              "dali": "input-reference-venv"}
BASELINE = "tfdata"


def venv_python(name):
    """The Python of environment `name` with its pins installed (once, under a lock file)."""
    venv = cache_dir() / name
    venv.mkdir(parents=True, exist_ok=True)
    pins = ENVIRONMENTS[name]
    with open(venv.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = venv / "installed"
        if not done.is_file() or done.read_text() != " ".join(pins):
            print(f"installing {' '.join(pins)} into {venv} ...", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "--quiet",
                            "--disable-pip-version-check", *pins], check=True)
            done.write_text(" ".join(pins))
    return venv / "bin/python"


def run(command):
    """Runs `command`; its stdout, or exit with its output when it fails."""
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def ours(binary, data, sizes, images):
    """{size: {"magnitude", "rate" (images/s per core), "plain_rate" (the same without the
    augmentation), "decode_ms"}} from `effnetv2 bench --data`'s per-core table (rows: px,
    magnitude, decode, crop-resize, augment, total ms, images/s)."""
    stages = {}
    for line in run([binary, "bench", "--data", data, "--model", "s", "--workers", "1",
                     "--images", str(images), "--sizes", sizes]).splitlines():
        fields = line.split()
        if len(fields) == 7 and all(f.replace(".", "", 1).isdigit() for f in fields):
            decode, crop_resize = float(fields[2]), float(fields[3])
            stages[int(fields[0])] = {"magnitude": float(fields[1]), "rate": float(fields[6]),
                                      "plain_rate": 1e3 / (decode + crop_resize),
                                      "decode_ms": decode}
    if not stages:
        sys.exit(f"no per-core table in the output of {binary} bench --data {data}")
    return stages


def reference(impl, data, stages, images, layers):
    """{size: {"rate": images/s}} of tools/input_reference.py --impl IMPL at `stages`
    [(size, magnitude)] with `layers` RandAugment layers."""
    text = ",".join(f"{size}:{magnitude}" for size, magnitude in stages)
    rates = {}
    for line in run([venv_python(REFERENCES[impl]), TOOLS / "input_reference.py", "--impl",
                     impl, "--data", data, "--stages", text, "--images", str(images),
                     "--layers", str(layers)]
                    ).splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            rates[row["size"]] = {"rate": row["images"] / row["seconds"]}
    return rates


def pack(binary, data, out, max_side):
    """`data pack` of `data` into out/train and out/val (zip shards), at `max_side` if given."""
    extra = [] if max_side is None else ["--max-side", str(max_side)]
    for split in ("train", "val"):
        run([binary, "data", "pack", data, str(out / split), *extra])
    return str(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--sizes", default="128,171,224,300")
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--plain", action="store_true")
    parser.add_argument("--max-sides", default="")
    parser.add_argument("--binary", default="target/release/effnetv2")
    args = parser.parse_args()
    binary = str(pathlib.Path(args.binary).resolve())
    scratch = tempfile.TemporaryDirectory(prefix="input-bench-")
    packs = {}
    max_sides = [int(n) for n in args.max_sides.split(",") if n]
    if max_sides:
        packs["pack"] = pack(binary, args.data, pathlib.Path(scratch.name) / "original", None)
        for n in max_sides:
            packs[f"pack@{n}"] = pack(binary, args.data, pathlib.Path(scratch.name) / str(n), n)
    runs = {"ours": lambda stages: ours(binary, args.data, args.sizes, args.images)}
    for name, folder in packs.items():
        runs[name] = lambda stages, folder=folder: ours(binary, folder, args.sizes, args.images)
    for impl in REFERENCES:
        for layers, suffix in [(2, "")] + ([(0, "-plain")] if args.plain else []):
            runs[impl + suffix] = lambda stages, impl=impl, layers=layers: reference(
                impl, args.data, stages, args.images, layers)
    names = list(runs)

    # The untimed turn; ours goes first and tells the stages' magnitudes.
    stages = sorted(runs["ours"](None).items())
    stage_list = [(size, row["magnitude"]) for size, row in stages]
    for name in names[1:]:
        runs[name](stage_list)
    results = {name: [] for name in names}
    for turn in range(args.turns):
        for k in range(len(names)):
            name = names[(k + turn) % len(names)]
            rates = runs[name](stage_list)
            results[name].append(rates)
            print(f"turn {turn + 1}: {name} done", file=sys.stderr)

    def mean(name, size, key="rate"):
        values = [turn[size][key] for turn in results[name]]
        return sum(values) / len(values)

    def table(title, columns, baseline):
        """Rows of mean images/s per size for `columns` [(label, run name, key)], and each
        ratio against `baseline` (a column's index) with its per-turn ratios."""
        _, base, base_key = columns[baseline]
        print(f"{title}: images/s per core, mean of {args.turns} turns of {args.images} images "
              f"(ratio against {columns[baseline][0]} in the same run; per turn in brackets)")
        others = [c for k, c in enumerate(columns) if k != baseline]
        print(f"{'px':>4} {'mag':>5} " + " ".join(f"{c[0]:>8}" for c in columns) + "   "
              + " ".join(f"{c[0] + '/' + columns[baseline][0]:>24}" for c in others))
        for size, magnitude in stage_list:
            ratios = []
            for _, name, key in others:
                per_turn = "/".join(f"{a[size][key] / b[size][base_key]:.2f}"
                                    for a, b in zip(results[name], results[base]))
                ratio = mean(name, size, key) / mean(base, size, base_key)
                ratios.append(f"{ratio:.2f}x ({per_turn})")
            print(f"{size:>4} {magnitude:>5.2f} "
                  + " ".join(f"{mean(name, size, key):>8.1f}" for _, name, key in columns)
                  + "   " + " ".join(f"{r:>24}" for r in ratios))

    baseline = list(REFERENCES).index(BASELINE) + 1
    table("with RandAugment", [("ours", "ours", "rate")]
          + [(impl, impl, "rate") for impl in REFERENCES], baseline)
    if args.plain:
        print()
        table("without augmentation", [("ours", "ours", "plain_rate")]
              + [(impl, impl + "-plain", "rate") for impl in REFERENCES], baseline)
    if packs:
        print("\nours on zip shards, images/s per core and decode ms per image (ratios against "
              "the original pack, same run)")
        print(f"{'px':>4} " + " ".join(f"{n:>30}" for n in packs))
        for size, _ in stage_list:
            cells = []
            for n in packs:
                ratio = mean(n, size) / mean("pack", size)
                decode = mean(n, size, "decode_ms")
                decode_ratio = mean("pack", size, "decode_ms") / decode
                cells.append(f"{mean(n, size):.1f} ({ratio:.2f}x) {decode:.2f} ms ({decode_ratio:.2f}x)")
            print(f"{size:>4} " + " ".join(f"{c:>30}" for c in cells))


if __name__ == "__main__":
    main()
