#!/usr/bin/env python3
"""Where an optimized HLO module moves its bytes: one line per kind of top-level instruction.

Reads the optimized HLO text that `effnetv2 dump --optimized --target T` writes (or XLA's own dump
of any program) and counts, for every instruction that runs outside a fusion (the entry
computation and the bodies of loops and conditionals), the bytes of its operands plus its
outputs: what a fusion reads from and writes to memory. Shapes are counted at their logical size
(no tile padding), and a slice counts the whole tensor it reads from, so the total is close to,
not equal to, libtpu's `bytes accessed` (S's v5e step at 300 px: 112.5 GB counted, 107.5 GB by
libtpu): use it to compare modules and kinds of instruction, not as the cost itself.

Instructions are grouped by a key that says what they do: the opcode, the fusion kind, and for
fusions the operations inside (convolution, reduce, rng, ...) with the dtypes they write. With two
modules the table compares them key by key (A, B, A - B), largest difference first: how the TPU
programs of our step and of the JAX reference (`tools/jax_reference.py`) differ.

Usage: tools/hlo_bytes.py A.optimized.txt [B.optimized.txt] [--top N] [--instructions KEY]
--instructions KEY lists the instructions of one key with their bytes (first module only).
"""
import argparse
import re
import sys
from collections import defaultdict

DTYPE_BYTES = {
    "pred": 1, "s4": 0.5, "u4": 0.5, "s8": 1, "u8": 1, "f8e4m3fn": 1, "f8e5m2": 1, "s16": 2, "u16": 2,
    "f16": 2, "bf16": 2, "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8,
    "c128": 16,
}
SHAPE = re.compile(r"\b(" + "|".join(sorted(DTYPE_BYTES, key=len, reverse=True)) + r")\[([0-9,]*)\]")
COMPUTATION = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s*(\(.*\))?\s*->.*\{\s*$")
INSTRUCTION = re.compile(r"^\s*(ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")
NO_TRAFFIC = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast", "after-all",
              "partition-id", "replica-id", "iota"}
INNER_OPS = ("convolution", "dot", "reduce-window", "reduce", "rng-bit-generator", "rng",
             "select-and-scatter", "scatter", "dynamic-update-slice", "dynamic-slice", "all-reduce",
             "sort", "transpose", "copy", "concatenate", "pad", "slice", "broadcast")


def shape_bytes(text):
    """Bytes of every array shape written in `text` (a shape or a tuple of shapes)."""
    total = 0
    for dtype, dims in SHAPE.findall(text):
        count = 1
        for d in filter(None, dims.split(",")):
            count *= int(d)
        total += count * DTYPE_BYTES[dtype]
    return total


def split_output_and_rest(rhs):
    """`f32[2]{0} add(f32[2]{0} %a, ...), metadata=...` -> (output shape text, opcode, rest)."""
    depth = 0
    for i, ch in enumerate(rhs):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == " " and depth == 0:
            rest = rhs[i + 1:]
            opcode = re.match(r"([\w\-]+)", rest)
            return rhs[:i], opcode.group(1) if opcode else "?", rest
    return rhs, "?", ""


def tuple_elements(shape):
    """`(f32[2]{0}, (s32[], bf16[3]))` -> ["f32[2]{0}", "(s32[], bf16[3])"]; an array -> [itself]."""
    shape = shape.strip()
    if not shape.startswith("("):
        return [shape]
    elements, depth, start = [], 0, 1
    for i, ch in enumerate(shape):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if (ch == "," and depth == 1) or (ch == ")" and depth == 0):
            elements.append(re.sub(r"/\*index=\d+\*/", "", shape[start:i]).strip())
            start = i + 1
    return elements


def operand_text(rest):
    """The text inside the opcode's parentheses (the operands with their shapes)."""
    start = rest.find("(")
    if start < 0:
        return ""
    depth = 0
    for i in range(start, len(rest)):
        if rest[i] == "(":
            depth += 1
        elif rest[i] == ")":
            depth -= 1
            if depth == 0:
                return rest[start + 1:i]
    return rest[start + 1:]


def parse(path):
    """Computations: name -> list of (name, output shape, opcode, rest of line)."""
    computations, current, entry = {}, None, None
    with open(path) as f:
        for line in f:
            header = COMPUTATION.match(line)
            if header and not line.lstrip().startswith("ROOT"):
                current = header.group(2)
                computations[current] = []
                if header.group(1):
                    entry = current
                continue
            if line.strip() == "}":
                current = None
                continue
            found = INSTRUCTION.match(line)
            if current is not None and found:
                output, opcode, rest = split_output_and_rest(found.group(3))
                computations[current].append((found.group(2), output, opcode, rest))
    return computations, entry


def executed_computations(computations, entry):
    """The entry and what it runs outside fusions (loop bodies and conditions, branches)."""
    todo, seen = [entry], set()
    while todo:
        name = todo.pop()
        if name in seen or name not in computations:
            continue
        seen.add(name)
        for _, _, opcode, rest in computations[name]:
            if opcode in ("fusion", "async-start"):  # counted where they are called
                continue
            for attribute in ("body", "condition", "branch_computations", "true_computation",
                              "false_computation", "calls"):
                for called in re.findall(attribute + r"=\{?%?([\w.\-, %]+)\}?", rest):
                    todo.extend(c.strip().lstrip("%") for c in called.split(","))
    return seen


def fusion_key(computations, rest, output):
    """What a fusion does: its kind, the notable operations inside, the dtypes it writes."""
    kind = re.search(r"kind=(\w+)", rest)
    called = re.search(r"calls=%?([\w.\-]+)", rest)
    inner = set()
    if called and called.group(1) in computations:
        for _, _, opcode, _ in computations[called.group(1)]:
            if opcode in INNER_OPS:
                inner.add(opcode)
    dtypes = sorted(set(d for d, _ in SHAPE.findall(output)))
    notable = [op for op in INNER_OPS if op in inner][:3]
    return f"fusion {kind.group(1) if kind else '?'} [{'+'.join(notable)}] -> {'/'.join(dtypes)}"


def instructions(path):
    """(key, name, bytes) of every instruction that moves memory."""
    computations, entry = parse(path)
    if entry is None:
        sys.exit(f"{path}: no ENTRY computation found")
    shapes = {name: output for body in computations.values() for name, output, _, _ in body}

    def operand_bytes(rest):
        text = operand_text(rest)
        if SHAPE.search(text):  # operands printed with their shapes
            return shape_bytes(text)
        total = 0
        for name, index in re.findall(r"%([\w.\-]+)(?:#(\d+))?", text):
            shape = shapes.get(name, "")
            if index:  # libtpu's `%fusion#1`: one element of a tuple-shaped producer
                elements = tuple_elements(shape)
                shape = elements[int(index)] if int(index) < len(elements) else ""
            total += shape_bytes(shape)
        return total

    def key_of(opcode, rest, output):
        if opcode == "fusion":
            return fusion_key(computations, rest, output)
        if opcode == "async-start":
            called = re.search(r"calls=%?([\w.\-]+)", rest)
            body = computations.get(called.group(1), []) if called else []
            if body:
                _, inner_output, inner_opcode, inner_rest = body[-1]
                return "async " + key_of(inner_opcode, inner_rest, inner_output)
        return opcode

    rows = []
    for computation in executed_computations(computations, entry):
        for name, output, opcode, rest in computations[computation]:
            if opcode in NO_TRAFFIC or opcode in ("while", "conditional", "call") or opcode.endswith("-done"):
                continue
            read = operand_bytes(rest)
            if opcode in ("copy-start", "async-start"):
                # (operands, output, context): the output is what is not operand or context.
                written = max(shape_bytes(output) - read - 8, 0)
            else:
                written = shape_bytes(output)
            rows.append((key_of(opcode, rest, output), name, read + written))
    return rows


def by_key(rows):
    totals = defaultdict(lambda: [0, 0])
    for key, _, moved in rows:
        totals[key][0] += moved
        totals[key][1] += 1
    return totals


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="+")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--instructions", metavar="KEY")
    args = parser.parse_args()
    if len(args.modules) > 2:
        sys.exit("at most two modules")
    tables = [instructions(path) for path in args.modules]
    if args.instructions:
        chosen = sorted((r for r in tables[0] if r[0] == args.instructions), key=lambda r: -r[2])
        for _, name, moved in chosen[:args.top]:
            print(f"{moved / 1e6:12.1f} MB  {name}")
        return
    grouped = [by_key(rows) for rows in tables]
    gb = lambda b: f"{b / 1e9:8.3f}"
    if len(grouped) == 1:
        print(f"{'GB':>8} {'count':>6}  key")
        for key, (moved, count) in sorted(grouped[0].items(), key=lambda kv: -kv[1][0])[:args.top]:
            print(f"{gb(moved)} {count:6d}  {key}")
        print(f"{gb(sum(m for m, _ in grouped[0].values()))} {len(tables[0]):6d}  total")
        return
    a, b = grouped
    keys = sorted(set(a) | set(b), key=lambda k: -abs(a.get(k, [0])[0] - b.get(k, [0])[0]))
    print(f"{'A GB':>8} {'n':>4} {'B GB':>8} {'n':>4} {'A-B GB':>8}  key")
    for key in keys[:args.top]:
        (ma, na), (mb, nb) = a.get(key, [0, 0]), b.get(key, [0, 0])
        print(f"{gb(ma)} {na:4d} {gb(mb)} {nb:4d} {gb(ma - mb)}  {key}")
    ta, tb = (sum(m for m, _ in g.values()) for g in grouped)
    print(f"{gb(ta)} {len(tables[0]):4d} {gb(tb)} {len(tables[1]):4d} {gb(ta - tb)}  total")


if __name__ == "__main__":
    main()
