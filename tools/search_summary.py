#!/usr/bin/env python3
"""Summarise `effnetv2 search` directories as the Markdown of docs/measurements.md.

For each search directory: how many candidates were scored or failed and the time they took, the
backbone's figures, the best candidates by reward (their choices per stage written as
`F3x4*2`: Fused-MBConv (`F`) or MBConv (`M`), kernel 3, expansion 4, 2 layers), whether the best
beats the backbone's accuracy at a lower step time, and what the best candidates choose against
all candidates (the share of Fused-MBConv per stage, the mean expansion ratio, the share of 3x3
kernels): the paper's observations put to the test. Given two or more directories, it also
compares their rankings over the candidates they share (the same seed with --reuse scores the same
candidates for another target).

Usage: tools/search_summary.py [--top 5] DIR [DIR...]
"""
import argparse
import json
import os


def read(directory):
    with open(os.path.join(directory, "candidates.jsonl")) as f:
        records = []
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line a kill cut short, as the search itself reads it
    return sorted(records, key=lambda r: r["index"])


def choices(record):
    return " ".join(
        f"{'F' if s['block'] == 'fused' else 'M'}{s['kernel']}x{s['expand_ratio']}*{s['repeats']}"
        for s in record["candidate"]["stages"])


def relative_step(record, backbone, max_step_ratio=None):
    """Step time as a multiple of the backbone's timed beside it (older records: the backbone's
    own record; a rejected record: its limit over the space's max_step_ratio)."""
    if record["status"] == "rejected":
        return record["step_seconds"] * max_step_ratio / record["limit_seconds"]
    return record["step_seconds"] / record.get("backbone_step_seconds", backbone["step_seconds"])


def median(values):
    values = sorted(values)
    n = len(values)
    return (values[n // 2] + values[(n - 1) // 2]) / 2 if n else float("nan")


def observations(candidates, backbone, max_step_ratio):
    """The paper's observations as median relative step times of the candidates that follow
    each one against those that do not: Fused-MBConv against MBConv per stage, mean expansion
    at most 3.5 against more, mostly 3x3 kernels against not. `candidates` includes those the
    step limit rejected (timed, not trained): leaving out the slowest would bias the medians."""
    step = lambda group: median([relative_step(r, backbone, max_step_ratio) for r in group])
    stages = len(candidates[0]["candidate"]["stages"])
    for i in range(stages):
        fused = [r for r in candidates if r["candidate"]["stages"][i]["block"] == "fused"]
        mbconv = [r for r in candidates if r["candidate"]["stages"][i]["block"] != "fused"]
        print(f"- stage {i}: Fused-MBConv {step(fused):.2f}x ({len(fused)}) against MBConv "
              f"{step(mbconv):.2f}x ({len(mbconv)})")
    mean_expansion = lambda r: (sum(s["expand_ratio"] for s in r["candidate"]["stages"])
                                / len(r["candidate"]["stages"]))
    small = [r for r in candidates if mean_expansion(r) <= 3.5]
    large = [r for r in candidates if mean_expansion(r) > 3.5]
    accuracy = lambda group: 100 * median([r["accuracy"] for r in group if "accuracy" in r])
    print(f"- mean expansion at most 3.5: {step(small):.2f}x, {accuracy(small):.1f}% ({len(small)}) "
          f"against {step(large):.2f}x, {accuracy(large):.1f}% ({len(large)})")
    kernel3 = lambda r: sum(s["kernel"] == 3 for s in r["candidate"]["stages"]) > stages / 2
    k3 = [r for r in candidates if kernel3(r)]
    k5 = [r for r in candidates if not kernel3(r)]
    print(f"- mostly 3x3: {step(k3):.2f}x ({len(k3)}) against {step(k5):.2f}x ({len(k5)})")


def key(record):
    return json.dumps(record["candidate"], sort_keys=True)


def tendencies(records):
    """Share of Fused-MBConv per stage, mean expansion ratio and share of 3x3 kernels."""
    stages = len(records[0]["candidate"]["stages"])
    fused = [sum(r["candidate"]["stages"][i]["block"] == "fused" for r in records) / len(records)
             for i in range(stages)]
    layers = [s for r in records for s in r["candidate"]["stages"]]
    expansion = sum(s["expand_ratio"] for s in layers) / len(layers)
    kernel3 = sum(s["kernel"] == 3 for s in layers) / len(layers)
    return fused, expansion, kernel3


def ranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    for rank, i in enumerate(order):
        result[i] = float(rank)
    return result


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    mean = (n - 1) / 2
    cov = sum((x - mean) * (y - mean) for x, y in zip(ra, rb))
    var = sum((x - mean) ** 2 for x in ra)
    return cov / var if var else float("nan")


def summarise(directory, top):
    records = read(directory)
    scored = [r for r in records if r["status"] == "scored"]
    failed = [r for r in records if r["status"] == "failed"]
    rejected = [r for r in records if r["status"] == "rejected"]
    backbone = next(r for r in records if r["index"] == 0)
    candidates = [r for r in scored if r["index"] > 0]
    best = sorted(candidates, key=lambda r: -r["reward"])[:top]
    minutes = sum(r["seconds"] for r in records) / 60
    print(f"### {directory}\n")
    print(f"{len(records) - 1} candidates and the backbone: {len(scored)} scored, {len(failed)} "
          f"failed, {len(rejected)} rejected, {minutes:.1f} min of evaluation; "
          f"{sum(r['reward'] > backbone['reward'] for r in candidates)} candidates beat the "
          f"backbone's reward.\n")
    for r in failed:
        print(f"- {r['name']} failed: {r['reason'][:160]}")
    for r in rejected:
        print(f"- {r['name']} rejected: {choices(r)}, step {1e3 * r['step_seconds']:.4g} ms over "
              f"{1e3 * r['limit_seconds']:.4g} ms ({r['seconds']:.0f} s)")
    print("| rank | candidate | stages | top-1 | step ms | x backbone | params | reward |")
    print("|---|---|---|---|---|---|---|---|")
    for rank, r in [("backbone", backbone)] + list(enumerate(best, 1)):
        print(f"| {rank} | {r['name']} | {choices(r)} | {100 * r['accuracy']:.2f}% | "
              f"{1e3 * r['step_seconds']:.4g} | {relative_step(r, backbone):.2f} | {r['params']} | "
              f"{r['reward']:.4f} |")
    winner = best[0]
    beats = (winner["accuracy"] >= backbone["accuracy"] and relative_step(winner, backbone) < 1)
    print(f"\nBest by reward {'reaches' if beats else 'does NOT reach'} the backbone's accuracy at a "
          f"lower step time ({100 * winner['accuracy']:.2f}% at {relative_step(winner, backbone):.2f}x "
          f"the backbone's step against {100 * backbone['accuracy']:.2f}%).")
    faster_and_better = [r for r in candidates if r["accuracy"] >= backbone["accuracy"]
                         and relative_step(r, backbone) < 1]
    print(f"Candidates as accurate as the backbone and faster: "
          f"{', '.join(r['name'] for r in faster_and_better) or 'none'}.\n")
    for label, group in [(f"best {top}", best), ("all scored", candidates)]:
        fused, expansion, kernel3 = tendencies(group)
        print(f"- {label}: Fused-MBConv share per stage "
              f"{' / '.join(f'{100 * f:.0f}%' for f in fused)}, mean expansion {expansion:.2f}, "
              f"3x3 kernels {100 * kernel3:.0f}%")
    print("\nMedian step time relative to the backbone's (candidates in brackets, the rejected "
          "included; accuracy of the scored):")
    with open(os.path.join(directory, "space.json")) as f:
        max_step_ratio = json.load(f).get("max_step_ratio")
    observations(candidates + rejected, backbone, max_step_ratio)
    print()
    return records


def compare(named):
    (first, a), rest = named[0], named[1:]
    by_key = {key(r): r for r in a if r["status"] == "scored" and r["index"] > 0}
    for name, b in rest:
        shared = [(by_key[key(r)], r) for r in b
                  if r["status"] == "scored" and r["index"] > 0 and key(r) in by_key]
        if len(shared) < 3:
            print(f"{first} and {name} share {len(shared)} scored candidates: nothing to compare.")
            continue
        rho = spearman([x["reward"] for x, _ in shared], [y["reward"] for _, y in shared])
        rho_s = spearman([relative_step(x, a[0]) for x, _ in shared],
                         [relative_step(y, b[0]) for _, y in shared])
        top = lambda pairs, side: {p[side]["name"] for p in sorted(pairs, key=lambda p: -p[side]["reward"])[:5]}
        overlap = top(shared, 0) & top(shared, 1)
        print(f"{first} against {name}: {len(shared)} shared candidates; rank correlation of "
              f"rewards {rho:.2f}, of step times {rho_s:.2f}; top 5 by reward in both: "
              f"{', '.join(sorted(overlap)) or 'none'}.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("dirs", nargs="+")
    args = parser.parse_args()
    named = [(d, summarise(d, args.top)) for d in args.dirs]
    if len(named) > 1:
        compare(named)


if __name__ == "__main__":
    main()
