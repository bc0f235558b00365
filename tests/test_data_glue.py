"""GLUE data: the original TSV layouts, the hub dataset normalised to the same examples, errors."""

import csv
import shutil
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from agwm_betty.data import GLUE_TASKS, TASK_NAMES, DataError, load_glue, normalize_hub_split

LOCAL_COUNTS = {
    "cola": (8551, 1043),
    "rte": (2490, 277),
    "mrpc": (3667, 408),
    "stsb": (5749, 1500),
    "sst2": (67349, 872),
}
FOLDERS = {"cola": "CoLA", "rte": "RTE", "mrpc": "MRPC", "stsb": "STS-B", "sst2": "SST-2"}


@pytest.fixture(scope="module")
def glue(glue_dir):
    """load_glue on the local copy, each task read once per module."""
    cache = {}

    def get(task: str) -> DatasetDict:
        if task not in cache:
            cache[task] = load_glue(task, glue_dir)
        return cache[task]

    return get


@pytest.fixture
def no_download(monkeypatch):
    """Make any hub access fail the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"tried to download {args}")

    monkeypatch.setattr(datasets, "load_dataset", refuse)


# ---------------------------------------------------------------- GLUE from TSV


@pytest.mark.parametrize("task", LOCAL_COUNTS)
def test_local_task_has_the_papers_example_counts(glue, task):
    data = glue(task)
    assert (len(data["train"]), len(data["validation"])) == LOCAL_COUNTS[task]


@pytest.mark.parametrize("task", LOCAL_COUNTS)
def test_local_task_has_normalised_columns_and_labels_in_range(glue, task):
    spec = GLUE_TASKS[task]
    for split in ("train", "validation"):
        data = glue(task)[split]
        assert data.column_names == [*spec.text_columns, "label", "idx"]
        assert data.features["label"].dtype == ("float32" if spec.is_regression else "int64")
        labels = np.asarray(data["label"])
        if spec.is_regression:
            assert labels.min() >= 0.0 and labels.max() <= 5.0
        else:
            assert set(np.unique(labels)) == set(range(spec.num_labels))
        assert data["idx"] == list(range(len(data)))  # no row of the local files is dropped
        for column in spec.text_columns:
            assert all(text.strip() for text in data[column])


def test_labels_follow_the_hub_conventions(glue):
    # first rows of each train file, read by eye
    assert glue("rte")["train"][0]["label"] == 1  # not_entailment
    assert glue("mrpc")["train"][0]["label"] == 1  # Quality 1 = paraphrase
    assert glue("cola")["train"][0]["label"] == 1  # acceptable
    assert glue("sst2")["train"][0]["label"] == 0  # negative
    assert glue("stsb")["train"][1]["label"] == pytest.approx(3.8)


def test_quotes_inside_texts_are_kept_verbatim(glue):
    text_a = glue("mrpc")["train"][0]["text_a"]
    assert text_a.startswith('Amrozi accused his brother , whom he called " the witness " ,')


def test_qnli_dev_layout_is_parsed(glue_dir, tmp_path, no_download):
    (tmp_path / "QNLI").mkdir()
    for name in ("train.tsv", "dev.tsv"):
        shutil.copy(glue_dir / "QNLI" / "dev.tsv", tmp_path / "QNLI" / name)
    data = load_glue("qnli", tmp_path)["validation"]
    raw = pd.read_csv(glue_dir / "QNLI" / "dev.tsv", sep="\t", quoting=csv.QUOTE_NONE, dtype=str)
    assert len(data) == len(raw) == 5463
    assert data["label"] == [0 if v == "entailment" else 1 for v in raw["label"]]
    assert data["text_a"] == list(raw["question"])


def _write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")


def test_qqp_layout_is_parsed_and_corrupted_rows_dropped(tmp_path):
    header = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
    rows = [["0", "1", "2", "How?", "Why?", "0"], ["1", "3", "4", "Is it?", "It is?", "1"]]
    _write_tsv(tmp_path / "QQP" / "train.tsv", header, [*rows, ["2", "5", "6", "cut short"]])
    _write_tsv(tmp_path / "QQP" / "dev.tsv", header, rows)
    with pytest.warns(UserWarning, match="dropped 1 malformed"):
        data = load_glue("qqp", tmp_path)
    assert data["train"]["label"] == [0, 1]
    assert data["train"]["text_b"] == ["Why?", "It is?"]
    assert data["validation"]["idx"] == [0, 1]


def test_mnli_reads_dev_matched_with_string_labels(tmp_path):
    header = ["index", "promptID", "pairID", "genre", "sentence1", "sentence2", "gold_label"]
    rows = [
        ["0", "1", "1e", "fiction", "A cat sat.", "An animal sat.", "entailment"],
        ["1", "2", "2n", "fiction", "A cat sat.", "A black cat sat.", "neutral"],
        ["2", "3", "3c", "fiction", "A cat sat.", "No cat sat.", "contradiction"],
    ]
    _write_tsv(tmp_path / "MNLI" / "train.tsv", header, rows)
    _write_tsv(tmp_path / "MNLI" / "dev_matched.tsv", header, rows[::-1])
    data = load_glue("MNLI", tmp_path)
    assert data["train"]["label"] == [0, 1, 2]
    assert data["validation"]["label"] == [2, 1, 0]


# ---------------------------------------------------------------- errors and data sources


def test_unknown_task_lists_valid_names(glue_dir):
    with pytest.raises(DataError) as err:
        load_glue("squad", glue_dir)
    assert all(name in str(err.value) for name in TASK_NAMES)


def test_missing_data_dir_names_the_path_and_how_to_provide_data(tmp_path, no_download):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as err:
        load_glue("rte", missing)
    message = str(err.value)
    assert str(missing) in message and "--data-dir" in message and "GLUE_DIR" in message


def test_missing_task_folder_names_the_paths_looked_at(tmp_path, no_download):
    with pytest.raises(DataError) as err:
        load_glue("mnli", tmp_path)
    message = str(err.value)
    assert str(tmp_path / "MNLI" / "train.tsv") in message
    assert str(tmp_path / "MNLI" / "dev_matched.tsv") in message
    assert "nyu-mll/glue" in message


def test_wrong_file_layout_lists_the_files_columns(tmp_path):
    _write_tsv(
        tmp_path / "RTE" / "train.tsv", ["premise", "hypothesis", "label"], [["a", "b", "0"]]
    )
    _write_tsv(tmp_path / "RTE" / "dev.tsv", ["premise", "hypothesis", "label"], [["a", "b", "0"]])
    with pytest.raises(DataError, match=r"premise.*hypothesis"):
        load_glue("rte", tmp_path)


def test_glue_dir_environment_variable_is_used(glue_dir, monkeypatch, no_download):
    monkeypatch.setenv("GLUE_DIR", str(glue_dir))
    assert len(load_glue("rte")["validation"]) == 277


def _fake_hub(task: str, rows: int = 3) -> DatasetDict:
    """A nyu-mll/glue-shaped DatasetDict with a few synthetic rows."""
    columns = {"mnli": ("premise", "hypothesis"), "cola": ("sentence",)}[task]
    names = list(GLUE_TASKS[task].label_names)
    features = Features(
        {
            **{c: Value("string") for c in columns},
            "label": ClassLabel(names=names),
            "idx": Value("int32"),
        }
    )
    splits = (
        ("train", "validation_matched", "validation_mismatched")
        if task == "mnli"
        else ("train", "validation")
    )
    return DatasetDict(
        {
            split: Dataset.from_dict(
                {
                    **{c: [f"{split} {c} {i}" for i in range(rows)] for c in columns},
                    "label": [i % len(names) for i in range(rows)],
                    "idx": list(range(rows)),
                },
                features=features,
            )
            for split in splits
        }
    )


@pytest.mark.parametrize("task", ("mnli", "cola"))
def test_without_data_dir_the_hub_dataset_is_loaded_and_normalised(task, monkeypatch):
    calls = []

    def fake_load_dataset(path, name=None, **kwargs):
        calls.append((path, name))
        return _fake_hub(task)

    monkeypatch.delenv("GLUE_DIR", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_glue(task)
    assert calls == [("nyu-mll/glue", task)]
    assert set(data) == {"train", "validation"}
    spec = GLUE_TASKS[task]
    assert data["validation"].column_names == [*spec.text_columns, "label", "idx"]
    assert data["validation"]["label"] == [i % spec.num_labels for i in range(3)]
    dev_split = "validation_matched" if task == "mnli" else "validation"
    assert data["validation"]["text_a"][0].startswith(f"{dev_split} ")
    assert data["train"]["text_a"][0].startswith("train ")
    assert data["validation"].features["label"] == Value("int64")


def test_hub_failure_explains_how_to_provide_data(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("hub unreachable")

    monkeypatch.delenv("GLUE_DIR", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="hub unreachable.*--data-dir"):
        load_glue("rte")


_HUB_FORMAT = {  # task: (hub text columns, TSV text columns, TSV label column)
    "cola": (("sentence",), (3,), 1),
    "sst2": (("sentence",), ("sentence",), "label"),
    "mrpc": (("sentence1", "sentence2"), ("#1 String", "#2 String"), "Quality"),
    "stsb": (("sentence1", "sentence2"), ("sentence1", "sentence2"), "score"),
    "rte": (("sentence1", "sentence2"), ("sentence1", "sentence2"), "label"),
}


def _hub_split_from_tsv(path: Path, task: str) -> Dataset:
    """Rebuild, from an original TSV, the split as nyu-mll/glue publishes it."""
    hub_columns, tsv_columns, label_column = _HUB_FORMAT[task]
    frame = pd.read_csv(
        path,
        sep="\t",
        quoting=csv.QUOTE_NONE,
        dtype=str,
        keep_default_na=False,
        encoding="utf-8-sig",
        header=None if task == "cola" else 0,
    )
    spec = GLUE_TASKS[task]
    raw_labels = frame[label_column]
    if spec.is_regression:
        labels, label_feature = [float(v) for v in raw_labels], Value("float32")
    elif task == "rte":
        labels = [spec.label_names.index(v) for v in raw_labels]
        label_feature = ClassLabel(names=list(spec.label_names))
    else:
        labels, label_feature = [int(v) for v in raw_labels], ClassLabel(
            names=list(spec.label_names)
        )
    columns = {hub: list(frame[tsv]) for hub, tsv in zip(hub_columns, tsv_columns, strict=True)}
    features = Features(
        {**{c: Value("string") for c in hub_columns}, "label": label_feature, "idx": Value("int32")}
    )
    return Dataset.from_dict(
        {**columns, "label": labels, "idx": list(range(len(frame)))}, features=features
    )


@pytest.mark.parametrize("task", LOCAL_COUNTS)
def test_hub_split_normalises_to_the_same_examples_as_the_tsv(glue, glue_dir, task):
    local = glue(task)["validation" if task == "sst2" else "train"]
    path = glue_dir / FOLDERS[task] / ("dev.tsv" if task == "sst2" else "train.tsv")
    normalised = normalize_hub_split(_hub_split_from_tsv(path, task), GLUE_TASKS[task])
    assert normalised.features == local.features
    assert normalised.to_dict() == local.to_dict()


def test_hub_split_with_unexpected_columns_lists_them():
    odd = Dataset.from_dict({"text": ["a"], "label": [0], "idx": [0]})
    with pytest.raises(DataError, match="text"):
        normalize_hub_split(odd, GLUE_TASKS["rte"])
