"""The paper's seeded n-example training subsets, and held-out examples outside them."""

from __future__ import annotations

import hashlib
import json

import numpy as np
from datasets import Dataset

from agwm_betty.data.tasks import DataError


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


def fingerprint(dataset: Dataset, columns: tuple[str, ...]) -> str:
    """SHA-1 of `columns` of every example, in order: equal on two machines (or for two methods)
    exactly when they trained on the same examples in the same order."""
    digest = hashlib.sha1()
    for row in zip(*(dataset[c] for c in columns), strict=True):
        digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()
