"""A run's curves file, `<output>/curves/<name>.jsonl`: one JSON line per tag,
`{"tag", "steps", "values"}`, written by `runs.run_log.RunLog` during a run and read back by the report.
Nothing here imports torch or Betty.

Thinning: a point every `log_every` steps, until a curve holds `MAX_POINTS`; then every other point
is dropped and only every second later point is taken, and so on (evenly spaced, first point kept);
the last logged point is always kept.
"""
from __future__ import annotations

import importlib
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agwm_betty.runs.jsonlines import read_objects
from agwm_betty.runs.records import run_stem

MAX_POINTS = 500  # per curve in the curves file
CURVES_DIR = "curves"


def log_name(record: Mapping[str, Any]) -> str:
    """File-system name of a run's curves and log directory: readable, and unique per run_id."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_stem(record))


class Curve:
    """One tag's points, at most `max_points` evenly spaced ones plus the last (module docstring)."""

    def __init__(self, max_points: int = MAX_POINTS):
        self.max_points, self.stride, self.offered = max_points, 1, 0
        self.points: list[tuple[int, float]] = []
        self.last: tuple[int, float] | None = None

    def add(self, step: int, value: float) -> None:
        if self.offered % self.stride == 0:
            self.points.append((step, value))
            if len(self.points) > self.max_points:
                self.points, self.stride = self.points[::2], self.stride * 2
        self.offered += 1
        self.last = (step, value)

    def kept(self) -> list[tuple[int, float]]:
        """The points written to the curves file."""
        if self.last is not None and (not self.points or self.points[-1] != self.last):
            return [*self.points, self.last]
        return list(self.points)


def write_curves(path: Path, curves: Mapping[str, list[tuple[int, float]]]) -> None:
    """One JSON line per tag (non-finite values as null), written whole then renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"tag": tag, "steps": [s for s, _ in points],
                         "values": [v if math.isfinite(v) else None for _, v in points]})
             for tag, points in sorted(curves.items())]
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, path)


def read_curves(path: str | Path) -> dict[str, tuple[list[int], list[float | None]]]:
    """Tag -> (steps, values) of a curves file."""
    return {row["tag"]: (row["steps"], row["values"]) for _, row in read_objects(path)}


# moved to agwm_betty.runs.run_log in 0.3.0 (the curves module both wrote and read)
_MOVED = (
    "LOG_DIRS", "EXTRAS", "require_backend", "RouteTensorBoard", "RouteWandB", "RunLog", "flatten",
    "read_back", "alpha_reference", "alpha_curves", "total_norm", "hypergradient_norms",
)


def __getattr__(name: str):
    """`agwm_betty.curves.RunLog` and the other writers from before 0.3.0, with a warning."""
    if name in _MOVED:
        from agwm_betty._moved import warn_moved

        warn_moved(f"agwm_betty.runs.curve_files.{name}", f"agwm_betty.runs.run_log.{name}")
        return getattr(importlib.import_module("agwm_betty.runs.run_log"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
