"""The search phase's K random BLO-train / BLO-validation partitions of the training subset."""

from __future__ import annotations

import numpy as np

from agwm_betty.data.tasks import DataError


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
