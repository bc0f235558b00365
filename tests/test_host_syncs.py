"""Spec of the host syncs in one search step: how many the search reads back from the device, and where.

On a GPU every read of a device value (`.item()`, `.tolist()`, `float(t)`, `bool(t)`, `.cpu()`)
waits for the queued kernels; here on CPU they are counted by wrapping those Tensor methods and
keeping the calls made from this package's and Betty's code (the model's own checks, such as
transformers' look at the attention mask, are the same in a vanilla step and not counted).
"""
from __future__ import annotations

import collections
import contextlib
import sys
from pathlib import Path

import pytest
import torch

from agwm_betty.config import Config
from agwm_betty.core.phases import _split_engine
from agwm_betty.core.surgery import apply_mixup
from synthetic import synthetic_task
from tiny_models import tiny_model

READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")
OURS = tuple(str(Path(m.__file__).parent) for m in (__import__("agwm_betty"), __import__("betty")))
# The reads left in a search step (T = 1, the default darts-paper hypergradient, no log step):
# darts' eps = radius / ||v|| is a Python float for `add_(alpha=eps)` (Betty's darts, one read per
# outer step). Loss finiteness and the clamp share are kept on the device and read back every
# FINITE_CHECK_EVERY steps and at the end of a split.
MAX_SYNCS_PER_SEARCH_STEP = 1


@contextlib.contextmanager
def count_host_reads():
    """Count the reads of tensor values per calling site (file:line) inside this package and Betty."""
    counts: collections.Counter = collections.Counter()
    originals = {name: getattr(torch.Tensor, name) for name in READS}

    def wrap(name, original):
        def read(self, *args, **kwargs):
            caller = sys._getframe(1).f_code
            if caller.co_filename.startswith(OURS):
                counts[f"{Path(caller.co_filename).name}:{sys._getframe(1).f_lineno} {name}"] += 1
            return original(self, *args, **kwargs)
        return read

    for name, original in originals.items():
        setattr(torch.Tensor, name, wrap(name, original))
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def search_engine(tokenizer, **overrides):
    torch.manual_seed(0)
    model = apply_mixup(tiny_model("bert").train())
    data = synthetic_task(48)
    cfg = Config(batch_size=8, K=1, progress=False, diagnostic_points=0, search_epochs=50, **overrides)
    engine, _ = _split_engine(model, data.select(range(32)), data.select(range(32, 48)), tokenizer, cfg,
                              seed=0, learn_alpha=True, desc="test")
    return engine


def test_one_search_step_reads_the_device_at_most_the_stated_number_of_times(tokenizer):
    engine = search_engine(tokenizer)
    engine.inner.step(global_step=1)  # warm: the first step builds optimiser state
    with count_host_reads() as counts:
        engine.inner.step(global_step=2)  # the inner step and the outer step it triggers
    print(dict(counts))
    assert sum(counts.values()) <= MAX_SYNCS_PER_SEARCH_STEP, dict(counts)


def test_a_loss_turning_nan_is_reported_at_its_own_step_by_the_deferred_check(tokenizer):
    from agwm_betty.core.train_loop import DivergenceError

    engine = search_engine(tokenizer)
    for step in (1, 2):
        engine.inner.step(global_step=step)
    with torch.no_grad():
        engine.inner.module.bert.embeddings.word_embeddings.weight.fill_(float("nan"))
    engine.inner.step(global_step=3)  # no read yet: the step goes on with a NaN loss
    assert engine.inner.losses[-1].isnan()
    with pytest.raises(DivergenceError, match=r"non-finite loss \(nan\) at step 3 of the search phase \(inner"):
        engine.inner.finish()
