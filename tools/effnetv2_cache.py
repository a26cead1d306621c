"""The project's user cache directory, found as `effnetv2::data::cache_dir` finds it; shared by
the scripts under tools/ (each runs with tools/ on its import path)."""

import os
import pathlib


def cache_dir():
    """`EFFNETV2_CACHE`, else `$XDG_CACHE_HOME/effnetv2`, else `~/.cache/effnetv2`."""
    if os.environ.get("EFFNETV2_CACHE"):
        return pathlib.Path(os.environ["EFFNETV2_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "effnetv2"
