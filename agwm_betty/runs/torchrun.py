"""Data parallelism for both phases, launched with `torchrun`: gloo on CPU, nccl on GPU.

Every rank loads the same global batch (same loader, same seed) and keeps its slice of it, so
the hyperparameters (batch 16) mean what they mean in one process, and a run on N processes
follows the single-process run on the same global batches. Gradients are averaged with weights
n_rank / n_global (exact even when the last batch does not split evenly).

Betty 0.2.1's own distributed path does not fit this package (docs/betty.md#pitfall-7): it assumes CUDA
(`configure_systems` divides by `torch.cuda.device_count()`), refuses a world size of 1, destroys
the process group at the end of every `Engine.run` (the search phase builds one engine per split),
wraps the module in DDP once per problem (our two problems share one module, and the outer and
darts gradients come from `autograd.grad`, which DDP never sees), and gives each rank a whole
batch of its own (global batch = N x 16) reseeded to 0 every epoch. Run as it ships, with our
problems on 2 CPU processes, it fails with DDP's "Expected to have finished reduction in the
prior iteration" and, for an uneven last batch, an UnboundLocalError in its batch sampler.
`DistributedEngine` and the hooks in `problems._SharedModuleProblem` replace exactly those
parts and nothing else. Strategies: `distributed` (above), `zero` (the same, plus Betty's
ZeroRedundancyOptimizer sharding the optimiser state in the search phase; the finetune loop
treats it as `distributed`), `fsdp` refused (it cannot wrap one module shared by two problems).

    torchrun --nproc_per_node 2 experiments/glue.py ... --strategy distributed [--device cpu]

Split parallelism (strategy `splits`) is the other axis: the K splits of the search phase are
independent until their average, so each rank runs whole splits (split k on rank k mod P) with a
plain one-process Betty engine, and the ranks average the results once (`average_over_ranks`,
one all-reduce) and exchange the per-split traces (`gather_splits`). Each split draws its batches
and its dropout masks from its own seed (`split_rng`), so P ranks reproduce the one-process run
up to float summation order. Everything outside the search phase (the finetune phase,
evaluation, methods without a search phase) runs on every rank alike, the same work on the same
seeds; rank 0 writes. `splits` with data parallelism at once cannot be asked for (one
`strategy` field); P > K is refused, since a rank would be left without a split.

    torchrun --nproc_per_node 2 experiments/glue.py ... --K 5 --strategy splits

Results should be written by rank 0 only (`is_main_process`).
"""
from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from agwm_betty.core.betty_compat import BETTY_VERSION  # noqa: F401  (checks Betty before it is imported)

# isort: split
import torch
import torch.distributed as dist
from betty.engine import Engine

DISTRIBUTED_STRATEGIES = ("distributed", "zero", "fsdp")
SPLITS = "splits"  # split parallelism: whole search-phase splits per rank (see the module docstring)
SHARD_WEIGHT = "shard_weight"  # batch key: this rank's share n_rank / n_global of the global batch
_BUCKET_BYTES = 64 * 2**20


def launched() -> bool:
    """True inside a multi-process launch (`torchrun --nproc_per_node N`, N > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def is_main_process() -> bool:
    """Rank 0 (or no launch): the process that writes results."""
    return rank() == 0


def backend_for(device: torch.device | str) -> str:
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def rank_device(device: torch.device | str) -> torch.device:
    """This rank's device: cuda:LOCAL_RANK on GPU, the CPU otherwise."""
    device = torch.device(device)
    if device.type == "cuda" and is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank() % torch.cuda.device_count())))
    return device


def init(device: torch.device | str) -> None:
    """Join the process group once per process (env:// from torchrun); later calls, and a process
    not started by a launcher (no WORLD_SIZE: a world of one), do nothing. The group lives until
    the process exits, so the search phase can build one engine per split."""
    if is_initialized() or "WORLD_SIZE" not in os.environ:
        return
    backend = backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    atexit.register(_destroy)


def _destroy() -> None:
    if is_initialized():
        dist.destroy_process_group()


def setup(strategy: str, device: torch.device | str) -> bool:
    """Join the process group if `strategy` asks for data parallelism; return whether this
    process has peers. Refuses N duplicate runs (a torchrun launch without a strategy)."""
    if strategy in DISTRIBUTED_STRATEGIES:
        init(device)
        return world_size() > 1
    if strategy == SPLITS:  # the ranks meet only in the search phase; the training loop runs alone
        init(device)
        return False
    if launched():
        raise ValueError(
            f"launched on {os.environ['WORLD_SIZE']} processes but strategy={strategy!r}: every rank "
            f"would run the same job; pass --strategy distributed, zero or splits"
        )
    return False


class ShardedLoader:
    """Iterate `loader` (the same global batches on every rank) and yield this rank's slice of
    each batch, rows rank::world_size, with its weight n_rank / n_global under `SHARD_WEIGHT`."""

    def __init__(self, loader, world: int | None = None, rank_: int | None = None):
        self.loader = loader
        self.world = world_size() if world is None else world
        self.rank = rank() if rank_ is None else rank_

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        """Betty calls this every epoch; the wrapped loader's own generator already advances."""

    def __iter__(self) -> Iterator[dict]:
        for batch in self.loader:
            yield shard_batch(batch, self.world, self.rank)


def shard_batch(batch: dict, world: int, rank_: int) -> dict:
    """Rows rank::world of every tensor in `batch`, plus its weight (0 for an empty slice, which
    then carries one row so the forward pass still runs and contributes nothing)."""
    size = len(next(v for v in batch.values() if torch.is_tensor(v)))
    rows = torch.arange(rank_, size, world)
    weight = len(rows) / size
    if len(rows) == 0:
        rows = torch.zeros(1, dtype=torch.long)
    out = {k: v[rows] if torch.is_tensor(v) else v for k, v in batch.items()}
    out[SHARD_WEIGHT] = weight
    return out


def pop_weight(batch: dict) -> float:
    """Remove and return the shard weight (1.0 for an unsharded batch)."""
    return batch.pop(SHARD_WEIGHT, 1.0)


@torch.no_grad()
def all_reduce_(tensors: Iterable[torch.Tensor | None], weight: float) -> None:
    """In place: t <- sum over ranks of weight_rank * t (the global-batch mean when the weights
    are the shard weights). Flattened into buckets: a few collectives per step, not one per tensor."""
    tensors = [t for t in tensors if t is not None]
    if world_size() == 1:
        return
    for bucket in _buckets(tensors):
        flat = torch.cat([t.reshape(-1) for t in bucket]).mul_(weight)
        dist.all_reduce(flat)
        offset = 0
        for t in bucket:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


def _buckets(tensors: list[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
    """Consecutive groups of tensors of one dtype and at most `_BUCKET_BYTES` (or one tensor)."""
    bucket, size = [], 0
    for t in tensors:
        nbytes = t.numel() * t.element_size()
        if bucket and (size + nbytes > _BUCKET_BYTES or t.dtype != bucket[0].dtype):
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += nbytes
    if bucket:
        yield bucket


def all_reduce_grads_(params: Iterable[torch.nn.Parameter], weight: float) -> None:
    """Average the gradients of `params` over ranks, weighted by the shard weights."""
    all_reduce_([p.grad for p in params], weight)


class DistributedEngine(Engine):
    """Betty's Engine whose `distributed` / `zero` systems set-up works on CPU (gloo) and GPU
    (nccl), with any world size, and keeps the process group alive across engines."""

    def configure_systems(self):
        if self._strategy == SPLITS:  # this rank's split runs in a plain one-process engine
            self._strategy = "gpu" if self._backend == "nccl" else "cpu"
            systems = super().configure_systems()
            self.device = rank_device(self.device)
            return systems
        if self._strategy not in DISTRIBUTED_STRATEGIES:
            return super().configure_systems()
        if self._strategy == "fsdp":
            raise ValueError(
                "strategy 'fsdp' cannot shard a module that two Betty problems share (inner W, outer "
                "alpha): FSDP would wrap it twice and flatten the alpha/W split; use 'distributed' or 'zero'"
            )
        device = "cuda" if self._backend == "nccl" else "cpu"
        init(device)
        self._world_size, self._rank = world_size(), rank()
        self.device = rank_device(device)
        self._local_rank = self.device.index or 0
        return {"strategy": self._strategy, "backend": self._backend, "world_size": self._world_size,
                "rank": self._rank, "local_rank": self._local_rank}

    def cleanup(self):
        # Betty destroys the process group here; the next split's engine still needs it.
        if self.is_rank_zero():
            self.logger.info("Multilevel optimization finished!")


# ---------------------------------------------------------------- split parallelism (strategy splits)

T = TypeVar("T")


def splits_parallel(strategy: str) -> bool:
    """True when the search phase's splits are shared out over several ranks."""
    return strategy == SPLITS and world_size() > 1


def assigned_splits(splits: Sequence[T], strategy: str, device: torch.device | str) -> list[tuple[int, T]]:
    """(k, split) for the splits this rank runs: all of them in one process or with data
    parallelism; k = rank, rank + P, ... under strategy `splits` on P ranks (refused if P > K)."""
    setup(strategy, device)
    if not splits_parallel(strategy):
        return list(enumerate(splits))
    if world_size() > len(splits):
        raise ValueError(f"strategy 'splits' on {world_size()} processes needs K >= {world_size()} splits, "
                         f"got K={len(splits)}: launch at most K processes")
    return [(k, splits[k]) for k in range(rank(), len(splits), world_size())]


@contextlib.contextmanager
def split_rng(seed: int, device: torch.device | str | None = None):
    """Run a split on its own random stream (dropout masks): its result then depends on its seed
    alone, not on the rank that runs it or on the splits before it; the caller's stream is left
    as it was, so the ranks leave the search phase with the same one."""
    device = torch.device(device) if device is not None else None
    devices = [] if device is None or device.type != "cuda" else [
        torch.cuda.current_device() if device.index is None else device.index]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


@torch.no_grad()
def average_over_ranks(states: list[dict[str, torch.Tensor]], total: int) -> dict[str, torch.Tensor]:
    """Mean over all ranks' split results (`total` of them, this rank holding `states`) of the
    floating-point entries, summed in float64 with one bucketed all-reduce; other entries from
    this rank's first state. Every rank gets the same mean."""
    first = states[0]
    keys = [k for k, v in first.items() if v.is_floating_point()]
    sums = [torch.stack([s[k].double() for s in states]).sum(0).to(_comm_device()) for k in keys]
    all_reduce_(sums, 1.0)
    means = {k: (s / total).to("cpu", first[k].dtype) for k, s in zip(keys, sums, strict=True)}
    return {k: means[k] if k in means else v.clone() for k, v in first.items()}


def gather_splits(total: int, *per_split: list) -> tuple[list, ...]:
    """Each argument a list with one entry per split this rank ran (in `assigned_splits` order),
    or empty (nothing recorded); return the same lists over all `total` splits in split order
    (or empty), on every rank."""
    gathered: list = [None] * world_size()
    dist.all_gather_object(gathered, per_split)
    out = []
    for i in range(len(per_split)):
        if not any(lists[i] for lists in gathered):
            out.append([])
            continue
        merged = [None] * total
        for r, lists in enumerate(gathered):
            for j, value in enumerate(lists[i]):
                merged[r + j * world_size()] = value
        out.append(merged)
    return tuple(out)
