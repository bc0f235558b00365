"""Re-init (Zhang et al. 2020): re-initialise the pooler and the top L transformer layers before finetuning."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from agwm_betty.config import TRAINING_FIELDS, MethodConfig, option, require_non_negative
from agwm_betty.core.surgery import HEAD_MODULES, _in_excluded
from agwm_betty.methods.base import FinetuneMethod, RunContext

# Names the HF architectures give their stack of transformer layers (BERT/RoBERTa/DeBERTa/XLNet:
# `layer`, BART: `layers`, GPT-2: `h`, T5: `block`).
LAYER_STACKS = ("layer", "layers", "h", "block")


def transformer_layers(model: nn.Module, exclude_modules: Sequence[str] = HEAD_MODULES) -> list[tuple[str, nn.Module]]:
    """(name, layer) of every transformer layer, bottom to top: the entries of each outermost
    `nn.ModuleList` named as in `LAYER_STACKS`; an encoder-decoder lists the encoder first."""
    stacks = [
        name for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and name.rpartition(".")[2] in LAYER_STACKS
        and not _in_excluded(name, exclude_modules)
    ]
    stacks = [s for s in stacks if not any(s.startswith(other + ".") for other in stacks)]
    if not stacks:
        raise ValueError(f"found no stack of transformer layers (a ModuleList named one of {LAYER_STACKS})")
    return [(f"{s}.{i}", layer) for s in stacks for i, layer in enumerate(model.get_submodule(s))]


def poolers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every module called `pooler` (BERT's pooler, DeBERTa's context pooler)."""
    return [(n, m) for n, m in model.named_modules() if n.rpartition(".")[2] == "pooler" and m is not None]


def reinitialize_(model: nn.Module, module: nn.Module) -> None:
    """Re-draw `module`'s weights with the model's own `_init_weights` (BERT: N(0, initializer_range),
    biases 0, LayerNorm 1/0). transformers 5 skips tensors flagged `_is_hf_initialized` (all loaded
    weights), so the flags are cleared first and set again afterwards."""
    tensors = [*module.parameters(), *module.buffers()]
    for t in tensors:
        t._is_hf_initialized = False
    module.apply(model._init_weights)
    for t in tensors:
        t._is_hf_initialized = True


def reinit_targets(model: nn.Module, num_layers: int, exclude_modules: Sequence[str] = HEAD_MODULES) -> list[str]:
    """Names of the modules `ReInit` re-initialises: the pooler(s) and the top `num_layers` layers."""
    layers = transformer_layers(model, exclude_modules)
    if not 0 <= num_layers <= len(layers):
        raise ValueError(f"reinit_layers={num_layers} but the model has {len(layers)} transformer layers")
    top = layers[len(layers) - num_layers:]
    return [n for n, _ in poolers(model)] + [n for n, _ in top]


@dataclass
class ReInitConfig(MethodConfig):
    """Re-init's options."""

    reinit_layers: int = option(3, "number of top encoder layers re-initialised (plus the pooler)")

    def validate(self) -> ReInitConfig:
        require_non_negative(self, "reinit_layers")
        return self


class ReInit(FinetuneMethod):
    name = "reinit"
    description = "Re-init (Zhang et al. 2020): pooler and top L transformer layers re-initialised before finetuning"
    hparams = TRAINING_FIELDS + ("reinit_layers",)
    config_class = ReInitConfig

    def prepare(self, model: nn.Module, ctx: RunContext) -> nn.Module:
        for name in reinit_targets(model, self.options(ctx.cfg).reinit_layers, ctx.exclude_modules):
            reinitialize_(model, model.get_submodule(name))
        return model
