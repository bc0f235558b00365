"""Statistics over seeds: chance levels and degenerate seeds, Welch and paired t-tests, the per-cell
summary, paired differences and wall-time ratios."""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from agwm_betty.report.names import label_key, task_key
from agwm_betty.report.selection import pair_by_seed

# Chance level of a task's main metric on its GLUE dev set: a seed at or below it is degenerate.
# Counts come from /work/shared/glue_data/<TASK>/dev.tsv (label column, csv.QUOTE_NONE):
#   MRPC 279 of 408 positive: predicting all positive gives F1 = 2*279/(279+408), accuracy 279/408;
#   RTE 146 of 277 "entailment"; SST-2 444 of 872 "1"; QNLI 2761 of 5463 "not_entailment";
#   WNLI 40 of 71 "0". Correlations (CoLA MCC, STS-B Spearman/Pearson) are 0 for constant or
#   random predictions. QQP and MNLI have no local dev file: unknown unless a record has "chance".
CHANCE: dict[tuple[str, str], float] = {
    ("cola", "mcc"): 0.0,
    ("stsb", "spearman"): 0.0,
    ("stsb", "pearson"): 0.0,
    ("mrpc", "f1"): 100 * 2 * 279 / (279 + 408),  # 81.2227
    ("mrpc", "accuracy"): 100 * 279 / 408,  # 68.3824
    ("rte", "accuracy"): 100 * 146 / 277,  # 52.7076
    ("sst2", "accuracy"): 100 * 444 / 872,  # 50.9174
    ("qnli", "accuracy"): 100 * 2761 / 5463,  # 50.5400
    ("wnli", "accuracy"): 100 * 40 / 71,  # 56.3380
}
DEFAULT_METRIC = {"cola": "mcc", "stsb": "spearman", "mrpc": "f1"}  # others: accuracy
# Above the hard-coded levels by less than this still counts as chance: records may store metrics
# rounded to two decimals (52.7076 -> 52.71), while one more correct dev example moves every metric
# here by more (QNLI accuracy, the finest, by 100/5463 = 0.018).
CHANCE_TOL = 0.01
# A record's own "chance" was computed by the producer from the same predictions' dev set: exact.
RECORD_CHANCE_TOL = 1e-9


# A task tells methods apart at an n when some arm learns it there: the best arm's mean over seeds
# is at least this many points (on the metric's 0-100 scale) above the task's chance level. Set
# before #34's MRPC and CoLA records existed; on MiniLM's dev grid (results/gpu_dev) it keeps SST-2
# and STS-B and drops CoLA (best MCC 4.9), MRPC (F1 below the constant predictor's) and RTE (+1.4).
INFORMATIVE_MARGIN = 5.0


def chance_level(task: str, metric_name: str | None = None) -> float | None:
    """Dev-set chance level of a task's metric (0-100), or None where it is not known."""
    name = metric_name or DEFAULT_METRIC.get(task, "accuracy")
    return CHANCE.get((task, name))


def is_degenerate(record: Mapping[str, Any]) -> bool | None:
    """Whether a run scored at or below chance (a NaN metric counts); None if chance is unknown."""
    own = _own_chance(record)
    chance, tol = (own, RECORD_CHANCE_TOL) if own is not None else (_chance(record), CHANCE_TOL)
    if chance is None:
        return None
    metric = math.nan if record.get("metric") is None else float(record["metric"])
    return bool(math.isnan(metric) or metric <= float(chance) + tol)


def welch_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Welch t-test p-value; NaN when either side has fewer than two seeds."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    from scipy import stats  # a second to import; only p-values need it

    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def paired_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired t-test p-value over seeds (a[i] and b[i] share seed i); NaN with fewer than
    two pairs or when every difference is the same."""
    diff = np.asarray(a, float) - np.asarray(b, float)
    if len(diff) < 2 or np.ptp(diff) == 0:
        return math.nan
    from scipy import stats

    return float(stats.ttest_rel(a, b).pvalue)


def paired_summary(a: np.ndarray, b: np.ndarray) -> dict:
    """Of metrics paired by seed (a[i] and b[i] share seed i): the mean of a - b, how many seeds,
    on how many a was ahead, and the paired t-test p."""
    diff = np.asarray(a, float) - np.asarray(b, float)
    return {"seeds": len(diff), "mean_difference": float(diff.mean()), "wins": int((diff > 0).sum()),
            "p": paired_p(a, b)}


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per (n, task, label): mean, sample std, seeds, Welch p vs vanilla, degenerate seeds."""
    columns = ["n", "task", "label", "mean", "std", "count", "p_value", "degenerate"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    if "plm" in df and df["plm"].nunique() > 1:
        raise ValueError(f"runs of several PLMs {sorted(df['plm'].unique())}: select one first")
    rows = []
    for (n, task, label), group in df.groupby(["n", "task", "label"], sort=False):
        if group["seed"].duplicated().any():
            warnings.warn(f"n={n} {task} {label}: a seed appears twice; both runs counted",
                          stacklevel=2)
        values = group["metric"].to_numpy(float)
        vanilla = df[(df["n"] == n) & (df["task"] == task) & (df["label"] == "vanilla")]
        flags = [is_degenerate(r) for r in group.to_dict("records")]
        rows.append({
            "n": int(n), "task": task, "label": label,
            "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
            "count": len(values),
            "p_value": math.nan if label == "vanilla"
            else welch_p(values, vanilla["metric"].to_numpy(float)),
            "degenerate": math.nan if None in flags else float(sum(flags)),
        })
    out = pd.DataFrame(rows, columns=columns)
    order = sorted(range(len(out)), key=lambda i: (
        out["n"][i], task_key(out["task"][i]), label_key(out["label"][i])))
    return out.iloc[order].reset_index(drop=True)


def informative_table(df: pd.DataFrame, margin: float = INFORMATIVE_MARGIN) -> pd.DataFrame:
    """Per (n, task): its chance level, the arm with the best mean over seeds, that mean's margin
    above chance, and whether the task is informative (margin >= `margin`: some arm learns it)."""
    columns = ["n", "task", "chance", "best", "best_mean", "margin", "informative"]
    rows = []
    for (n, task), group in df.groupby(["n", "task"], sort=False):
        chances = [_chance(r) for r in group.to_dict("records")]
        chance = next((c for c in chances if c is not None), None)
        means = group.groupby("label")["metric"].mean()
        best = means.idxmax() if means.notna().any() else None
        best_mean = float(means[best]) if best is not None else math.nan
        gap = best_mean - chance if chance is not None else math.nan
        rows.append({"n": int(n), "task": task, "chance": math.nan if chance is None else float(chance),
                     "best": best, "best_mean": best_mean, "margin": gap, "informative": bool(gap >= margin)})
    out = pd.DataFrame(rows, columns=columns)
    order = sorted(range(len(out)), key=lambda i: (out["n"][i], task_key(out["task"][i])))
    return out.iloc[order].reset_index(drop=True)


def _own_chance(record: Mapping[str, Any]) -> float | None:
    """The chance level the record's producer computed from its evaluation set (None if absent)."""
    chance = record.get("chance")
    return None if chance is None or (isinstance(chance, float) and math.isnan(chance)) else float(chance)


def _chance(record: Mapping[str, Any]) -> float | None:
    """A record's own chance level, else the task's known dev-set level (None if neither)."""
    own = _own_chance(record)
    if own is not None:
        return own
    metric_name = record.get("metric_name")
    return chance_level(record["task"], metric_name if isinstance(metric_name, str) else None)


def paired_differences(df: pd.DataFrame, label: str, reference: str) -> pd.DataFrame:
    """Per (n, task): the mean over the seeds both methods ran of metric(label) - metric(reference),
    how many seeds that is, on how many `label` was ahead, and the paired t-test p. Same seed = same
    training subset, so the pairing removes the subset's share of the spread."""
    columns = ["n", "task", "mean_difference", "seeds", "wins", "p"]
    rows = []
    for (n, task), group in df.groupby(["n", "task"], sort=False):
        seeds, a, b = pair_by_seed(group[group["label"] == label].to_dict("records"),
                                   group[group["label"] == reference].to_dict("records"))
        if seeds:
            rows.append({"n": int(n), "task": task, **paired_summary(a, b)})
    out = pd.DataFrame(rows, columns=columns)
    order = sorted(range(len(out)), key=lambda i: (out["n"][i], task_key(out["task"][i])))
    return out.iloc[order].reset_index(drop=True)


def relative_cost(df: pd.DataFrame) -> pd.DataFrame:
    """Wall time per run relative to vanilla: per (n, label), the mean over tasks of
    mean time(label) / mean time(vanilla) on that task (the paper's table 5 ratios). Times only
    compare on one device: a task counts only where vanilla ran on the same device."""
    if df.empty or "time" not in df:
        return pd.DataFrame(columns=["n", "label", "ratio", "tasks"])
    seconds = df["time"].map(lambda t: t.get("total") if isinstance(t, dict) else math.nan).astype(float)
    device = df["device"].fillna("").astype(str) if "device" in df else ""
    means = df.assign(seconds=seconds, device=device).groupby(["n", "task", "label", "device"])["seconds"].mean()
    rows = []
    for (n, label), cells in means.groupby(level=["n", "label"]):
        ratios = [seconds_ / means[(n, task, "vanilla", dev)]
                  for (_, task, _, dev), seconds_ in cells.items() if (n, task, "vanilla", dev) in means]
        if ratios:
            rows.append({"n": int(n), "label": label, "ratio": float(np.mean(ratios)), "tasks": len(ratios)})
    out = pd.DataFrame(rows, columns=["n", "label", "ratio", "tasks"])
    order = sorted(range(len(out)), key=lambda i: (out["n"][i], label_key(out["label"][i])))
    return out.iloc[order].reset_index(drop=True)
