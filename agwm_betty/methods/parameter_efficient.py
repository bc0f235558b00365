"""Parameter-efficient finetuning through HF PEFT (paper section 4.4, appendix F): LoRA (Hu et al.
2021), Prefix-Tuning (Li and Liang 2021), Prompt Tuning (Lester et al. 2021).

The PLM is frozen; the adapters and the freshly initialised task head (PEFT's `modules_to_save`)
train. With PEFT's defaults on BERT-large this gives the paper's trainable-parameter counts
(LoRA on query/value: 788,482; prefix: 985,090; prompt: 22,530).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn

from agwm_betty.config import (
    TRAINING_FIELDS,
    MethodConfig,
    option,
    require_count,
    require_non_negative,
    require_positive,
)
from agwm_betty.core.surgery import HEAD_MODULES
from agwm_betty.methods.base import FinetuneMethod, RunContext


@dataclass
class LoRAConfig(MethodConfig):
    """LoRA's options (the PEFT library's LoRA example, as appendix F)."""

    lora_r: int = option(8, "rank")
    lora_alpha: int = option(16, "scaling alpha")
    lora_dropout: float = option(0.1, "dropout")
    lora_lr: float = option(3e-4, "learning rate (the PEFT library's LoRA example, as appendix F)")

    def validate(self) -> LoRAConfig:
        require_count(self, "lora_r", "lora_alpha")
        require_non_negative(self, "lora_dropout")
        require_positive(self, "lora_lr")
        return self


@dataclass
class VirtualTokensConfig(MethodConfig):
    """What prompt learning's two methods share: the number of trainable virtual tokens."""

    num_virtual_tokens: int = option(20, "number of virtual tokens (prefix and prompt)")

    def validate(self) -> VirtualTokensConfig:
        require_count(self, "num_virtual_tokens")
        return self


@dataclass
class PrefixConfig(VirtualTokensConfig):
    """Prefix-Tuning's options (the PEFT library's prefix-tuning example)."""

    prefix_lr: float = option(1e-2, "learning rate (the PEFT library's prefix-tuning example)")

    def validate(self) -> PrefixConfig:
        require_positive(self, "prefix_lr")
        return super().validate()


@dataclass
class PromptConfig(VirtualTokensConfig):
    """Prompt Tuning's options (the PEFT library's prompt-tuning example)."""

    prompt_lr: float = option(1e-3, "learning rate (the PEFT library's prompt-tuning example)")

    def validate(self) -> PromptConfig:
        require_positive(self, "prompt_lr")
        return super().validate()


def head_modules(ctx: RunContext) -> list[str]:
    """The task head's freshly initialised modules, each named by its outermost head module
    (`classifier.dense` -> `classifier`), for PEFT's `modules_to_save`."""
    roots = {n.split(".")[0] if n.split(".")[0] in HEAD_MODULES else n for n in ctx.new_modules}
    return sorted(roots)


class PeftMethod(FinetuneMethod):
    """Wrap the fresh PLM with `peft.get_peft_model(model, self.peft_config(ctx))`.

    Each method trains at its own learning rate (`lr_field`), not at --lr: adapters and soft
    prompts need far larger steps than full finetuning, and the paper took these settings from the
    PEFT library's examples (appendix F). At a full-finetuning lr they barely leave their start.
    """

    lr_field = ""  # the config field holding this method's learning rate
    peft_fields: tuple[str, ...] = ()  # the config fields its PEFT config reads

    @property
    def hparams(self) -> tuple[str, ...]:
        return TRAINING_FIELDS + (self.lr_field, *self.peft_fields)

    def peft_config(self, ctx: RunContext):
        raise NotImplementedError

    def prepare(self, model: nn.Module, ctx: RunContext) -> nn.Module:
        from peft import get_peft_model

        return get_peft_model(model, self.peft_config(ctx))

    def learning_rate(self, ctx: RunContext) -> float:
        return getattr(self.options(ctx.cfg), self.lr_field)


class LoRA(PeftMethod):
    name = "lora"
    description = "LoRA (Hu et al. 2021): frozen PLM, trainable low-rank updates of query/value (PEFT defaults)"
    lr_field = "lora_lr"
    config_class = LoRAConfig
    peft_fields = ("lora_r", "lora_alpha", "lora_dropout")

    def peft_config(self, ctx: RunContext):
        from peft import LoraConfig, TaskType

        own = self.options(ctx.cfg)
        return LoraConfig(task_type=TaskType.SEQ_CLS, r=own.lora_r, lora_alpha=own.lora_alpha,
                          lora_dropout=own.lora_dropout, modules_to_save=head_modules(ctx))

    def finalize(self, model: nn.Module, ctx: RunContext) -> nn.Module:
        """Fold B @ A into the base weights: a plain HF model, no inference overhead."""
        return model.merge_and_unload()


class VirtualTokenMethod(PeftMethod):
    """Prompt learning: `num_virtual_tokens` trainable tokens, configured by the PEFT config class
    named `config_name`."""

    peft_fields = ("num_virtual_tokens",)
    config_name = ""

    def peft_config(self, ctx: RunContext):
        import peft

        peft_class = getattr(peft, self.config_name)
        return peft_class(task_type=peft.TaskType.SEQ_CLS, num_virtual_tokens=self.options(ctx.cfg).num_virtual_tokens,
                            modules_to_save=head_modules(ctx))


class PromptTuning(VirtualTokenMethod):
    name = "prompt"
    description = "Prompt Tuning (Lester et al. 2021): frozen PLM, trainable soft-prompt embeddings"
    lr_field = "prompt_lr"
    config_class = PromptConfig
    config_name = "PromptTuningConfig"


class PrefixTuned(nn.Module):
    """A PEFT prefix-tuning model called the way transformers 5 expects: the prefix goes to the
    backbone as its key/value `cache` (PEFT 0.21 looks for the old `past_key_values` argument and
    refuses BERT), and the attention mask is extended over the prefix."""

    def __init__(self, peft_model: nn.Module):
        super().__init__()
        self.peft_model = peft_model
        classifier = peft_model.base_model  # for prompt learning, the HF classifier itself
        backbone = inspect.signature(classifier.base_model.forward).parameters
        self.cache_argument = "cache" if "cache" in backbone else "past_key_values"

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
        batch_size = input_ids.shape[0]
        virtual = self.peft_model.peft_config[self.peft_model.active_adapter].num_virtual_tokens
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        prefix_mask = attention_mask.new_ones(batch_size, virtual)
        kwargs[self.cache_argument] = self.peft_model.get_prompt(batch_size)
        return self.peft_model.base_model(
            input_ids=input_ids, attention_mask=torch.cat([prefix_mask, attention_mask], dim=1), **kwargs
        )

    def save_pretrained(self, directory, **kwargs) -> None:
        """Save the prefix and the head as a PEFT adapter (a prefix cannot be merged into the weights)."""
        self.peft_model.save_pretrained(directory, **kwargs)


class PrefixTuning(VirtualTokenMethod):
    name = "prefix"
    description = "Prefix-Tuning (Li and Liang 2021): frozen PLM, trainable key/value prefixes in every layer"
    lr_field = "prefix_lr"
    config_class = PrefixConfig
    config_name = "PrefixTuningConfig"

    def prepare(self, model: nn.Module, ctx: RunContext) -> nn.Module:
        return PrefixTuned(super().prepare(model, ctx))
