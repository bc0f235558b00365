"""GLUE metrics on the paper's 0-100 scale, computed by scikit-learn and scipy (nothing is
downloaded at run time, unlike `evaluate`'s metric scripts).

Degenerate inputs have defined values instead of NaN: MCC is 0 when either the labels or the
predictions hold a single class (as in sklearn), binary F1 is 0 when there is no true positive
(sklearn's zero_division=0), and Pearson/Spearman are 0 when either side is constant (scipy would
return NaN).
"""

from __future__ import annotations

import warnings
from typing import Callable, Iterable

import numpy as np

from agwm_betty.data import TaskSpec, get_task

REGRESSION_METRICS = ("pearson", "spearman")
CLASSIFICATION_METRICS = ("accuracy", "f1", "mcc")


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of class ids predicted right."""
    from sklearn.metrics import accuracy_score  # sklearn takes seconds to import: only when scoring

    return float(accuracy_score(labels, predictions))


def binary_f1(predictions: np.ndarray, labels: np.ndarray) -> float:
    """F1 of the positive class 1 (labels must be 0/1); 0 when there is no true positive."""
    for name, values in (("labels", labels), ("predictions", predictions)):
        if not np.isin(values, (0, 1)).all():
            raise ValueError(
                f"binary F1 needs 0/1 {name}, got classes {np.unique(values).tolist()}"
            )
    from sklearn.metrics import f1_score

    return float(f1_score(labels, predictions, pos_label=1, zero_division=0.0))


def mcc(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Matthews correlation coefficient (multi-class form); 0 when undefined (one class on a side)."""
    from sklearn.metrics import matthews_corrcoef

    with warnings.catch_warnings():  # one class on both sides is our defined 0, not news
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)
        return float(matthews_corrcoef(labels, predictions))


def _correlation(name: str, predictions: np.ndarray, labels: np.ndarray) -> float:
    """scipy's Pearson or Spearman correlation; 0 when either side is constant (scipy says NaN)."""
    if np.ptp(predictions) == 0 or np.ptp(labels) == 0:
        return 0.0
    from scipy import stats  # a second to import: only when scoring a regression task

    test = stats.pearsonr if name == "pearson" else stats.spearmanr
    return float(test(predictions, labels).statistic)


def pearson(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Pearson correlation; 0 when either side is constant."""
    return _correlation("pearson", predictions, labels)


def spearman(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Spearman rank correlation (Pearson of average ranks); 0 when either side is constant."""
    return _correlation("spearman", predictions, labels)


_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": accuracy,
    "f1": binary_f1,
    "mcc": mcc,
    "pearson": pearson,
    "spearman": spearman,
}


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
    """Score predictions (class ids, logits or regression scores) against labels, 0-100 scale."""
    names = _metric_names(spec_or_metric_names)
    unknown = [name for name in names if name not in _METRICS]
    if unknown or not names:
        raise ValueError(f"unknown metric(s) {unknown or names}; known: {', '.join(_METRICS)}")
    predictions = np.asarray(predictions)
    labels = np.asarray(labels).reshape(-1)
    if predictions.ndim not in (1, 2) or len(predictions) != len(labels):
        raise ValueError(
            f"need one prediction per label: predictions {predictions.shape}, labels {labels.shape}"
        )
    if len(labels) == 0:
        raise ValueError("cannot score an empty set of predictions")
    results = {}
    for name in names:
        if name in REGRESSION_METRICS:
            if predictions.ndim == 2 and predictions.shape[1] != 1:
                raise ValueError(f"{name} needs one score per example, got {predictions.shape}")
            scores = predictions.reshape(-1).astype(np.float64)
            targets = labels.astype(np.float64)
            if not (np.isfinite(scores).all() and np.isfinite(targets).all()):
                raise ValueError(f"{name} needs finite predictions and labels")
            value = _METRICS[name](scores, targets)
        else:
            value = _METRICS[name](_class_ids(predictions), labels)
        results[name] = 100.0 * value
    return results


def main_metric(spec: TaskSpec | str) -> str:
    """The metric a task is ranked by (a TaskSpec or a GLUE task name)."""
    return (get_task(spec) if isinstance(spec, str) else spec).metric
