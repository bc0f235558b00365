"""Aggregate runs.jsonl records into the paper's tables (ours beside the paper's) and figures.

One idea per module, each importing its siblings directly (never this package):
`names` (task names, method labels, row order), `selection` (reading runs.jsonl, selecting runs,
pairing arms by seed), `stats` (chance, t-tests, summaries, paired differences, cost), `tables`
(the paper's layouts, markdown), `alpha` (signal and alpha-pattern tables from the diagnostics),
`figures` (matplotlib plots), `curves` (the runs' curves files: did the outer level move, loss
and alpha curves), `render` (tables.md, CSVs and figures in one folder) and `html`
(that folder as one self-contained page). scipy and matplotlib load only when a p-value or a
figure is computed.
"""
from agwm_betty.report.alpha import (
    PATTERNS,
    SIGNAL_KEYS,
    alpha_pattern_table,
    pattern_correlations,
    signal_runs,
    signal_table,
)
from agwm_betty.report.curves import (
    curve_runs,
    curves_section,
    outer_level_section,
    outer_level_table,
    plot_alpha_curves,
    plot_loss_curves,
)
from agwm_betty.report.figures import (
    figure,
    layer_key,
    plot_alpha_hist,
    plot_alpha_layers,
    plot_metric_boxes,
    plot_signal,
)
from agwm_betty.report.html import markdown_to_html, write_html
from agwm_betty.report.names import (
    ABLATION_METHODS,
    METHOD_ORDER,
    TASK_NAMES,
    file_label,
    label_key,
    method_label,
    n_name,
    task_key,
    task_name,
)
from agwm_betty.report.render import LEGEND, render_report, write_report
from agwm_betty.report.selection import (
    REQUIRED,
    load_records,
    load_runs,
    pair_by_seed,
    read_records,
    select,
)
from agwm_betty.report.stats import (
    CHANCE,
    CHANCE_TOL,
    DEFAULT_METRIC,
    INFORMATIVE_MARGIN,
    RECORD_CHANCE_TOL,
    chance_level,
    informative_table,
    is_degenerate,
    paired_differences,
    paired_p,
    paired_summary,
    relative_cost,
    summary_table,
    welch_p,
)
from agwm_betty.report.tables import (
    PAPER,
    ablation_table,
    average_table,
    fmt_p,
    fmt_paper,
    scales_table,
    task_table,
    to_markdown,
)

__all__ = [
    "ABLATION_METHODS", "CHANCE", "CHANCE_TOL", "DEFAULT_METRIC", "INFORMATIVE_MARGIN", "LEGEND",
    "METHOD_ORDER", "PAPER", "PATTERNS", "RECORD_CHANCE_TOL", "REQUIRED", "SIGNAL_KEYS", "TASK_NAMES",
    "ablation_table", "alpha_pattern_table", "average_table", "chance_level", "curve_runs", "curves_section",
    "figure", "file_label", "fmt_p", "fmt_paper", "informative_table", "is_degenerate", "label_key",
    "layer_key", "load_records", "load_runs", "markdown_to_html", "method_label", "n_name",
    "outer_level_section", "outer_level_table", "pair_by_seed", "paired_differences", "paired_p",
    "paired_summary", "pattern_correlations", "plot_alpha_curves", "plot_alpha_hist", "plot_alpha_layers",
    "plot_loss_curves", "plot_metric_boxes", "plot_signal", "read_records", "relative_cost", "render_report",
    "scales_table", "select", "signal_runs", "signal_table", "summary_table", "task_key", "task_name", "task_table",
    "to_markdown", "welch_p", "write_html", "write_report",
]


def __getattr__(name: str):
    """A submodule that moved in 0.3.0, read as an attribute the old way, with a warning."""
    from agwm_betty import _moved

    module = _moved.moved_attribute(__name__, name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return module
