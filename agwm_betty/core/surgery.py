"""Attention-guided weight mixup: the model surgery of section 3.1 (low-rank alpha, appendix D.1).

Every pretrained linear weight becomes
    W~ = (alpha1 @ alpha2) / r * W + ((1 - alpha1) @ (1 - alpha2)) / r * W0
with W the trainable task weight (starts at W0), W0 the frozen pretrained weight and
alpha1 (out x r), alpha2 (r x in) in [0, 1]; eq. 3's normalisation 1 / r keeps both coefficients
in [0, 1] at any rank (the paper's r = 1 needs none). `apply_mixup` injects `MixupLinear` layers in
place, `merge_mixup` folds them back into plain layers (zero inference overhead).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from agwm_betty.core.compiled_kernels import compiled_mix
from agwm_betty.core.fused_kernels import (  # noqa: F401 (MIXUP_IMPLS, set_mixup_impl re-exported)
    MIXUP_IMPLS,
    MixBuffers,
    autocast_weight_dtype,
    frozen_mix,
    fused_mix,
    mixup_impl,
    set_mixup_impl,
    storage_factors,
)

try:  # GPT-2 style layers store the weight transposed (in x out)
    from transformers.pytorch_utils import Conv1D
except ImportError:  # pragma: no cover
    Conv1D = ()

# Task heads a sequence-classification model initialises from scratch: no pretrained weight.
HEAD_MODULES: tuple[str, ...] = (
    "classifier",
    "classification_head",
    "score",
    "logits_proj",
    "sequence_summary",
    "qa_outputs",
    "lm_head",
)


# How W and W0 mix: "product", the paper's F(a1, a2) * W + F(1 - a1, 1 - a2) * W0 (section 3.1,
# rank r); "convex", alpha * W + (1 - alpha) * W0 with alpha = F(a1, a2) (section 3.1's first formula).
ALPHA_FORMS = ("product", "convex")
# How alpha stays in [0, 1]: "clamp", the paper's projection after every outer update (appendix
# D.1); "sigmoid", alpha1/alpha2 hold unconstrained logits and the layer uses sigmoid(logit).
ALPHA_PARAMS = ("clamp", "sigmoid")
# A sigmoid logit cannot be +-inf: its init is drawn like the clamp's, then kept this far inside (0, 1).
SIGMOID_INIT_MARGIN = 1e-2


def is_conv1d(module: nn.Module) -> bool:
    """GPT-2's `Conv1D`, whose weight is stored (in, out), the transpose of `nn.Linear`'s."""
    return bool(Conv1D) and isinstance(module, Conv1D)


def linear_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                   fan_in_fan_out: bool) -> torch.Tensor:
    """The layer's output with `weight` in its storage layout: (out, in) for `nn.Linear`,
    (in, out) for `Conv1D` (`fan_in_fan_out`)."""
    if fan_in_fan_out:
        out = x.reshape(-1, x.shape[-1]) @ weight
        if bias is not None:
            out = out + bias
        return out.reshape(*x.shape[:-1], weight.shape[-1])
    return F.linear(x, weight, bias)


class MixupLinear(nn.Module):
    """A linear (or GPT-2 `Conv1D`) layer whose weight mixes task weight W and frozen W0 via alpha."""

    def __init__(self, base: nn.Module, rank: int, init_mean: float, init_std: float, form: str = "product",
                 param: str = "clamp"):
        super().__init__()
        if form not in ALPHA_FORMS:
            raise ValueError(f"unknown alpha form {form!r}; choose from {', '.join(ALPHA_FORMS)}")
        if param not in ALPHA_PARAMS:
            raise ValueError(f"unknown alpha parameterisation {param!r}; choose from {', '.join(ALPHA_PARAMS)}")
        self.form, self.param = form, param
        self.fan_in_fan_out = is_conv1d(base)
        self.weight = base.weight  # task weight W: the same Parameter object, starts at W0
        self.bias = base.bias
        self.register_buffer("weight0", base.weight.detach().clone(), persistent=False)
        out_features, in_features = self.shape
        self.rank = rank
        device, dtype = base.weight.device, base.weight.dtype
        self.alpha1 = nn.Parameter(_init_alpha((out_features, rank), init_mean, init_std, device, dtype, param))
        self.alpha2 = nn.Parameter(_init_alpha((rank, in_features), init_mean, init_std, device, dtype, param))
        self._frozen_cache: dict[torch.device, tuple] = {}  # device -> (alphas' key, A, B W0)
        self._mix_buffers = MixBuffers()  # W~ and the formulas' temporaries, kept across steps

    @property
    def shape(self) -> tuple[int, int]:
        """(out_features, in_features) whatever the storage layout."""
        rows, cols = self.weight.shape
        return (cols, rows) if self.fan_in_fan_out else (rows, cols)

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """alpha1 and alpha2 as entries in [0, 1]: the parameters themselves under "clamp", their
        sigmoid under "sigmoid"."""
        if self.param == "sigmoid":
            return torch.sigmoid(self.alpha1), torch.sigmoid(self.alpha2)
        return self.alpha1, self.alpha2

    def mix_coefficients(self) -> tuple[torch.Tensor, torch.Tensor]:
        """F(alpha1, alpha2) and F(1 - alpha1, 1 - alpha2), in the storage layout of W.
        Always in the alphas' dtype: under bf16 autocast the product would be rounded to steps
        of 2**-8, coarser than the alphas' init spread (std 0.005) and most of their updates."""
        device_type = self.alpha1.device.type
        if torch.is_autocast_enabled(device_type):
            with torch.autocast(device_type, enabled=False):
                return self.mix_coefficients()
        alpha1, alpha2 = self.factors()
        a = alpha1 @ alpha2 / self.rank  # eq. 3's 1 / r keeps every coefficient in [0, 1]
        b = 1 - a if self.form == "convex" else (1 - alpha1) @ (1 - alpha2) / self.rank
        return (a.t(), b.t()) if self.fan_in_fan_out else (a, b)

    def effective_alpha(self) -> torch.Tensor:
        """The full alpha matrix F(alpha1, alpha2) / r (eq. 3), out x in."""
        with torch.no_grad():
            alpha1, alpha2 = self.factors()
            return alpha1 @ alpha2 / self.rank

    def effective_weight(self) -> torch.Tensor:
        """W~ = F(a1, a2) * W + F(1 - a1, 1 - a2) * W0, formed once per forward. With frozen alphas it
        lives in a buffer the next forward writes again: clone it to keep it."""
        if mixup_impl() == "compiled" and self.rank == 1:
            return self.compiled_weight()
        if self.alpha1.requires_grad or self.alpha2.requires_grad:
            # trained alphas may be stepped without a version bump (fused Adam): no frozen cache survives
            self._frozen_cache.clear()
            if mixup_impl() == "dense":
                a, b = self.mix_coefficients()
                return torch.addcmul(b * self.weight0, a, self.weight)
            return self.fused_weight()
        # Frozen alphas (finetune phase): A and B W0 are constants, W~ is written into kept buffers.
        a, bw0 = self.frozen_coefficients()
        return frozen_mix(self.weight, a, bw0, self._mix_buffers)

    def frozen_coefficients(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, B * W0) of the frozen alphas, computed once per change of the alphas (per device)."""
        device = self.alpha1.device
        key = (self.alpha1._version, self.alpha2._version, self.alpha1.data_ptr(), self.alpha2.data_ptr(),
               self.weight0.data_ptr())
        cached = self._frozen_cache.get(device)
        if cached is None or cached[0] != key:
            with torch.no_grad():
                a, b = self.mix_coefficients()
                cached = self._frozen_cache[device] = (key, a, b * self.weight0)
        return cached[1], cached[2]

    def compiled_weight(self) -> torch.Tensor:
        """W~ by one compiled pass (`compiled_kernels`), trainable or frozen alphas alike: in the dtype
        the matmul reads, from the alpha factors in their own dtype, nothing out x in kept."""
        dtype = autocast_weight_dtype(self.weight)
        with torch.autocast(self.alpha1.device.type, enabled=False):
            u, v = storage_factors(*self.factors(), self.fan_in_fan_out)
            return compiled_mix(self.weight, self.weight0, u, v, self.rank, self.form == "convex", dtype)

    def fused_weight(self) -> torch.Tensor:
        """W~ by one `FusedMix` node (alphas trainable): the alpha factors in their own dtype, as
        `mix_coefficients`, no out x in coefficient matrix kept for the backward, and W~ written into
        the layer's kept buffers (clone it to keep it)."""
        dtype = autocast_weight_dtype(self.weight)  # W~ comes back in the dtype the matmul reads
        with torch.autocast(self.alpha1.device.type, enabled=False):
            alpha1, alpha2 = self.factors()
            return fused_mix(self.weight, self.weight0, alpha1, alpha2, self.rank, self.form == "convex",
                             self.fan_in_fan_out, self._mix_buffers, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear_forward(x, self.effective_weight(), self.bias, self.fan_in_fan_out)

    def merged(self) -> nn.Module:
        """A plain layer of the original type carrying the effective weight."""
        with torch.no_grad():
            weight = self.effective_weight().detach().clone()
        out_features, in_features = self.shape
        if self.fan_in_fan_out:
            layer = Conv1D(out_features, in_features)
        else:
            layer = nn.Linear(in_features, out_features, bias=self.bias is not None)
        layer = layer.to(device=weight.device, dtype=weight.dtype)
        layer.weight = nn.Parameter(weight, requires_grad=self.weight.requires_grad)
        if self.bias is not None:
            layer.bias = self.bias
        return layer

    def extra_repr(self) -> str:
        out_features, in_features = self.shape
        return f"in_features={in_features}, out_features={out_features}, rank={self.rank}, param={self.param}"


def _init_alpha(shape, mean, std, device, dtype, param: str = "clamp") -> torch.Tensor:
    """Entries from N(mean, std), clipped to [0, 1] as in appendix D.1; under "sigmoid" clipped to
    [margin, 1 - margin] and stored as their logits, so the layer starts from the same alphas."""
    alpha = torch.empty(shape, device=device, dtype=dtype).normal_(mean, std)
    if param == "sigmoid":
        return alpha.clamp_(SIGMOID_INIT_MARGIN, 1 - SIGMOID_INIT_MARGIN).logit_()
    return alpha.clamp_(0.0, 1.0)


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or is_conv1d(module)


def _matches(name: str, patterns: str | Sequence[str]) -> bool:
    """PEFT-style matching: a regex (one string, full match) or a list of dotted-name suffixes."""
    if isinstance(patterns, str):
        return re.fullmatch(patterns, name) is not None
    return any(name == p or name.endswith("." + p) for p in patterns)


def _in_excluded(name: str, exclude: Sequence[str]) -> bool:
    parts = name.split(".")
    return any(p in parts or name == p or name.startswith(p + ".") for p in exclude)


def mixup_targets(
    model: nn.Module,
    target_modules: str | Sequence[str] | None = None,
    exclude_modules: Sequence[str] = HEAD_MODULES,
) -> list[str]:
    """Names of the linear layers `apply_mixup` would replace."""
    names = []
    for name, module in model.named_modules():
        if not _is_linear(module) or _in_excluded(name, exclude_modules):
            continue
        if target_modules is None or _matches(name, target_modules):
            names.append(name)
    return names


def apply_mixup(
    model: nn.Module,
    rank: int = 1,
    init_mean: float = 1.0,
    init_std: float = 0.005,
    target_modules: str | Sequence[str] | None = None,
    exclude_modules: Sequence[str] = HEAD_MODULES,
    form: str = "product",
    param: str = "clamp",
) -> nn.Module:
    """Replace every pretrained linear layer of `model` in place by a `MixupLinear` (mixing by
    `form`, see `ALPHA_FORMS`, kept in [0, 1] by `param`, see `ALPHA_PARAMS`); return `model`."""
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be an integer >= 1, got {rank!r}")
    if not init_std >= 0:
        raise ValueError(f"init_std must be >= 0, got {init_std!r}")
    if any(isinstance(m, MixupLinear) for m in model.modules()):
        raise ValueError("mixup is already applied to this model (it holds MixupLinear layers)")
    names = mixup_targets(model, target_modules, exclude_modules)
    if not names:
        raise ValueError(
            f"target_modules={target_modules!r} matched no linear layer outside the task head "
            f"(excluded: {list(exclude_modules)})"
        )
    for name in names:
        _replace(model, name, MixupLinear(model.get_submodule(name), rank, init_mean, init_std, form, param))
    return model


def merge_mixup(model: nn.Module) -> nn.Module:
    """Fold every `MixupLinear` back into a plain layer with its effective weight; return `model`."""
    return merge_layers(model, MixupLinear)


def merge_layers(model: nn.Module, layer_type: type) -> nn.Module:
    """Replace every `layer_type` module by its `merged()` plain layer, in place; return `model`."""
    for name, module in list(model.named_modules()):
        if isinstance(module, layer_type):
            _replace(model, name, module.merged())
    return model


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def mixup_layers(model: nn.Module) -> dict[str, MixupLinear]:
    """The `MixupLinear` layers of `model` by name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, MixupLinear)}


def alpha_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The attention parameters (alpha1, alpha2 of every mixup layer): the outer problem's variables."""
    return [p for m in mixup_layers(model).values() for p in (m.alpha1, m.alpha2)]


def named_task_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Every trainable parameter that is not an alpha: W, biases, LayerNorms, embeddings, head."""
    alphas = {id(p) for p in alpha_parameters(model)}
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad and id(p) not in alphas]


def task_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The inner problem's variables (see `named_task_parameters`)."""
    return [p for _, p in named_task_parameters(model)]


def set_alphas_trainable(model: nn.Module, trainable: bool) -> None:
    """Freeze (finetune phase, random-alpha) or unfreeze (search phase) all alphas."""
    for p in alpha_parameters(model):
        p.requires_grad_(trainable)


def release_buffers(model: nn.Module) -> None:
    """Empty every mixup layer's kept W~ and scratch tensors (`MixBuffers`): a phase's buffers,
    which the next phase would only allocate again in its own shapes and dtypes."""
    for layer in mixup_layers(model).values():
        layer._mix_buffers = MixBuffers()


@torch.no_grad()
def clamp_alphas_(model: nn.Module) -> None:
    """Project every alpha entry onto [0, 1] (after each outer update); sigmoid logits stay free."""
    for m in mixup_layers(model).values():
        if m.param == "clamp":
            m.alpha1.clamp_(0.0, 1.0)
            m.alpha2.clamp_(0.0, 1.0)


def alpha_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """All alpha tensors by parameter name (CPU copies): a search result on its own."""
    return {
        f"{name}.{which}": getattr(m, which).detach().cpu().clone()
        for name, m in mixup_layers(model).items()
        for which in ("alpha1", "alpha2")
    }


@torch.no_grad()
def load_alpha_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy alphas from `alpha_state_dict` output into `model`; names and shapes must match."""
    layers = mixup_layers(model)
    expected = {f"{n}.{w}" for n in layers for w in ("alpha1", "alpha2")}
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ValueError(f"alpha state does not fit this model: missing {missing[:5]}, unexpected {extra[:5]}")
    for key, value in state.items():
        name, _, which = key.rpartition(".")
        target = getattr(layers[name], which)
        if target.shape != value.shape:
            raise ValueError(f"{key}: shape {tuple(value.shape)} != model's {tuple(target.shape)}")
        target.copy_(value)


def save_alphas(model: nn.Module, path: str | Path) -> None:
    """Save the alpha state to `path` (torch format) for reuse in another finetune."""
    torch.save(alpha_state_dict(model), path)


def load_alphas(model: nn.Module, path: str | Path) -> None:
    """Load an alpha state saved by `save_alphas` into a model with mixup applied."""
    load_alpha_state_dict(model, torch.load(path, map_location="cpu", weights_only=True))


@torch.no_grad()
def alpha_factors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every layer's alpha1 and alpha2 as entries in [0, 1] (see `MixupLinear.factors`), by
    parameter name: the same keys as `alpha_state_dict`, whatever the parameterisation."""
    return {
        f"{name}.{which}": factor.detach().cpu().clone()
        for name, m in mixup_layers(model).items()
        for which, factor in zip(("alpha1", "alpha2"), m.factors(), strict=True)
    }


def module_alpha_means(factors: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean effective alpha F(alpha1, alpha2) / r of each layer from `alpha_factors` output, without
    forming the out x in matrix: mean_ij sum_k a1[i,k] a2[k,j] = sum_k mean_i a1[i,k] mean_j a2[k,j]."""
    names = [key.removesuffix(".alpha1") for key in factors if key.endswith(".alpha1")]
    return {
        name: float((factors[f"{name}.alpha1"].double().mean(0) * factors[f"{name}.alpha2"].double().mean(1)).mean())
        for name in names
    }


# Histogram edges, finer towards 1: alphas start at ~1 and move by little at the paper's alpha lr.
ALPHA_HIST_EDGES = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999, 1.0)


def alpha_summary(model: nn.Module) -> dict | None:
    """Mean, std, range, per-layer means and a histogram of the effective alphas F(alpha1, alpha2)."""
    layers = mixup_layers(model)
    if not layers:
        return None
    groups: dict[str, list[torch.Tensor]] = {}
    for name, m in layers.items():
        groups.setdefault(layer_group(name), []).append(m.effective_alpha().float().flatten().cpu())
    everything = torch.cat([t for ts in groups.values() for t in ts])
    edges = torch.tensor(ALPHA_HIST_EDGES)
    index = torch.bucketize(everything.clamp(0, 1), edges[1:-1], right=True)
    counts = torch.bincount(index, minlength=len(edges) - 1)
    return {
        "mean": everything.mean().item(),
        "std": everything.std().item() if everything.numel() > 1 else 0.0,
        "min": everything.min().item(),
        "max": everything.max().item(),
        "per_layer": {g: torch.cat(ts).mean().item() for g, ts in groups.items()},
        "hist": {"edges": list(ALPHA_HIST_EDGES), "counts": [int(c) for c in counts.tolist()]},
    }


def layer_group(name: str) -> str:
    """'bert.encoder.layer.3.attention.self.query' -> 'layer.3'; otherwise the first telling part."""
    match = re.search(r"(?:^|\.)(layers?|h|block)\.(\d+)(?:\.|$)", name)
    if match:
        return f"layer.{match.group(2)}" if "decoder" not in name else f"decoder.layer.{match.group(2)}"
    for part in ("embeddings", "pooler"):
        if part in name.split("."):
            return part
    return name.split(".")[-1]

