"""A user's own CSV, TSV or JSON-lines train/validation files, loaded as a task like GLUE's."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datasets import DatasetDict

from agwm_betty.data.schema import as_float, to_dataset
from agwm_betty.data.tasks import ONE_TEXT, PAIR_TEXT, DataError, TaskSpec
from agwm_betty.runs.jsonlines import read_objects


def load_custom(
    train_file: str | Path,
    validation_file: str | Path,
    text_columns: Sequence[str],
    label_column: str,
    task_type: str | None = None,
    name: str | None = None,
) -> tuple[DatasetDict, TaskSpec]:
    """Load a user's CSV/TSV/JSON-lines train and validation files as a task like GLUE's."""
    text_columns = list(text_columns)
    if len(text_columns) not in (1, 2):
        raise DataError(f"need 1 or 2 text columns, got {len(text_columns)}: {text_columns}")
    if task_type not in (None, "classification", "regression"):
        raise DataError(
            f"task_type must be 'classification', 'regression' or None, not {task_type!r}"
        )
    wanted = [*text_columns, label_column]
    tables = {
        "train": _read_table(Path(train_file), wanted),
        "validation": _read_table(Path(validation_file), wanted),
    }
    all_labels = [label for rows in tables.values() for label in rows[label_column]]
    numeric = [as_float(label) for label in all_labels]
    is_numeric = all(v is not None for v in numeric)
    if task_type is None:
        is_regression = is_numeric and not all(float(v).is_integer() for v in numeric)
    else:
        is_regression = task_type == "regression"
    if is_regression and not is_numeric:
        bad = next(label for label, v in zip(all_labels, numeric, strict=True) if v is None)
        raise DataError(f"regression needs numeric labels in {label_column!r}; found {bad!r}")

    key = float if is_numeric else str  # "1" and "1.0" are one class; numbers sort numerically
    classes = sorted({key(label) for label in tables["train"][label_column]})
    if not is_regression and len(classes) < 2:
        raise DataError(f"classification needs at least 2 classes in {train_file}, got {classes}")
    label_names = () if is_regression else tuple(_class_name(c) for c in classes)
    text_names = ONE_TEXT if len(text_columns) == 1 else PAIR_TEXT
    name = name or Path(train_file).stem
    if is_regression:
        spec = TaskSpec(name, text_names, 1, True, "spearman", ("spearman", "pearson"))
    else:
        metrics = ("accuracy", "f1") if len(classes) == 2 else ("accuracy",)
        spec = TaskSpec(name, text_names, len(classes), False, "accuracy", metrics, label_names)

    splits = {}
    for split, rows in tables.items():
        raw_labels = rows[label_column]
        if is_regression:
            labels: list = [float(v) for v in raw_labels]
        else:
            class_id = {c: i for i, c in enumerate(classes)}
            unseen = sorted({str(v) for v in raw_labels if key(v) not in class_id})
            if unseen:
                raise DataError(
                    f"{split} labels {unseen} never occur in the train file {train_file} "
                    f"(train classes: {list(label_names)})"
                )
            labels = [class_id[key(v)] for v in raw_labels]
        columns = {new: rows[old] for new, old in zip(text_names, text_columns, strict=True)}
        splits[split] = to_dataset(
            {**columns, "label": labels, "idx": list(range(len(labels)))}, spec
        )
    return DatasetDict(splits), spec


def _class_name(value: float | str) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_table(path: Path, columns: list[str]) -> dict[str, list[str]]:
    """Read the given columns of a CSV, TSV (unquoted, like GLUE) or JSON-lines file as strings."""
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with open(path, encoding="utf-8-sig", newline="") as f:
            if suffix == ".csv":
                reader = csv.DictReader(f)
            else:
                reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            found = list(reader.fieldnames or [])
            records = list(reader)
        first_line = 2  # line 1 is the header
    elif suffix in (".jsonl", ".json"):
        records, found = _read_json_lines(path)
        first_line = 1
    else:
        raise DataError(
            f"{path}: unsupported file type {suffix!r}; use .csv, .tsv, .jsonl or .json"
        )
    absent = [c for c in columns if c not in found]
    if absent:
        raise DataError(f"column(s) {absent} not in {path}; its columns are {found}")
    if not records:
        raise DataError(f"{path} has no rows")
    label_column = columns[-1]
    table: dict[str, list[str]] = {c: [] for c in columns}
    for line, record in enumerate(records, start=first_line):
        for c in columns:
            value = record.get(c)
            if isinstance(value, (int, float)):  # JSON numbers; texts and labels are kept as text
                value = _json_scalar(value)
            if value is None or (c == label_column and not value.strip()):
                raise DataError(f"{path}, line {line}: missing value for column {c!r}")
            if not isinstance(value, str):
                raise DataError(f"{path}, line {line}: column {c!r} holds {value!r:.60}, not text")
            table[c].append(value)
    return table


def _read_json_lines(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    records: list[dict[str, Any]] = []
    found: dict[str, None] = {}
    for _, record in read_objects(path, error=DataError):
        records.append(record)
        found.update(dict.fromkeys(record))
    return records, list(found)


def _json_scalar(value: int | float) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value)
