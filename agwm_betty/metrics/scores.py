"""Metrics through Hugging Face `evaluate`, offline: the GLUE metrics ship with the package as a local
`evaluate` module (`glue_metric.py` beside this one, the hub `glue` metric's configurations and keys, the
arithmetic scikit-learn's and scipy's), loaded by path, so nothing is fetched at run time. A user's
own `evaluate` module (a local script or directory) serves a custom dataset (`--metric`).

GLUE scores are reported on the paper's 0-100 scale under the package's names (accuracy, f1, mcc,
pearson, spearman). Degenerate inputs have defined values instead of NaN: MCC is 0 when either the
labels or the predictions hold a single class (as in sklearn), binary F1 is 0 when there is no true
positive (sklearn's zero_division=0), and Pearson/Spearman are 0 when either side is constant (scipy
would return NaN).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from agwm_betty.data import GLUE_TASKS, TaskSpec, get_task

GLUE_METRIC_PATH = str(Path(__file__).with_name("glue_metric.py"))
REGRESSION_METRICS = ("pearson", "spearman")
CLASSIFICATION_METRICS = ("accuracy", "f1", "mcc")
# the package's metric name -> (the GLUE configuration that reports it, its key there)
_GLUE_KEYS = {
    "accuracy": ("sst2", "accuracy"),
    "f1": ("mrpc", "f1"),
    "mcc": ("cola", "matthews_correlation"),
    "pearson": ("stsb", "pearson"),
    "spearman": ("stsb", "spearmanr"),
}


@functools.cache
def load_metric(path: str, config: str | None = None):
    """`evaluate.load` of a local module (a .py script or a directory holding one), in memory (no
    cache files, so parallel workers do not share any); loaded once per process."""
    import evaluate

    return evaluate.load(path, config, keep_in_memory=True)


def _metric_names(spec_or_metric_names: TaskSpec | str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(spec_or_metric_names, TaskSpec):
        return spec_or_metric_names.metrics
    if isinstance(spec_or_metric_names, str):
        return (spec_or_metric_names,)
    return tuple(spec_or_metric_names)


def _class_ids(predictions: np.ndarray) -> np.ndarray:
    if predictions.ndim == 2 and predictions.shape[1] > 1:
        return predictions.argmax(axis=1)
    return predictions.reshape(-1)


def compute_metrics(
    spec_or_metric_names: TaskSpec | str | Iterable[str], predictions, labels
) -> dict[str, float]:
    """Score predictions (class ids, logits or regression scores) against labels, 0-100 scale; a
    task whose spec names a user's `metric_module` gets that module's keys, on its own scale."""
    if isinstance(spec_or_metric_names, TaskSpec) and spec_or_metric_names.metric_module:
        return _user_metrics(spec_or_metric_names, predictions, labels)
    names = _metric_names(spec_or_metric_names)
    unknown = [name for name in names if name not in _GLUE_KEYS]
    if unknown or not names:
        raise ValueError(f"unknown metric(s) {unknown or names}; known: {', '.join(_GLUE_KEYS)}")
    predictions = np.asarray(predictions)
    labels = np.asarray(labels).reshape(-1)
    if predictions.ndim not in (1, 2) or len(predictions) != len(labels):
        raise ValueError(
            f"need one prediction per label: predictions {predictions.shape}, labels {labels.shape}"
        )
    if len(labels) == 0:
        raise ValueError("cannot score an empty set of predictions")
    results = {}
    for config, wanted in _by_config(names).items():
        if config == "stsb":
            if predictions.ndim == 2 and predictions.shape[1] != 1:
                raise ValueError(f"{'/'.join(wanted)} needs one score per example, got {predictions.shape}")
            scores = predictions.reshape(-1).astype(np.float64)
            targets = labels.astype(np.float64)
            if not (np.isfinite(scores).all() and np.isfinite(targets).all()):
                raise ValueError(f"{'/'.join(wanted)} needs finite predictions and labels")
        else:
            scores, targets = _class_ids(predictions), labels.astype(np.int64)
        values = load_metric(GLUE_METRIC_PATH, config).compute(predictions=scores, references=targets)
        for name in wanted:
            results[name] = 100.0 * values[_GLUE_KEYS[name][1]]
    return {name: results[name] for name in names}


def _user_metrics(spec: TaskSpec, predictions, labels) -> dict[str, float]:
    """Every number a user's `evaluate` module returns for class ids (or scores, for regression)."""
    predictions, labels = np.asarray(predictions), np.asarray(labels).reshape(-1)
    scores = predictions.reshape(-1).astype(np.float64) if spec.is_regression else _class_ids(predictions)
    values = load_metric(spec.metric_module).compute(predictions=scores, references=labels)
    out = {k: float(v) for k, v in (values or {}).items() if isinstance(v, (int, float, np.number))}
    if spec.metric not in out:
        raise ValueError(f"metric module {spec.metric_module} returned {sorted(out)}, not {spec.metric!r} "
                         f"(name the key as --metric PATH:KEY)")
    return out


def metric_module_spec(path_and_key: str) -> tuple[str, str]:
    """'my_metric.py[:KEY]' -> (the module's path, the key ranked by: KEY, else the module's name), the
    module loaded once here so that a bad path fails before any training."""
    path, key = path_and_key, ""
    if not Path(path).exists() and ":" in path:
        path, _, key = path_and_key.rpartition(":")
    if not Path(path).exists():
        raise ValueError(f"--metric {path}: no such file or directory (a local `evaluate` module)")
    try:
        module = load_metric(str(Path(path).resolve()))
    except Exception as err:  # evaluate's own errors vary by what is wrong with the script
        raise ValueError(f"--metric {path}: not a loadable `evaluate` module ({type(err).__name__}: {err})") from None
    return str(Path(path).resolve()), key or module.name


def _by_config(names: tuple[str, ...]) -> dict[str, list[str]]:
    """The requested metric names grouped by the GLUE configuration that reports them."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(_GLUE_KEYS[name][0], []).append(name)
    return groups


def trainer_metrics(task_or_metric_names: TaskSpec | str | Iterable[str]):
    """A `compute_metrics` for `transformers.Trainer`: an `EvalPrediction` -> metrics on the 0-100
    scale, through the same `evaluate` module as the package's runs. Give a GLUE task name ("mrpc"),
    a `TaskSpec`, or metric names (["accuracy", "f1"])."""
    spec = task_or_metric_names
    if isinstance(spec, str) and spec in GLUE_TASKS:
        spec = get_task(spec)

    def compute(eval_prediction) -> dict[str, float]:
        predictions = eval_prediction.predictions
        if isinstance(predictions, (tuple, list)):  # (logits, hidden states, ...)
            predictions = predictions[0]
        return compute_metrics(spec, predictions, eval_prediction.label_ids)

    return compute


def main_metric(spec: TaskSpec | str) -> str:
    """The metric a task is ranked by (a TaskSpec or a GLUE task name)."""
    return (get_task(spec) if isinstance(spec, str) else spec).metric
