"""GLUE from its original TSV files or the ``nyu-mll/glue`` hub dataset, as the same examples."""

from __future__ import annotations

import csv
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import datasets
from datasets import Dataset, DatasetDict

from agwm_betty.data.schema import as_float, features, to_dataset
from agwm_betty.data.tasks import TASK_NAMES, DataError, TaskSpec, get_task

HUB_DATASET = "nyu-mll/glue"


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
            split: to_dataset(_read_glue_tsv(path, spec, layout), spec)
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
            for col, text in zip(spec.text_columns, values[:-1], strict=True):  # the last value is the label
                rows[col].append(text)
            rows["label"].append(label)
            rows["idx"].append(idx)
    if dropped:
        warnings.warn(f"{path}: dropped {len(dropped)} malformed row(s), idx {dropped[:10]}", stacklevel=2)
    return rows


def _glue_label(raw: str, spec: TaskSpec, layout: _TsvLayout) -> int | float | None:
    """Parse a GLUE label to the hub's convention; None when it is malformed."""
    raw = raw.strip()
    if spec.is_regression:
        value = as_float(raw)
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
    dataset = dataset.rename_columns(dict(zip(_HUB_TEXT_COLUMNS[spec.name], spec.text_columns, strict=True)))
    return dataset.cast(features(spec))
