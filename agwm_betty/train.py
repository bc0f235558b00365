"""The one training loop (finetune phase, vanilla, every baseline), its optimiser and evaluation."""
from __future__ import annotations

import contextlib
import itertools
import math
from typing import Iterable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from agwm_betty.config import Config


class DivergenceError(RuntimeError):
    """A loss became NaN or infinite: training stops and says where."""


def check_finite(loss: torch.Tensor, phase: str, step: int) -> None:
    """Raise `DivergenceError` naming the phase and step when `loss` is not finite."""
    if not torch.isfinite(loss.detach()).all():
        raise DivergenceError(
            f"non-finite loss ({loss.detach().float().item()}) at step {step} of the {phase}; "
            f"lower the learning rate or check the data"
        )


def resolve_device(cfg: Config) -> torch.device:
    """The configured device, else CUDA when available, else CPU."""
    return torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def check_precision(cfg: Config, device: torch.device) -> None:
    """Refuse reduced precision where it would silently run in fp32 (Betty's autocast is CUDA-only)."""
    if cfg.precision != "fp32" and device.type != "cuda":
        raise ValueError(
            f"precision={cfg.precision} needs a CUDA device (found {device}); Betty's mixed precision "
            f"is CUDA-only and would silently run fp32 here. Use --precision fp32 on CPU."
        )


def autocast(cfg: Config, device: torch.device):
    """Autocast context for the configured precision (a no-op for fp32)."""
    if cfg.precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def num_steps(num_examples: int, batch_size: int, epochs: float, max_steps: int = 0) -> int:
    """Optimiser steps for `epochs` passes over `num_examples` (capped by `max_steps` if > 0)."""
    steps = max(1, math.ceil(math.ceil(num_examples / batch_size) * epochs))
    return min(steps, max_steps) if max_steps > 0 else steps


class LinearSchedule:
    """Linear warmup to the base lr, then linear decay to 0 (HF's default); picklable for Betty."""

    def __init__(self, warmup_steps: int, total_steps: int):
        self.warmup_steps, self.total_steps = warmup_steps, max(1, total_steps)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        return max(0.0, (self.total_steps - step) / max(1, self.total_steps - self.warmup_steps))


def decay_groups(named_params: Iterable[tuple[str, nn.Parameter]], weight_decay: float, **extra) -> list[dict]:
    """Two param groups: matrices with weight decay, biases and norm weights (ndim < 2) without."""
    decay, no_decay = [], []
    for _, p in named_params:
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay, **extra}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, **extra})
    return [g for g in groups if g["params"]]


def make_optimizer(groups: list[dict], lr: float, betas=(0.9, 0.999), eps: float = 1e-8) -> torch.optim.Optimizer:
    """AdamW, spelled `Adam(decoupled_weight_decay=True)` so Betty can rebuild it (BETTY_NOTES 2)."""
    return torch.optim.Adam(groups, lr=lr, betas=betas, eps=eps, decoupled_weight_decay=True)


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float):
    """LambdaLR with `LinearSchedule`, one lambda per param group."""
    warmup = int(round(warmup_ratio * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, LinearSchedule(warmup, total_steps))


def task_loss(model, batch: dict) -> torch.Tensor:
    """Cross-entropy (classification) or MSE (regression), as the HF head computes it from `labels`."""
    return model(**batch).loss


class Hooks:
    """What a method may change in the shared loop: the loss, the gradients, the weights after a step."""

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        return task_loss(model, batch)

    def after_backward(self, model: nn.Module, step: int) -> None:
        """Called with gradients in place, before clipping and the optimiser step (masks go here)."""

    def after_step(self, model: nn.Module, step: int) -> None:
        """Called after the optimiser step (projections such as clamping alphas go here)."""


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def train_loop(
    model: nn.Module,
    loader,
    groups: list[dict],
    cfg: Config,
    steps: int,
    lr: float,
    hooks: Hooks | None = None,
    phase: str = "finetune phase",
    clip_params: Sequence[nn.Parameter] | None = None,
) -> list[float]:
    """Train `model` for `steps` optimiser steps over `loader` (cycled); return the losses."""
    hooks = hooks or Hooks()
    device = resolve_device(cfg)
    optimizer = make_optimizer(groups, lr)
    scheduler = make_scheduler(optimizer, steps, cfg.warmup_ratio)
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
    params = list(clip_params) if clip_params is not None else [p for g in groups for p in g["params"]]
    batches = itertools.chain.from_iterable(itertools.repeat(loader))
    losses = []
    model.train()
    bar = tqdm(range(steps), desc=phase, leave=False, disable=not cfg.progress, dynamic_ncols=True)
    for step in bar:
        batch = to_device(next(batches), device)
        with autocast(cfg, device):
            loss = hooks.loss(model, batch)
        check_finite(loss, phase, step)
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.unscale_(optimizer)
        hooks.after_backward(model, step)
        if cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        hooks.after_step(model, step)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
    return losses


@torch.no_grad()
def predict(model: nn.Module, loader, cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """(predictions, labels) over `loader`: logits for classification, scores for regression."""
    device = resolve_device(cfg)
    model.eval()
    outputs, labels = [], []
    for batch in loader:
        batch = to_device(batch, device)
        target = batch.pop("labels")
        with autocast(cfg, device):
            logits = model(**batch).logits
        outputs.append(logits.float().cpu())
        labels.append(target.cpu())
    logits = torch.cat(outputs)
    return (logits.squeeze(-1) if logits.shape[-1] == 1 else logits), torch.cat(labels)
