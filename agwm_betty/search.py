"""The two phases of Algorithm 1: the search phase over K random splits, and the finetune phase."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from agwm_betty import distributed
from agwm_betty.config import Config
from agwm_betty.curves import RunLog
from agwm_betty.data import blo_splits, make_loader
from agwm_betty.hypergradients import SignalProbe
from agwm_betty.mixup import alpha_parameters, named_task_parameters, set_alphas_trainable
from agwm_betty.problems import build_engine, release
from agwm_betty.train import (
    Hooks,
    check_precision,
    decay_groups,
    make_inner_optimizer,
    make_optimizer,
    make_scheduler,
    num_steps,
    resolve_device,
    train_loop,
)

ALPHA_KEYS = (".alpha1", ".alpha2")


@dataclass
class SearchResult:
    """What the search phase leaves behind: the K-averaged state and per-split loss traces."""

    state: dict[str, torch.Tensor]
    split_alphas: list[dict[str, torch.Tensor]] = field(default_factory=list)
    inner_losses: list[list[float]] = field(default_factory=list)
    outer_losses: list[list[float]] = field(default_factory=list)
    steps_per_split: int = 0
    seconds: float = 0.0
    signal: list[list[dict]] = field(default_factory=list)  # per split: SignalProbe records
    clamp_undone_share: list[float] = field(default_factory=list)  # per split


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """CPU copy of the module state (task weights, alphas, buffers; W0 is a constant, not included)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def average_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point entries; other entries (e.g. position ids) from the first."""
    first = states[0]
    return {
        k: torch.stack([s[k].double() for s in states]).mean(0).to(v.dtype) if v.is_floating_point() else v.clone()
        for k, v in first.items()
    }


def search_phase(
    model: nn.Module, train, tokenizer, cfg: Config, seed: int = 0, learn_alpha: bool = True,
    log: RunLog | None = None,
) -> SearchResult:
    """Run the bi-level search from the same start on K random BLO-train / BLO-val splits of
    `train`, average the K results (alphas always, task weights if `cfg.average_task_weights`)
    and load the average into `model`. With `learn_alpha=False` only the inner problem runs
    (random-alpha, vanilla-matched): the identical pipeline minus learning alpha. With a `log`,
    each split's curves go to it under `search/split<k>/`."""
    cfg.validate()
    check_precision(cfg, resolve_device(cfg))
    started = time.perf_counter()
    start = snapshot(model)
    results, inner_losses, outer_losses, steps, signal, clamp = [], [], [], 0, [], []
    splits = blo_splits(len(train), cfg.K, cfg.split_ratio, seed)
    for k, (train_idx, val_idx) in distributed.assigned_splits(splits, cfg.strategy, resolve_device(cfg)):
        model.load_state_dict(start)
        set_alphas_trainable(model, learn_alpha)
        engine, steps = _split_engine(
            model, train.select(train_idx), train.select(val_idx), tokenizer, cfg,
            seed=seed * 1000 + k, learn_alpha=learn_alpha, desc=f"search {k + 1}/{cfg.K}",
            log=None if log is None else log.scoped(f"search/split{k}"),
        )
        with distributed.split_rng(seed * 1000 + k, resolve_device(cfg)):  # the same masks on any rank
            engine.run()
        inner_losses.append(engine.inner.losses)
        outer_losses.append(engine.outer.losses if learn_alpha else [])
        if learn_alpha:
            signal.append(engine.outer.probe.records if engine.outer.probe else [])
            clamp.append(engine.outer.clamp_undone_share)
        release(engine)  # its optimisers' states and loaders go now, not at some later collection
        del engine
        results.append(snapshot(model))
    parallel = distributed.splits_parallel(cfg.strategy)  # the ranks ran disjoint splits: meet once
    averaged = distributed.average_over_ranks(results, cfg.K) if parallel else average_states(results)
    if not cfg.average_task_weights:  # keep the starting task weights, average only the alphas
        averaged = {k: (v if k.endswith(ALPHA_KEYS) else start[k]) for k, v in averaged.items()}
    model.load_state_dict(averaged)
    set_alphas_trainable(model, False)
    split_alphas = [{k: v for k, v in r.items() if k.endswith(ALPHA_KEYS)} for r in results]
    if parallel:  # every split's traces on every rank (rank 0 writes the record), in split order
        split_alphas, inner_losses, outer_losses, signal, clamp = distributed.gather_splits(
            cfg.K, split_alphas, inner_losses, outer_losses, signal, clamp)
    return SearchResult(averaged, split_alphas, inner_losses, outer_losses, steps, time.perf_counter() - started,
                        signal, clamp)


def _split_engine(model, blo_train, blo_val, tokenizer, cfg: Config, seed: int, learn_alpha: bool, desc: str,
                  log: RunLog | None = None):
    """Betty engine for one split, with its data loaders and, when alphas are learned, a signal probe."""
    steps = num_steps(len(blo_train), cfg.batch_size, cfg.search_epochs, cfg.max_steps)
    train_loader = make_loader(blo_train, tokenizer, cfg.batch_size, shuffle=True, seed=seed)
    outer_batch = cfg.outer_batch_size or cfg.batch_size
    val_loader = make_loader(blo_val, tokenizer, outer_batch, shuffle=True, seed=seed + 1)
    engine = build_split_engine(model, train_loader, val_loader, cfg, steps, learn_alpha=learn_alpha, desc=desc,
                                log=log)
    if learn_alpha and cfg.diagnostic_points > 0:
        probe_loader = make_loader(blo_val, tokenizer, outer_batch, shuffle=True, seed=seed + 2)
        at = SignalProbe.points(steps // cfg.unroll_steps, cfg.diagnostic_points)
        engine.outer.probe = SignalProbe(probe_loader, at)
    return engine, steps


def build_split_engine(model, train_loader, val_loader, cfg: Config, steps: int, learn_alpha: bool = True,
                       desc: str = "search", log: RunLog | None = None):
    """Betty engine over given loaders: optimisers and schedules of both levels (appendix D.1)."""
    inner_opt = make_inner_optimizer(decay_groups(named_task_parameters(model), cfg.weight_decay), cfg.search_lr,
                                     cfg.inner_optimizer)
    optimizers = {"inner": inner_opt}
    schedulers = {"inner": make_scheduler(inner_opt, steps, cfg.warmup_ratio)}
    if learn_alpha:
        outer_opt = make_optimizer(
            [{"params": alpha_parameters(model), "weight_decay": cfg.alpha_weight_decay}],
            cfg.alpha_lr, betas=(cfg.alpha_beta1, cfg.alpha_beta2), eps=cfg.alpha_eps,
        )
        optimizers["outer"] = outer_opt
        schedulers["outer"] = make_scheduler(outer_opt, max(1, steps // cfg.unroll_steps), cfg.warmup_ratio,
                                             cfg.alpha_schedule)
    return build_engine(model, train_loader, val_loader, optimizers, schedulers, cfg, steps,
                        learn_alpha=learn_alpha, desc=desc, log=log)


def finetune_phase(
    model: nn.Module, train, tokenizer, cfg: Config, seed: int = 0, hooks: Hooks | None = None,
    groups: list[dict] | None = None, lr: float | None = None, log: RunLog | None = None,
) -> list[float]:
    """Train the task weights on the whole training set with the alphas fixed (the same loop
    serves vanilla finetuning and every baseline); return the training losses. A method that
    passes its own `groups` (e.g. joint training, which includes the alphas) decides what trains.
    `cfg.epochs == 0` skips the phase: the model is evaluated as the search left it. With a `log`,
    the loop's curves go to it under `finetune/`."""
    cfg.validate()
    if cfg.epochs == 0:
        return []
    device = resolve_device(cfg)
    check_precision(cfg, device)
    model.to(device)
    if groups is None:  # the finetune phase proper: alphas fixed, every task parameter trains
        set_alphas_trainable(model, False)
        groups = decay_groups(named_task_parameters(model), cfg.weight_decay)
    steps = num_steps(len(train), cfg.batch_size, cfg.epochs, cfg.max_steps)
    loader = make_loader(train, tokenizer, cfg.batch_size, shuffle=True, seed=seed)
    return train_loop(model, loader, groups, cfg, steps, lr or cfg.lr, hooks=hooks,
                      log=None if log is None else log.scoped("finetune"))
