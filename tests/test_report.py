"""Specification of result aggregation: statistics, tables beside the paper's, plots, the CLI."""
from __future__ import annotations

import json
import math
import re
import runpy
import subprocess
import sys
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from agwm_betty import report
from agwm_betty.report.paper_numbers import PAPER_CELLS, paper_average, paper_value

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LAYERS = ["pooler", "layer.10", "embeddings", "layer.2", "layer.0", "layer.1"]  # shuffled on purpose

# (n, task, method, sigma) -> metric per seed. CoLA is MCC, RTE accuracy (chance 146/277 = 52.71).
METRICS = {
    (300, "cola", "vanilla", None): [12.0, 0.0, -3.5, 20.25],
    (300, "cola", "agwm", None): [40.0, 43.5, 38.25, 45.0],
    (300, "cola", "random-alpha", 0.005): [30.0, 0.0, 25.5],
    (300, "cola", "random-alpha", 0.1): [10.0, 14.0, 18.5, 9.0],
    (300, "rte", "vanilla", None): [52.71, 47.29, 58.0, 60.5],
    (300, "rte", "agwm", None): [61.0, 62.5, 59.75, 63.0],
    (300, "rte", "random-alpha", 0.005): [55.0, 57.5, 52.0],
    (300, "rte", "random-alpha", 0.1): [53.0, 54.5, 56.0, 58.25],
    (1000, "cola", "vanilla", None): [45.0, 47.5, 50.0],
    (1000, "cola", "agwm", None): [52.0, 55.5, 54.0],
    (1000, "rte", "vanilla", None): [62.0, 64.5, 61.0],
    (1000, "rte", "agwm", None): [66.0],
}


def alphas(seed: int, task: str) -> dict:
    """A per-run alpha summary in the record format, different per seed and task."""
    shift = 0.01 * seed + (0.02 if task == "rte" else 0.0)
    per_layer = {name: 0.95 - 0.01 * i + shift for i, name in enumerate(LAYERS)}
    counts = [0] * 20
    counts[18], counts[19] = 100 + seed, 900 - seed
    return {"mean": 0.95, "std": 0.01, "min": 0.9, "max": 1.0, "per_layer": per_layer,
            "hist": {"edges": [i / 20 for i in range(21)], "counts": counts}}


def records(with_alphas: bool = True) -> list[dict]:
    """Hand-made run records covering two tasks, two n, four method labels."""
    out = []
    for (n, task, method, sigma), values in METRICS.items():
        for seed, value in enumerate(values):
            name = "mcc" if task == "cola" else "accuracy"
            out.append({
                "task": task, "n": n, "method": method, "seed": seed, "plm": "minilm",
                "metric": value, "metric_name": name, "metrics": {name: value},
                "hparams": {"sigma": sigma} if sigma is not None else {"K": 2},
                "time": {"total": 10.0}, "versions": {},
                "alphas": alphas(seed, task) if method == "agwm" and with_alphas else None,
                "run_id": f"{task}-{n}-{method}-{sigma}-{seed}",
            })
    return out


def write_jsonl(path: Path, recs: list[dict], blank_lines: bool = False) -> Path:
    """Write records one JSON per line (optionally with blank lines between)."""
    sep = "\n\n" if blank_lines else "\n"
    path.write_text(sep.join(json.dumps(r) for r in recs) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def runs_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "runs.jsonl", records(), blank_lines=True)


@pytest.fixture
def df(runs_file: Path):
    return report.load_runs([runs_file])


def row(summary, n, task, label):
    """The one summary row of a cell."""
    hit = summary[(summary.n == n) & (summary.task == task) & (summary.label == label)]
    assert len(hit) == 1
    return hit.iloc[0]


def label_of(method: str, sigma: float | None) -> str:
    return f"random-alpha (σ={sigma:g})" if sigma is not None else method


def welch_by_hand(a: list[float], b: list[float]) -> float:
    """Welch's t with Satterthwaite degrees of freedom, two-sided."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return 2 * stats.t.sf(abs(t), dof)


# ---------------------------------------------------------------- loading and labels

def test_load_runs_gives_one_row_per_record_with_labels(df):
    assert len(df) == sum(len(v) for v in METRICS.values())
    assert set(df.label) == {"vanilla", "agwm", "random-alpha (σ=0.005)", "random-alpha (σ=0.1)"}


def test_method_label_separates_random_alpha_sigmas():
    assert report.method_label({"method": "random-alpha", "hparams": {"sigma": 0.45}}) == \
        "random-alpha (σ=0.45)"
    assert report.method_label({"method": "agwm", "hparams": {"sigma": 0.45}}) == "agwm"
    assert report.method_label({"method": "random-alpha", "hparams": None}) == "random-alpha"


def test_agwm_runs_with_two_hypergradients_get_two_rows_the_papers_keeping_the_plain_label(tmp_path):
    runs = [r for r in records() if r["method"] == "agwm" and r["n"] == 300]
    for r in runs:
        r["hparams"] = {"hypergradient": "darts-paper"}
    first_order = [{**r, "hparams": {"hypergradient": "first-order"}, "run_id": r["run_id"] + "-fo"} for r in runs]
    frame = report.load_runs([write_jsonl(tmp_path / "runs.jsonl", runs + first_order)])
    assert sorted(frame.label.unique(), key=report.label_key) == ["agwm", "agwm (first-order)"]
    assert (frame.label == "agwm").sum() == len(runs)
    alone = report.load_runs([write_jsonl(tmp_path / "fo.jsonl", first_order)])
    assert set(alone.label) == {"agwm"}  # one hypergradient: nothing to tell apart


def test_label_key_puts_a_named_hypergradient_after_its_method():
    labels = ["random-alpha (σ=0.1)", "agwm (first-order)", "vanilla", "agwm", "random-alpha (σ=0.005)"]
    assert sorted(labels, key=report.label_key) == [
        "vanilla", "agwm", "agwm (first-order)", "random-alpha (σ=0.005)", "random-alpha (σ=0.1)"]


def test_malformed_line_raises_value_error_naming_file_and_line(tmp_path):
    path = tmp_path / "runs.jsonl"
    good = json.dumps(records()[0])
    path.write_text(f"{good}\n\n{{\"task\": \"cola\", \"n\": 3\n{good}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"runs\.jsonl, line 3"):
        report.load_runs([path])


def test_record_missing_required_field_is_rejected_with_its_line(tmp_path):
    rec = {k: v for k, v in records()[0].items() if k != "metric"}
    path = write_jsonl(tmp_path / "runs.jsonl", [records()[1], rec])
    with pytest.raises(ValueError, match=r"line 2: record lacks metric"):
        report.load_runs([path])


def test_duplicate_run_id_across_files_keeps_first_and_warns(tmp_path):
    first, second = records()[0], {**records()[0], "metric": -99.0}
    a = write_jsonl(tmp_path / "a.jsonl", [first])
    b = write_jsonl(tmp_path / "b.jsonl", [second, records()[1]])
    with pytest.warns(UserWarning, match="duplicate run_id"):
        df = report.load_runs([a, b])
    assert len(df) == 2
    assert df.loc[df.run_id == first["run_id"], "metric"].tolist() == [first["metric"]]


def test_load_records_keeps_the_first_of_a_run_recorded_twice_and_names_each_source(tmp_path):
    first, second = records()[0], {**records()[0], "metric": -99.0}
    a = write_jsonl(tmp_path / "a.jsonl", [first])
    b = write_jsonl(tmp_path / "b.jsonl", [second, records()[1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warn=False: a known double launch is no news
        loaded = report.load_records([a, b], warn=False)
    assert [r["metric"] for r in loaded] == [first["metric"], records()[1]["metric"]]
    assert [r["source"] for r in loaded] == [f"{a}:1", f"{b}:2"]
    with pytest.warns(UserWarning, match="duplicate run_id"):
        report.load_records([a, b])


def test_select_matches_fields_any_of_a_collection_and_hparams():
    recs = records()
    assert len(report.select(recs, task="cola", n=300, method="random-alpha")) == 3 + 4
    assert len(report.select(recs, task=("cola", "rte"), n=1000, method="agwm")) == 3 + 1
    sigma_01 = report.select(recs, hparams={"sigma": 0.1})
    assert len(sigma_01) == 4 + 4 and {r["task"] for r in sigma_01} == {"cola", "rte"}
    assert len(report.select(recs, method="vanilla", hparams={"sigma": None})) == 4 + 4 + 3 + 3  # missing is None
    assert report.select(recs, method="vanilla", hparams={"K": 3}) == []


def test_pair_by_seed_keeps_shared_seeds_in_order_with_each_seeds_first_numeric_metric():
    a = [{"seed": 2, "metric": 5.0}, {"seed": 0, "metric": None}, {"seed": 0, "metric": 1.0},
         {"seed": 1, "metric": 3.0}, {"seed": 0, "metric": 9.0}, {"seed": 4, "metric": float("nan")}]
    b = [{"seed": 1, "metric": 2.0}, {"seed": 0, "metric": 0.5}, {"seed": 3, "metric": 7.0}, {"seed": 4, "metric": 1.0}]
    seeds, x, y = report.pair_by_seed(a, b)
    assert seeds == [0, 1, 4]
    np.testing.assert_array_equal(x, [1.0, 3.0, np.nan])
    np.testing.assert_array_equal(y, [0.5, 2.0, 1.0])
    assert report.pair_by_seed(a, [])[0] == []


# ---------------------------------------------------------------- statistics

def test_summary_means_and_sample_stds_match_numpy(df):
    summary = report.summary_table(df)
    assert len(summary) == len(METRICS)
    for (n, task, method, sigma), values in METRICS.items():
        cell = row(summary, n, task, label_of(method, sigma))
        assert cell["mean"] == pytest.approx(sum(values) / len(values))
        if len(values) > 1:
            by_hand = math.sqrt(sum((v - np.mean(values)) ** 2 for v in values) / (len(values) - 1))
            assert cell["std"] == pytest.approx(by_hand)
        else:
            assert math.isnan(cell["std"])
        assert cell["count"] == len(values)


def test_p_values_are_two_sided_welch_against_vanilla_at_same_n_and_task(df):
    summary = report.summary_table(df)
    for (n, task, method, sigma), values in METRICS.items():
        p = row(summary, n, task, label_of(method, sigma))["p_value"]
        vanilla = METRICS[n, task, "vanilla", None]
        if method == "vanilla" or len(values) < 2:
            assert math.isnan(p)
        else:
            assert p == pytest.approx(welch_by_hand(values, vanilla), rel=1e-9)


def test_degenerate_seeds_are_those_at_or_below_chance(df):
    summary = report.summary_table(df)
    chance = {"cola": 0.0, "rte": 100 * 146 / 277}
    for (n, task, method, sigma), values in METRICS.items():
        # 52.71 is RTE's majority share rounded to two decimals: still chance.
        expected = sum(v <= chance[task] + 0.01 for v in values)
        assert row(summary, n, task, label_of(method, sigma))["degenerate"] == expected
    assert row(summary, 300, "cola", "vanilla")["degenerate"] == 2
    assert row(summary, 300, "rte", "vanilla")["degenerate"] == 2


def test_chance_levels_derived_from_glue_dev_sets():
    assert report.chance_level("mrpc", "f1") == pytest.approx(81.2227, abs=1e-4)
    assert report.chance_level("rte") == pytest.approx(52.7076, abs=1e-4)
    assert report.chance_level("stsb") == 0.0
    assert report.chance_level("qqp") is None
    assert report.chance_level("mnli", "accuracy") is None


def test_degenerate_rule_uses_record_chance_and_counts_nan_metrics():
    assert report.is_degenerate({"task": "mrpc", "metric_name": "f1", "metric": 81.2227}) is True
    assert report.is_degenerate({"task": "mrpc", "metric_name": "f1", "metric": 81.35}) is False
    assert report.is_degenerate({"task": "stsb", "metric": float("nan")}) is True
    assert report.is_degenerate({"task": "qqp", "metric": 60.0}) is None
    assert report.is_degenerate({"task": "qqp", "metric": 63.18, "chance": 63.18}) is True
    assert report.is_degenerate({"task": "qqp", "metric": 63.19, "chance": 63.18}) is False


def test_degenerate_count_is_nan_for_tasks_without_chance(tmp_path):
    recs = [{**r, "task": "qqp"} for r in records() if r["task"] == "rte"]
    df = report.load_runs([write_jsonl(tmp_path / "runs.jsonl", recs)])
    assert report.summary_table(df)["degenerate"].isna().all()


def test_a_task_is_informative_when_some_arm_learns_it_five_points_above_chance(df):
    table = report.informative_table(df).set_index(["n", "task"])
    cola = table.loc[(300, "cola")]
    assert cola["best"] == "agwm" and cola["chance"] == 0.0
    assert cola["best_mean"] == pytest.approx(np.mean(METRICS[(300, "cola", "agwm", None)])) and cola["informative"]
    rte_chance = 100 * 146 / 277
    for above, informative in ((4.99, False), (5.0, True)):
        near = df.copy()
        near.loc[near["task"] == "rte", "metric"] = rte_chance + above  # every arm, every seed
        row_ = report.informative_table(near).set_index(["n", "task"]).loc[(300, "rte")]
        assert row_["margin"] == pytest.approx(above) and row_["informative"] == informative
    assert report.INFORMATIVE_MARGIN == 5.0


def test_the_report_names_the_informative_tasks_of_each_n(runs_file, tmp_path):
    recs = [{**r, "metric": 53.0} if r["task"] == "rte" and r["n"] == 300 else r for r in records()]
    written = report.write_report([write_jsonl(tmp_path / "runs.jsonl", recs)], tmp_path / "out")
    md = (tmp_path / "out" / "tables.md").read_text(encoding="utf-8")
    n300 = md[md.index("### n = 300"):md.index("### n = 1000")]
    assert "**Informative** (some arm's mean at least 5 points above chance): CoLA (agwm +41.7" in n300
    assert "Not informative: RTE (" in n300 and "+0.3 over chance 52.7)" in n300
    assert "Not informative" not in md[md.index("### n = 1000"):]
    assert (tmp_path / "out" / "informative.csv") in written


def test_mixed_plms_must_be_split_before_summarising(df):
    mixed = df.copy()
    mixed.loc[mixed.index[0], "plm"] = "bert-large"
    with pytest.raises(ValueError, match="PLM"):
        report.summary_table(mixed)


# ---------------------------------------------------------------- tables

def test_task_table_rows_are_methods_and_cells_are_mean_pm_std(df):
    table = report.task_table(df, 300)
    assert list(table.index) == ["vanilla", "agwm", "random-alpha (σ=0.005)", "random-alpha (σ=0.1)"]
    values = METRICS[300, "cola", "agwm", None]
    assert table.loc["agwm", "CoLA"] == f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"
    assert table.loc["vanilla", "CoLA degenerate"] == "2/4"
    assert table.loc["vanilla", "RTE p"] == "—"


def test_average_column_is_mean_of_task_means_and_of_task_stds(df):
    table = report.task_table(df, 300)
    cola, rte = METRICS[300, "cola", "agwm", None], METRICS[300, "rte", "agwm", None]
    mean = (np.mean(cola) + np.mean(rte)) / 2
    std = (np.std(cola, ddof=1) + np.std(rte, ddof=1)) / 2
    assert table.loc["agwm", "Average"] == f"{mean:.2f} ± {std:.2f}"


def test_paper_columns_are_separate_and_hold_the_papers_numbers(df):
    table = report.task_table(df, 300)
    assert table.loc["agwm", "paper BERT-large CoLA"] == "41.81 ± 5.57"
    assert table.loc["vanilla", "paper BERT-large RTE"] == "58.09 ± 2.64"
    assert table.loc["random-alpha (σ=0.1)", "paper BERT-large CoLA"] == "—"
    assert table.loc["agwm", "CoLA"] != "41.81 ± 5.57"
    # Only CoLA and RTE were run: the paper average is over those two, by the paper's rule.
    assert table.loc["agwm", "paper BERT-large Average"] == \
        f"{(41.81 + 60.54) / 2:.2f} ± {(5.57 + 2.59) / 2:.2f}"
    md = report.to_markdown(table)
    header = md.splitlines()[0].split(" | ")
    assert "CoLA" in header and "paper BERT-large CoLA" in header
    agwm_line = next(line for line in md.splitlines() if line.startswith("| agwm |"))
    assert "41.81 ± 5.57" in agwm_line


def test_no_paper_columns_where_the_paper_has_no_numbers(df):
    table = report.task_table(df[df.n == 300].assign(n=100), 100)
    assert not any(c.startswith("paper") for c in table.columns)


def two_scales(df):
    """The hand-made grid as a small PLM, and a 'large' one that scores 10 more on every run and
    never ran RTE: two scales whose rows must stay apart."""
    large = df[df.task == "cola"].assign(metric=lambda d: d.metric + 10.0, plm="large")
    return {"small": df, "large": large}


def scale_row(table, scale, method):
    hit = table[(table.index == scale) & (table.method == method)]
    assert len(hit) == 1
    return hit.iloc[0]


def test_scales_table_gives_each_scale_its_own_rows_never_pooled(df):
    table = report.scales_table(two_scales(df), 300, ["cola", "rte"], ["vanilla", "agwm"])
    cola = METRICS[300, "cola", "agwm", None]
    assert scale_row(table, "small", "agwm")["CoLA"] == f"{np.mean(cola):.2f} ± {np.std(cola, ddof=1):.2f}"
    assert scale_row(table, "large", "agwm")["CoLA"] == f"{np.mean(cola) + 10:.2f} ± {np.std(cola, ddof=1):.2f}"
    # The large scale never ran RTE: a dash, and its average says over how many tasks.
    assert scale_row(table, "large", "agwm")["RTE"] == "—"
    assert scale_row(table, "large", "agwm")["Average"].endswith("(1/2 tasks)")
    assert scale_row(table, "small", "vanilla")["seeds"] == "4"
    assert list(dict.fromkeys(table.index)) == ["small", "large", "paper BERT-large"]


def test_scales_table_pairs_agwm_with_the_reference_seed_by_seed(df):
    table = report.scales_table(two_scales(df), 300, ["cola", "rte"], ["vanilla", "agwm"], reference="vanilla")
    paired = report.paired_differences(df[df.n == 300], "agwm", "vanilla").set_index("task")
    row = scale_row(table, "small", "agwm − vanilla")
    cola = paired.loc["cola"]
    assert row["CoLA"] == (f"{cola.mean_difference:+.2f} ({int(cola.wins)}/{int(cola.seeds)}, "
                           f"p {report.fmt_p(cola.p)})")
    assert row["Average"] == f"{paired.mean_difference.mean():+.2f}"
    # Without RTE at the large scale there is no paired average to give.
    assert scale_row(table, "large", "agwm − vanilla")["Average"] == "—"


def test_scales_table_puts_the_papers_numbers_in_rows_of_their_own(df):
    table = report.scales_table(two_scales(df), 300, ["cola", "rte"],
                                ["vanilla", "random-alpha (σ=0.1)", "agwm"])
    paper = table[table.index == report.PAPER]
    assert list(paper.method) == ["vanilla", "agwm"]  # the paper has no random-alpha at n = 300
    assert scale_row(table, report.PAPER, "agwm")["CoLA"] == "41.81 ± 5.57"


def test_scales_script_writes_the_table_it_prints(runs_file, tmp_path, capsys):
    main = runpy.run_path(str(REPO / "scripts" / "results" / "scales.py"), run_name="imported")["main"]
    out = tmp_path / "scales.md"
    assert main(["--scale", f"small={runs_file}", "--tasks", "cola,rte", "--seeds", "0-1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed in out.read_text(encoding="utf-8")
    cola = METRICS[300, "cola", "vanilla", None][:2]
    assert f"{np.mean(cola):.2f} ± {np.std(cola, ddof=1):.2f}" in printed


def test_average_table_has_a_row_per_n_and_a_column_per_method(df):
    table = report.average_table(df)
    assert list(table.index) == ["300", "1000"]
    assert table.loc["1000", "random-alpha (σ=0.1)"] == "—"
    cola, rte = METRICS[1000, "cola", "vanilla", None], METRICS[1000, "rte", "vanilla", None]
    assert table.loc["1000", "vanilla"] == (
        f"{(np.mean(cola) + np.mean(rte)) / 2:.2f} ± "
        f"{(np.std(cola, ddof=1) + np.std(rte, ddof=1)) / 2:.2f}")


def test_average_of_a_single_seed_cell_shows_no_std(df):
    table = report.task_table(df, 1000)
    assert table.loc["agwm", "RTE"] == "66.00"
    cola, rte = METRICS[1000, "cola", "agwm", None], METRICS[1000, "rte", "agwm", None]
    assert table.loc["agwm", "Average"] == f"{(np.mean(cola) + np.mean(rte)) / 2:.2f}"


def test_average_over_fewer_tasks_is_marked(tmp_path):
    recs = [r for r in records() if not (r["n"] == 300 and r["task"] == "rte"
                                          and r["method"] == "agwm")]
    table = report.average_table(report.load_runs([write_jsonl(tmp_path / "r.jsonl", recs)]))
    assert table.loc["300", "agwm"].endswith("(1/2 tasks)")


def test_ablation_table_lists_random_alpha_by_sigma_beside_table_11(tmp_path):
    full = [{**r, "n": 0} for r in records() if r["n"] == 300]  # n = 0: full training set
    full += [{**r, "method": "mixout", "run_id": r["run_id"] + "-mixout"}
             for r in full if r["method"] == "vanilla"]
    df = report.load_runs([write_jsonl(tmp_path / "r.jsonl", full)])
    table = report.ablation_table(df, 0)
    assert list(table.index) == ["vanilla", "agwm", "random-alpha (σ=0.005)", "random-alpha (σ=0.1)"]
    assert table.loc["random-alpha (σ=0.1)", "paper BERT-large CoLA"] == "64.37 ± 1.00"


def test_to_markdown_escapes_pipes():
    import pandas as pd
    md = report.to_markdown(pd.DataFrame({"a|b": ["x|y"]}, index=pd.Index(["r"], name="method")))
    assert md.splitlines() == ["| method | a\\|b |", "|---|---:|", "| r | x\\|y |"]


# ---------------------------------------------------------------- paper numbers

def test_paper_value_lookup():
    assert paper_value("cola", 300, "agwm") == (41.81, 5.57)
    assert paper_value("SST-2", 1000, "dps") == (90.92, 0.64)
    assert paper_value("cola", 0, "agwm", table=3) == (66.07, 1.35)
    assert paper_value("average", 0, "random-alpha (σ=0.45)", table=4) == (69.29, 5.44)
    assert paper_value("stsb", 1000, "lora") == (83.57, 1.41)
    assert paper_value("cola", 1000, "soup") == (43.69, 12.51)
    assert paper_value("average", 500, "child-tuning-d", table=1) == (68.35, 4.36)
    assert paper_value("cola", 300, "lora") is None
    assert paper_value("cola", 300, "agwm", table=3) is None


def test_paper_average_uses_the_printed_avg_for_the_tables_task_set():
    assert paper_average(["cola", "mrpc", "rte", "stsb"], 0, "vanilla") == (78.88, 1.64)
    assert paper_average(["cola", "mrpc", "rte", "stsb"], 500, "prompt") == (52.48, 7.23)
    glue8 = ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte"]
    assert paper_average(glue8, 300, "agwm") == (68.97, 3.09)
    assert paper_average(["cola", "qqp"], 300, "lora") is None


def test_transcribed_averages_agree_with_their_rows():
    """Each printed AVG is the mean of its row (means and stds) up to the paper's rounding."""
    rows: dict = {}
    for (table, n, task, method), cell in PAPER_CELLS.items():
        rows.setdefault((table, n, method), {})[task] = cell
    # The paper's own slip: these stds average to 2.785 over the printed cells, AVG says 2.75.
    known = {(8, 1000, "child-tuning-d")}
    checked = 0
    for key, cells in rows.items():
        tasks = [t for t in cells if t != "average"]
        if "average" not in cells or not tasks:
            continue
        mean = np.mean([cells[t][0] for t in tasks])
        std = np.mean([cells[t][1] for t in tasks])
        assert cells["average"][0] == pytest.approx(mean, abs=0.011), key
        if key not in known:
            assert cells["average"][1] == pytest.approx(std, abs=0.011), key
        checked += 1
    assert checked == 37  # table 8: 12 rows, 3: 9, 11: 6, 9: 10


# ---------------------------------------------------------------- plots

def assert_png(path) -> None:
    data = Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1024


def test_plots_are_png_files(df, tmp_path):
    assert_png(report.plot_alpha_layers(df, tmp_path / "layers.png"))
    assert_png(report.plot_alpha_hist(df, tmp_path / "hist.png"))
    assert_png(report.plot_metric_boxes(df, tmp_path / "boxes.png", 300))


def test_layer_order_is_network_order():
    ordered = sorted(LAYERS + ["classifier"], key=report.layer_key)
    assert ordered == ["embeddings", "layer.0", "layer.1", "layer.2", "layer.10", "pooler",
                       "classifier"]


def test_plots_without_alphas_or_runs_return_none(tmp_path):
    df = report.load_runs([write_jsonl(tmp_path / "r.jsonl", records(with_alphas=False))])
    assert report.plot_alpha_layers(df, tmp_path / "layers.png") is None
    assert report.plot_alpha_hist(df, tmp_path / "hist.png") is None
    assert report.plot_metric_boxes(df, tmp_path / "boxes.png", 123) is None
    assert not any(tmp_path.glob("*.png"))


# ---------------------------------------------------------------- report and CLI

def test_write_report_writes_tables_csvs_and_plots(runs_file, tmp_path):
    out = tmp_path / "out"
    written = report.write_report([runs_file], out)
    assert all(p.exists() for p in written)
    names = {p.name for p in written}
    assert {"tables.md", "summary.csv", "table_n300.csv", "table_n1000.csv", "ablation_n300.csv",
            "average.csv", "metric_boxes_n300.png", "alpha_layers.png", "alpha_hist.png"} <= names
    md = (out / "tables.md").read_text(encoding="utf-8")
    assert "### n = 300" in md and "### n = 1000" in md and "41.81 ± 5.57" in md


def test_the_report_pairs_agwm_with_each_random_alpha_row_as_with_vanilla(runs_file, tmp_path):
    names = {p.name for p in report.write_report([runs_file], tmp_path)}
    assert {"paired_agwm_vanilla.csv", "paired_agwm_random-alpha_sigma0.005.csv",
            "paired_agwm_random-alpha_sigma0.1.csv"} <= names
    md = (tmp_path / "tables.md").read_text(encoding="utf-8")
    assert (md.index("agwm - random-alpha (σ=0.005)") < md.index("agwm - random-alpha (σ=0.1)")
            < md.index("agwm - vanilla\n"))
    written = pd.read_csv(tmp_path / "paired_agwm_random-alpha_sigma0.005.csv")
    expected = report.paired_differences(report.load_runs([runs_file]), "agwm", "random-alpha (σ=0.005)")
    assert written["mean_difference"].round(6).tolist() == expected["mean_difference"].round(6).tolist()


def test_pairs_asked_for_are_paired_by_seed_after_agwms_controls(runs_file, tmp_path, capsys):
    from agwm_betty.cli.agwm_report import main

    assert main([str(runs_file), "--out", str(tmp_path), "--quiet", "--pairs", "vanilla:agwm"]) == 0
    md = (tmp_path / "tables.md").read_text(encoding="utf-8")
    assert md.index("### Paired by seed: agwm - vanilla\n") < md.index("### Paired by seed: vanilla - agwm")
    written = pd.read_csv(tmp_path / "paired_vanilla_agwm.csv")
    expected = report.paired_differences(report.load_runs([runs_file]), "vanilla", "agwm")
    assert not expected.empty
    assert written["mean_difference"].round(6).tolist() == expected["mean_difference"].round(6).tolist()


@pytest.mark.parametrize("bad", ["setfit", "setfit:", "a:b:c"])
def test_a_pair_that_is_not_label_colon_reference_is_refused(bad, runs_file, tmp_path, capsys):
    from agwm_betty.cli.agwm_report import main

    with pytest.raises(SystemExit) as stop:
        main([str(runs_file), "--out", str(tmp_path), "--pairs", bad])
    assert stop.value.code == 2 and "LABEL:REFERENCE" in capsys.readouterr().err


def test_write_report_without_alphas_does_not_crash(tmp_path):
    recs = [{k: v for k, v in r.items() if k != "alphas"} for r in records() if r["n"] == 1000]
    runs = write_jsonl(tmp_path / "r.jsonl", recs)
    names = {p.name for p in report.write_report([runs], tmp_path / "out")}
    assert "tables.md" in names and "alpha_layers.png" not in names


def test_write_report_of_no_runs_still_writes_tables(tmp_path):
    runs = tmp_path / "r.jsonl"
    runs.write_text("\n\n", encoding="utf-8")
    assert [p.name for p in report.write_report([runs], tmp_path / "out")][0] == "tables.md"


def test_cli_writes_report_and_prints_tables(runs_file, tmp_path):
    out = tmp_path / "cli"
    done = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "report.py"), str(runs_file), "--out", str(out)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "paper BERT-large CoLA" in done.stdout
    assert (out / "tables.md").exists() and (out / "summary.csv").exists()
    assert_png(out / "metric_boxes_n300.png")


def test_cli_help_explains_usage():
    done = subprocess.run([sys.executable, str(REPO / "experiments" / "report.py"), "--help"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0 and "--out" in done.stdout and "runs" in done.stdout


# ---------------------------------------------------------------- paired differences and cost

def test_paired_differences_average_over_the_seeds_both_methods_ran(df):
    """agwm - random-alpha (σ=0.005) at n = 300: random-alpha ran seeds 0-2 only."""
    paired = report.paired_differences(df, "agwm", "random-alpha (σ=0.005)")
    assert list(zip(paired["n"], paired["task"], strict=True)) == [(300, "cola"), (300, "rte")]
    for task in ("cola", "rte"):
        a, b = METRICS[(300, task, "agwm", None)], METRICS[(300, task, "random-alpha", 0.005)]
        got = paired[paired["task"] == task].iloc[0]
        assert got["seeds"] == 3
        assert got["mean_difference"] == pytest.approx(np.mean(np.subtract(a[:3], b)))
        assert got["wins"] == sum(x > y for x, y in zip(a[:3], b, strict=True))


def test_the_paired_p_value_is_the_paired_t_test_over_seeds():
    # differences 1, 2, 3: t = 2 / (1 / sqrt 3) = 3.46 on 2 degrees of freedom, two-sided p = 0.0742
    assert report.paired_p(np.array([11.0, 12.0, 13.0]),
                           np.array([10.0, 10.0, 10.0])) == pytest.approx(0.0742, abs=1e-4)
    assert report.paired_p(np.array([13.0, 12.0, 11.0]),
                           np.array([10.0, 10.0, 10.0])) == pytest.approx(0.0742, abs=1e-4)
    assert math.isnan(report.paired_p(np.array([1.0]), np.array([0.0])))  # one seed: no test
    assert math.isnan(report.paired_p(np.array([2.0, 3.0]), np.array([1.0, 2.0])))  # no spread in the differences


def test_relative_cost_is_the_mean_over_tasks_of_the_time_ratio_to_vanilla(tmp_path):
    recs = records(with_alphas=False)
    for r in recs:  # agwm takes 3x vanilla on cola and 5x on rte; everything else 10 s
        if r["method"] == "agwm":
            r["time"] = {"total": 30.0 if r["task"] == "cola" else 50.0}
    cost = report.relative_cost(report.load_runs([write_jsonl(tmp_path / "runs.jsonl", recs)]))
    agwm = cost[(cost["n"] == 300) & (cost["label"] == "agwm")].iloc[0]
    assert agwm["ratio"] == pytest.approx(4.0) and agwm["tasks"] == 2
    vanilla = cost[(cost["n"] == 300) & (cost["label"] == "vanilla")].iloc[0]
    assert vanilla["ratio"] == pytest.approx(1.0)


def test_relative_cost_compares_times_only_on_one_device(tmp_path):
    recs = records(with_alphas=False)
    for r in recs:
        r["device"] = "cpu" if r["method"] == "agwm" and r["task"] == "rte" else "gpu"
    cost = report.relative_cost(report.load_runs([write_jsonl(tmp_path / "runs.jsonl", recs)]))
    agwm = cost[(cost["n"] == 300) & (cost["label"] == "agwm")].iloc[0]
    assert agwm["tasks"] == 1  # rte's agwm ran on another device than its vanilla


# ---------------------------------------------------------------- the CLI on bad input

@pytest.mark.parametrize("name, content, message", [
    ("missing.jsonl", None, "no such file"),
    ("empty.jsonl", "", "empty file"),
    ("blank.jsonl", "\n  \n", "empty file"),
    ("runs.csv", "task,n,method,seed,metric\ncola,300,agwm,0,40.0\n", "line 1: not valid JSON"),
    ("array.json", '[{"task": "cola"}]\n', "line 1: expected a JSON object"),
    ("plot.png", PNG_MAGIC + bytes(range(256)), "not UTF-8 text"),
    ("folder", "DIR", "not a file"),
])
def test_cli_refuses_a_bad_runs_file_in_one_line_with_exit_code_2(name, content, message, tmp_path, capsys):
    from agwm_betty.cli.agwm_report import main

    path = tmp_path / name
    if content == "DIR":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    assert main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out" / "tables.md").exists()


def test_cli_refuses_a_missing_file_without_a_traceback(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "experiments" / "report.py"), str(tmp_path / "nope.jsonl")],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"error: {tmp_path / 'nope.jsonl'}: no such file"


def test_a_good_file_beside_a_bad_one_is_still_refused(runs_file, tmp_path, capsys):
    from agwm_betty.cli.agwm_report import main

    assert main([str(runs_file), str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "out")]) == 2
    assert "nope.jsonl: no such file" in capsys.readouterr().err


# ---------------------------------------------------------------- one HTML page

class PageParser(HTMLParser):
    """What a browser needs from report.html: its tables (rows of cell texts), image sources and
    every other URL it would fetch."""

    def __init__(self, text: str):
        super().__init__()
        self.tables, self.images, self.urls, self.tags, self.cell = [], [], [], set(), None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag != "img":
            self.urls += [v for k, v in attrs.items() if k in ("href", "src", "srcset", "action")]

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def markdown_tables(markdown: str) -> list[list[list[str]]]:
    """The pipe tables of tables.md: rows of cell texts, separator rows left out."""
    tables, current = [], None
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            if current is None:
                current = []
                tables.append(current)
            if not set(line) <= set("|-: "):
                cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
                current.append([re.sub(r"`([^`]*)`", r"\1", c) for c in cells])
        else:
            current = None
    return tables


def test_html_page_holds_every_table_and_embeds_every_plot(runs_file, tmp_path):
    import base64

    from agwm_betty.cli.agwm_report import main

    out = tmp_path / "out"
    assert main([str(runs_file), "--out", str(out), "--html", "--quiet"]) == 0
    page = PageParser((out / "report.html").read_text(encoding="utf-8"))
    expected = markdown_tables((out / "tables.md").read_text(encoding="utf-8"))
    assert len(expected) >= 5 and page.tables == expected  # every table, cell for cell
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) >= 4
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    embedded = sorted(base64.b64decode(src.split(",", 1)[1]) for src in page.images)
    assert embedded == sorted(p.read_bytes() for p in pngs)  # every plot, byte for byte
    assert not page.urls and not {"link", "script", "iframe", "object"} & page.tags  # nothing to fetch


def test_html_keeps_escaped_pipes_code_and_paragraphs_and_refuses_a_missing_plot(tmp_path):
    from agwm_betty.report.html import markdown_to_html

    page = markdown_to_html("# T\n\nsome `p` text\nwrapped <here>\n\n| m | a\\|b |\n|---|---:|\n| x | 1 ± 2 |\n",
                            tmp_path)
    assert "<p>some <code>p</code> text wrapped &lt;here&gt;</p>" in page and "<h1>T</h1>" in page
    assert PageParser(page).tables == [[["m", "a|b"], ["x", "1 ± 2"]]]
    with pytest.raises(FileNotFoundError, match="gone.png"):
        markdown_to_html("![plot](gone.png)\n", tmp_path)


def with_signal(recs: list[dict]) -> list[dict]:
    """agwm records with the search's probe records: cosine 0.1 * seed on CoLA, -0.2 on RTE."""
    for r in recs:
        if r["method"] == "agwm":
            cos = 0.1 * r["seed"] if r["task"] == "cola" else -0.2
            split = [{"step": s, "cosine": cos, "cosine_direct": cos, "cosine_implicit": None,
                      "direct_norm": 0.5 * s, "implicit_norm": 0.0} for s in (1, 5, 9)]
            r["diagnostics"] = {"signal": [split, split], "signal_cosine": cos, "signal_cosine_direct": cos,
                                "signal_cosine_implicit": None, "signal_direct_norm": 2.5,
                                "signal_implicit_norm": 0.0, "clamp_undone_share": 0.25}
    return recs


def test_signal_table_means_the_probe_diagnostics_over_seeds(tmp_path):
    table = report.signal_table(report.load_runs([write_jsonl(tmp_path / "r.jsonl", with_signal(records()))]))
    cola = table[(table["task"] == report.task_name("cola")) & (table["n"] == "300")].iloc[0]
    assert cola["method"] == "agwm" and cola["seeds"] == 4
    assert cola["cosine"] == pytest.approx(np.mean([0.0, 0.1, 0.2, 0.3]))
    assert cola["clamp_undone_share"] == pytest.approx(0.25) and math.isnan(cola["cosine_implicit"])
    assert set(table["task"]) == {report.task_name("cola"), report.task_name("rte")}


def test_report_writes_the_signal_section_and_plot(tmp_path):
    written = report.write_report([write_jsonl(tmp_path / "r.jsonl", with_signal(records()))], tmp_path)
    names = {p.name for p in written}
    assert {"signal.csv", "signal.png"} <= names
    assert (tmp_path / "signal.png").read_bytes()[:8] == PNG_MAGIC
    assert "Signal in the alpha hypergradient" in (tmp_path / "tables.md").read_text()
    plain = report.write_report([write_jsonl(tmp_path / "p.jsonl", records())], tmp_path / "plain")
    assert "signal.png" not in {p.name for p in plain}


PATTERNS = {("cola", 0): [1.0, 2.0, 3.0, 4.0], ("cola", 1): [1.0, 2.0, 3.0, 5.0],
            ("rte", 0): [4.0, 3.0, 2.0, 1.0], ("rte", 1): [5.0, 3.0, 2.5, 1.0]}


def with_patterns(recs: list[dict]) -> list[dict]:
    """The records, less the n = 300 agwm seeds outside PATTERNS; those in it carry a per-module
    alpha change: rising on CoLA, falling on RTE (a task signal)."""
    out = []
    for r in recs:
        if r["method"] == "agwm" and r["n"] == 300:
            if (r["task"], r["seed"]) not in PATTERNS:
                continue
            r["diagnostics"] = {"alpha_change_per_module": {f"m{i}": -0.01 * v for i, v in
                                                            enumerate(PATTERNS[r["task"], r["seed"]])}}
        out.append(r)
    return out


def test_alpha_patterns_compare_the_change_within_a_task_and_across_tasks_of_one_seed(tmp_path):
    table = report.alpha_pattern_table(report.load_runs([write_jsonl(tmp_path / "r.jsonl", with_patterns(records()))]))
    module = table[table["pattern"] == "module change"]
    assert len(module) == 1  # n = 1000 has no per-module change
    row = module.iloc[0]
    assert (row["method"], row["n"], row["runs"], row["tasks"]) == ("agwm", "300", 4, 2)
    r = lambda a, b: stats.pearsonr(PATTERNS[a], PATTERNS[b])[0]  # noqa: E731
    assert row["within_pairs"] == 2 and row["within_task_r"] == pytest.approx(
        (r(("cola", 0), ("cola", 1)) + r(("rte", 0), ("rte", 1))) / 2)
    assert row["across_pairs"] == 2 and row["across_task_r"] == pytest.approx(
        (r(("cola", 0), ("rte", 0)) + r(("cola", 1), ("rte", 1))) / 2)
    assert row["within_task_r"] > 0.9 and row["across_task_r"] < -0.9
    assert row["spread"] == pytest.approx(np.mean([0.01 * np.std(p) for p in PATTERNS.values()]))


def test_without_a_per_module_change_the_pattern_is_the_mean_alpha_per_layer(tmp_path):
    table = report.alpha_pattern_table(report.load_runs([write_jsonl(tmp_path / "r.jsonl", with_patterns(records()))]))
    layer = table[table["pattern"] == "layer alpha"].set_index("n")
    assert list(layer.index) == ["300", "1000"]
    # alphas(): the same per-layer shape on every run, shifted per seed and task
    assert layer.loc["1000", "within_pairs"] == 3 and layer.loc["1000", "across_pairs"] == 1
    assert layer.loc["1000", "within_task_r"] == pytest.approx(1.0)
    assert layer.loc["300", "spread"] == pytest.approx(np.std([0.01 * i for i in range(len(LAYERS))]))


def test_the_block_pattern_leaves_out_the_pooler_and_the_embeddings(tmp_path):
    recs = [r for r in records() if r["method"] == "agwm" and r["n"] == 1000]
    for r in recs:  # blocks rise on seed 0, fall on the others; the pooler and embeddings agree
        r["alphas"]["per_layer"].update({"pooler": 0.5, "embeddings": 0.6, "layer.10": 0.9 + 0.01 * (r["seed"] == 0)})
    table = report.alpha_pattern_table(report.load_runs([write_jsonl(tmp_path / "r.jsonl", recs)]))
    rows = table.set_index("pattern")
    blocks = {k: v for k, v in recs[0]["alphas"]["per_layer"].items() if k.startswith("layer.")}
    assert sorted(blocks) == ["layer.0", "layer.1", "layer.10", "layer.2"]
    assert rows.loc["layer alpha", "within_task_r"] > 0.95  # the two outliers set it
    assert rows.loc["block alpha", "within_task_r"] < 0.9
    assert rows.loc["block alpha", "spread"] == pytest.approx(
        np.mean([np.std([v for k, v in r["alphas"]["per_layer"].items() if k.startswith("layer.")]) for r in recs]))


def test_report_writes_the_alpha_pattern_section_only_where_agwm_runs_left_a_pattern(tmp_path):
    written = report.write_report([write_jsonl(tmp_path / "r.jsonl", with_patterns(records()))], tmp_path)
    assert "alpha_patterns.csv" in {p.name for p in written}
    assert "within a task and across tasks" in (tmp_path / "tables.md").read_text()
    plain = report.write_report([write_jsonl(tmp_path / "p.jsonl", records(with_alphas=False))], tmp_path / "plain")
    assert "alpha_patterns.csv" not in {p.name for p in plain}
