"""Aggregate runs.jsonl records into the paper's tables (ours beside the paper's) and plots."""
from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from agwm_betty.paper_tables import paper_average, paper_value

TASK_NAMES = {
    "cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B",
    "qqp": "QQP", "mnli": "MNLI", "qnli": "QNLI", "rte": "RTE",
}
METHOD_ORDER = (
    "vanilla", "agwm", "joint", "random-alpha", "vanilla-matched", "mixout", "r3f", "rdrop",
    "reinit", "child-tuning-d", "dps", "lora", "prefix", "prompt", "soup",
)
ABLATION_METHODS = ("agwm", "vanilla", "joint", "random-alpha", "vanilla-matched")
PAPER = "paper BERT-large"

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

REQUIRED = ("task", "n", "method", "seed", "metric")


# ---------------------------------------------------------------- loading

def method_label(record: Mapping[str, Any]) -> str:
    """Row label of a record: its method, plus σ for random-alpha so each σ is its own row, and a
    mark for a run that reused a saved alpha (`--alphas-from`) instead of searching."""
    method = str(record["method"])
    hparams = record.get("hparams")
    if method == "random-alpha" and isinstance(hparams, Mapping) and hparams.get("sigma") is not None:
        return f"random-alpha (σ={float(hparams['sigma']):g})"
    reused = record.get("alphas_from")
    if isinstance(reused, Mapping):
        return f"{method} (saved alpha{' + W' if reused.get('task_weights') else ''})"
    return method


def file_label(label: str) -> str:
    """A row label as a file-name part: `random-alpha (σ=0.005)` -> `random-alpha_sigma0.005`."""
    return label.replace(" (σ=", "_sigma").replace(" (", "_").replace(")", "").replace(" ", "_")


def _read_jsonl(path: Path) -> list[dict]:
    """Records of one runs.jsonl; a bad line raises ValueError naming the file and line."""
    records = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}, line {lineno}: malformed JSON ({err.msg})") from err
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {lineno}: a record must be a JSON object")
            missing = [k for k in REQUIRED if k not in record]
            if missing:
                raise ValueError(f"{path}, line {lineno}: record lacks {', '.join(missing)}")
            records.append({**record, "source": f"{path}:{lineno}"})
    return records


def load_runs(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per run record from runs.jsonl files; a repeated run_id keeps its first record."""
    records, seen = [], {}
    for path in paths:
        for record in _read_jsonl(Path(path)):
            run_id = record.get("run_id")
            if run_id is not None and run_id in seen:
                warnings.warn(f"duplicate run_id {run_id!r} at {record['source']}: keeping "
                              f"{seen[run_id]}", stacklevel=2)
                continue
            if run_id is not None:
                seen[run_id] = record["source"]
            records.append(record)
    df = pd.DataFrame(records, columns=None if records else [*REQUIRED, "metric_name", "label"])
    if records:
        df["label"] = [method_label(r) for r in records]
        df["n"] = df["n"].astype(int)
        df["metric"] = pd.to_numeric(df["metric"], errors="coerce").astype(float)
    return df


# ---------------------------------------------------------------- statistics

def chance_level(task: str, metric_name: str | None = None) -> float | None:
    """Dev-set chance level of a task's metric (0-100), or None where it is not known."""
    name = metric_name or DEFAULT_METRIC.get(task, "accuracy")
    return CHANCE.get((task, name))


def is_degenerate(record: Mapping[str, Any]) -> bool | None:
    """Whether a run scored at or below chance (a NaN metric counts); None if chance is unknown."""
    chance, tol = record.get("chance"), RECORD_CHANCE_TOL
    if chance is None or (isinstance(chance, float) and math.isnan(chance)):
        metric_name = record.get("metric_name")
        chance = chance_level(record["task"], metric_name if isinstance(metric_name, str) else None)
        tol = CHANCE_TOL
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


def _order_key(label: str) -> tuple:
    """Sort labels in METHOD_ORDER, random-alpha rows by σ, a saved-alpha rerun after its method,
    unknown methods last by name."""
    match = re.fullmatch(r"(.+?)(?: \(σ=(.+)\)| \((saved alpha.*)\))?", label)
    base, sigma, saved = match.group(1), match.group(2), match.group(3)
    rank = METHOD_ORDER.index(base) if base in METHOD_ORDER else len(METHOD_ORDER)
    return (rank, base, float(sigma) if sigma else -1.0, saved or "")


def _task_key(task: str) -> tuple:
    """Sort tasks in the GLUE order of TASK_NAMES, custom tasks after by name."""
    names = list(TASK_NAMES)
    return (names.index(task) if task in names else len(names), task)


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
        out["n"][i], _task_key(out["task"][i]), _order_key(out["label"][i])))
    return out.iloc[order].reset_index(drop=True)


def paired_summary(a: np.ndarray, b: np.ndarray) -> dict:
    """Of metrics paired by seed (a[i] and b[i] share seed i): the mean of a - b, how many seeds,
    on how many a was ahead, and the paired t-test p."""
    diff = np.asarray(a, float) - np.asarray(b, float)
    return {"seeds": len(diff), "mean_difference": float(diff.mean()), "wins": int((diff > 0).sum()),
            "p": paired_p(a, b)}


def paired_differences(df: pd.DataFrame, label: str, reference: str) -> pd.DataFrame:
    """Per (n, task): the mean over the seeds both methods ran of metric(label) - metric(reference),
    how many seeds that is, on how many `label` was ahead, and the paired t-test p. Same seed = same
    training subset, so the pairing removes the subset's share of the spread."""
    columns = ["n", "task", "mean_difference", "seeds", "wins", "p"]
    rows = []
    for (n, task), group in df.groupby(["n", "task"], sort=False):
        a = group[group["label"] == label].groupby("seed")["metric"].first()
        b = group[group["label"] == reference].groupby("seed")["metric"].first()
        shared = a.index.intersection(b.index)
        if len(shared):
            rows.append({"n": int(n), "task": task, **paired_summary(a[shared].to_numpy(), b[shared].to_numpy())})
    out = pd.DataFrame(rows, columns=columns)
    order = sorted(range(len(out)), key=lambda i: (out["n"][i], _task_key(out["task"][i])))
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
    order = sorted(range(len(out)), key=lambda i: (out["n"][i], _order_key(out["label"][i])))
    return out.iloc[order].reset_index(drop=True)


# ---------------------------------------------------------------- tables

def _fmt(mean: float, std: float) -> str:
    """'mean ± std' with two decimals, as the paper prints; the mean alone when std is NaN."""
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def fmt_paper(cell: tuple[float, float] | None) -> str:
    """A paper cell, or '—' where the paper has no number."""
    return "—" if cell is None else _fmt(*cell)


def _fmt_average(cells: pd.DataFrame, n_tasks: int) -> str:
    """Mean of task means ± mean of task stds (NaN if any is), marked when tasks are missing."""
    if cells.empty:
        return "—"
    text = _fmt(cells["mean"].mean(skipna=False), cells["std"].mean(skipna=False))
    return text if len(cells) == n_tasks else f"{text} ({len(cells)}/{n_tasks} tasks)"


def fmt_p(p: float) -> str:
    """A p-value, readable at a glance."""
    return "—" if math.isnan(p) else (f"{p:.3f}" if p >= 1e-3 else f"{p:.1e}")


def _fmt_degenerate(k: float, count: int) -> str:
    """Degenerate seeds out of seeds; '?' where chance is unknown for the task."""
    return f"{'?' if math.isnan(k) else int(k)}/{count}"


def task_name(task: str) -> str:
    """Display name of a task (GLUE spelling for GLUE tasks)."""
    return TASK_NAMES.get(task, task)


def n_name(n: int) -> str:
    """Display a training-set size; 0 means the full training set."""
    return "full" if int(n) == 0 else str(int(n))


def _drop_empty_paper_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Leave out paper columns in which the paper has no number at all."""
    empty = [c for c in table.columns if c.startswith(PAPER) and (table[c] == "—").all()]
    return table.drop(columns=empty)


def task_table(df: pd.DataFrame, n: int, labels: Iterable[str] | None = None) -> pd.DataFrame:
    """Paper table 3/8 layout at one n: rows are methods, per-task 'mean ± std', p, degenerate,
    an Average (mean of task means, mean of task stds), then the paper's numbers apart."""
    summary = summary_table(df[df["n"] == n])
    if labels is not None:
        summary = summary[summary["label"].isin(list(labels))]
    tasks = sorted(summary["task"].unique(), key=_task_key)
    row_labels = sorted(summary["label"].unique(), key=_order_key)
    paper_cells = {(t, lab): paper_value(t, n, lab) for t in tasks for lab in row_labels}
    paper_avgs = {lab: paper_average(tasks, n, lab) for lab in row_labels} if tasks else {}
    has_paper = any(v is not None for v in [*paper_cells.values(), *paper_avgs.values()])
    rows = []
    for label in row_labels:
        ours = summary[summary["label"] == label].set_index("task")
        row: dict[str, str] = {}
        for t in tasks:
            if t in ours.index:
                cell = ours.loc[t]
                row[task_name(t)] = _fmt(cell["mean"], cell["std"])
                row[f"{task_name(t)} p"] = fmt_p(cell["p_value"])
                row[f"{task_name(t)} degenerate"] = _fmt_degenerate(cell["degenerate"], cell["count"])
            else:
                row[task_name(t)] = row[f"{task_name(t)} p"] = row[f"{task_name(t)} degenerate"] = "—"
        row["Average"] = _fmt_average(ours, len(tasks))
        if has_paper:
            for t in tasks:
                row[f"{PAPER} {task_name(t)}"] = fmt_paper(paper_cells[t, label])
            row[f"{PAPER} Average"] = fmt_paper(paper_avgs[label])
        rows.append(row)
    return _drop_empty_paper_columns(pd.DataFrame(rows, index=pd.Index(row_labels, name="method")))


def ablation_table(df: pd.DataFrame, n: int) -> pd.DataFrame:
    """Paper table 4/11 layout at one n: agwm, vanilla, joint, random-alpha by σ, vanilla-matched."""
    labels = [lab for lab in df["label"].unique() if _order_key(lab)[1] in ABLATION_METHODS]
    return task_table(df, n, labels=labels)


def average_table(df: pd.DataFrame) -> pd.DataFrame:
    """Paper table 1 layout: rows n, columns methods, each the average over that n's tasks."""
    summary = summary_table(df)
    labels = sorted(summary["label"].unique(), key=_order_key)
    rows, index = [], []
    for n, at_n in summary.groupby("n", sort=True):
        tasks = sorted(at_n["task"].unique(), key=_task_key)
        row = {"tasks": ", ".join(task_name(t) for t in tasks)}
        paper = {}
        for label in labels:
            row[label] = _fmt_average(at_n[at_n["label"] == label], len(tasks))
            paper[f"{PAPER} {label}"] = paper_average(tasks, int(n), label)
        if any(v is not None for v in paper.values()):
            row.update({k: fmt_paper(v) for k, v in paper.items()})
        rows.append(row)
        index.append(n_name(n))
    table = pd.DataFrame(rows, index=pd.Index(index, name="n"))
    return _drop_empty_paper_columns(table.fillna("—"))


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub markdown table of a DataFrame, index first (no dependency on tabulate)."""
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = [table.index.name or "", *map(str, table.columns)]
    lines = ["| " + " | ".join(map(cell, header)) + " |",
             "|" + "|".join(["---"] + ["---:"] * len(table.columns)) + "|"]
    for index, row in table.iterrows():
        lines.append("| " + " | ".join(cell(v) for v in [index, *row.tolist()]) + " |")
    return "\n".join(lines)


SIGNAL_KEYS = ("signal_cosine", "signal_cosine_direct", "signal_cosine_implicit", "signal_direct_norm",
               "signal_implicit_norm", "clamp_undone_share")


def _signal_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose diagnostics carry the search's signal probe records."""
    if df.empty or "diagnostics" not in df:
        return df.iloc[0:0]
    has = df["diagnostics"].map(lambda d: isinstance(d, Mapping) and bool(d.get("signal")))
    return df[has]


def signal_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per method, n and task: the mean over seeds of the search's signal diagnostics (cosine between
    two BLO-val batches' alpha hypergradients, overall and per term; the terms' norms; the share
    of alpha updates undone by the clamp)."""
    runs = _signal_runs(df)
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


# ---------------------------------------------------------------- plots

def _layer_key(name: str) -> tuple:
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


def _figure(panels: int, width: float = 5.0, height: float = 3.6, cols: int = 4):
    """A headless matplotlib figure with a grid of ``panels`` axes (no pyplot global state)."""
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
    fig, axes = _figure(len(ns), width=6.5)
    for ax, n in zip(axes, ns):
        at_n = runs[runs["n"] == n]
        layers = sorted({k for a in at_n["alphas"] for k in a["per_layer"]}, key=_layer_key)
        x = np.arange(len(layers))
        for task in sorted(at_n["task"].unique(), key=_task_key):
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
    runs = _signal_runs(df)
    if runs.empty:
        return None
    fig, (cos_ax, norm_ax) = _figure(2, width=6.0, cols=2)
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
    fig, axes = _figure(len(ns), width=6.0)
    for ax, n in zip(axes, ns):
        at_n = runs[runs["n"] == n]
        for task in sorted(at_n["task"].unique(), key=_task_key):
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
    tasks = sorted(runs["task"].unique(), key=_task_key)
    fig, axes = _figure(len(tasks), width=4.5, height=4.0)
    rng = np.random.default_rng(0)
    for ax, task in zip(axes, tasks):
        at_task = runs[runs["task"] == task]
        labels = sorted(at_task["label"].unique(), key=_order_key)
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


# ---------------------------------------------------------------- the report

LEGEND = (
    "Cells are mean ± sample std (ddof=1) over seeds. `p`: two-sided Welch t-test against "
    "vanilla at the same n and task. `degenerate`: seeds at or below the task's chance level / "
    "seeds (`?` where chance is unknown). Average: mean of the task means ± mean of the task "
    f"stds, as the paper computes it. Columns headed `{PAPER}` are the paper's own numbers "
    "(BERT-large, ten seeds), never ours; their Average is the paper's printed AVG where our "
    "tasks are that table's tasks, else the same rule applied to the paper's cells for our "
    "tasks. n = full means the full training set."
)


def _report_one(df: pd.DataFrame, out: Path, prefix: str) -> tuple[list[str], list[Path]]:
    """Markdown sections, CSVs and plots for the runs of one PLM."""
    md, written = [], []

    def save_csv(table: pd.DataFrame, name: str, index: bool = True) -> None:
        table.to_csv(out / f"{prefix}{name}", encoding="utf-8", index=index)
        written.append(out / f"{prefix}{name}")

    save_csv(summary_table(df), "summary.csv", index=False)
    for n in sorted(df["n"].unique()):
        md.append(f"### n = {n_name(n)}\n")
        table = task_table(df, n)
        md += ["#### Methods per task\n", to_markdown(table), ""]
        save_csv(table, f"table_n{n_name(n)}.csv")
        ablation = ablation_table(df, n)
        if any(_order_key(lab)[1] != "vanilla" for lab in ablation.index):
            save_csv(ablation, f"ablation_n{n_name(n)}.csv")
            if list(ablation.index) != list(table.index):  # else the table above is the ablation
                md += ["#### Ablations\n", to_markdown(ablation), ""]
        box = plot_metric_boxes(df, out / f"{prefix}metric_boxes_n{n_name(n)}.png", n)
        if box is not None:
            written.append(box)
            md += [f"![metric over seeds, n = {n_name(n)}]({box.name})", ""]
    average = average_table(df)
    md += ["### Average over tasks\n", to_markdown(average), ""]
    save_csv(average, "average.csv")
    random_alpha = sorted((lab for lab in df["label"].unique() if lab.startswith("random-alpha")), key=_order_key)
    for label in ("vanilla-matched", *random_alpha, "vanilla"):  # the controls first
        paired = paired_differences(df, "agwm", label)
        if not paired.empty:
            shown = paired.round(2).astype(object).assign(p=paired["p"].map(fmt_p))
            md += [f"### Paired by seed: agwm - {label}\n", to_markdown(shown.set_index("task")), ""]
            save_csv(paired, f"paired_agwm_{file_label(label)}.csv", index=False)
    cost = relative_cost(df)
    if len(cost) > 1:
        md += ["### Wall time per run relative to vanilla (mean over tasks)\n",
               to_markdown(cost.round(2).astype(object).set_index("label")), ""]
        save_csv(cost, "cost.csv", index=False)
    signal = signal_table(df)
    if not signal.empty:
        md += ["### Signal in the alpha hypergradient (search phase, mean over seeds)\n",
               to_markdown(signal.round(4).astype(object).set_index("method")), ""]
        save_csv(signal, "signal.csv", index=False)
    patterns = alpha_pattern_table(df)
    if not patterns.empty:
        md += ["### Where alpha moves: its pattern over modules or layers, within a task and across tasks\n",
               "Pattern: `module change`, the search's alpha change per Linear layer; `layer alpha`, the "
               "mean alpha per layer after it; `block alpha`, the same over the transformer blocks only. "
               "r: Pearson correlation of two runs' patterns, within a task (other seed) or across tasks "
               "(same seed). spread: std of a pattern over its entries, mean over runs.\n",
               to_markdown(patterns.round(5).astype(object).set_index("method")), ""]
        save_csv(patterns, "alpha_patterns.csv", index=False)
    for plot, name in ((plot_alpha_layers, "alpha_layers.png"), (plot_signal, "signal.png"),
                       (plot_alpha_hist, "alpha_hist.png")):
        made = plot(df, out / f"{prefix}{name}")
        if made is not None:
            written.append(made)
            md += [f"![{name[:-4]}]({made.name})", ""]
    return md, written


def render_report(df: pd.DataFrame, out_dir: str | Path) -> tuple[str, list[Path]]:
    """Write CSVs and plots for loaded runs into ``out_dir``; return the markdown and the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, written = ["# Results\n", LEGEND, ""], []
    if "plm" in df and not df.empty:
        plm_of = df["plm"].fillna("unspecified").astype(str)
        groups = [(plm, df[plm_of == plm]) for plm in sorted(plm_of.unique())]
    else:
        groups = [(None, df)]
    for plm, runs in groups:
        prefix = f"{plm}_" if len(groups) > 1 else ""
        md.append(f"## PLM: {plm}\n" if plm else "## Runs\n")
        section, files = _report_one(runs, out, prefix)
        md += section
        written += files
    return "\n".join(md), written


def write_report(runs_paths: Iterable[str | Path], out_dir: str | Path) -> list[Path]:
    """Load runs.jsonl files and write tables.md, CSVs and PNG plots into ``out_dir``."""
    markdown, written = render_report(load_runs(runs_paths), out_dir)
    tables = Path(out_dir) / "tables.md"
    tables.write_text(markdown + "\n", encoding="utf-8")
    return [tables, *written]
