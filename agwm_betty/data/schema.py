"""The columns every loader returns (text_a, text_b, label, idx) and their dtypes, one place."""

from __future__ import annotations

import math

from datasets import Dataset, Features, Value

from agwm_betty.data.tasks import TaskSpec


def features(spec: TaskSpec) -> Features:
    """Column types of every source: texts, a float or int label, ``idx`` (row in the source)."""
    label = Value("float32") if spec.is_regression else Value("int64")
    return Features(
        {
            **{col: Value("string") for col in spec.text_columns},
            "label": label,
            "idx": Value("int64"),
        }
    )


def to_dataset(rows: dict[str, list], spec: TaskSpec) -> Dataset:
    """A Dataset of parsed rows with the task's column types."""
    return Dataset.from_dict(rows, features=features(spec))


def as_float(value: str) -> float | None:
    """The value as a finite float, or None when it is not one."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
