"""The GLUE task table: what each task's inputs, label space and metrics are, by name."""

from __future__ import annotations

from dataclasses import dataclass


class DataError(ValueError):
    """A task, data file, column or subset request that cannot be served; the message says why."""


@dataclass(frozen=True)
class TaskSpec:
    """What a task looks like to the rest of the package: inputs, label space and metrics."""

    name: str
    text_columns: tuple[str, ...]
    num_labels: int
    is_regression: bool
    metric: str
    metrics: tuple[str, ...]
    label_names: tuple[str, ...] = ()
    metric_module: str | None = None  # a user's own `evaluate` module (path) scoring a custom dataset


ONE_TEXT = ("text_a",)
PAIR_TEXT = ("text_a", "text_b")

GLUE_TASKS: dict[str, TaskSpec] = {
    "cola": TaskSpec("cola", ONE_TEXT, 2, False, "mcc", ("mcc",), ("unacceptable", "acceptable")),
    "sst2": TaskSpec(
        "sst2", ONE_TEXT, 2, False, "accuracy", ("accuracy",), ("negative", "positive")
    ),
    "mrpc": TaskSpec(
        "mrpc", PAIR_TEXT, 2, False, "f1", ("f1", "accuracy"), ("not_equivalent", "equivalent")
    ),
    "stsb": TaskSpec("stsb", PAIR_TEXT, 1, True, "spearman", ("spearman", "pearson")),
    "qqp": TaskSpec(
        "qqp", PAIR_TEXT, 2, False, "accuracy", ("f1", "accuracy"), ("not_duplicate", "duplicate")
    ),
    "mnli": TaskSpec(
        "mnli",
        PAIR_TEXT,
        3,
        False,
        "accuracy",
        ("accuracy",),
        ("entailment", "neutral", "contradiction"),
    ),
    "qnli": TaskSpec(
        "qnli", PAIR_TEXT, 2, False, "accuracy", ("accuracy",), ("entailment", "not_entailment")
    ),
    "rte": TaskSpec(
        "rte", PAIR_TEXT, 2, False, "accuracy", ("accuracy",), ("entailment", "not_entailment")
    ),
}
TASK_NAMES: tuple[str, ...] = tuple(GLUE_TASKS)


def get_task(task: str) -> TaskSpec:
    """Return the TaskSpec of a GLUE task name (case and '-' are ignored: 'SST-2' is 'sst2')."""
    key = task.lower().replace("-", "").replace("_", "")
    if key not in GLUE_TASKS:
        raise DataError(f"unknown task {task!r}; valid GLUE tasks are: {', '.join(TASK_NAMES)}")
    return GLUE_TASKS[key]
