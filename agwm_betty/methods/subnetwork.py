"""Sub-network finetuning by squared gradients (an empirical Fisher estimate):
CHILD-TUNING_D (Xu et al. 2021), a static child network chosen before training, and
DPS dense (Zhang et al. 2022), a child network re-chosen periodically during training.

Entries outside the child network stay bit-identical to their value when they were frozen: their
gradients are zeroed before the step (so clipping and Adam never see them) and they are restored
after the step, because AdamW's decoupled weight decay (and, in DPS, momentum left from a dense
period) would otherwise still move them. The original codes mask only the gradient, so there
weight decay still shrinks frozen weights by lr * wd per step; the paper describes them as frozen.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from agwm_betty.config import TRAINING_FIELDS, MethodConfig, option, require_fraction
from agwm_betty.core.surgery import _is_linear
from agwm_betty.core.train_loop import Hooks, autocast, num_steps, resolve_device, task_loss, to_device
from agwm_betty.data import make_loader
from agwm_betty.methods.base import FinetuneMethod, RunContext
from agwm_betty.methods.reinit import transformer_layers
from agwm_betty.runs import torchrun

Masks = dict[nn.Parameter, torch.Tensor]  # parameter -> bool tensor, True = in the child network


@dataclass
class ChildTuningConfig(MethodConfig):
    """CHILD-TUNING_D's options."""

    child_p: float = option(0.3, "fraction p_D of parameters kept in the child network")

    def validate(self) -> ChildTuningConfig:
        require_fraction(self, "child_p")
        return self


@dataclass
class DPSConfig(MethodConfig):
    """DPS dense's options."""

    dps_p: float = option(0.3, "fraction of each weight matrix updated in a sparse period")
    dps_ur: float = option(0.1, "update ratio, the period length as a fraction of the steps")

    def validate(self) -> DPSConfig:
        require_fraction(self, "dps_p", "dps_ur")
        return self


class MaskedUpdates(Hooks):
    """Train only the masked-in entries of the masked parameters; other parameters train as usual."""

    def __init__(self, masks: Masks | None = None):
        self.frozen: dict[nn.Parameter, tuple[torch.Tensor, torch.Tensor]] = {}
        if masks:
            self.freeze(masks)

    def freeze(self, masks: Masks) -> None:
        """From now on, hold each parameter's entries outside its mask at their current values."""
        self.frozen = {p: (~keep, p.detach().clone()) for p, keep in masks.items()}

    def release(self) -> None:
        """Train every entry again."""
        self.frozen = {}

    def after_backward(self, model: nn.Module, step: int) -> None:
        for p, (drop, _) in self.frozen.items():
            if p.grad is not None:
                p.grad.masked_fill_(drop, 0.0)

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        for p, (drop, value) in self.frozen.items():
            p.copy_(torch.where(drop, value, p))


def top_fraction(scores: dict[nn.Parameter, torch.Tensor], fraction: float) -> Masks:
    """Masks keeping the entries whose score reaches the top `fraction` of all scores together
    (one threshold across every tensor given; call per tensor for per-matrix thresholds)."""
    flat = torch.cat([s.detach().flatten().float().cpu() for s in scores.values()])
    keep = max(1, math.ceil(fraction * flat.numel()))
    threshold = flat.kthvalue(flat.numel() - keep + 1).values.item()
    return {p: s >= threshold for p, s in scores.items()}


def squared_gradients(model: nn.Module, params: Iterable[nn.Parameter], ctx: RunContext,
                      ) -> dict[nn.Parameter, torch.Tensor]:
    """Sum over one pass of the training set of each entry's squared gradient, the empirical Fisher
    information (up to a constant). As in the CHILD-TUNING code: dropout on (train mode), and each
    tensor's gradient clipped to `max_grad_norm` before squaring."""
    cfg = ctx.cfg
    device = resolve_device(cfg)
    model.to(device).train()
    params = list(params)
    fisher = {p: torch.zeros_like(p, dtype=torch.float32) for p in params}
    for batch in make_loader(ctx.train, ctx.tokenizer, cfg.batch_size, shuffle=False):
        with autocast(cfg, device):
            loss = task_loss(model, to_device(batch, device))
        loss.backward()
        for p in params:
            if p.grad is not None:
                if cfg.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(p, cfg.max_grad_norm)
                fisher[p] += p.grad.detach().float() ** 2
        model.zero_grad(set_to_none=True)
    if torchrun.setup(cfg.strategy, device):  # ranks draw different dropout masks: agree on one mask
        torchrun.all_reduce_(fisher.values(), 1 / torchrun.world_size())
    return fisher


def layer_parameters(model: nn.Module, ctx: RunContext) -> list[nn.Parameter]:
    """Every trainable parameter inside the transformer layers (weights, biases, LayerNorms)."""
    return [p for _, layer in transformer_layers(model, ctx.exclude_modules) for p in layer.parameters()
            if p.requires_grad]


def layer_weight_matrices(model: nn.Module, ctx: RunContext) -> list[nn.Parameter]:
    """The weight matrices of the linear layers inside the transformer layers (DPS's `DPSDense`)."""
    return [m.weight for _, layer in transformer_layers(model, ctx.exclude_modules)
            for m in layer.modules() if _is_linear(m) and m.weight.requires_grad]


class ChildTuningD(FinetuneMethod):
    """The child network is chosen once, over the parameters of the transformer layers as in the
    official code (parameters named `*layer*`): embeddings, pooler and head train in full. No 1/p_D
    gradient rescaling (that is CHILD-TUNING_F)."""

    name = "child-tuning-d"
    description = "CHILD-TUNING_D (Xu et al. 2021): only a Fisher-selected child network of the layers is updated"
    hparams = TRAINING_FIELDS + ("child_p",)
    config_class = ChildTuningConfig

    def hooks(self, model: nn.Module, ctx: RunContext) -> Hooks:
        """Select the child network (one pass over the training set) and keep the rest frozen."""
        fisher = squared_gradients(model, layer_parameters(model, ctx), ctx)
        return MaskedUpdates(top_fraction(fisher, self.options(ctx.cfg).child_p))


class DPSHooks(MaskedUpdates):
    """Alternate dense and sparse periods of `period` steps, starting dense. A dense period trains
    every entry and accumulates squared gradients (reset at its start); the sparse period after it
    updates, in each weight matrix, only the top `p` fraction of entries by that score."""

    def __init__(self, weights: list[nn.Parameter], p: float, period: int):
        super().__init__()
        if period < 1:
            raise ValueError(f"DPS period must be >= 1 step, got {period}")
        self.weights, self.p, self.period = weights, p, period
        self.scores: dict[nn.Parameter, torch.Tensor] = {}

    def sparse(self, step: int) -> bool:
        return (step // self.period) % 2 == 1

    def after_backward(self, model: nn.Module, step: int) -> None:
        starts_period = step % self.period == 0
        if not self.sparse(step):
            if starts_period:
                self.release()
                self.scores = {w: torch.zeros_like(w, dtype=torch.float32) for w in self.weights}
            for w in self.weights:
                if w.grad is not None:
                    self.scores[w] += w.grad.detach().float() ** 2
        elif starts_period:
            self.freeze({w: top_fraction({w: s}, self.p)[w] for w, s in self.scores.items()})  # per matrix
            self.scores = {}
        super().after_backward(model, step)


class DPS(FinetuneMethod):
    """DPS dense. Selection covers the weight matrices of the transformer layers' linear layers, as
    the official `DPSDense` layers do; biases, LayerNorms, embeddings, pooler and head always train.
    The period is `dps_ur` x the run's total steps. The official code differs in three ways: its
    period is ur x one epoch's steps on low-resource runs, it turns dropout off for runs under
    2000 steps, and its `DPSDense` keeps the top 1 - p (we keep the top `dps_p`, as configured)."""

    name = "dps"
    description = "DPS dense (Zhang et al. 2022): Fisher-selected sub-network re-chosen every ur x steps"
    hparams = TRAINING_FIELDS + ("dps_p", "dps_ur")
    config_class = DPSConfig

    def hooks(self, model: nn.Module, ctx: RunContext) -> Hooks:
        cfg = ctx.cfg
        total = num_steps(len(ctx.train), cfg.batch_size, cfg.epochs, cfg.max_steps)
        own = self.options(cfg)
        return DPSHooks(layer_weight_matrices(model, ctx), own.dps_p, period=max(1, int(own.dps_ur * total)))
