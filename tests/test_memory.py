"""Spec of what a finished run leaves behind: nothing. Reference counting alone frees its model,
optimisers and loaders (no cycle waits for the garbage collector), and a worker gives freed memory
back to the OS after each run."""
import gc
import weakref

import pytest

from agwm_betty.config import Config
from agwm_betty.methods import base
from agwm_betty.runs import memory
from agwm_betty.runs.experiment import CustomTask, Experiment
from agwm_betty.runs.sweep import run_sweep

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("methods", [("agwm",), ("vanilla-matched",), ("vanilla",), ("agwm", "mean-alpha")])
def test_with_the_garbage_collector_off_a_finished_runs_model_is_freed(methods, tiny_regression, tmp_path,
                                                                       monkeypatch):
    models = []
    new_model = base.RunContext.new_model

    def kept_weakly(self):
        model = new_model(self)
        models.append(weakref.ref(model))
        return model

    monkeypatch.setattr(base.RunContext, "new_model", kept_weakly)
    exp = Experiment(plm=tiny_regression["plm"], output=tmp_path, methods=methods, seeds=(0,), n=12,
                     custom=CustomTask(tiny_regression["train"], tiny_regression["dev"], ["text"], "score"),
                     save_alphas="mean-alpha" in methods,
                     cfg=Config(K=2, max_steps=2, search_epochs=1, batch_size=4, device="cpu", progress=False))
    gc.collect()
    gc.disable()
    try:
        run_sweep(exp, log=lambda *_: None)  # search (K = 2 Betty engines) and finetune, then its record
        alive = [ref() is not None for ref in models]
    finally:
        gc.enable()
    assert len(alive) == len(methods) and not any(alive)


def test_giving_freed_memory_back_shrinks_the_heap():
    import ctypes

    if memory.trim() is None:
        pytest.fail("malloc_trim is missing: this project's machines and CI run glibc")
    blocks = [ctypes.create_string_buffer(64 * 1024) for _ in range(2000)]  # 128 MiB of small heap blocks
    del blocks[:-1]  # freed, all but the last: glibc keeps the heap below it
    before = memory.rss_mib()
    assert memory.trim() is True
    assert memory.rss_mib() < before - 32
