"""The outer level's hypergradients (appendix A), as thin functions in Betty's own mapping.

Every function has Betty's signature `fn(vector, curr, prev, sync)`: `vector` is v, the gradient
of the outer (BLO-val) loss for the inner parameters at W'; `curr` is the inner problem, `prev`
the outer one. It returns the implicit term of alpha's gradient (`sync=False`) or adds it to
alpha's `.grad` (`sync=True`, how the search phase calls it). The direct term, the gradient of
the outer loss for alpha at W', is the outer problem's own backward pass.

| name | implicit term |
|---|---|
| `darts-paper` | eq. 6: -eta_w x finite difference of grad_alpha G along v around W' |
| `darts` | Betty 0.2.1 as is: the same finite difference without eta_w |
| `darts-official` | Betty 0.2.0 as the official code ran it: v preconditioned by the inner Adam state, no eta_w, |
| | and W left at W' - eps v |
| `first-order` | none (first-order DARTS: the direct term alone) |
| `sama`, `neumann` | Betty 0.2.1's |
| `cg` | conjugate gradient on H x = v, then -d/dalpha (grad_W G . x) |
| | (Betty 0.2.1's cg has a wrong search-direction update) |

A function of one's own joins them through `register_hypergradient(name, fn)` (`core.registry`), or
from the command line as `--hypergradient package.module:function`; `resolve_hypergradient` turns a
name into Betty's type, and is called only where the outer problem's config is built.

`gradient_terms` and `SignalProbe`, which measure these terms during a search, are in
`agwm_betty.core.signal_probe`.
"""
from __future__ import annotations

import importlib
import math

from agwm_betty.core.betty_compat import BETTY_VERSION  # noqa: F401  (checks Betty before it is imported)

# isort: split
import torch
from betty.hypergradient import darts, jvp_fn_mapping, neumann, sama
from betty.utils import replace_none_with_zero, to_vec

from agwm_betty.core.fused_kernels import gradients_for
from agwm_betty.core.registry import BUILT_IN, register_hypergradient, user_function

# Our names -> the `type` string a Betty problem config carries (the key in `jvp_fn_mapping`).
BETTY_TYPES = {
    "darts-paper": "agwm-darts-paper",
    "darts-official": "agwm-darts-official",
    "darts": "darts",
    "first-order": "agwm-first-order",
    "sama": "sama",
    "neumann": "neumann",
    "cg": "agwm-cg",
}
assert tuple(BETTY_TYPES) == BUILT_IN
__all__ = ["BETTY_TYPES", "BUILT_IN", "register_hypergradient", "resolve_hypergradient"]  # and the functions

# Names that moved out of this module, and where to (#27): they still import from here, with a warning.
_MOVED = {"alpha_hypergradient": "agwm_betty.core.diagnostics", "SignalProbe": "agwm_betty.core.signal_probe",
          "gradient_terms": "agwm_betty.core.signal_probe"}


def __getattr__(name: str):
    """`from agwm_betty.core.hypergradients import alpha_hypergradient` still works (it moved to
    agwm_betty.core.diagnostics, above the search it builds), with a DeprecationWarning naming the new
    path; imported lazily, so no import runs in a circle."""
    if name in _MOVED:
        import warnings

        warnings.warn(f"agwm_betty.core.hypergradients.{name} moved to {_MOVED[name]}.{name}: import it from there "
                      f"(the old path will be removed)", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def group_lrs(problem) -> list[float]:
    """The current learning rate of each of `problem`'s parameters (from its optimiser's groups)."""
    lr_of = {id(p): group["lr"] for group in problem.optimizer.param_groups for p in group["params"]}
    return [lr_of[id(p)] for p in problem.meta_trainable_parameters()]


def step_sizes(inner) -> list[float]:
    """eta_w per inner parameter: the learning rate of the inner step just taken (recorded by the
    inner problem before its optimiser step), else the optimiser's current one."""
    recorded = getattr(inner, "step_lrs", None)
    return recorded if recorded is not None else group_lrs(inner)


def darts_paper(vector, curr, prev, sync):
    """The paper's eq. 6: the implicit term carries the inner step size eta_w.

    eta_w is the learning rate of the inner step that made W' (after warmup and decay), per
    parameter group. With SGD that is exactly eq. 5's step size. With AdamW (the paper's inner
    optimiser) it is the same number, the lr of appendix D: eq. 5 writes the inner step as plain
    gradient descent, and Adam's per-coordinate 1/sqrt(v) scaling is not in it (`sama` and
    `darts-official` are the preconditioned readings). The finite difference is linear in its
    vector, so scaling v by eta_w before Betty's darts scales the implicit term by eta_w and
    leaves the perturbed point W' +- eps v unchanged when all groups share one lr. v is scaled in
    place: it is the outer step's own, used once, and a copy would cost as much memory as W."""
    for v, lr in zip(vector, step_sizes(curr), strict=True):  # in place: v is this step's own, used once
        v.mul_(lr)
    return alpha_darts(vector, curr, prev, sync)


def alpha_darts(vector, curr, prev, sync):
    """Betty's darts, whose two finite-difference passes ask for the alphas' gradients alone: the
    mixup layers skip W's there (`fused_kernels.gradients_for`)."""
    with gradients_for("alpha"):
        return darts(vector, curr, prev, sync)


def precondition_020(vector, inner) -> list[torch.Tensor]:
    """Betty 0.2.0's darts preconditioning: each tensor of v divided by
    (sqrt(mean(beta2 * exp_avg_sq)) + eps) / sqrt(1 - beta2^step) of its inner Adam state
    (unchanged for SGD or before the first step)."""
    if "adam" not in type(inner.optimizer).__name__.lower():
        return list(vector)
    out = []
    for v, p in zip(vector, inner.meta_trainable_parameters(), strict=True):
        state = inner.get_opt_state_for_param(p)
        step = float(state.get("step", 0))
        if step == 0:
            out.append(v)
            continue
        group = inner.get_opt_param_group_for_param(p)
        beta2, eps = group["betas"][1], group["eps"]
        denom = (torch.sqrt(torch.mean(beta2 * state["exp_avg_sq"])) + eps) / math.sqrt(1 - beta2 ** step)
        out.append(v / denom)
    return out


def darts_official(vector, curr, prev, sync):
    """Betty 0.2.0's darts as the official code ran it (`darts_preconditioned=True`): v
    preconditioned by the inner Adam state (`precondition_020`), eps = radius / ||v_pre||, no
    eta_w. Its restoring loop called the non-in-place `p.data.add`, so W stayed at W' - eps v_pre:
    reproduced here, a step of norm `darts_alpha` against the outer loss's gradient."""
    vector = precondition_020(vector, curr)
    implicit = alpha_darts(vector, curr, prev, sync)
    eps = curr.config.darts_alpha / (to_vec(vector).norm().item() + 1e-15)
    with torch.no_grad():
        for p, v in zip(curr.meta_trainable_parameters(), vector, strict=True):
            p.sub_(v, alpha=eps)
    return implicit


def first_order(vector, curr, prev, sync):
    """First-order DARTS: no implicit term (the outer problem then skips computing v at all)."""
    if sync:
        return None
    return [torch.zeros_like(p) for p in prev.trainable_parameters()]


def _dot(xs, ys) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(xs, ys, strict=True))


def cg(vector, curr, prev, sync):
    """Implicit-function theorem with conjugate gradient: solve H x = v for the Hessian H of the
    inner loss in W (`ift_iterations` steps, Hessian-vector products by double backward), then
    the implicit term -d/dalpha (grad_W G . x). Betty 0.2.1's own `cg` updates the search
    direction from the old residual (fixed upstream after the release), so it misses this."""
    params = curr.trainable_parameters()
    inner_grad = torch.autograd.grad(curr.training_step_exec(curr.cur_batch), params, create_graph=True)
    x = [torch.zeros_like(v) for v in vector]
    r = [v.detach().clone() for v in vector]
    d = [v.clone() for v in r]
    rr = _dot(r, r)
    for _ in range(curr.config.cg_iterations):
        if rr.item() <= 1e-30:
            break
        hd = torch.autograd.grad(inner_grad, params, grad_outputs=d, retain_graph=True)
        step = rr / _dot(d, hd)
        x = [xi + step * di for xi, di in zip(x, d, strict=True)]
        r = [ri - step * hi for ri, hi in zip(r, hd, strict=True)]
        rr_new = _dot(r, r)
        d = [ri + (rr_new / rr) * di for ri, di in zip(r, d, strict=True)]
        rr = rr_new
    alphas = prev.trainable_parameters()
    if sync:
        torch.autograd.backward(inner_grad, inputs=alphas, grad_tensors=[-xi for xi in x])
        return None
    cross = torch.autograd.grad(inner_grad, alphas, grad_outputs=x, allow_unused=True)
    return [-g for g in replace_none_with_zero(cross, alphas)]


jvp_fn_mapping.update({
    BETTY_TYPES["darts-paper"]: darts_paper,
    BETTY_TYPES["darts-official"]: darts_official,
    BETTY_TYPES["first-order"]: first_order,
    BETTY_TYPES["cg"]: cg,
})
assert jvp_fn_mapping["darts"] is darts and jvp_fn_mapping["sama"] is sama and jvp_fn_mapping["neumann"] is neumann


# ---- a name, resolved


def resolve_hypergradient(name: str) -> str:
    """Betty's type for a hypergradient name (a built-in, a registered name, or a
    'package.module:function' path, imported here), its function put in Betty's `jvp_fn_mapping`.
    The one place a name becomes a function: the outer problem's config calls it
    (`core.problems.problem_configs`); everything else checks names only (`core.registry`)."""
    if name in BETTY_TYPES:
        return BETTY_TYPES[name]
    fn = user_function(name)
    kind = f"agwm-user:{name}"
    jvp_fn_mapping[kind] = fn
    return kind
