#!/usr/bin/env python3
"""Compare our train step with the JAX reference of the same step (tools/jax_reference.py).

Prints, in one run, our figures, the JAX program's and their ratio (ours / JAX):
- TPU (deviceless, libtpu through `effnetv2 compile`): FLOPs and bytes accessed of the S train step
  at batch 128, bf16, for each progressive stage on one chip of --target (default tpu:v5e). Both
  programs are compiled by the same libtpu: ours with `effnetv2 compile`, JAX's serialized
  HloModuleProto with `effnetv2 compile --hlo`. The figures are per PJRT device: on v4, whose chip
  is two devices, ours is the step replicated over both and JAX's the one-device step.
- CPU: compile time and images/s of the f32 train step for `tiny` at 16/20/24/28 px (batch 128)
  and S at 64 px (batch 8): ours with `effnetv2 bench` on the default CPU plugin, JAX's on the JAX
  CPU backend.

Needs a Python with jax (`python -m pip install jax`; tested with jax 0.10.2), given by --python,
and a release build (`cargo build --release`). The TPU part compiles eight S steps: about 30-50
minutes on 2 cores; `--skip-tpu` or `--skip-cpu` run one half. Run it on an idle machine.

With --max-batch, the TPU part also finds the largest batch (a multiple of 8) of each program that
fits one device: ours with `compile --max-batch`, JAX's by compiles of its step exported at each
batch probed, starting at ours (gallop away from it by 8, 16, 32, ... then bisect), so that two
compiles confirm an equal figure. Each probe of the JAX side is an S compile of some minutes.

Usage: tools/compare_jax.py --python /path/to/venv/bin/python [--skip-tpu] [--skip-cpu]
                            [--target tpu:v5e] [--stages 0,1,2,3] [--steps 20] [--json-dir DIR]
                            [--max-batch]
--json-dir DIR reuses our step's `compile --json` reports that `tools/tpu_estimates.py --json-dir
DIR` kept (same target, model s, batch 128, one stage each; with --max-batch, the reports of
`tpu_estimates.py --max-batch`) instead of compiling it again. The
binary is $EFFNETV2, else $CARGO_TARGET_DIR/release/effnetv2 (default target/release/effnetv2).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EFFNETV2 = os.environ.get("EFFNETV2") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "effnetv2")
REFERENCE = os.path.join(ROOT, "tools", "jax_reference.py")
CPU_CASES = [("tiny", 16, 128), ("tiny", 20, 128), ("tiny", 24, 128), ("tiny", 28, 128), ("s", 64, 8)]


def run(command):
    """Runs a command, returning its stdout; exits with its stderr when it fails."""
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-4000:]}")
    return done.stdout


def last_json(text):
    """The last JSON document of a command's output (the reference prints one line)."""
    lines = [line for line in text.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def ours_tpu(target, stage, json_dir, max_batch=False):
    """Our step's `compile --json` report at batch 128 (with --max-batch: and its search)."""
    stem = json_dir and os.path.join(json_dir, f"{target.replace(':', '_')}_s_b128_stage{stage}")
    for kept in [stem + "_maxbatch.json"] + ([] if max_batch else [stem + ".json"]) if stem else []:
        if os.path.exists(kept):
            with open(kept) as f:
                return json.load(f)
    return json.loads(run([EFFNETV2, "compile", "--target", target, "--model", "s",
                           "--batch", "128", "--precision", "bf16", "--stage", str(stage),
                           "--json", "--no-cache"] + (["--max-batch"] if max_batch else [])))


def jax_tpu(python, target, image_size, scratch, batch=128):
    """The `compile --hlo --json` report of JAX's step at `batch`; None when it does not fit."""
    proto = os.path.join(scratch, f"jax_s_{image_size}_b{batch}.pb")
    run([python, REFERENCE, "hlo", "--model", "s", "--batch", str(batch), "--image-size",
         str(image_size), "--precision", "bf16", "--out", proto])
    command = [EFFNETV2, "compile", "--target", target, "--hlo", proto, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    os.remove(proto)
    if done.returncode != 0:
        if "RESOURCE_EXHAUSTED" in done.stderr:
            return None
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout)


def largest_fitting(fits, start, unit=8):
    """The largest multiple of `unit` for which `fits` holds (0 if none), assuming every smaller
    one fits too, and every size probed: from `start` (a multiple of `unit`), gallop by unit, 2
    unit, 4 unit, ... up while it fits (down while it does not), then bisect the bracket."""
    probed = {}

    def check(n):
        probed[n] = fits(n)
        return probed[n]

    if check(start):
        low, step = start, unit
        while check(low + step):
            low, step = low + step, step * 2
        high = low + step
    else:
        high, step = start, unit
        while high - step >= unit and not check(high - step):
            high, step = high - step, step * 2
        low = max(high - step, 0)
    while high - low > unit:
        middle = (low + high) // 2 // unit * unit
        if check(middle):
            low = middle
        else:
            high = middle
    return low, probed


def ours_cpu(model, size, batch, steps):
    """Compile seconds and images/s at one step per call from `effnetv2 bench`'s table."""
    out = run([EFFNETV2, "bench", "--model", model, "--image-size", str(size), "--batch",
               str(batch), "--steps-per-call", "1", "--steps", str(steps)])
    row = [line.split() for line in out.splitlines() if line.split()[:2] == ["1", "1"]][0]
    return float(row[2]), float(row[3])


def jax_cpu(python, model, size, batch, steps):
    report = last_json(run([python, REFERENCE, "time", "--model", model, "--batch", str(batch),
                            "--image-size", str(size), "--precision", "f32",
                            "--steps", str(steps)]))
    return report["compile_seconds"], report["images_per_second"]


def ratio(ours, theirs):
    return f"{ours / theirs:.2f}x" if theirs else "-"


def compare_tpu(python, target, stages, json_dir):
    chip = target.split(":")[1] if target.startswith("tpu:") else target
    print(f"TPU {chip}, S train step, batch 128, bf16 (deviceless compiles by libtpu; ours / JAX)")
    print(f"{'stage':>5} {'image':>5} {'TFLOP ours':>10} {'TFLOP jax':>9} {'ratio':>6} "
          f"{'GB ours':>8} {'GB jax':>8} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as scratch:
        for stage in stages:
            ours = ours_tpu(target, stage, json_dir)["graphs"][0]
            theirs = jax_tpu(python, target, ours["image_size"], scratch)
            print(f"{stage:>5} {ours['image_size']:>5} {ours['flops'] / 1e12:>10.3f} "
                  f"{theirs['flops'] / 1e12:>9.3f} {ratio(ours['flops'], theirs['flops']):>6} "
                  f"{ours['bytes_accessed'] / 1e9:>8.1f} {theirs['bytes_accessed'] / 1e9:>8.1f} "
                  f"{ratio(ours['bytes_accessed'], theirs['bytes_accessed']):>6}", flush=True)


def gib(peak):
    return "-" if peak is None else f"{peak / (1 << 30):.2f}"


def compare_max_batch(python, target, stages, json_dir):
    print(f"TPU {target}, S train step, bf16: the largest batch per device that fits "
          "(ours / JAX)")
    print(f"{'stage':>5} {'image':>5} {'ours':>5} {'peak GiB':>8} {'JAX':>5} {'peak GiB':>8} "
          f"{'ratio':>6}  JAX probes (batch: peak GiB, or OOM)")
    with tempfile.TemporaryDirectory() as scratch:
        for stage in stages:
            report = ours_tpu(target, stage, json_dir, max_batch=True)
            image_size = report["graphs"][0]["image_size"]
            ours = report["max_batch"][0][1]
            peaks = {}

            def fits(batch):
                theirs = jax_tpu(python, target, image_size, scratch, batch)
                peaks[batch] = theirs and theirs["memory"]["peak"]
                return theirs is not None

            batch, _ = largest_fitting(fits, ours["batch"])
            probes = ", ".join(f"{n}: {gib(p) if p else 'OOM'}" for n, p in peaks.items())
            print(f"{stage:>5} {image_size:>5} {ours['batch']:>5} {gib(ours['peak_bytes']):>8} "
                  f"{batch:>5} {gib(peaks.get(batch)):>8} {ratio(ours['batch'], batch):>6}  "
                  f"{probes}", flush=True)


def compare_cpu(python, steps):
    print("CPU, f32 train step (ours: effnetv2 bench, default plugin; JAX: its CPU backend)")
    print(f"{'model':>5} {'image':>5} {'batch':>5} {'compile s ours':>14} {'jax':>6} "
          f"{'img/s ours':>10} {'jax':>7} {'speed ours/jax':>14}")
    for model, size, batch in CPU_CASES:
        ours_compile, ours_rate = ours_cpu(model, size, batch, steps)
        jax_compile, jax_rate = jax_cpu(python, model, size, batch, steps)
        print(f"{model:>5} {size:>5} {batch:>5} {ours_compile:>14.1f} {jax_compile:>6.1f} "
              f"{ours_rate:>10.1f} {jax_rate:>7.1f} {ratio(ours_rate, jax_rate):>14}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="a Python with jax installed")
    parser.add_argument("--skip-tpu", action="store_true")
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--target", default="tpu:v5e", help="the TPU to compile for")
    parser.add_argument("--stages", default="0,1,2,3", help="S progressive stages to compile")
    parser.add_argument("--json-dir", help="reuse our reports kept by tpu_estimates.py --json-dir")
    parser.add_argument("--steps", type=int, default=20, help="timed CPU steps per case")
    parser.add_argument("--max-batch", action="store_true",
                        help="also the largest batch that fits, ours and JAX's (TPU)")
    args = parser.parse_args()
    if not os.path.exists(EFFNETV2):
        sys.exit(f"{EFFNETV2} is missing: run `cargo build --release` first")
    if not args.skip_cpu:
        compare_cpu(args.python, args.steps)
    if not args.skip_tpu:
        stages = [int(s) for s in args.stages.split(",")]
        compare_tpu(args.python, args.target, stages, args.json_dir)
        if args.max_batch:
            compare_max_batch(args.python, args.target, stages, args.json_dir)


if __name__ == "__main__":
    main()
