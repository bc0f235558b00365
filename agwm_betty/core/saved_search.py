"""Reuse a search: save what the search phase found and finetune from it later without searching
(the CLI's `--save-alphas` and `--alphas-from`).

A saved search holds the state the finetune phase starts from: the K-averaged alphas, the
K-averaged task weights (W, biases, norms, embeddings, head) and torch's random state at that
moment. Loading the alphas alone gives "agwm with a saved alpha": W starts at the pretrained
weights. Loading the task weights and random state too replays the searching run's finetune
phase exactly: with the same data and seed it ends in the same model.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from agwm_betty.core.surgery import load_alpha_state_dict

FORMAT = "agwm-betty saved search, v1"
_ALPHA_KEYS = (".alpha1", ".alpha2")


@dataclass
class SavedSearch:
    """A search phase's result, as the finetune phase finds it."""

    alphas: dict[str, torch.Tensor]
    task_weights: dict[str, torch.Tensor] | None = None  # the rest of the model state; None: alphas only
    rng: dict[str, torch.Tensor | list[torch.Tensor]] | None = None  # torch's random state after the search
    meta: dict = field(default_factory=dict)  # the searching run: task, n, seed, plm, method, run_id


def random_state() -> dict:
    """torch's CPU (and, where used, CUDA) random state: dropout in the finetune phase draws from it."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: dict) -> None:
    """Restore a `random_state()`; a CUDA state is restored where the same number of GPUs is seen."""
    torch.set_rng_state(state["cpu"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)


def capture(state: dict[str, torch.Tensor], meta: dict | None = None) -> SavedSearch:
    """Split a searched model state (`SearchResult.state`) into alphas and task weights, with the
    random state of this moment: call it between the search phase and the finetune phase."""
    alphas = {k: v for k, v in state.items() if k.endswith(_ALPHA_KEYS)}
    task_weights = {k: v for k, v in state.items() if not k.endswith(_ALPHA_KEYS)}
    return SavedSearch(alphas, task_weights, random_state(), dict(meta or {}))


def save(search: SavedSearch, path: str | Path) -> Path:
    """Write a saved search to `path` (torch format, loadable with weights_only=True)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "alphas": search.alphas, "task_weights": search.task_weights,
                "rng": search.rng, "meta": search.meta}, path)
    return path


def load(path: str | Path) -> SavedSearch:
    """Read a file written by `save`, or by `surgery.save_alphas` (alphas only); ValueError if it is neither."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file (a saved alpha from --save-alphas or save_alphas)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and unpickler errors alike: not a file of ours
        raise ValueError(f"{path}: not a saved alpha ({type(err).__name__})") from None
    if isinstance(data, dict) and data.get("format") == FORMAT:
        return SavedSearch(data["alphas"], data["task_weights"], data["rng"], data["meta"])
    if isinstance(data, dict) and data and all(k.endswith(_ALPHA_KEYS) and torch.is_tensor(v) for k, v in data.items()):
        return SavedSearch(dict(data))
    raise ValueError(f"{path}: not a saved alpha (neither --save-alphas' format nor save_alphas')")


@torch.no_grad()
def apply(model: nn.Module, search: SavedSearch, task_weights: bool = False) -> None:
    """Load the saved alphas into `model` (mixup applied); with `task_weights`, also its task
    weights and random state, so the finetune phase starts where the searching run's did."""
    if task_weights:
        if search.task_weights is None:
            raise ValueError("this saved alpha carries no task weights (saved by save_alphas, not --save-alphas)")
        expected = set(model.state_dict())
        saved = set(search.task_weights) | set(search.alphas)
        if saved != expected:
            missing, extra = sorted(expected - saved), sorted(saved - expected)
            raise ValueError(f"saved task weights do not fit this model: missing {missing[:5]}, unexpected {extra[:5]}")
        for key, value in model.state_dict().items():
            source = search.task_weights.get(key, search.alphas.get(key))
            if source.shape != value.shape:
                raise ValueError(f"{key}: saved shape {tuple(source.shape)} != model's {tuple(value.shape)}")
        model.load_state_dict({**search.task_weights, **search.alphas})
    load_alpha_state_dict(model, search.alphas)
    if task_weights and search.rng is not None:
        set_random_state(search.rng)


@functools.lru_cache(maxsize=2)
def _load_cached(path: str, mtime_ns: int, size: int) -> tuple[SavedSearch, str]:
    return load(path), hashlib.sha1(Path(path).read_bytes()).hexdigest()


def load_cached(path: str | Path) -> tuple[SavedSearch, str]:
    """The saved search in `path` and its file's SHA-1, read once per version of the file (a sweep
    asks for the same one run after run); ValueError if there is no such file."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ValueError(f"--alphas-from {path}: no such file")
    stat = path.stat()
    return _load_cached(str(path), stat.st_mtime_ns, stat.st_size)
