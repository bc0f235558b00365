"""BLO splits: K seeded BLO-train / BLO-validation partitions for the search phase."""

import numpy as np
import pytest

from agwm_betty.data import DataError, blo_splits


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
    for (t1, v1), (t2, v2) in zip(first, again, strict=True):
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
