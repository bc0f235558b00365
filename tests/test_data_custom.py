"""A user's CSV, TSV and JSON-lines files as tasks: label inference, class order, errors."""

import json
from pathlib import Path

import pandas as pd
import pytest
from datasets import Value

from agwm_betty.data import DataError, load_custom


def _write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")


def test_custom_csv_round_trip_maps_string_labels_in_sorted_order(tmp_path):
    frame = pd.DataFrame(
        {"review": ['good, "really"', "bad", "fine\nmostly"], "stars": ["pos", "neg", "pos"]}
    )
    frame.to_csv(tmp_path / "reviews.csv", index=False)
    frame.iloc[:2].to_csv(tmp_path / "dev.csv", index=False)
    data, spec = load_custom(tmp_path / "reviews.csv", tmp_path / "dev.csv", ["review"], "stars")
    assert data["train"]["text_a"] == list(frame["review"])
    assert data["train"]["label"] == [1, 0, 1] and data["validation"]["label"] == [1, 0]
    assert (spec.name, spec.num_labels, spec.label_names) == ("reviews", 2, ("neg", "pos"))
    assert (spec.is_regression, spec.metric, spec.metrics) == (
        False,
        "accuracy",
        ("accuracy", "f1"),
    )
    assert data["train"].column_names == ["text_a", "label", "idx"]


def test_custom_tsv_round_trip_reads_pairs_unquoted_like_glue(tmp_path):
    rows = [["q", "a", "y"], ['" quoted start', "b", "2"], ["c", "d", "10"], ["e", "f", "-1"]]
    for name in ("train.tsv", "dev.tsv"):
        _write_tsv(tmp_path / name, rows[0], rows[1:])
    data, spec = load_custom(
        tmp_path / "train.tsv", tmp_path / "dev.tsv", ["q", "a"], "y", name="t"
    )
    assert data["validation"]["text_a"] == ['" quoted start', "c", "e"]
    assert data["validation"]["text_b"] == ["b", "d", "f"]
    assert data["validation"]["label"] == [1, 2, 0]  # integer classes sorted numerically
    assert (spec.name, spec.num_labels, spec.metrics) == ("t", 3, ("accuracy",))
    assert spec.text_columns == ("text_a", "text_b")


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_custom_jsonl_with_fractional_scores_is_regression(tmp_path):
    records = [{"s1": "a", "s2": "b", "score": 0.5}, {"s1": "c", "s2": "d", "score": 4}]
    path = _write_jsonl(tmp_path / "sts.jsonl", records)
    data, spec = load_custom(path, path, ["s1", "s2"], "score")
    assert spec.is_regression and spec.num_labels == 1
    assert (spec.metric, spec.metrics) == ("spearman", ("spearman", "pearson"))
    assert data["train"].features["label"] == Value("float32")
    assert data["train"]["label"] == [0.5, 4.0]


def test_custom_integral_float_labels_are_classes(tmp_path):
    path = _write_jsonl(tmp_path / "x.json", [{"t": "a", "y": 1.0}, {"t": "b", "y": 0.0}])
    data, spec = load_custom(path, path, ["t"], "y")
    assert not spec.is_regression and data["train"]["label"] == [1, 0]


def test_custom_task_type_overrides_inference(tmp_path):
    path = _write_jsonl(tmp_path / "x.jsonl", [{"t": "a", "y": 1}, {"t": "b", "y": 3}])
    _, spec = load_custom(path, path, ["t"], "y", task_type="regression")
    assert spec.is_regression


def test_custom_validation_label_unseen_in_train_raises(tmp_path):
    train = _write_jsonl(tmp_path / "train.jsonl", [{"t": "a", "y": "x"}, {"t": "b", "y": "y"}])
    dev = _write_jsonl(tmp_path / "dev.jsonl", [{"t": "a", "y": "z"}])
    with pytest.raises(DataError, match="'z'"):
        load_custom(train, dev, ["t"], "y")


def test_custom_unknown_column_lists_the_files_columns(tmp_path):
    pd.DataFrame({"sentence": ["a", "b"], "label": [0, 1]}).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"\['text'\].*\['sentence', 'label'\]"):
        load_custom(tmp_path / "d.csv", tmp_path / "d.csv", ["text"], "label")


@pytest.mark.parametrize(
    ("text_columns", "task_type", "suffix"),
    [
        (["a", "b", "c"], None, ".csv"),
        (["a"], "ranking", ".csv"),
        (["a"], "regression", ".csv"),
        (["a"], None, ".parquet"),
    ],
)
def test_custom_bad_requests_raise(tmp_path, text_columns, task_type, suffix):
    path = tmp_path / f"d{suffix}"
    pd.DataFrame({"a": ["x", "y"], "b": ["x", "y"], "c": ["x", "y"], "y": ["p", "q"]}).to_csv(
        path, index=False
    )
    with pytest.raises(DataError):
        load_custom(path, path, text_columns, "y", task_type=task_type)
