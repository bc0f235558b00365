"""The runs' curves (`<output>/curves/<run>.jsonl`, agwm_betty.runs.curve_files) in the report: did the outer
level move, and where (a table that opens the report), and per task the loss curves of both phases
and alpha's trajectory per layer group, a line per method with the min-max band over seeds.

A search-phase curve of one run is the mean over its K splits at the steps they share; seeds are
then aligned on the steps they share. Records without a curves file (older runs) are left out here
and still report everywhere else."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agwm_betty.report.figures import figure, layer_key
from agwm_betty.report.names import label_key, n_name, task_key, task_name
from agwm_betty.report.tables import to_markdown
from agwm_betty.runs.curve_files import read_curves

SPLIT = re.compile(r"^search/split\d+/")
LOSSES = (  # (tag without the split prefix, panel title)
    ("search/inner/loss", "search phase: inner loss (BLO-train)"),
    ("search/outer/loss", "search phase: outer loss (BLO-val)"),
    ("finetune/loss", "finetune phase: training loss"),
)
ALPHA = re.compile(r"^search/outer/alpha/(?P<group>[^/]+)/(?P<stat>mean|min|max|change)$")


def curves_file(record: Mapping[str, Any]) -> Path | None:
    """The record's curves file, beside its runs.jsonl (None for a record without one)."""
    name, source = record.get("curves_file"), record.get("source")
    if not isinstance(name, str) or not isinstance(source, str):
        return None
    path = Path(source.rsplit(":", 1)[0]).parent / name
    return path if path.is_file() else None


def split_means(curves: Mapping[str, tuple[list, list]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each search-phase tag averaged over the splits (on the steps all splits have) under
    `search/<tag>`; other tags as they are."""
    grouped: dict[str, list[tuple[list, list]]] = {}
    for tag, series in curves.items():
        grouped.setdefault(SPLIT.sub("search/", tag), []).append(series)
    return {tag: _mean_on_shared_steps(parts) for tag, parts in grouped.items()}


def _mean_on_shared_steps(parts: list[tuple[list, list]]) -> tuple[np.ndarray, np.ndarray]:
    shared = sorted(set.intersection(*(set(steps) for steps, _ in parts)))
    rows = [[dict(zip(steps, values, strict=True))[s] for s in shared] for steps, values in parts]
    values = np.array(rows, dtype=float)  # a null (non-finite) value becomes nan
    return np.array(shared), values.mean(axis=0) if len(shared) else np.array([])


def curve_runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run with a curves file, under the run's index in `df`: task, n, label, seed and
    its split-averaged curves (each file read once per report)."""
    rows, index = [], []
    for at, record in zip(df.index, df.to_dict("records"), strict=True) if not df.empty else ():
        path = curves_file(record)
        if path is not None:
            index.append(at)
            rows.append({"task": record["task"], "n": int(record["n"]), "label": record["label"],
                         "seed": record["seed"], "curves": split_means(read_curves(path))})
    return pd.DataFrame(rows, index=index, columns=["task", "n", "label", "seed", "curves"])


def over_seeds(runs: pd.DataFrame, tag: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(steps, mean, min, max) of `tag` over the runs' seeds, on the steps all of them have (None if none)."""
    parts = [c[tag] for c in runs["curves"] if tag in c and len(c[tag][0])]
    shared = sorted(set.intersection(*(set(steps.tolist()) for steps, _ in parts))) if parts else []
    if not shared:
        return None
    values = np.array([[dict(zip(steps.tolist(), v, strict=True))[s] for s in shared] for steps, v in parts],
                      dtype=float)
    return np.array(shared), values.mean(axis=0), values.min(axis=0), values.max(axis=0)


def _groups(runs: pd.DataFrame) -> list[str]:
    found = {m["group"] for c in runs["curves"] for tag in c if (m := ALPHA.match(tag))}
    return sorted(found, key=layer_key)


def _last(runs: pd.DataFrame, tag: str) -> float:
    summary = over_seeds(runs, tag)
    return math.nan if summary is None else float(summary[1][-1])


def outer_level_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per task, n and method whose search learned alpha: how far alpha moved by the end of the
    search (mean |change| of the effective alphas, over layer groups), which group moved most, the
    outer loss from its first to its last logged step, and the implicit / direct hypergradient norm."""
    rows = []
    for (task, n, label), at in runs.groupby(["task", "n", "label"], sort=False):
        groups = _groups(at)
        if not groups:
            continue
        change = {g: _last(at, f"search/outer/alpha/{g}/change") for g in groups}
        most = max(change, key=lambda g: -math.inf if math.isnan(change[g]) else change[g])
        outer = over_seeds(at, "search/outer/loss")
        direct, implicit = over_seeds(at, "search/outer/hypergradient/direct_norm"), over_seeds(
            at, "search/outer/hypergradient/implicit_norm")
        rows.append({
            "task": task_name(task), "n": n_name(n), "method": label, "seeds": at["seed"].nunique(),
            "α change (mean abs.)": float(np.nanmean(list(change.values()))),
            "moved most": f"{most} ({change[most]:.2e})",
            "outer loss first": float(outer[1][0]) if outer is not None else math.nan,
            "outer loss last": float(outer[1][-1]) if outer is not None else math.nan,
            "implicit / direct": (float(np.nanmean(implicit[1]) / np.nanmean(direct[1]))
                                  if direct is not None and implicit is not None else math.nan),
            "_key": (task_key(task), n, label_key(label)),
        })
    table = pd.DataFrame(rows)
    return table.sort_values("_key").drop(columns="_key").reset_index(drop=True) if rows else table


def _band(ax, summary, label: str) -> None:
    steps, mean, low, high = summary
    (line,) = ax.plot(steps, mean, label=label)
    ax.fill_between(steps, low, high, alpha=0.2, color=line.get_color())


def plot_loss_curves(runs: pd.DataFrame, path: str | Path, title: str) -> Path | None:
    """Loss of both phases along their steps, a line per method (mean over seeds, min-max band)."""
    panels = [(tag, name) for tag, name in LOSSES if any(tag in c for c in runs["curves"])]
    if not panels:
        return None
    fig, axes = figure(len(panels), width=5.0, cols=3)
    for ax, (tag, name) in zip(axes, panels, strict=True):
        for label in sorted(runs["label"].unique(), key=label_key):
            summary = over_seeds(runs[runs["label"] == label], tag)
            if summary is not None:
                _band(ax, summary, label)
        ax.set_title(f"{title}: {name}", fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_alpha_curves(runs: pd.DataFrame, path: str | Path, title: str) -> Path | None:
    """Alpha along the search per layer group, a panel pair per method that learned it: the mean
    alpha and its mean |change| from the start (mean over seeds, min-max band)."""
    labels = [lab for lab in sorted(runs["label"].unique(), key=label_key) if _groups(runs[runs["label"] == lab])]
    if not labels:
        return None
    fig, axes = figure(2 * len(labels), width=5.0, cols=2)
    for i, label in enumerate(labels):
        at = runs[runs["label"] == label]
        panels = ((axes[2 * i], "mean", "mean α"), (axes[2 * i + 1], "change", "mean |α - α at start|"))
        for ax, stat, ylabel in panels:
            for group in _groups(at):
                summary = over_seeds(at, f"search/outer/alpha/{group}/{stat}")
                if summary is not None:
                    _band(ax, summary, group)
            ax.set_title(f"{title}, {label}: {ylabel} per layer group", fontsize=9)
            ax.set_xlabel("search step")
            ax.legend(fontsize=6, ncol=2)
    fig.savefig(path, dpi=110)
    return Path(path)


def curves_section(runs: pd.DataFrame, out: Path, prefix: str = "") -> tuple[list[str], list[Path]]:
    """Markdown and PNGs from `curve_runs`' rows: per n and task, the loss curves and alpha's
    trajectory (empty when no run has a curves file)."""
    md, written = [], []
    if runs.empty:
        return md, written
    md.append("### Curves along training (mean over seeds, band: min to max)\n")
    for (n, task), at in sorted(runs.groupby(["n", "task"]), key=lambda item: (item[0][0], task_key(item[0][1]))):
        title = f"{task_name(task)}, n = {n_name(n)}"
        stem = f"{prefix}curves_{task}_n{n_name(n)}"
        for plot, suffix, alt in ((plot_loss_curves, "loss", "loss curves"),
                                  (plot_alpha_curves, "alpha", "alpha curves")):
            made = plot(at, out / f"{stem}_{suffix}.png", title)
            if made is not None:
                written.append(made)
                md += [f"![{alt}, {title}]({made.name})", ""]
    return md, written


def outer_level_section(runs: pd.DataFrame) -> list[str]:
    """The report's opening from `curve_runs`' rows: did the outer level move, and where."""
    md = ["## Did the outer level move, and where?\n"]
    table = outer_level_table(runs)
    if table.empty:
        return md + ["No run here has alpha curves (runs without a learned alpha, or records from before "
                     "curves files were kept): where alpha moved is in the alpha-pattern table below, from "
                     "each record's diagnostics.", ""]
    shown = table.astype(object)
    for column in ("α change (mean abs.)", "outer loss first", "outer loss last", "implicit / direct"):
        shown[column] = table[column].map(lambda v: f"{v:.3g}")
    return md + ["At the end of the search: `α change (mean abs.)`, the effective alphas' mean absolute change "
                 "from their start, over layer groups, splits and seeds; `moved most`, the layer group that "
                 "changed most; the outer (BLO-val) loss at its first and last logged step; `implicit / "
                 "direct`, the mean norm of the hypergradient's implicit term over its direct term.\n",
                 to_markdown(shown.set_index("task")), ""]
