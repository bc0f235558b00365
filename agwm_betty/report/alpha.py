"""What the search did to alpha, from the records' diagnostics: how clean its hypergradient's signal
was (signal table) and whether where alpha moves is a property of the task (pattern table)."""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from agwm_betty.report.names import n_name, task_name

SIGNAL_KEYS = ("signal_cosine", "signal_cosine_direct", "signal_cosine_implicit", "signal_direct_norm",
               "signal_implicit_norm", "clamp_undone_share")


def signal_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose diagnostics carry the search's signal probe records."""
    if df.empty or "diagnostics" not in df:
        return df.iloc[0:0]
    has = df["diagnostics"].map(lambda d: isinstance(d, Mapping) and bool(d.get("signal")))
    return df[has]


def signal_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per method, n and task: the mean over seeds of the search's signal diagnostics (cosine between
    two BLO-val batches' alpha hypergradients, overall and per term; the terms' norms; the share
    of alpha updates undone by the clamp)."""
    runs = signal_runs(df)
    if runs.empty:
        return pd.DataFrame()
    rows = []
    for (label, n, task), group in runs.groupby(["label", "n", "task"], sort=False):
        values = pd.DataFrame([{k: d.get(k) for k in SIGNAL_KEYS} for d in group["diagnostics"]]).astype(float)
        rows.append({"method": label, "n": n_name(n), "task": task_name(task), "seeds": len(group),
                     **{k.replace("signal_", ""): values[k].mean() for k in SIGNAL_KEYS}})
    table = pd.DataFrame(rows)
    return table.sort_values(["method", "n", "task"], key=lambda c: c.map(str)).reset_index(drop=True)


def _part(record: Mapping[str, Any], field: str, key: str) -> Any:
    """record[field][key], or None where the field is missing or not a mapping (NaN in a frame)."""
    value = record.get(field)
    return value.get(key) if isinstance(value, Mapping) else None


def _encoder_layers(per_layer: Mapping[str, float] | None) -> dict | None:
    """The transformer blocks' entries (``layer.<i>``) of a per-layer summary: the pooler and the
    embeddings are single points far from the blocks, which alone can set a correlation of a few."""
    if not isinstance(per_layer, Mapping):
        return None
    return {k: v for k, v in per_layer.items() if re.fullmatch(r"(.*\.)?layer\.\d+", k)}


PATTERNS = {  # where a record keeps where alpha moved, finest first
    "module change": lambda r: _part(r, "diagnostics", "alpha_change_per_module"),
    "layer alpha": lambda r: _part(r, "alphas", "per_layer"),
    "block alpha": lambda r: _encoder_layers(_part(r, "alphas", "per_layer")),
}


def pattern_correlations(runs: Iterable[Mapping[str, Any]], source: str = "module change",
                         ) -> tuple[list[float], list[float]]:
    """Pearson r of two runs' alpha patterns (PATTERNS[source]): over the pairs of one task and
    other seeds (within), and of one seed and other tasks (across). A pair with fewer than 3 shared
    keys or a constant pattern gives no r."""
    changes = [(r["task"], r["seed"], PATTERNS[source](r)) for r in runs]
    within, across = [], []
    for i, (task_a, seed_a, a) in enumerate(changes):
        for task_b, seed_b, b in changes[i + 1:]:
            keys = sorted(a.keys() & b.keys())
            x, y = np.array([a[k] for k in keys], float), np.array([b[k] for k in keys], float)
            if len(keys) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
                continue
            r = float(np.corrcoef(x, y)[0, 1])
            if task_a == task_b and seed_a != seed_b:
                within.append(r)
            elif seed_a == seed_b and task_a != task_b:
                across.append(r)
    return within, across


def alpha_pattern_table(df: pd.DataFrame, method: str = "agwm") -> pd.DataFrame:
    """Per n, for the runs of ``method`` that searched their alphas: is where alpha moves a property
    of the task? For each pattern every run has (PATTERNS), the mean r within a task (seed against
    seed) and across tasks (task against task at one seed, so one subset draw and one alpha init),
    with the pairs each averages, and the pattern's mean spread over its keys (std). A task signal
    shows as within-task r clearly above across-task r."""
    if df.empty or "label" not in df:
        return pd.DataFrame()
    rows = []
    for n, group in df[df["label"] == method].groupby("n", sort=True):
        runs = group.to_dict("records")
        for source, get in PATTERNS.items():
            patterns = [get(r) for r in runs]
            if not all(isinstance(p, Mapping) and p for p in patterns):
                continue
            within, across = pattern_correlations(runs, source)
            rows.append({"method": method, "n": n_name(n), "pattern": source, "tasks": group["task"].nunique(),
                         "runs": len(runs), "spread": float(np.mean([np.std(list(p.values())) for p in patterns])),
                         "within_task_r": float(np.mean(within)) if within else math.nan,
                         "within_pairs": len(within),
                         "across_task_r": float(np.mean(across)) if across else math.nan,
                         "across_pairs": len(across)})
    return pd.DataFrame(rows)
