#!/usr/bin/env python3
"""Print XLA's own text rendering of a serialized HloModuleProto written by `effnetv2 dump`.

A development aid for checking the encoder and the printer: XLA parses our proto and prints it back,
so `diff <(tools/xla_hlo_text.py hlo-dump/X.hlo.pb) hlo-dump/X.hlo.txt` shows where our text and
XLA's differ (names and ids aside). Needs `pip install jax jaxlib` (not a dependency of the project
or its tests).

Usage: tools/xla_hlo_text.py MODULE.hlo.pb
"""
import sys


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        from jax._src.lib import xla_client
    except ImportError:
        print("this tool needs jaxlib: pip install jax jaxlib", file=sys.stderr)
        return 1
    with open(sys.argv[1], "rb") as f:
        proto = f.read()
    print(xla_client.XlaComputation(proto).as_hlo_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
