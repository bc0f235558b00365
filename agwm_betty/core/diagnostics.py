"""Measurements that build a search to look at it: one outer step's alpha gradient, split into terms.

This module sits above the search (it builds the search phase's own engine), so nothing the
search is built from imports it. What the search calls while it runs sits below it: the
hypergradient functions in `agwm_betty.core.hypergradients`, `SignalProbe` in
`agwm_betty.core.signal_probe`.
"""
from __future__ import annotations

import torch

from agwm_betty.config import Config
from agwm_betty.core.phases import build_split_engine, snapshot
from agwm_betty.core.signal_probe import gradient_terms
from agwm_betty.core.surgery import alpha_parameters, set_alphas_trainable


def alpha_hypergradient(model, train_batch: dict, val_batch: dict, cfg: Config) -> dict[str, dict[str, torch.Tensor]]:
    """One outer step's gradient of every alpha, as the search phase computes it.

    Builds the search phase's Betty problems for `model` (a mixup model), takes the one inner step
    the engine takes (W -> W' on `train_batch`), then returns `direct` (grad_alpha of the outer
    loss on `val_batch` at W'), `implicit` (the configured hypergradient's term) and `total`
    (their sum, what the outer optimiser receives), each a dict keyed by parameter name. The model
    is left as it was."""
    cfg.validate()  # the hypergradient's name; its outer problem below resolves it
    state = snapshot(model)
    trainable = {id(p): p.requires_grad for p in model.parameters()}
    try:
        set_alphas_trainable(model, True)
        engine = build_split_engine(model, [dict(train_batch)], [dict(val_batch)], cfg, steps=1,
                                    learn_alpha=True, desc="alpha_hypergradient")
        engine.inner.one_step_descent()
        batch = {k: v.to(engine.outer.device) if torch.is_tensor(v) else v for k, v in val_batch.items()}
        direct, implicit = gradient_terms(engine.outer, batch)
        names = {id(p): n for n, p in model.named_parameters()}
        keys = [names[id(p)] for p in alpha_parameters(model)]
    finally:
        model.load_state_dict(state)
        for p in model.parameters():
            p.requires_grad_(trainable[id(p)])
    return {
        "direct": {k: g.cpu() for k, g in zip(keys, direct, strict=True)},
        "implicit": {k: g.cpu() for k, g in zip(keys, implicit, strict=True)},
        "total": {k: (d + i).cpu() for k, d, i in zip(keys, direct, implicit, strict=True)},
    }
