"""Is there a task signal in alpha's hypergradient? One outer gradient split into its direct and
implicit terms at the search's current state (`gradient_terms`), and `SignalProbe`, which measures
during a search whether two BLO-val batches agree on it.

Both need only the outer problem, so they sit below the problems and the search that use them;
what builds a search to measure a gradient (`alpha_hypergradient`) sits above the search, in
`agwm_betty.core.diagnostics`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from agwm_betty.core.betty_compat import BETTY_VERSION  # noqa: F401  (checks Betty before it is imported)

# isort: split
import torch
from betty.hypergradient import jvp_fn_mapping
from betty.utils import replace_none_with_zero, to_vec

from agwm_betty.core.saved_search import random_state, set_random_state


def gradient_terms(outer, batch: dict) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The direct and implicit terms of alpha's gradient on the BLO-val `batch`, at the current
    state, through the configured hypergradient function (the one the search step calls). The
    inner parameters and the random state are restored exactly: measuring changes nothing."""
    inner = outer.children[0]
    alphas, weights = outer.trainable_parameters(), inner.trainable_parameters()
    saved, rng = [w.detach().clone() for w in weights], random_state()
    try:
        loss = outer.training_step_exec(batch)
        grads = torch.autograd.grad(loss, [*alphas, *weights], allow_unused=True)
        direct = [g.detach() for g in replace_none_with_zero(grads[:len(alphas)], alphas)]
        vector = [g.detach() for g in replace_none_with_zero(grads[len(alphas):], weights)]
        implicit = jvp_fn_mapping[inner.config.type](vector, inner, outer, False)
        implicit = [g.detach() for g in replace_none_with_zero(implicit, alphas)]
    finally:
        with torch.no_grad():
            for w, s in zip(weights, saved, strict=True):
                w.copy_(s)
        set_random_state(rng)
    return direct, implicit


# ---- signal diagnostics during a search


def _cosine(xs: list[torch.Tensor], ys: list[torch.Tensor]) -> float | None:
    """Cosine of two gradients; None where one is zero (e.g. the implicit term of first-order)."""
    x, y = to_vec(xs).double(), to_vec(ys).double()
    denom = x.norm() * y.norm()
    return float((x @ y) / denom) if denom > 0 else None


def _norm(xs: list[torch.Tensor]) -> float:
    return float(to_vec(xs).double().norm())


@dataclass
class SignalProbe:
    """Measures, at given outer steps, alpha's hypergradient on two independent BLO-val batches:
    their cosine (a signal agrees between batches; noise does not) and the norms of the direct
    and implicit terms. Its batches come from a loader of its own and the random state is
    restored, so a search with a probe takes exactly the steps it takes without one.

    The search builds it and the outer problem calls it; it needs only that problem (through
    `gradient_terms`), never the search, so it sits below both and no import runs back up."""

    loader: object
    at: set[int]
    records: list[dict] = field(default_factory=list)
    _iterator: object = None

    @staticmethod
    def points(outer_steps: int, count: int) -> set[int]:
        """`count` outer steps spread evenly from the first to the last (1-based)."""
        if count <= 0 or outer_steps <= 0:
            return set()
        if count == 1:
            return {outer_steps}
        return {1 + round(i * (outer_steps - 1) / (count - 1)) for i in range(count)}

    def _batch(self, device) -> dict:
        if self._iterator is None:
            self._iterator = iter(self.loader)
        try:
            batch = next(self._iterator)
        except StopIteration:
            self._iterator = iter(self.loader)
            batch = next(self._iterator)
        return {k: v.to(device) if torch.is_tensor(v) else v for k, v in dict(batch).items()}

    def measure(self, outer, step: int) -> dict:
        rng = random_state()
        try:
            first, second = self._batch(outer.device), self._batch(outer.device)
        finally:
            set_random_state(rng)
        d1, i1 = gradient_terms(outer, first)
        d2, i2 = gradient_terms(outer, second)
        t1 = [a + b for a, b in zip(d1, i1, strict=True)]
        t2 = [a + b for a, b in zip(d2, i2, strict=True)]
        record = {
            "step": step,
            "cosine": _cosine(t1, t2),
            "cosine_direct": _cosine(d1, d2),
            "cosine_implicit": _cosine(i1, i2),
            "direct_norm": (_norm(d1) + _norm(d2)) / 2,
            "implicit_norm": (_norm(i1) + _norm(i2)) / 2,
        }
        self.records.append(record)
        return record
