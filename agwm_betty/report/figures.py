"""Figures of a report (matplotlib, imported only when a figure is drawn, on a headless Figure):
learned alpha per layer and its histogram, the hypergradient signal along the search, and the
metric over seeds. One function per figure, each returning its PNG's path or None when no run
carries what it draws; a new kind of figure gets its own module beside this one."""
from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from agwm_betty.report.alpha import signal_runs
from agwm_betty.report.names import label_key, n_name, task_key, task_name
from agwm_betty.report.stats import chance_level


def layer_key(name: str) -> tuple:
    """Network order: embeddings, layer.0 .. layer.N, pooler, then anything else by name."""
    match = re.search(r"layer\.(\d+)", name)
    if name.startswith("embed"):
        return (0, 0, name)
    if match:
        return (1, int(match.group(1)), name)
    return (2 if name == "pooler" else 3, 0, name)


def _alpha_runs(df: pd.DataFrame, method: str, part: str) -> pd.DataFrame:
    """Rows of ``method`` whose alphas summary has ``part`` ("per_layer" or "hist")."""
    if df.empty or "alphas" not in df:
        return df.iloc[0:0]
    has = df["alphas"].map(lambda a: isinstance(a, Mapping) and isinstance(a.get(part), Mapping))
    return df[(df["label"] == method) & has]  # searched runs only, not reruns from a saved alpha


def figure(panels: int, width: float = 5.0, height: float = 3.6, cols: int = 4):
    """A headless matplotlib figure with a grid of ``panels`` axes (no pyplot global state): every
    figure of a report is drawn on one of these and saved with ``fig.savefig(path, dpi=110)``."""
    from matplotlib.figure import Figure

    cols = min(cols, panels)
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[panels:]:
        ax.set_visible(False)
    return fig, axes[:panels]


def plot_alpha_layers(df: pd.DataFrame, path: str | Path, method: str = "agwm") -> Path | None:
    """Mean learned alpha per layer (network order), a line per task with the min-max band over
    seeds, a panel per n; None when no run carries per-layer alphas."""
    runs = _alpha_runs(df, method, "per_layer")
    if runs.empty:
        return None
    ns = sorted(runs["n"].unique())
    fig, axes = figure(len(ns), width=6.5)
    for ax, n in zip(axes, ns, strict=True):
        at_n = runs[runs["n"] == n]
        layers = sorted({k for a in at_n["alphas"] for k in a["per_layer"]}, key=layer_key)
        x = np.arange(len(layers))
        for task in sorted(at_n["task"].unique(), key=task_key):
            per_layer = pd.DataFrame([a["per_layer"] for a in at_n[at_n["task"] == task]["alphas"]])
            per_layer = per_layer.reindex(columns=layers).astype(float)
            ax.plot(x, per_layer.mean(), marker="o", label=task_name(task))
            ax.fill_between(x, per_layer.min(), per_layer.max(), alpha=0.2)
        ax.set_xticks(x, layers, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{method}: mean α per layer, n = {n_name(n)}")
        ax.set_ylabel("α (1 = task weight, 0 = pretrained)")
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_signal(df: pd.DataFrame, path: str | Path) -> Path | None:
    """Along the search (outer step): the cosine between two BLO-val batches' alpha hypergradients,
    and the norms of its direct and implicit terms, a line per method and task (mean over seeds
    and splits); None when no run carries probe records."""
    runs = signal_runs(df)
    if runs.empty:
        return None
    fig, (cos_ax, norm_ax) = figure(2, width=6.0, cols=2)
    for (label, task), group in runs.groupby(["label", "task"], sort=False):
        points = pd.DataFrame([r for d in group["diagnostics"] for split in d["signal"] for r in split])
        mean = points.groupby("step").mean(numeric_only=True)
        name = f"{label}, {task_name(task)}"
        cos_ax.plot(mean.index, mean["cosine"], marker="o", label=name)
        line = norm_ax.plot(mean.index, mean["direct_norm"], marker="o", label=f"{name}: direct")[0]
        if mean["implicit_norm"].gt(0).any():
            norm_ax.plot(mean.index, mean["implicit_norm"], marker="x", linestyle="--", color=line.get_color(),
                         label=f"{name}: implicit")
    cos_ax.axhline(0, color="grey", linewidth=0.8)
    cos_ax.set_ylim(-1, 1)
    cos_ax.set_title("agreement of two BLO-val batches' α hypergradients")
    cos_ax.set_xlabel("outer step")
    cos_ax.set_ylabel("cosine (0 = noise)")
    norm_ax.set_yscale("log")
    norm_ax.set_title("norm of the direct and implicit terms")
    norm_ax.set_xlabel("outer step")
    for ax in (cos_ax, norm_ax):
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_alpha_hist(df: pd.DataFrame, path: str | Path, method: str = "agwm") -> Path | None:
    """Distribution of learned alphas from the stored histograms, summed over seeds, a line per
    task and a panel per n; None when no run carries a histogram."""
    runs = _alpha_runs(df, method, "hist")
    if runs.empty:
        return None
    ns = sorted(runs["n"].unique())
    fig, axes = figure(len(ns), width=6.0)
    for ax, n in zip(axes, ns, strict=True):
        at_n = runs[runs["n"] == n]
        for task in sorted(at_n["task"].unique(), key=task_key):
            hists = [a["hist"] for a in at_n[at_n["task"] == task]["alphas"]]
            edges = np.asarray(hists[0]["edges"], float)
            same = [h for h in hists if np.array_equal(np.asarray(h["edges"], float), edges)]
            if len(same) < len(hists):
                warnings.warn(f"{task} n={n}: {len(hists) - len(same)} alpha histograms with "
                              "other bin edges left out", stacklevel=2)
            counts = np.sum([np.asarray(h["counts"], float) for h in same], axis=0)
            share = counts / counts.sum() if counts.sum() else counts
            seeds = f"{len(same)} seed" + ("s" if len(same) > 1 else "")
            # bins are drawn equally wide: the stored edges are finer towards 1, where alphas live
            ax.stairs(share, np.arange(len(edges)), label=f"{task_name(task)} ({seeds})")
            ax.set_xticks(np.arange(len(edges)), [f"{e:g}" for e in edges], rotation=60, fontsize=7)
        ax.set_yscale("log")
        ax.set_xlabel("α (bin edges; bins drawn equally wide)")
        ax.set_ylabel("share of α entries")
        ax.set_title(f"{method}: α distribution, n = {n_name(n)}")
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_metric_boxes(df: pd.DataFrame, path: str | Path, n: int) -> Path | None:
    """Box plot of the metric over seeds per method, a panel per task, seeds overlaid as points,
    so stability is visible at a glance; None when there are no runs at this n."""
    runs = df[df["n"] == n] if not df.empty else df
    if runs.empty:
        return None
    tasks = sorted(runs["task"].unique(), key=task_key)
    fig, axes = figure(len(tasks), width=4.5, height=4.0)
    rng = np.random.default_rng(0)
    for ax, task in zip(axes, tasks, strict=True):
        at_task = runs[runs["task"] == task]
        labels = sorted(at_task["label"].unique(), key=label_key)
        values = [at_task[at_task["label"] == lab]["metric"].dropna().to_numpy() for lab in labels]
        ax.boxplot(values, showfliers=False)
        for i, v in enumerate(values, 1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(v)), v, s=12, alpha=0.7, zorder=3)
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=45, ha="right", fontsize=8)
        names = at_task["metric_name"].dropna().unique() if "metric_name" in at_task else []
        chance = chance_level(task, names[0] if len(names) == 1 else None)
        if chance is not None:
            ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
            ax.legend(fontsize=8)
        ax.set_ylabel(", ".join(map(str, names)) or "metric")
        ax.set_title(f"{task_name(task)}, n = {n_name(n)}")
    fig.savefig(path, dpi=110)
    return Path(path)


