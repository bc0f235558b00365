"""The one training loop (finetune phase, vanilla, every baseline), its optimiser and evaluation."""
from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from agwm_betty.config import Config
from agwm_betty.core.surgery import alpha_parameters
from agwm_betty.runs import torchrun
from agwm_betty.runs.run_log import RunLog, alpha_curves, alpha_reference, total_norm


class DivergenceError(RuntimeError):
    """A loss became NaN or infinite: training stops and says where."""


def check_finite(loss: torch.Tensor, phase: str, step: int) -> None:
    """Raise `DivergenceError` naming the phase and step when `loss` is not finite."""
    if not torch.isfinite(loss.detach()).all():
        raise divergence_error(loss.detach().float().item(), phase, step)


def divergence_error(loss: float, phase: str, step: int) -> DivergenceError:
    """The error for a non-finite `loss` at `step` of `phase` (also raised by a deferred check)."""
    return DivergenceError(f"non-finite loss ({loss}) at step {step} of the {phase}; "
                           f"lower the learning rate or check the data")


def resolve_device(cfg: Config) -> torch.device:
    """The configured device, else CUDA when available, else CPU."""
    return torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def check_precision(cfg: Config, device: torch.device) -> None:
    """Refuse a precision that would not really run: fp16 needs CUDA (Betty's loss scaler asserts
    it). bf16 runs on CPU too: the loop and our Betty problems autocast on the model's device."""
    if cfg.precision == "fp16" and device.type != "cuda":
        raise ValueError(
            f"precision=fp16 needs a CUDA device (found {device}): its loss scaling is CUDA-only "
            f"in Betty and in torch.amp. Use --precision bf16 or fp32 on CPU."
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


# where torch's fused Adam runs (torch 2.13: CPU and CUDA, floating-point parameters)
FUSED_ADAM_DEVICES = ("cpu", "cuda")
FUSED_ADAM_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


def make_optimizer(groups: list[dict], lr: float, betas=(0.9, 0.999), eps: float = 1e-8) -> torch.optim.Optimizer:
    """AdamW, spelled `Adam(decoupled_weight_decay=True)` so Betty can rebuild it (docs/betty.md#pitfall-2).
    torch's fused implementation where every parameter allows it: one pass per tensor instead of
    a dozen (on a CPU, torch's default for-loop Adam took ~45 % of an MPNet-base step at 16 x 32
    tokens). Same update, summed in another order; note that it steps parameters without bumping
    their in-place version."""
    params = [p for g in groups for p in g["params"]]
    fused = bool(params) and all(p.device.type in FUSED_ADAM_DEVICES and p.dtype in FUSED_ADAM_DTYPES
                                 for p in params)
    return torch.optim.Adam(groups, lr=lr, betas=betas, eps=eps, decoupled_weight_decay=True, fused=fused or None)


class CosineSchedule(LinearSchedule):
    """Linear warmup, then cosine decay to 0 (the official code's alpha schedule)."""

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return super().__call__(step)
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def make_inner_optimizer(groups: list[dict], lr: float, kind: str = "adamw") -> torch.optim.Optimizer:
    """The search phase's optimiser of W: AdamW (the paper) or plain SGD, whose step is eq. 5's
    W - eta_w grad exactly (its weight decay is the L2 gradient term of each group)."""
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr)
    return make_optimizer(groups, lr)


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float, kind: str = "linear"):
    """LambdaLR with a linear (default) or cosine schedule after warmup, one lambda per param group."""
    warmup = int(round(warmup_ratio * total_steps))
    schedule = {"linear": LinearSchedule, "cosine": CosineSchedule}[kind]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(warmup, total_steps))


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


class TrainStep:
    """One optimiser step of the shared loop (forward, backward, hooks, clipping, AdamW, schedule);
    `train_loop` calls it per batch, the step benchmark times it. Under a data-parallel launch
    (`torchrun.setup`) the loop feeds it this rank's slice of each global batch and the
    gradients are averaged over ranks right after the backward pass."""

    def __init__(
        self,
        model: nn.Module,
        groups: list[dict],
        cfg: Config,
        steps: int,
        lr: float,
        hooks: Hooks | None = None,
        phase: str = "finetune phase",
    ):
        self.model, self.cfg, self.phase = model, cfg, phase
        self.hooks = hooks or Hooks()
        self.device = resolve_device(cfg)
        self.optimizer = make_optimizer(groups, lr)
        self.scheduler = make_scheduler(self.optimizer, steps, cfg.warmup_ratio)
        self.scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
        self.trained = [p for g in groups for p in g["params"]]
        self.data_parallel = torchrun.setup(cfg.strategy, self.device)
        self.grad_norm: torch.Tensor | None = None  # the last step's gradient norm, on the device
        self.measure_grad_norm = False  # without clipping, take the norm anyway (a log step)

    def __call__(self, batch: dict, step: int) -> float:
        """Train on `batch` (step number `step`); return its loss."""
        optimizer, scaler = self.optimizer, self.scaler
        weight = torchrun.pop_weight(batch)
        batch = to_device(batch, self.device)
        with autocast(self.cfg, self.device):
            loss = self.hooks.loss(self.model, batch)
        check_finite(loss, self.phase, step)
        (scaler.scale(loss) if scaler else loss).backward()
        if self.data_parallel:
            torchrun.all_reduce_grads_(self.trained, weight)
        if scaler:
            scaler.unscale_(optimizer)
        self.hooks.after_backward(self.model, step)
        if self.cfg.max_grad_norm > 0:
            self.grad_norm = torch.nn.utils.clip_grad_norm_(self.trained, self.cfg.max_grad_norm)
        elif self.measure_grad_norm:
            self.grad_norm = total_norm(p.grad for p in self.trained)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        self.scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        self.hooks.after_step(self.model, step)
        return loss.item()


def train_loop(
    model: nn.Module,
    loader,
    groups: list[dict],
    cfg: Config,
    steps: int,
    lr: float,
    hooks: Hooks | None = None,
    phase: str = "finetune phase",
    log: RunLog | None = None,
) -> list[float]:
    """Train `model` for `steps` optimiser steps over `loader` (cycled); return the losses. With a
    `log`, every `cfg.log_every`-th step logs the loss, the lr, the gradient norm and, when the loop
    trains alphas (joint), alpha per layer group."""
    train_step = TrainStep(model, groups, cfg, steps, lr, hooks, phase)
    trained = {id(p) for p in train_step.trained}
    alpha_start = (alpha_reference(model) if log is not None and any(id(p) in trained for p in alpha_parameters(model))
                   else None)
    if train_step.data_parallel:
        loader = torchrun.ShardedLoader(loader)
    batches = itertools.chain.from_iterable(itertools.repeat(loader))
    losses = []
    model.train()
    bar = tqdm(range(steps), desc=phase, leave=False, disable=not cfg.progress, dynamic_ncols=True)
    for step in bar:
        due = log is not None and log.due(step + 1)
        train_step.measure_grad_norm = due
        lr_now = train_step.scheduler.get_last_lr()[0] if due else None
        losses.append(train_step(next(batches), step))
        bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
        if due:
            log.log({"loss": losses[-1], "lr": lr_now, "grad_norm": train_step.grad_norm,
                     "alpha": alpha_curves(model, alpha_start) if alpha_start else None}, step=step + 1)
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
