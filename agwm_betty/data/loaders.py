"""Tokenisation without padding, and DataLoaders that pad each batch to its longest example."""

from __future__ import annotations

from typing import Any

import torch
from datasets import Dataset, DatasetDict, Value
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding

from agwm_betty.data.tasks import DataError, TaskSpec


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
