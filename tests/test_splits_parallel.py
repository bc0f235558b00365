"""Spec of split parallelism (strategy `splits`) and of intermittent outer steps (`unroll_steps`).

Under `splits` each of P processes runs whole splits of the search phase (split k on rank
k mod P) and the ranks average once, so P processes must give what one process gives running
the K splits in sequence, up to float summation order. Dropout stays on here: each split draws
its masks from its own seed, which is what makes the result independent of the rank.
"""
import os

import pytest
import torch
import torch.multiprocessing as mp
from transformers import AutoModelForSequenceClassification, BertConfig

from agwm_betty.config import Config
from agwm_betty.core.phases import _split_engine, finetune_phase, search_phase
from agwm_betty.core.surgery import alpha_parameters, alpha_state_dict, apply_mixup, named_task_parameters
from agwm_betty.runs import torchrun
from synthetic import synthetic_task
from test_distributed import free_port, join_as_rank
from tiny_models import SMALL

# K = 3 on two processes: rank 0 runs splits 0 and 2, rank 1 split 1 (round robin, uneven)
CFG = dict(K=3, search_epochs=1, epochs=1, batch_size=6, progress=False, device="cpu", alpha_lr=1e-2,
           search_lr=1e-3, lr=1e-3, warmup_ratio=0.0)
N = 21


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # as each of two worker processes


def dropout_mixup_model():
    torch.manual_seed(0)
    config = BertConfig(**SMALL, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, num_labels=2)
    return apply_mixup(AutoModelForSequenceClassification.from_config(config).train())


def search_and_finetune(tokenizer, strategy: str) -> dict:
    model = dropout_mixup_model()
    cfg = Config(**CFG, strategy=strategy)
    data = synthetic_task(N)
    search = search_phase(model, data, tokenizer, cfg, seed=0)
    searched = {f"search:{k}": v for k, v in alpha_state_dict(model).items()}
    searched.update({f"search:{k}": p.detach().clone() for k, p in named_task_parameters(model)})
    finetune_phase(model, data, tokenizer, cfg, seed=0)
    return {"state": {**searched, **{k: p.detach().clone() for k, p in named_task_parameters(model)}},
            "inner_losses": search.inner_losses, "outer_losses": search.outer_losses,
            "split_alphas": search.split_alphas}


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    tokenizer = join_as_rank(rank, world, port)
    result = search_and_finetune(tokenizer, "splits")
    torch.save({**result, "world": torchrun.world_size()}, os.path.join(out_dir, f"rank{rank}.pt"))


@pytest.fixture(scope="module")
def sequential(tokenizer) -> dict:
    """The K splits one after the other in this one process, strategy default."""
    result = search_and_finetune(tokenizer, "default")
    start = dropout_mixup_model().state_dict()
    moved = {k: (v - start[k.removeprefix("search:")]).abs().max().item() for k, v in result["state"].items()}
    assert max(v for k, v in moved.items() if k.startswith("search:") and "alpha" in k) > 1e-3
    assert max(v for k, v in moved.items() if not k.startswith("search:")) > 1e-3
    return result


def test_two_cpu_processes_running_whole_splits_match_one_process_running_them_in_sequence(tmp_path, sequential):
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert [r["world"] for r in ranks] == [2, 2]
    for key, value in ranks[0]["state"].items():  # one average, so the ranks end identical
        assert torch.equal(value, ranks[1]["state"][key]), key
    parallel = ranks[0]
    assert parallel["state"].keys() == sequential["state"].keys()
    for key, value in sequential["state"].items():  # averaged alphas and W, then the finetune phase
        torch.testing.assert_close(parallel["state"][key], value, rtol=0, atol=1e-6, msg=key)
    # every split's traces reach every rank, in split order, as in the sequential run
    assert parallel["inner_losses"] == ranks[1]["inner_losses"]
    for name in ("inner_losses", "outer_losses"):
        assert [len(t) for t in parallel[name]] == [len(t) for t in sequential[name]] == [3, 3, 3]
        flat = [loss for trace in sequential[name] for loss in trace]
        assert [loss for trace in parallel[name] for loss in trace] == pytest.approx(flat, abs=1e-5), name
    assert len(parallel["split_alphas"]) == 3
    for ours, theirs in zip(parallel["split_alphas"], sequential["split_alphas"], strict=True):
        for key in theirs:
            torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=1e-6, msg=key)


def test_a_split_gives_the_same_result_whichever_splits_ran_before_it(tokenizer, monkeypatch):
    """The property the parallel run rests on: split k depends on its seed, not on its position."""
    data = synthetic_task(N)
    full = search_phase(dropout_mixup_model(), data, tokenizer, Config(**CFG), seed=0)
    assert len(set(map(tuple, full.inner_losses))) == 3  # the splits do differ
    assigned = torchrun.assigned_splits
    monkeypatch.setattr(torchrun, "assigned_splits", lambda *a: assigned(*a)[2:])  # split 2 alone
    model = dropout_mixup_model()
    torch.manual_seed(123)  # nor may the global stream before the search matter
    alone = search_phase(model, data, tokenizer, Config(**CFG), seed=0)
    assert alone.inner_losses == full.inner_losses[2:] and alone.outer_losses == full.outer_losses[2:]
    for key, value in full.split_alphas[2].items():
        assert torch.equal(alpha_state_dict(model)[key], value), key


def test_more_processes_than_splits_is_refused_in_one_line(tokenizer, monkeypatch):
    monkeypatch.setattr(torchrun, "setup", lambda strategy, device: False)
    monkeypatch.setattr(torchrun, "world_size", lambda: 4)
    with pytest.raises(ValueError, match=r"^strategy 'splits' on 4 processes needs K >= 4 splits, got K=3"):
        search_phase(dropout_mixup_model(), synthetic_task(N), tokenizer, Config(**CFG, strategy="splits"))


def test_strategy_splits_in_one_unlaunched_process_is_the_plain_sequential_run(tokenizer, sequential):
    single = search_and_finetune(tokenizer, "splits")
    for key, value in sequential["state"].items():
        assert torch.equal(single["state"][key], value), key


def test_a_launch_with_strategy_splits_joins_the_group_but_trains_alone(monkeypatch):
    joined = []
    monkeypatch.setattr(torchrun, "init", joined.append)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert torchrun.setup("splits", "cpu") is False  # the training loop is not data parallel
    assert joined == ["cpu"]


@pytest.mark.parametrize("unroll", [1, 3, 4])
def test_alpha_moves_once_every_unroll_steps_inner_steps(tokenizer, unroll):
    data = synthetic_task(64)
    model = dropout_mixup_model()
    cfg = Config(**{**CFG, "K": 1, "max_steps": 12, "search_epochs": 3.0}, unroll_steps=unroll)
    engine, steps = _split_engine(model, data.select(range(48)), data.select(range(48, 64)), tokenizer, cfg,
                                  seed=0, learn_alpha=True, desc="t")
    assert steps == 12
    engine.train()
    moved_at = []
    for step in range(1, steps + 1):
        before = [p.detach().clone() for p in alpha_parameters(model)]
        engine.inner.step(global_step=step)
        if any(not torch.equal(b, p) for b, p in zip(before, alpha_parameters(model), strict=True)):
            moved_at.append(step)
    assert moved_at == list(range(unroll, steps + 1, unroll))
    assert len(engine.outer.losses) == steps // unroll
