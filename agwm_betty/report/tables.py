"""Tables in the paper's layouts (methods per task, ablations, average over tasks), ours beside the
paper's own numbers, and their markdown."""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from agwm_betty.report.names import ABLATION_METHODS, label_key, n_name, task_key, task_name
from agwm_betty.report.paper_numbers import paper_average, paper_value
from agwm_betty.report.stats import paired_differences, summary_table

PAPER = "paper BERT-large"


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
    tasks = sorted(summary["task"].unique(), key=task_key)
    row_labels = sorted(summary["label"].unique(), key=label_key)
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
    labels = [lab for lab in df["label"].unique() if label_key(lab)[1] in ABLATION_METHODS]
    return task_table(df, n, labels=labels)


def average_table(df: pd.DataFrame) -> pd.DataFrame:
    """Paper table 1 layout: rows n, columns methods, each the average over that n's tasks."""
    summary = summary_table(df)
    labels = sorted(summary["label"].unique(), key=label_key)
    rows, index = [], []
    for n, at_n in summary.groupby("n", sort=True):
        tasks = sorted(at_n["task"].unique(), key=task_key)
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


def scales_table(scales: Mapping[str, pd.DataFrame], n: int, tasks: Sequence[str], labels: Sequence[str],
                 reference: str = "vanilla-matched") -> pd.DataFrame:
    """One grid at several model scales, side by side and never pooled: per scale (one PLM's runs
    each), a row per method with 'mean ± std' per task, the Average and the seeds, then agwm's
    paired-by-seed difference to `reference` ('+d (wins/seeds, p)'); the paper's BERT-large rows
    last, where the paper has a number."""
    columns = [task_name(t) for t in tasks]
    rows, index = [], []
    for scale, df in scales.items():
        at_n = df[(df["n"] == n) & df["task"].isin(list(tasks))]
        summary = summary_table(at_n).set_index(["task", "label"])
        for label in labels:
            cells = [summary.loc[t, label] if (t, label) in summary.index else None for t in tasks]
            found = [c for c in cells if c is not None]
            if not found:
                continue
            counts = sorted({int(c["count"]) for c in found})
            average = _fmt_average(pd.DataFrame(found), len(tasks))
            rows.append({"method": label, **{col: "—" if c is None else _fmt(c["mean"], c["std"])
                                             for col, c in zip(columns, cells, strict=True)},
                         "Average": average, "seeds": "/".join(map(str, counts))})
            index.append(scale)
        paired = paired_differences(at_n, "agwm", reference).set_index("task")
        if not paired.empty:
            row = {"method": f"agwm − {reference}"}
            for col, t in zip(columns, tasks, strict=True):
                row[col] = ("—" if t not in paired.index else
                            f"{paired.loc[t, 'mean_difference']:+.2f} ({int(paired.loc[t, 'wins'])}/"
                            f"{int(paired.loc[t, 'seeds'])}, p {fmt_p(paired.loc[t, 'p'])})")
            both = paired.reindex(list(tasks))["mean_difference"]
            row["Average"] = f"{both.mean():+.2f}" if both.notna().all() else "—"
            row["seeds"] = "paired"
            rows.append(row)
            index.append(scale)
    for label in labels:
        cells = [paper_value(t, n, label) for t in tasks]
        if any(c is not None for c in cells):
            rows.append({"method": label, **{col: fmt_paper(c) for col, c in zip(columns, cells, strict=True)},
                         "Average": fmt_paper(paper_average(list(tasks), n, label)), "seeds": "10"})
            index.append(PAPER)
    return pd.DataFrame(rows, index=pd.Index(index, name="scale"),
                        columns=["method", *columns, "Average", "seeds"])


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
