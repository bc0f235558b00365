"""Spec of the pre-registered confirmation test (`agwm_betty.report.confirm`, #44's PLAN.md)."""
import math

import numpy as np
import pandas as pd
import pytest

from agwm_betty.report.confirm import (
    bootstrap_interval,
    collapse_table,
    confirmation_table,
    holm,
    paired_tests,
)


def test_holm_multiplies_the_ordered_p_values_and_keeps_them_monotone():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    adjusted = holm([0.02, math.nan, 0.01])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)


def test_the_bootstrap_interval_is_reproducible_and_brackets_the_mean():
    diff = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    low, high = bootstrap_interval(diff)
    assert (low, high) == bootstrap_interval(diff)  # a fixed generator seed
    assert low < diff.mean() < high and low >= diff.min() and high <= diff.max()
    assert bootstrap_interval(np.full(6, 2.0)) == (2.0, 2.0)


def test_paired_tests_use_the_two_sided_t_and_wilcoxon_tests():
    a, b = np.arange(1.0, 11.0), np.zeros(10)
    out = paired_tests(a, b)
    assert out["seeds"] == 10 and out["wins"] == 10 and out["mean_difference"] == pytest.approx(5.5)
    assert out["wilcoxon_p"] == pytest.approx(2 / 1024)  # all ten ranks on one side, exact distribution
    assert out["t_p"] == pytest.approx(2.782e-4, rel=1e-3)  # t = 5.5 / (3.028 / sqrt(10)) = 5.745, 9 df


def runs(label: str, metrics: dict[int, float], task: str = "stsb") -> list[dict]:
    return [{"task": task, "n": 300, "label": label, "seed": s, "metric": m} for s, m in metrics.items()]


SEEDS = range(5, 15)


def frame(*groups: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([r for g in groups for r in g])


def test_a_consistent_lead_is_confirmed_a_noisy_one_is_not_and_a_deficit_is_reversed():
    rng = np.random.default_rng(1)
    base = {s: 80 + rng.normal(0, 2) for s in SEEDS}
    df = frame(runs("agwm", {s: v + 3 + rng.normal(0, 0.5) for s, v in base.items()}),
               runs("steady", base),
               runs("noisy", {s: v + rng.normal(0, 8) for s, v in base.items()}),
               runs("better", {s: v + 6 + rng.normal(0, 0.5) for s, v in base.items()}),
               runs("other-task", {s: 0.0 for s in SEEDS}, task="cola"))
    table = confirmation_table(df, "stsb", "agwm", ["steady", "noisy", "better", "other-task"], seeds=SEEDS)
    verdicts = dict(zip(table["control"], table["verdict"], strict=True))
    assert verdicts == {"steady": "confirmed", "noisy": "not confirmed", "better": "reversed",
                        "other-task": "not confirmed"}  # a control with no run on the task pairs no seed
    steady = table.set_index("control").loc["steady"]
    assert steady["seeds"] == 10 and steady["paired_seeds"] == list(SEEDS)
    assert steady["t_p_holm"] >= steady["t_p"] and steady["wilcoxon_p_holm"] >= steady["wilcoxon_p"]


def test_only_the_planned_seeds_count():
    df = frame(runs("agwm", {s: 90.0 + s for s in range(15)}), runs("control", {s: 80.0 for s in range(15)}))
    table = confirmation_table(df, "stsb", "agwm", ["control"], seeds=SEEDS)
    assert table.loc[0, "paired_seeds"] == list(SEEDS) and table.loc[0, "mean_difference"] == pytest.approx(19.5)


def test_collapses_are_counted_below_the_threshold_and_compared_by_fisher():
    df = frame(runs("agwm", {s: 83.0 for s in range(15)}),
               runs("control", {s: (0.0 if s < 5 else 80.0) for s in range(15)}),
               runs("other", {s: (49.9 if s == 3 else float("nan") if s == 4 else 80.0) for s in range(15)}))
    table = collapse_table(df, "stsb", 50.0, "agwm", ["control", "other"]).set_index("label")
    assert table.loc["agwm", "collapsed"] == 0 and table.loc["agwm", "runs"] == 15
    assert table.loc["control", "collapsed"] == 5 and table.loc["other", "collapsed"] == 2  # NaN collapses
    assert table.loc["control", "fisher_p"] == pytest.approx(0.0421, abs=1e-4)  # PLAN.md's example
    assert table.loc["control", "fisher_p_holm"] == pytest.approx(2 * table.loc["control", "fisher_p"])
