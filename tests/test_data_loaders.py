"""Tokenisation without padding; loaders that pad per batch, keep label dtypes, shuffle by seed."""

import pytest
import torch
from datasets import DatasetDict, Value

from agwm_betty.data import GLUE_TASKS, load_glue, make_loader, tokenize


@pytest.fixture(scope="module")
def tiny(glue_dir):
    """The first 10 training examples of a pair, a regression and a single-sentence task."""
    return {t: load_glue(t, glue_dir)["train"].select(range(10)) for t in ("rte", "stsb", "sst2")}


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
    for start, batch in zip(range(0, 10, 4), batches, strict=True):
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
