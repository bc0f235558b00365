"""A tiny synthetic classification task, already tokenised, for fast tests of training code."""
from __future__ import annotations

import torch
from datasets import Dataset

from agwm_betty.data import TaskSpec

SPEC = TaskSpec(name="synthetic", text_columns=("text_a",), num_labels=2, is_regression=False,
                metric="accuracy", metrics=("accuracy",))
REGRESSION_SPEC = TaskSpec(name="synthetic-reg", text_columns=("text_a",), num_labels=1, is_regression=True,
                           metric="spearman", metrics=("spearman", "pearson"))


def synthetic_task(n: int, seed: int = 0, regression: bool = False) -> Dataset:
    """Label 1 iff token 5 or 7 occurs (ids < 100 fit the tiny models); regression: their count."""
    g = torch.Generator().manual_seed(seed)
    rows = {"input_ids": [], "attention_mask": [], "labels": []}
    for _ in range(n):
        length = int(torch.randint(4, 12, (1,), generator=g))
        ids = torch.randint(3, 100, (length,), generator=g).tolist()
        if torch.rand(1, generator=g) < 0.5:
            ids[int(torch.randint(0, length, (1,), generator=g))] = 5
        hits = sum(i in (5, 7) for i in ids)
        rows["input_ids"].append(ids)
        rows["attention_mask"].append([1] * length)
        rows["labels"].append(float(hits) if regression else int(hits > 0))
    return Dataset.from_dict(rows)
