#!/usr/bin/env python3
"""Compile a model's train steps for TPU targets without a TPU and print docs/measurements.md's table.

Runs `effnetv2 compile --json` (release build) once per target (and stage) and prints one Markdown
row per (target, stage): image size, batch per device, devices, peak HBM per device and whether it
fits, TFLOP and GB accessed per device, the roofline step time, images/s over all devices and MFU.
With --max-batch, a second table: the largest batch per device that fits, its peak and images/s,
the batch with the highest estimated images/s of those the search compiled (near the limit libtpu
rematerializes, so it need not be the largest), the images/s at --batch for scale, the
compiles the search took besides the one at --batch, and the minutes all its compiles took.

Usage: tools/tpu_estimates.py [--model s] [--batch 128] [--stage N | --stages 0,1,2]
                              [--max-batch] [--json-dir DIR] TARGET...
  e.g. tools/tpu_estimates.py tpu:v4 tpu:v5e tpu:v5p tpu:v6e
       tools/tpu_estimates.py --stages 0,1,2 tpu:v4 tpu:v5p tpu:v6e
       tools/tpu_estimates.py --stage 3 --max-batch tpu:v5e tpu:v6e
       tools/tpu_estimates.py --stage 3 tpu:v5e:2x2 tpu:v5e:2x4 tpu:v4:2x2x2
$EFFNETV2, when set, is the binary to run instead of `cargo run --release`. --json-dir keeps
each `compile --json` report there (tools/compare_jax.py --json-dir reuses them
instead of compiling our step again). Each S train step takes about 2-5 minutes to compile on 2
idle cores (up to 12 beside other compiles); --max-batch adds 4-15 more compiles per stage, each shown on stderr as it
finishes.
"""
import argparse
import json
import os
import subprocess
import sys

GIB = 1 << 30


def report_path(json_dir, target, model, batch, stage):
    name = f"{target.replace(':', '_')}_{model}_b{batch}_stage{'all' if stage is None else stage}"
    return os.path.join(json_dir, name + ".json")


def compile_target(target: str, model: str, batch: int, stage, max_batch: bool,
                   json_dir=None) -> dict:
    binary = os.environ.get("EFFNETV2")
    command = [binary] if binary else ["cargo", "run", "--release", "--quiet", "--"]
    command += ["compile", "--target", target, "--model", model, "--batch", str(batch), "--json",
                "--no-cache"]
    if stage is not None:
        command += ["--stage", str(stage)]
    if max_batch:
        command.append("--max-batch")
    # stderr passes through: the compiler's errors and the search's progress.
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        status = (f"killed by signal {-done.returncode}" if done.returncode < 0
                  else f"exit status {done.returncode}")
        sys.exit(f"{' '.join(command)} failed ({status}; its error is above)")
    if json_dir:
        os.makedirs(json_dir, exist_ok=True)
        suffix = "_maxbatch" if max_batch else ""
        path = report_path(json_dir, target, model, batch, stage).replace(".json", suffix + ".json")
        with open(path, "w") as f:
            f.write(done.stdout)
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


def max_batch_rows(report: dict):
    graphs = {g["graph"]: g for g in report["graphs"]}
    capacity = report["device"]["hbm_bytes"]
    for name, found in report["max_batch"]:
        g = graphs[name]
        peak = found["peak_bytes"]
        rate = {g["batch"]: g["examples_per_second"]}
        rate.update((p["batch"], p.get("examples_per_second")) for p in found["probes"])
        fastest = found.get("fastest")
        # The start's compile and the search's (reports from before probes were timed lack it).
        seconds = [g["compile_seconds"]] + [p.get("compile_seconds") for p in found["probes"]]
        minutes = "-" if None in seconds else f"{sum(seconds) / 60:.0f}"
        yield (
            f"| {report['target']} | {g['role'].get('stages')} | {g['image_size']} "
            f"| {capacity / GIB:.0f} GiB | {found['batch']} "
            f"| {'-' if peak is None else f'{peak / GIB:.2f} GiB'} "
            f"| {per_second(rate.get(found['batch']))} "
            f"| {'-' if not fastest else fastest['batch']} "
            f"| {per_second(fastest and fastest['examples_per_second'])} "
            f"| {per_second(g['examples_per_second'])} | {len(found['probes'])} | {minutes} |"
        )


def per_second(value) -> str:
    return "-" if value is None else f"{value:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="s")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--stage", type=int)
    parser.add_argument("--stages", help="comma-separated stages, one compile run each")
    parser.add_argument("--max-batch", action="store_true")
    parser.add_argument("--json-dir", help="keep each compile --json report in this directory")
    parser.add_argument("targets", nargs="+")
    args = parser.parse_args()
    stages = [int(s) for s in args.stages.split(",")] if args.stages else [args.stage]
    print("| target | stages | image | batch/device | devices | peak HBM/device | TFLOP/device "
          "| GB accessed/device | est. ms/step (bound) | img/s | MFU | compile s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    found = []
    for target in args.targets:
        for stage in stages:
            report = compile_target(target, args.model, args.batch, stage, args.max_batch,
                                    args.json_dir)
            for row in rows(report):
                print(row, flush=True)
            found.extend(max_batch_rows(report) if args.max_batch else [])
    if args.max_batch:
        print()
        print("| target | stages | image | HBM/device | max batch/device | its peak HBM/device "
              f"| its img/s | fastest batch that fit | its img/s | img/s at {args.batch} "
              "| compiles | minutes |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for row in found:
            print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
