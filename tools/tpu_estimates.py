#!/usr/bin/env python3
"""Compile a model's train steps for TPU targets without a TPU and print the README's table.

Runs `effnetv2 compile --json` (release build) once per target and prints one Markdown row per
(target, stage): image size, batch per device, devices, peak HBM per device and whether it fits,
TFLOP and GB accessed per device, the roofline step time, images/s over all devices and MFU.

Usage: tools/tpu_estimates.py [--model s] [--batch 128] [--stage N] TARGET...
  e.g. tools/tpu_estimates.py tpu:v4 tpu:v5e tpu:v5p tpu:v6e
       tools/tpu_estimates.py --stage 3 tpu:v5e:2x2 tpu:v5e:2x4 tpu:v4:2x2x2
Each S train step takes about 2-4 minutes to compile on 2 cores.
"""
import argparse
import json
import subprocess
import sys

GIB = 1 << 30


def compile_target(target: str, model: str, batch: int, stage) -> dict:
    command = ["cargo", "run", "--release", "--quiet", "--", "compile", "--target", target,
               "--model", model, "--batch", str(batch), "--json", "--no-cache"]
    if stage is not None:
        command += ["--stage", str(stage)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    return json.loads(done.stdout)


def rows(report: dict):
    for g in report["graphs"]:
        memory, roofline = g["memory"], g["roofline"] or {}
        yield (
            f"| {report['target']} | {g['role'].get('stages')} | {g['image_size']} | {g['batch']} "
            f"| {g['devices']} | {memory['peak'] / GIB:.2f} GiB{'' if memory['fits'] else ' (does not fit)'} "
            f"| {g['flops'] / 1e12:.2f} | {g['bytes_accessed'] / 1e9:.1f} "
            f"| {roofline.get('seconds', float('nan')) * 1e3:.0f} ({roofline.get('bound', '-')}) "
            f"| {g['examples_per_second']:.0f} | {roofline.get('mfu', 0) * 100:.0f}% "
            f"| {g['compile_seconds']:.0f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="s")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--stage", type=int)
    parser.add_argument("targets", nargs="+")
    args = parser.parse_args()
    print("| target | stages | image | batch/device | devices | peak HBM/device | TFLOP/device "
          "| GB accessed/device | est. ms/step (bound) | img/s | MFU | compile s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for target in args.targets:
        for row in rows(compile_target(target, args.model, args.batch, args.stage)):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
