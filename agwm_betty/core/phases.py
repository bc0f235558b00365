"""The two phases of Algorithm 1: the search phase over K random splits, and the finetune phase."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from agwm_betty.config import Config
from agwm_betty.core.problems import build_engine, release
from agwm_betty.core.signal_probe import SignalProbe
from agwm_betty.core.surgery import (
    alpha_parameters,
    mixup_layers,
    named_task_parameters,
    release_buffers,
    set_alphas_trainable,
)
from agwm_betty.core.train_loop import (
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
from agwm_betty.data import blo_splits, make_loader
from agwm_betty.runs import torchrun
from agwm_betty.runs.run_log import RunLog

ALPHA_KEYS = (".alpha1", ".alpha2")


@dataclass
class SearchResult:
    """What the search phase leaves behind: the K-averaged state and per-split loss traces."""

    state: dict[str, torch.Tensor] | None  # None when the search was asked not to keep a copy (keep_state)
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
    log: RunLog | None = None, keep_state: bool = True,
) -> SearchResult:
    """Run the bi-level search from the same start on K random BLO-train / BLO-val splits of
    `train`, average the K results (alphas always, task weights if `cfg.average_task_weights`)
    and load the average into `model`. With `learn_alpha=False` only the inner problem runs
    (random-alpha, vanilla-matched): the identical pipeline minus learning alpha. With a `log`,
    each split's curves go to it under `search/split<k>/`. `keep_state=False` leaves
    `SearchResult.state` None: the averaged state is then only in `model`, not in a copy beside it.

    Memory: a split's engine is freed as soon as it has run (`problems.release`), the last split's
    result is averaged in place from the model itself (the earlier splits' CPU copies are freed
    entry by entry as they are averaged), and the mixup layers' buffers are emptied at the end."""
    cfg.validate()
    check_precision(cfg, resolve_device(cfg))
    started = time.perf_counter()
    # the state every split starts from; the mixup layers' W that still equal their W0 (kept by the
    # layers anyway) are not copied. Dropped once the last split has started, unless the task
    # weights are kept from it rather than averaged.
    start, pretrained = _start_state(model, skip_pretrained=cfg.average_task_weights)
    earlier, split_alphas, inner_losses, outer_losses, steps, signal, clamp = [], [], [], [], 0, [], []
    splits = blo_splits(len(train), cfg.K, cfg.split_ratio, seed)
    assigned = torchrun.assigned_splits(splits, cfg.strategy, resolve_device(cfg))  # sets up the ranks first
    parallel = torchrun.splits_parallel(cfg.strategy)  # the ranks run disjoint splits: meet once
    for position, (k, (train_idx, val_idx)) in enumerate(assigned):
        _restore(model, start, pretrained)
        if position == len(assigned) - 1 and cfg.average_task_weights:
            start = None
        set_alphas_trainable(model, learn_alpha)
        engine, steps = _split_engine(
            model, train.select(train_idx), train.select(val_idx), tokenizer, cfg,
            seed=seed * 1000 + k, learn_alpha=learn_alpha, desc=f"search {k + 1}/{cfg.K}",
            log=None if log is None else log.scoped(f"search/split{k}"),
        )
        with torchrun.split_rng(seed * 1000 + k, resolve_device(cfg)):  # the same masks on any rank
            engine.run()
        inner_losses.append(engine.inner.losses)
        outer_losses.append(engine.outer.losses if learn_alpha else [])
        if learn_alpha:
            signal.append(engine.outer.probe.records if engine.outer.probe else [])
            clamp.append(engine.outer.clamp_undone_share)
        release(engine)  # its optimisers' states and loaders go now, not at some later collection
        del engine
        split_alphas.append({k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
                             if k.endswith(ALPHA_KEYS)})
        if parallel or position < len(assigned) - 1:  # the last split's result stays in the model
            earlier.append(snapshot(model))
    keep_start = None if cfg.average_task_weights else start  # the starting task weights, alphas averaged
    del start
    if parallel:
        averaged = torchrun.average_over_ranks(earlier, cfg.K)
        if keep_start is not None:
            averaged = {k: (v if k.endswith(ALPHA_KEYS) else keep_start[k]) for k, v in averaged.items()}
        model.load_state_dict(averaged)
        del averaged
    else:
        average_into(model, earlier, keep_start)
    del earlier, keep_start
    set_alphas_trainable(model, False)
    release_buffers(model)  # the search's W~ and scratch: the finetune phase writes its own
    if parallel:  # every split's traces on every rank (rank 0 writes the record), in split order
        split_alphas, inner_losses, outer_losses, signal, clamp = torchrun.gather_splits(
            cfg.K, split_alphas, inner_losses, outer_losses, signal, clamp)
    return SearchResult(snapshot(model) if keep_state else None, split_alphas, inner_losses, outer_losses, steps,
                        time.perf_counter() - started, signal, clamp)


def _start_state(model: nn.Module, skip_pretrained: bool) -> tuple[dict[str, torch.Tensor], list[str]]:
    """`snapshot(model)` less, with `skip_pretrained`, the mixup layers' task weights W that equal
    their frozen W0 (at the start of a search, all of them): (state, names of the layers left out)."""
    layers = mixup_layers(model) if skip_pretrained else {}
    pretrained = [name for name, layer in layers.items() if torch.equal(layer.weight, layer.weight0)]
    skipped = {f"{name}.weight" for name in pretrained}
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items() if k not in skipped}
    return state, pretrained


@torch.no_grad()
def _restore(model: nn.Module, state: dict[str, torch.Tensor], pretrained: list[str]) -> None:
    """Load a `_start_state`: its entries, and W0 into the layers it left out."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) != {f"{name}.weight" for name in pretrained}:
        raise RuntimeError(f"the search's start state does not fit the model: {missing[:3]}, {unexpected[:3]}")
    layers = mixup_layers(model)
    for name in pretrained:
        layers[name].weight.copy_(layers[name].weight0)


@torch.no_grad()
def average_into(model: nn.Module, earlier: list[dict[str, torch.Tensor]],
                 keep: dict[str, torch.Tensor] | None = None) -> None:
    """Set `model`'s state to the mean of the `earlier` states and its own (`average_states` of them
    all, the model's last: the same float64 sums), one entry at a time, freeing each earlier entry
    once used. With `keep`, entries other than the alphas are set from it instead."""
    for key, live in model.state_dict().items():
        if keep is not None and not key.endswith(ALPHA_KEYS):
            live.copy_(keep[key])
        elif live.is_floating_point():
            mean = torch.stack([s[key].double() for s in earlier] + [live.detach().to("cpu", torch.float64)]).mean(0)
            live.copy_(mean)
        for state in earlier:
            state.pop(key, None)


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
