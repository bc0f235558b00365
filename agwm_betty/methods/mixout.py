"""Mixout (Lee et al. 2019): during training each weight entry is swapped for its pretrained value
with probability p, rescaled so that the expected weight is the task weight W:

    W~ = ((1 - M) * W0 + M * W - p * W0) / (1 - p) = W0 + M * (W - W0) / (1 - p),  M ~ Bernoulli(1 - p)

with a fresh element-wise mask M at every training forward; in eval mode the layer uses W.
`apply_mixout` wraps the pretrained linear layers (the ones agwm's mixup replaces: every linear
layer outside the task head), `merge_mixout` puts the plain layers back.

Differences from the authors' code, kept so that p = 0 is exactly vanilla: dropout stays on (their
GLUE script sets it to 0), the head is not wrapped (theirs mixes it towards its random init), and
M is element-wise as in the paper's definition (their `mixout` draws one mask per input column).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from agwm_betty.config import TRAINING_FIELDS, MethodConfig, option, require_fraction
from agwm_betty.core.surgery import HEAD_MODULES, _replace, is_conv1d, linear_forward, merge_layers, mixup_targets
from agwm_betty.methods.base import FinetuneMethod, RunContext


@dataclass
class MixoutConfig(MethodConfig):
    """Mixout's options (appendix D.3's search space)."""

    mixout_p: float = option(0.1, "probability of swapping a weight for its pretrained value")

    def validate(self) -> MixoutConfig:
        require_fraction(self, "mixout_p", zero_ok=True)
        return self


class MixoutLinear(nn.Module):
    """A linear (or GPT-2 `Conv1D`) layer trained with mixout towards its pretrained weight W0."""

    def __init__(self, base: nn.Module, p: float):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"mixout p must be in [0, 1), got {p!r}")
        self.base = base  # holds W (trainable) and the bias; put back as is by `merged`
        self.p = p
        self.fan_in_fan_out = is_conv1d(base)
        self.register_buffer("weight0", base.weight.detach().clone(), persistent=False)

    def mixed_weight(self, mask: torch.Tensor) -> torch.Tensor:
        """W0 + M * (W - W0) / (1 - p) for a given keep-mask M (1 = keep the task weight)."""
        return torch.addcmul(self.weight0, mask, self.base.weight - self.weight0, value=1 / (1 - self.p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:  # p = 0 draws no mask: exactly the plain layer
            return self.base(x)
        mask = torch.empty_like(self.base.weight).bernoulli_(1 - self.p)
        return linear_forward(x, self.mixed_weight(mask), self.base.bias, self.fan_in_fan_out)

    def merged(self) -> nn.Module:
        """The plain layer with the task weight W (what mixout evaluates with)."""
        return self.base

    def extra_repr(self) -> str:
        return f"p={self.p}"


def apply_mixout(model: nn.Module, p: float, exclude_modules: Sequence[str] = HEAD_MODULES) -> nn.Module:
    """Wrap every pretrained linear layer (outside `exclude_modules`) in a `MixoutLinear`; return `model`."""
    if any(isinstance(m, MixoutLinear) for m in model.modules()):
        raise ValueError("mixout is already applied to this model")
    names = mixup_targets(model, None, exclude_modules)
    if not names:
        raise ValueError(f"no linear layer outside the task head (excluded: {list(exclude_modules)})")
    for name in names:
        _replace(model, name, MixoutLinear(model.get_submodule(name), p))
    return model


def merge_mixout(model: nn.Module) -> nn.Module:
    """Replace every `MixoutLinear` by its plain layer (weights W); return `model`."""
    return merge_layers(model, MixoutLinear)


class Mixout(FinetuneMethod):
    name = "mixout"
    description = "Mixout (Lee et al. 2019): weights randomly swapped for pretrained ones with prob. p in training"
    hparams = TRAINING_FIELDS + ("mixout_p",)
    config_class = MixoutConfig

    def prepare(self, model: nn.Module, ctx: RunContext) -> nn.Module:
        return apply_mixout(model, self.options(ctx.cfg).mixout_p, ctx.exclude_modules)

    def finalize(self, model: nn.Module, ctx: RunContext) -> nn.Module:
        return merge_mixout(model)
