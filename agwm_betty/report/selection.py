"""Run records: reading runs.jsonl files, picking runs out of them and pairing two arms by seed."""
from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agwm_betty.report.names import hypergradient_of, method_label
from agwm_betty.runs.jsonlines import read_objects

REQUIRED = ("task", "n", "method", "seed", "metric")


def read_records(path: str | Path) -> list[dict]:
    """Records of one runs.jsonl, each with its "source" (file:line); a bad line raises ValueError
    naming the file and line."""
    records = []
    for lineno, record in read_objects(path):
        missing = [k for k in REQUIRED if k not in record]
        if missing:
            raise ValueError(f"{path}, line {lineno}: record lacks {', '.join(missing)}")
        records.append({**record, "source": f"{path}:{lineno}"})
    return records


def load_records(paths: Iterable[str | Path], warn: bool = True) -> list[dict]:
    """The records of runs.jsonl files in order; a repeated run_id keeps its first record (the same
    run recorded twice), with a warning unless ``warn`` is False."""
    records, seen = [], {}
    for path in paths:
        for record in read_records(Path(path)):
            run_id = record.get("run_id")
            if run_id is not None and run_id in seen:
                if warn:
                    warnings.warn(f"duplicate run_id {run_id!r} at {record['source']}: keeping "
                                  f"{seen[run_id]}", stacklevel=3)
                continue
            if run_id is not None:
                seen[run_id] = record["source"]
            records.append(record)
    return records


def load_runs(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per run record from runs.jsonl files; a repeated run_id keeps its first record."""
    records = load_records(paths)
    df = pd.DataFrame(records, columns=None if records else [*REQUIRED, "metric_name", "label"])
    if records:
        hypergradients: dict[str, set] = {}
        for r in records:
            hypergradients.setdefault(r["method"], set()).add(hypergradient_of(r))
        df["label"] = [method_label(r, name_hypergradient=len(hypergradients[r["method"]]) > 1) for r in records]
        df["n"] = df["n"].astype(int)
        df["metric"] = pd.to_numeric(df["metric"], errors="coerce").astype(float)
    return df


def select(records: Iterable[Mapping[str, Any]], hparams: Mapping[str, Any] | None = None,
           **fields: Any) -> list[Mapping[str, Any]]:
    """The records whose ``fields`` equal the given values (a tuple, list or set: any of its values)
    and whose hparams hold ``hparams`` (a missing hyperparameter counts as None)."""
    def wanted(value: Any, want: Any) -> bool:
        return value in want if isinstance(want, (tuple, list, set, frozenset)) else value == want

    return [r for r in records
            if all(wanted(r.get(k), v) for k, v in fields.items())
            and all(wanted((r.get("hparams") or {}).get(k), v) for k, v in (hparams or {}).items())]


def _metric(record: Mapping[str, Any]) -> float:
    value = record.get("metric")
    return math.nan if value is None else float(value)


def pair_by_seed(runs_a: Iterable[Mapping[str, Any]], runs_b: Iterable[Mapping[str, Any]],
                 ) -> tuple[list, np.ndarray, np.ndarray]:
    """The seeds both arms ran (sorted) and each arm's metric on them, a[i] and b[i] on seed i. A seed
    recorded twice counts its first metric that is a number (NaN only where none is)."""
    def by_seed(runs: Iterable[Mapping[str, Any]]) -> dict:
        metrics: dict = {}
        for r in runs:
            if math.isnan(metrics.get(r["seed"], math.nan)):
                metrics[r["seed"]] = _metric(r)
        return metrics

    a, b = by_seed(runs_a), by_seed(runs_b)
    seeds = sorted(a.keys() & b.keys())
    return seeds, np.array([a[s] for s in seeds], float), np.array([b[s] for s in seeds], float)
