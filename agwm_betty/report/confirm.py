"""A confirmation test fixed in advance (#44's PLAN.md): one arm against several controls on fresh
seeds, paired by seed, with a bootstrap interval, the paired t-test and the Wilcoxon signed-rank
test, Holm's correction over the controls, and collapse counts compared by Fisher's exact test.

Nothing here looks at which way the data went before the verdict: the thresholds, the seeds, the
controls and the correction are arguments, and the verdict follows from them alone.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from agwm_betty.report.selection import pair_by_seed

ALPHA = 0.05
LEVEL = 0.95
RESAMPLES = 10_000


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error over the family given); NaN stays NaN."""
    p = np.asarray(pvalues, float)
    order = [i for i in np.argsort(p, kind="stable") if not math.isnan(p[i])]
    m, adjusted, running = len(order), [math.nan] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def bootstrap_interval(diff: Sequence[float], level: float = LEVEL, resamples: int = RESAMPLES,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `diff` (seeds resampled with replacement)."""
    diff = np.asarray(diff, float)
    if len(diff) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def paired_tests(a: Sequence[float], b: Sequence[float], seed: int = 0) -> dict:
    """Of a and b paired by seed: mean of a - b, its bootstrap interval, wins, the two-sided paired
    t-test p and the two-sided Wilcoxon signed-rank p (scipy's defaults; NaN below two pairs)."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = a - b
    low, high = bootstrap_interval(diff, seed=seed)
    out = {"seeds": len(diff), "mean_difference": float(diff.mean()) if len(diff) else math.nan,
           "ci_low": low, "ci_high": high, "wins": int((diff > 0).sum()), "t_p": math.nan, "wilcoxon_p": math.nan}
    if len(diff) >= 2 and np.ptp(diff) > 0:
        out["t_p"] = float(stats.ttest_rel(a, b).pvalue)
    if len(diff) >= 2 and np.any(diff != 0):
        out["wilcoxon_p"] = float(stats.wilcoxon(a, b).pvalue)
    return out


def verdict(row: Mapping) -> str:
    """'confirmed' (arm ahead) or 'reversed' (arm behind) when both Holm-adjusted p < ALPHA and the
    interval excludes 0 on that side; 'not confirmed' otherwise."""
    significant = row["t_p_holm"] < ALPHA and row["wilcoxon_p_holm"] < ALPHA
    if significant and row["mean_difference"] > 0 and row["ci_low"] > 0:
        return "confirmed"
    if significant and row["mean_difference"] < 0 and row["ci_high"] < 0:
        return "reversed"
    return "not confirmed"


def confirmation_table(df: pd.DataFrame, task: str, arm: str, controls: Sequence[str],
                       seeds: Sequence[int] | None = None, n: int | None = None) -> pd.DataFrame:
    """One row per control: `arm` minus it on `task` (and `n`), over `seeds` both ran, paired by
    seed, with the tests of `paired_tests`, each test's p Holm-adjusted over the controls, and the
    `verdict`. `df` is `load_runs` output (labels as the report writes them)."""
    rows = df[df["task"] == task]
    if n is not None:
        rows = rows[rows["n"] == n]
    if seeds is not None:
        rows = rows[rows["seed"].isin(list(seeds))]
    out = []
    for control in controls:
        paired, a, b = pair_by_seed(rows[rows["label"] == arm].to_dict("records"),
                                    rows[rows["label"] == control].to_dict("records"))
        out.append({"task": task, "arm": arm, "control": control, "paired_seeds": paired, **paired_tests(a, b)})
    return with_holm(pd.DataFrame(out))


def with_holm(table: pd.DataFrame) -> pd.DataFrame:
    """`table`'s rows as one Holm family: each test's p adjusted over them, and their verdicts."""
    table = table.reset_index(drop=True).copy()
    for test in ("t_p", "wilcoxon_p"):
        table[f"{test}_holm"] = holm(table[test].tolist()) if len(table) else []
    table["verdict"] = [verdict(r) for r in table.to_dict("records")]
    return table


def collapse_table(df: pd.DataFrame, task: str, threshold: float, arm: str, controls: Sequence[str],
                   seeds: Sequence[int] | None = None, n: int | None = None) -> pd.DataFrame:
    """Per arm: runs on `task`, how many collapsed (metric below `threshold`, or not a number), and for
    each control the two-sided Fisher exact p of its count against `arm`'s, Holm-adjusted over them."""
    from scipy import stats

    rows = df[df["task"] == task]
    if n is not None:
        rows = rows[rows["n"] == n]
    if seeds is not None:
        rows = rows[rows["seed"].isin(list(seeds))]

    def counts(label: str) -> tuple[int, int]:
        metric = rows.loc[rows["label"] == label, "metric"].to_numpy(float)
        return int(np.sum(~(metric >= threshold))), len(metric)

    collapsed, runs = counts(arm)
    out = [{"task": task, "label": arm, "runs": runs, "collapsed": collapsed, "fisher_p": math.nan}]
    for control in controls:
        theirs, their_runs = counts(control)
        table = [[collapsed, runs - collapsed], [theirs, their_runs - theirs]]
        p = float(stats.fisher_exact(table).pvalue) if runs and their_runs else math.nan
        out.append({"task": task, "label": control, "runs": their_runs, "collapsed": theirs, "fisher_p": p})
    table = pd.DataFrame(out)
    table["fisher_p_holm"] = [math.nan] + holm(table["fisher_p"].tolist()[1:])
    return table
