"""Metrics agree with sklearn/scipy (x100) and have defined values on degenerate inputs."""

import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from agwm_betty.data import GLUE_TASKS, DataError
from agwm_betty.metrics.scores import compute_metrics, main_metric

# sklearn warns when a tiny random draw holds a single class; that case is part of the check
pytestmark = pytest.mark.filterwarnings("ignore:A single label was found:UserWarning")

SIZES = (2, 3, 7, 50, 333)
SEEDS = range(6)


def _binary(rng: np.random.Generator, size: int, positive_rate: float) -> np.ndarray:
    return (rng.random(size) < positive_rate).astype(np.int64)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("positive_rate", (0.05, 0.5, 0.9))
def test_binary_metrics_match_sklearn(size, positive_rate):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        labels = _binary(rng, size, positive_rate)
        preds = _binary(rng, size, positive_rate)
        got = compute_metrics(("mcc", "f1", "accuracy"), preds, labels)
        assert got["mcc"] == pytest.approx(100 * skm.matthews_corrcoef(labels, preds), abs=1e-6)
        assert got["f1"] == pytest.approx(
            100 * skm.f1_score(labels, preds, zero_division=0.0), abs=1e-6
        )
        assert got["accuracy"] == pytest.approx(100 * skm.accuracy_score(labels, preds), abs=1e-6)


@pytest.mark.parametrize("num_classes", (3, 5))
@pytest.mark.parametrize("size", SIZES)
def test_multiclass_accuracy_and_mcc_match_sklearn(num_classes, size):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        weights = rng.dirichlet(np.ones(num_classes) * 0.5)  # imbalanced classes
        labels = rng.choice(num_classes, size=size, p=weights)
        preds = rng.choice(num_classes, size=size, p=weights)
        got = compute_metrics(("accuracy", "mcc"), preds, labels)
        assert got["accuracy"] == pytest.approx(100 * skm.accuracy_score(labels, preds), abs=1e-6)
        assert got["mcc"] == pytest.approx(100 * skm.matthews_corrcoef(labels, preds), abs=1e-6)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("ties", (False, True))
def test_correlations_match_scipy(size, ties):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        labels = rng.uniform(0, 5, size)
        preds = labels + rng.normal(0, 1.5, size)
        if ties:  # STS-B style scores: few distinct values on both sides
            labels, preds = np.round(labels), np.round(preds * 2) / 2
        if np.ptp(labels) == 0 or np.ptp(preds) == 0:
            continue
        got = compute_metrics(("pearson", "spearman"), preds, labels)
        assert got["pearson"] == pytest.approx(100 * stats.pearsonr(preds, labels)[0], abs=1e-6)
        assert got["spearman"] == pytest.approx(100 * stats.spearmanr(preds, labels)[0], abs=1e-6)


def test_scores_match_hand_computed_values():
    """TP 2, TN 1, FP 1, FN 0: MCC = (2*1 - 1*0) / sqrt(3*2*2*1); ranks 1 2 3 4 against 1 3 2 4 give
    Spearman 1 - 6*2 / (4*15) = 0.8, and these values are their own ranks, so Pearson is 0.8 too."""
    got = compute_metrics(("mcc", "f1", "accuracy"), [1, 0, 1, 1], [1, 0, 0, 1])
    assert got == pytest.approx({"mcc": 100 * 2 / 12**0.5, "f1": 80.0, "accuracy": 75.0})
    got = compute_metrics(("pearson", "spearman"), [1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0])
    assert got == pytest.approx({"pearson": 80.0, "spearman": 80.0})


def test_one_class_on_both_sides_gives_zero_mcc_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compute_metrics("mcc", [1, 1, 1], [1, 1, 1])["mcc"] == 0.0


def test_logits_give_the_same_scores_as_class_ids():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(64, 2))
    labels = rng.integers(0, 2, 64)
    names = ("mcc", "f1", "accuracy")
    assert compute_metrics(names, logits, labels) == compute_metrics(
        names, logits.argmax(axis=1), labels
    )


def test_regression_accepts_a_column_of_scores():
    rng = np.random.default_rng(2)
    labels = rng.uniform(0, 5, 40)
    preds = labels + rng.normal(size=40)
    assert compute_metrics(GLUE_TASKS["stsb"], preds[:, None], labels) == compute_metrics(
        GLUE_TASKS["stsb"], preds, labels
    )


def test_a_task_spec_selects_its_reported_metrics_on_a_0_to_100_scale():
    got = compute_metrics(GLUE_TASKS["mrpc"], [1, 0, 1, 1], [1, 0, 0, 1])
    assert set(got) == {"f1", "accuracy"}
    assert got["accuracy"] == pytest.approx(75.0)
    assert got["f1"] == pytest.approx(80.0)


def test_constant_predictions_give_zero_mcc_and_zero_correlations():
    labels = np.array([0, 1, 1, 0, 1])
    assert compute_metrics("mcc", np.ones(5, dtype=int), labels)["mcc"] == 0.0
    assert compute_metrics("mcc", labels, np.zeros(5, dtype=int))["mcc"] == 0.0
    scores = np.array([0.5, 1.0, 2.0, 4.0, 5.0])
    for name in ("pearson", "spearman"):
        assert compute_metrics(name, np.full(5, 3.0), scores)[name] == 0.0
        assert compute_metrics(name, scores, np.full(5, 3.0))[name] == 0.0


def test_f1_is_zero_without_true_positives():
    assert compute_metrics("f1", [0, 0, 0], [0, 0, 0])["f1"] == 0.0
    assert compute_metrics("f1", [1, 1, 0], [0, 0, 0])["f1"] == 0.0


def test_perfect_predictions_score_100():
    labels = np.array([0, 1, 1, 0, 1, 0])
    got = compute_metrics(("mcc", "f1", "accuracy"), labels, labels)
    assert got == {"mcc": 100.0, "f1": 100.0, "accuracy": 100.0}


@pytest.mark.parametrize(
    ("names", "preds", "labels"),
    [
        ("bleu", [1], [1]),
        ("accuracy", [1, 0], [1]),
        ("accuracy", [], []),
        ("f1", [2, 0], [1, 0]),
        ("pearson", [np.nan, 1.0], [1.0, 2.0]),
    ],
)
def test_bad_inputs_raise_value_error(names, preds, labels):
    with pytest.raises(ValueError):
        compute_metrics(names, preds, labels)


def test_main_metric_follows_the_papers_table():
    expected = {
        "cola": "mcc",
        "mrpc": "f1",
        "stsb": "spearman",
        "qqp": "accuracy",
        "rte": "accuracy",
    }
    assert {task: main_metric(GLUE_TASKS[task]) for task in expected} == expected
    assert main_metric("SST-2") == "accuracy"
    with pytest.raises(DataError, match="cola"):
        main_metric("squad")


# --- the evaluate module: the interface every score goes through ---------------------------------------------

HUB_KEYS = {"cola": {"matthews_correlation"}, "stsb": {"pearson", "spearmanr"}, "mrpc": {"accuracy", "f1"},
            "qqp": {"accuracy", "f1"}, "sst2": {"accuracy"}, "rte": {"accuracy"}, "qnli": {"accuracy"},
            "mnli": {"accuracy"}, "wnli": {"accuracy"}}


@pytest.mark.parametrize("config, keys", sorted(HUB_KEYS.items()))
def test_the_local_glue_module_answers_with_the_hub_metrics_keys_on_a_0_to_1_scale(config, keys):
    import evaluate

    from agwm_betty.metrics.scores import GLUE_METRIC_PATH

    rng = np.random.default_rng(0)
    if config == "stsb":
        refs = rng.uniform(0, 5, 40)
        preds = refs + rng.normal(0, 1, 40)
    else:
        refs, preds = rng.integers(0, 2, 40), rng.integers(0, 2, 40)
    got = evaluate.load(GLUE_METRIC_PATH, config, keep_in_memory=True).compute(predictions=preds, references=refs)
    assert set(got) == keys
    assert all(-1 <= v <= 1 for v in got.values())
    if "accuracy" in got:
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(refs, preds))
    if "pearson" in got:  # float64 throughout, as scipy computes it
        assert got["pearson"] == pytest.approx(stats.pearsonr(preds, refs).statistic, rel=1e-12)


def test_it_loads_and_scores_with_the_network_off():
    """In a fresh process whose every socket connection fails: evaluate fetches nothing."""
    import subprocess
    import sys

    code = (
        "import socket\n"
        "def refuse(*a, **k):\n"
        "    raise OSError('network is off in this test')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from agwm_betty.metrics.scores import compute_metrics\n"
        "print(compute_metrics('f1', [1, 0, 1], [1, 1, 1]))\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "{'f1': 80.0}" in done.stdout


def test_the_trainers_compute_metrics_goes_through_the_same_scores():
    from transformers import EvalPrediction

    from agwm_betty.metrics.scores import trainer_metrics

    logits, labels = np.array([[2.0, -1.0], [0.1, 0.3], [0.0, 1.0], [1.0, 0.0]]), np.array([0, 1, 0, 0])
    want = compute_metrics(GLUE_TASKS["mrpc"], logits, labels)
    assert trainer_metrics("mrpc")(EvalPrediction(logits, labels)) == want
    assert trainer_metrics(["f1", "accuracy"])(EvalPrediction((logits, None), labels)) == want


MY_METRIC = '''"""Balanced accuracy, an evaluate module of a user's own."""
import datasets
import evaluate
import numpy as np


class MyMetric(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description="balanced accuracy", citation="", inputs_description="",
                                   features=datasets.Features({"predictions": datasets.Value("int64"),
                                                               "references": datasets.Value("int64")}))

    def _compute(self, predictions, references):
        p, r = np.asarray(predictions), np.asarray(references)
        recalls = [float((p[r == c] == c).mean()) for c in np.unique(r)]
        return {"my_metric": sum(recalls) / len(recalls), "n": len(r)}
'''


def test_a_users_own_evaluate_module_scores_a_custom_dataset(tmp_path):
    """--metric PATH: every number the module returns is recorded on its own scale; its name ranks."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "my_metric.py").write_text(MY_METRIC, encoding="utf-8")
    rows = ["text,label"] + [f"sample {i} is {'good' if i % 3 else 'bad'},{'pos' if i % 3 else 'neg'}"
                             for i in range(24)]
    (tmp_path / "mine.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "dev.csv").write_text("\n".join(rows[:10]) + "\n")
    glue = [sys.executable, str(Path(__file__).resolve().parents[1] / "experiments" / "glue.py")]
    common = ["--train-file", str(tmp_path / "mine.csv"), "--validation-file", str(tmp_path / "dev.csv"),
              "--text-columns", "text", "--label-column", "label", "--methods", "vanilla", "--seeds", "1",
              "--n", "0", "--max-steps", "1", "--no-progress"]
    done = subprocess.run([*glue, *common, "--metric", str(tmp_path / "my_metric.py"), "--output",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((tmp_path / "out" / "runs.jsonl").read_text())
    assert record["metric_name"] == "my_metric" and set(record["metrics"]) == {"my_metric", "n"}
    assert 0 <= record["metric"] <= 1 and record["metrics"]["n"] == 9
    bad = subprocess.run([*glue, *common, "--metric", str(tmp_path / "nope.py"), "--output", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "nope.py: no such file" in bad.stderr and "Traceback" not in bad.stderr
