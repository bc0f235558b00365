"""The paper's seeded n-example subsets, and held-out examples outside them."""

import pytest

from agwm_betty.data import DataError, fingerprint, heldout, load_glue, subsample


@pytest.fixture(scope="module")
def rte_train(glue_dir):
    return load_glue("rte", glue_dir)["train"]


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


def test_heldout_examples_lie_outside_the_seed_subset(rte_train):
    subset, held = subsample(rte_train, 300, seed=4), heldout(rte_train, 300, seed=4, size=200)
    assert len(held) == 200
    assert not set(subset["idx"]) & set(held["idx"])
    assert held["idx"] == heldout(rte_train, 300, seed=4, size=200)["idx"]
    with pytest.raises(DataError, match="held-out"):
        heldout(rte_train, 0, seed=4, size=10)


def test_a_subsets_fingerprint_names_its_examples_and_their_order(rte_train):
    columns = ("text_a", "text_b", "label")
    same = fingerprint(subsample(rte_train, 64, seed=3), columns)
    assert same == fingerprint(subsample(rte_train, 64, seed=3), columns)
    assert same != fingerprint(subsample(rte_train, 64, seed=4), columns)
    reordered = subsample(rte_train, 64, seed=3).select(list(range(63, -1, -1)))
    assert same != fingerprint(reordered, columns)
    assert len(same) == 40 and int(same, 16) >= 0
