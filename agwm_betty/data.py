"""Tasks, data loading, the paper's low-resource subsets, BLO splits, tokenisation and loaders.

Every dataset this module returns has the columns ``text_a``, (``text_b``), ``label`` and ``idx``
(the row's index in the original file or hub split), whatever the source: the original GLUE
TSV files, the ``nyu-mll/glue`` hub dataset or a user's own CSV/TSV/JSON-lines files.
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import datasets
import numpy as np
import torch
from datasets import Dataset, DatasetDict, Features, Value
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding

HUB_DATASET = "nyu-mll/glue"


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


_ONE = ("text_a",)
_PAIR = ("text_a", "text_b")

GLUE_TASKS: dict[str, TaskSpec] = {
    "cola": TaskSpec("cola", _ONE, 2, False, "mcc", ("mcc",), ("unacceptable", "acceptable")),
    "sst2": TaskSpec("sst2", _ONE, 2, False, "accuracy", ("accuracy",), ("negative", "positive")),
    "mrpc": TaskSpec(
        "mrpc", _PAIR, 2, False, "f1", ("f1", "accuracy"), ("not_equivalent", "equivalent")
    ),
    "stsb": TaskSpec("stsb", _PAIR, 1, True, "spearman", ("spearman", "pearson")),
    "qqp": TaskSpec(
        "qqp", _PAIR, 2, False, "accuracy", ("f1", "accuracy"), ("not_duplicate", "duplicate")
    ),
    "mnli": TaskSpec(
        "mnli",
        _PAIR,
        3,
        False,
        "accuracy",
        ("accuracy",),
        ("entailment", "neutral", "contradiction"),
    ),
    "qnli": TaskSpec(
        "qnli", _PAIR, 2, False, "accuracy", ("accuracy",), ("entailment", "not_entailment")
    ),
    "rte": TaskSpec(
        "rte", _PAIR, 2, False, "accuracy", ("accuracy",), ("entailment", "not_entailment")
    ),
}
TASK_NAMES: tuple[str, ...] = tuple(GLUE_TASKS)


@dataclass(frozen=True)
class _TsvLayout:
    """Where a task's original GLUE TSV files live and which columns hold what."""

    folder: str
    dev_file: str
    text_columns: tuple[str, ...]
    label_column: str
    fieldnames: tuple[str, ...] | None = None  # set for files without a header row (CoLA)
    string_labels: bool = False  # labels are written as label names, not ids


_TSV_LAYOUTS: dict[str, _TsvLayout] = {
    "cola": _TsvLayout(
        "CoLA",
        "dev.tsv",
        ("sentence",),
        "label",
        fieldnames=("source", "label", "original_label", "sentence"),
    ),
    "sst2": _TsvLayout("SST-2", "dev.tsv", ("sentence",), "label"),
    "mrpc": _TsvLayout("MRPC", "dev.tsv", ("#1 String", "#2 String"), "Quality"),
    "stsb": _TsvLayout("STS-B", "dev.tsv", ("sentence1", "sentence2"), "score"),
    "qqp": _TsvLayout("QQP", "dev.tsv", ("question1", "question2"), "is_duplicate"),
    "mnli": _TsvLayout(
        "MNLI", "dev_matched.tsv", ("sentence1", "sentence2"), "gold_label", string_labels=True
    ),
    "qnli": _TsvLayout("QNLI", "dev.tsv", ("question", "sentence"), "label", string_labels=True),
    "rte": _TsvLayout("RTE", "dev.tsv", ("sentence1", "sentence2"), "label", string_labels=True),
}

_HUB_TEXT_COLUMNS: dict[str, tuple[str, ...]] = {
    "cola": ("sentence",),
    "sst2": ("sentence",),
    "mrpc": ("sentence1", "sentence2"),
    "stsb": ("sentence1", "sentence2"),
    "qqp": ("question1", "question2"),
    "mnli": ("premise", "hypothesis"),
    "qnli": ("question", "sentence"),
    "rte": ("sentence1", "sentence2"),
}

_HOW_TO_PROVIDE = (
    "Pass --data-dir (or set GLUE_DIR) to a folder holding the original GLUE TSV layout "
    "(e.g. RTE/train.tsv, RTE/dev.tsv; MNLI/dev_matched.tsv), or give no data dir to load "
    f"{HUB_DATASET!r} from the Hugging Face hub."
)


def get_task(task: str) -> TaskSpec:
    """Return the TaskSpec of a GLUE task name (case and '-' are ignored: 'SST-2' is 'sst2')."""
    key = task.lower().replace("-", "").replace("_", "")
    if key not in GLUE_TASKS:
        raise DataError(f"unknown task {task!r}; valid GLUE tasks are: {', '.join(TASK_NAMES)}")
    return GLUE_TASKS[key]


def _features(spec: TaskSpec) -> Features:
    label = Value("float32") if spec.is_regression else Value("int64")
    return Features(
        {
            **{col: Value("string") for col in spec.text_columns},
            "label": label,
            "idx": Value("int64"),
        }
    )


def _to_dataset(rows: dict[str, list], spec: TaskSpec) -> Dataset:
    return Dataset.from_dict(rows, features=_features(spec))


# ---------------------------------------------------------------- GLUE


def load_glue(task: str, data_dir: str | Path | None = None) -> DatasetDict:
    """Load a GLUE task's train and (matched) dev set from TSV files, or from the hub if no dir."""
    spec = get_task(task)
    if data_dir is None:
        data_dir = os.environ.get("GLUE_DIR") or None
    if data_dir is None:
        return _load_hub(spec)
    return _load_tsv_task(spec, Path(data_dir))


def _load_tsv_task(spec: TaskSpec, data_dir: Path) -> DatasetDict:
    layout = _TSV_LAYOUTS[spec.name]
    folder = data_dir / layout.folder
    paths = {"train": folder / "train.tsv", "validation": folder / layout.dev_file}
    if not data_dir.is_dir():
        raise DataError(f"GLUE data dir {data_dir} does not exist. {_HOW_TO_PROVIDE}")
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise DataError(
            f"{spec.name} data not found: looked for {', '.join(missing)}. {_HOW_TO_PROVIDE}"
        )
    return DatasetDict(
        {
            split: _to_dataset(_read_glue_tsv(path, spec, layout), spec)
            for split, path in paths.items()
        }
    )


def _read_glue_tsv(path: Path, spec: TaskSpec, layout: _TsvLayout) -> dict[str, list]:
    """Parse one GLUE TSV like the GLUE/HF loaders: no quoting, corrupted rows dropped."""
    rows: dict[str, list] = {col: [] for col in (*spec.text_columns, "label", "idx")}
    dropped: list[int] = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(
            f, fieldnames=layout.fieldnames, delimiter="\t", quoting=csv.QUOTE_NONE
        )
        wanted = (*layout.text_columns, layout.label_column)
        columns = list(reader.fieldnames or [])
        absent = [c for c in wanted if c not in columns]
        if absent:
            raise DataError(
                f"{path} lacks column(s) {absent} expected for {spec.name}; "
                f"its columns are {columns}"
            )
        for idx, row in enumerate(reader):
            values = [row.get(c) for c in wanted]
            label = None if values[-1] is None else _glue_label(values[-1], spec, layout)
            if label is None or any(v is None for v in values):
                dropped.append(idx)
                continue
            for col, text in zip(spec.text_columns, values):
                rows[col].append(text)
            rows["label"].append(label)
            rows["idx"].append(idx)
    if dropped:
        warnings.warn(f"{path}: dropped {len(dropped)} malformed row(s), idx {dropped[:10]}")
    return rows


def _glue_label(raw: str, spec: TaskSpec, layout: _TsvLayout) -> int | float | None:
    """Parse a GLUE label to the hub's convention; None when it is malformed."""
    raw = raw.strip()
    if spec.is_regression:
        value = _as_float(raw)
        return value if value is not None and 0.0 <= value <= 5.0 else None
    if layout.string_labels:
        return spec.label_names.index(raw) if raw in spec.label_names else None
    return int(raw) if raw in {str(i) for i in range(spec.num_labels)} else None


def _load_hub(spec: TaskSpec) -> DatasetDict:
    validation = "validation_matched" if spec.name == "mnli" else "validation"
    try:
        raw = datasets.load_dataset(HUB_DATASET, spec.name)
    except Exception as err:  # network, auth and cache errors all mean the same to the user
        raise DataError(
            f"could not load {HUB_DATASET!r} config {spec.name!r} from the hub ({err}). "
            f"{_HOW_TO_PROVIDE}"
        ) from err
    return DatasetDict(
        train=normalize_hub_split(raw["train"], spec),
        validation=normalize_hub_split(raw[validation], spec),
    )


def normalize_hub_split(dataset: Dataset, spec: TaskSpec) -> Dataset:
    """Rename a ``nyu-mll/glue`` split's columns to text_a/text_b/label/idx with our dtypes."""
    if spec.name not in _HUB_TEXT_COLUMNS:
        raise DataError(f"{spec.name!r} is not a GLUE task; hub tasks are {', '.join(TASK_NAMES)}")
    hub_columns = (*_HUB_TEXT_COLUMNS[spec.name], "label", "idx")
    absent = [c for c in hub_columns if c not in dataset.column_names]
    if absent:
        raise DataError(
            f"hub split for {spec.name} lacks column(s) {absent}; its columns are "
            f"{dataset.column_names}"
        )
    dataset = dataset.select_columns(list(hub_columns))
    dataset = dataset.rename_columns(dict(zip(_HUB_TEXT_COLUMNS[spec.name], spec.text_columns)))
    return dataset.cast(_features(spec))


# ---------------------------------------------------------------- custom data


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
    numeric = [_as_float(label) for label in all_labels]
    is_numeric = all(v is not None for v in numeric)
    if task_type is None:
        is_regression = is_numeric and not all(float(v).is_integer() for v in numeric)
    else:
        is_regression = task_type == "regression"
    if is_regression and not is_numeric:
        bad = next(label for label, v in zip(all_labels, numeric) if v is None)
        raise DataError(f"regression needs numeric labels in {label_column!r}; found {bad!r}")

    key = float if is_numeric else str  # "1" and "1.0" are one class; numbers sort numerically
    classes = sorted({key(label) for label in tables["train"][label_column]})
    if not is_regression and len(classes) < 2:
        raise DataError(f"classification needs at least 2 classes in {train_file}, got {classes}")
    label_names = () if is_regression else tuple(_class_name(c) for c in classes)
    text_names = _ONE if len(text_columns) == 1 else _PAIR
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
        columns = {new: rows[old] for new, old in zip(text_names, text_columns)}
        splits[split] = _to_dataset(
            {**columns, "label": labels, "idx": list(range(len(labels)))}, spec
        )
    return DatasetDict(splits), spec


def _class_name(value: float | str) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_float(value: str) -> float | None:
    """The value as a finite float, or None when it is not one."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


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
    with open(path, encoding="utf-8-sig") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}, line {line}: not JSON lines ({err})") from err
            if not isinstance(record, dict):
                raise DataError(f"{path}, line {line}: expected a JSON object, got {record!r:.60}")
            records.append(record)
            found.update(dict.fromkeys(record))
    return records, list(found)


def _json_scalar(value: int | float) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value)


# ---------------------------------------------------------------- subsets and splits


def subsample(dataset: Dataset, n: int, seed: int) -> Dataset:
    """Draw the paper's n-example training subset; the seed decides which (0 = whole set).

    The subset is the first n entries of ``numpy.random.Generator(seed).permutation(len)``,
    returned in that random order, so a smaller n with the same seed is a prefix of a larger one.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise DataError(f"subset size n must be a non-negative integer (0 = whole set), got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    if n == 0:
        return dataset
    if n > len(dataset):
        raise DataError(f"cannot draw n={n} examples from a training set of {len(dataset)}")
    order = np.random.default_rng(seed).permutation(len(dataset))[:n]
    return dataset.select(order)


def heldout(dataset: Dataset, n: int, seed: int, size: int) -> Dataset:
    """`size` training examples outside the seed's n-example subset (the next ones in the same
    permutation): a validation set for choosing a recipe without touching the dev set."""
    if n == 0 or n + size > len(dataset):
        raise DataError(
            f"a held-out set of {size} needs n + size <= {len(dataset)} training examples (n={n}; "
            f"n = 0 leaves nothing outside the subset)"
        )
    order = np.random.default_rng(seed).permutation(len(dataset))[n : n + size]
    return dataset.select(order)


def blo_splits(
    num_examples: int, k: int, train_ratio: float = 0.8, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K random (BLO-train, BLO-validation) index partitions for the search phase; seed decides."""
    if k < 1:
        raise DataError(f"need at least one split, got k={k}")
    if not 0.0 < train_ratio < 1.0:
        raise DataError(f"train_ratio must lie strictly between 0 and 1, got {train_ratio}")
    n_train = int(round(train_ratio * num_examples))
    if not 0 < n_train < num_examples:
        raise DataError(
            f"cannot split {num_examples} example(s) with train_ratio={train_ratio} into two "
            f"non-empty parts (BLO-train would hold {n_train})"
        )
    rng = np.random.default_rng(seed)
    splits = []
    for _ in range(k):
        order = rng.permutation(num_examples)
        splits.append((np.sort(order[:n_train]), np.sort(order[n_train:])))
    return splits


# ---------------------------------------------------------------- tokenisation and loading


def tokenize(
    dataset: Dataset | DatasetDict, tokenizer, spec: TaskSpec, max_length: int = 128
) -> Dataset | DatasetDict:
    """Tokenise text_a (+ text_b) without padding; returns model inputs and ``labels``."""
    if isinstance(dataset, DatasetDict):
        return DatasetDict(
            {k: tokenize(v, tokenizer, spec, max_length) for k, v in dataset.items()}
        )
    absent = [c for c in spec.text_columns if c not in dataset.column_names]
    if absent:
        raise DataError(
            f"dataset lacks {absent} for {spec.name}; its columns are {dataset.column_names}"
        )

    def encode(batch: dict[str, list]) -> dict[str, list]:
        texts = [batch[c] for c in spec.text_columns]
        return tokenizer(*texts, truncation=True, max_length=max_length)

    drop = [c for c in (*spec.text_columns, "idx") if c in dataset.column_names]
    encoded = dataset.map(encode, batched=True, remove_columns=drop)
    if "label" in encoded.column_names:
        encoded = encoded.rename_column("label", "labels")
    return encoded


class _PlainDictCollator:
    """DataCollatorWithPadding whose batches are plain dicts with labels of the task's dtype."""

    def __init__(self, tokenizer, label_dtype: torch.dtype):
        self.pad = DataCollatorWithPadding(tokenizer, return_tensors="pt")
        self.label_dtype = label_dtype

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = dict(self.pad(features))
        if "labels" in batch:
            batch["labels"] = batch["labels"].to(self.label_dtype)
        return batch


def _label_dtype(dataset: Dataset) -> torch.dtype:
    feature = dataset.features.get("labels")
    if isinstance(feature, Value) and feature.dtype.startswith("float"):
        return torch.float32
    return torch.int64


def make_loader(
    dataset: Dataset, tokenizer, batch_size: int = 16, shuffle: bool = False, seed: int = 0
) -> DataLoader:
    """DataLoader over a tokenised dataset: dynamic padding, plain-dict batches, seeded shuffle."""
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        collate_fn=_PlainDictCollator(tokenizer, _label_dtype(dataset)),
        drop_last=False,
    )
