"""The whole report of a set of runs: tables.md, its CSVs and its figures in one folder, a section
per PLM."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from agwm_betty.report.alpha import alpha_pattern_table, signal_table
from agwm_betty.report.curves import curve_runs, curves_section, outer_level_section
from agwm_betty.report.figures import plot_alpha_hist, plot_alpha_layers, plot_metric_boxes, plot_signal
from agwm_betty.report.names import file_label, label_key, n_name, task_name
from agwm_betty.report.selection import load_runs
from agwm_betty.report.stats import (
    INFORMATIVE_MARGIN,
    informative_table,
    paired_differences,
    relative_cost,
    summary_table,
)
from agwm_betty.report.tables import PAPER, ablation_table, average_table, fmt_p, task_table, to_markdown

LEGEND = (
    "Cells are mean ± sample std (ddof=1) over seeds. `p`: two-sided Welch t-test against "
    "vanilla at the same n and task. `degenerate`: seeds at or below the task's chance level / "
    "seeds (`?` where chance is unknown). Average: mean of the task means ± mean of the task "
    f"stds, as the paper computes it. Columns headed `{PAPER}` are the paper's own numbers "
    "(BERT-large, ten seeds), never ours; their Average is the paper's printed AVG where our "
    "tasks are that table's tasks, else the same rule applied to the paper's cells for our "
    "tasks. n = full means the full training set."
)


def _report_one(df: pd.DataFrame, curves: pd.DataFrame, out: Path, prefix: str,
                pairs: Sequence[tuple[str, str]] = ()) -> tuple[list[str], list[Path]]:
    """Markdown sections, CSVs and plots for the runs of one PLM; `pairs` adds paired tables
    (label - reference) after agwm's against its controls."""
    md, written = [], []

    def save_csv(table: pd.DataFrame, name: str, index: bool = True) -> None:
        table.to_csv(out / f"{prefix}{name}", encoding="utf-8", index=index)
        written.append(out / f"{prefix}{name}")

    save_csv(summary_table(df), "summary.csv", index=False)
    informative = informative_table(df)
    save_csv(informative, "informative.csv", index=False)
    for n in sorted(df["n"].unique()):
        md.append(f"### n = {n_name(n)}\n")
        md += [_informative_line(informative[informative["n"] == n]), ""]
        table = task_table(df, n)
        md += ["#### Methods per task\n", to_markdown(table), ""]
        save_csv(table, f"table_n{n_name(n)}.csv")
        ablation = ablation_table(df, n)
        if any(label_key(lab)[1] != "vanilla" for lab in ablation.index):
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
    random_alpha = sorted((lab for lab in df["label"].unique() if lab.startswith("random-alpha")), key=label_key)
    controls = [("agwm", label) for label in ("vanilla-matched", *random_alpha, "vanilla")]  # the controls first
    for label, reference in dict.fromkeys([*controls, *pairs]):
        paired = paired_differences(df, label, reference)
        if not paired.empty:
            shown = paired.round(2).astype(object).assign(p=paired["p"].map(fmt_p))
            md += [f"### Paired by seed: {label} - {reference}\n", to_markdown(shown.set_index("task")), ""]
            save_csv(paired, f"paired_{file_label(label)}_{file_label(reference)}.csv", index=False)
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
    section, files = curves_section(curves, out, prefix)
    return md + section, written + files


def _informative_line(table: pd.DataFrame) -> str:
    """One sentence naming the tasks that tell methods apart at this n, the informative ones first."""
    def cell(row) -> str:
        if pd.isna(row.margin):
            return f"{task_name(row.task)} (chance unknown)"
        return f"{task_name(row.task)} ({row.best} {row.margin:+.1f} over chance {row.chance:.1f})"

    rows = list(table.itertuples())
    said = [f"**Informative** (some arm's mean at least {INFORMATIVE_MARGIN:g} points above chance): "
            + (", ".join(cell(r) for r in rows if r.informative) or "none") + "."]
    if any(not r.informative for r in rows):
        said.append("Not informative: " + ", ".join(cell(r) for r in rows if not r.informative) + ".")
    return " ".join(said)


def render_report(df: pd.DataFrame, out_dir: str | Path,
                  pairs: Sequence[tuple[str, str]] = ()) -> tuple[str, list[Path]]:
    """Write CSVs and plots for loaded runs into ``out_dir``; return the markdown and the paths.
    `pairs`: (label, reference) method labels to compare paired by seed, beside agwm's controls."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    curves = curve_runs(df)
    md, written = ["# Results\n", *outer_level_section(curves), LEGEND, ""], []
    if "plm" in df and not df.empty:
        plm_of = df["plm"].fillna("unspecified").astype(str)
        groups = [(plm, df[plm_of == plm]) for plm in sorted(plm_of.unique())]
    else:
        groups = [(None, df)]
    for plm, runs in groups:
        prefix = f"{plm}_" if len(groups) > 1 else ""
        md.append(f"## PLM: {plm}\n" if plm else "## Runs\n")
        section, files = _report_one(runs, curves[curves.index.isin(runs.index)], out, prefix, pairs)
        md += section
        written += files
    return "\n".join(md), written


def write_report(runs_paths: Iterable[str | Path], out_dir: str | Path,
                 pairs: Sequence[tuple[str, str]] = ()) -> list[Path]:
    """Load runs.jsonl files and write tables.md, CSVs and PNG plots into ``out_dir`` (`pairs`: as
    `render_report`)."""
    markdown, written = render_report(load_runs(runs_paths), out_dir, pairs)
    tables = Path(out_dir) / "tables.md"
    tables.write_text(markdown + "\n", encoding="utf-8")
    return [tables, *written]
