"""W~ and its gradients in one compiled pass each (`--mixup-impl compiled`), for rank-1 alphas.

With u (out x 1), v (1 x in) the alpha factors in W's storage layout (`fused_kernels.storage_factors`),
the coefficients A = u v / r and B = (1 - u)(1 - v) / r are outer products. Formed inside a
`torch.compile`d function (inductor writes a C++ loop on a CPU, a Triton kernel on a GPU), they are
never stored: one pass reads W and W0 and writes W~ in the dtype the matmul reads (bf16 under
autocast), and the backward reads the gradient G, W and W0 once to write dW = G * A and the two
reductions du = sum_j G * (W v - W0 (1 - v)) / r, dv = sum_i G * (u W - (1 - u) W0) / r. No out x in
buffer is kept: the eager paths (`fused_kernels`) keep W~ in fp32, its low-precision copy, and A, B W0
or [G * W, G * W0] per layer. Frozen alphas (the finetune phase) take the same node: u and v need no
gradient there, and only dW is formed.

The values are the eager formulas', summed in another order: W~ to within an fp32 rounding (the
products may fuse into one multiply-add), du and dv to within the reorderings of an fp32 sum over a
row or a column (tests/test_mixup.py states the tolerances). Each shape and dtype is compiled once a
process (a few seconds each on this project's CPU, plus inductor's start-up the first time);
inductor's on-disk cache serves later processes. A double backward (neumann, cg) runs the eager
differentiable formula instead.
"""
from __future__ import annotations

import functools

import torch

from agwm_betty.core import fused_kernels


def _mix(w: torch.Tensor, w0: torch.Tensor, u: torch.Tensor, v: torch.Tensor, rank: int, convex: bool,
         dtype: torch.dtype) -> torch.Tensor:
    a = (u / rank) * v
    out = (w - w0) * a + w0 if convex else ((1 - u) / rank) * (1 - v) * w0 + a * w
    return out.to(dtype)


def _grad_w(g: torch.Tensor, u: torch.Tensor, v: torch.Tensor, rank: int) -> torch.Tensor:
    return ((u / rank) * v) * g.to(u.dtype)


def _grad_uv(g: torch.Tensor, w: torch.Tensor, w0: torch.Tensor, u: torch.Tensor, v: torch.Tensor, rank: int,
             convex: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = g.to(w.dtype)
    if convex:
        gd = g * (w - w0)
        return (gd * v).sum(1, keepdim=True) / rank, (u * gd).sum(0, keepdim=True) / rank
    gw, gw0 = g * w, g * w0
    return ((gw * v - gw0 * (1 - v)).sum(1, keepdim=True) / rank,
            (u * gw - (1 - u) * gw0).sum(0, keepdim=True) / rank)


RECOMPILE_LIMIT = 64  # one specialisation per layer shape, dtype and form: a PLM has a handful, tests more


FUNCTIONS = {"mix": _mix, "grad_w": _grad_w, "grad_uv": _grad_uv}


def _compiled(name: str):
    """The named function compiled once a process (inductor specialises it per shape and dtype), or
    the function itself, eager, under a dispatch mode (a FLOP counter, say), which compiled code
    cannot run under."""
    from torch.utils._python_dispatch import _get_current_dispatch_mode

    return FUNCTIONS[name] if _get_current_dispatch_mode() is not None else _compile(name)


@functools.cache
def _compile(name: str):
    import torch._dynamo.config as dynamo

    dynamo.recompile_limit = max(dynamo.recompile_limit, RECOMPILE_LIMIT)
    return torch.compile(FUNCTIONS[name], dynamic=False, fullgraph=True)


def compiled_mix(weight: torch.Tensor, weight0: torch.Tensor, u: torch.Tensor, v: torch.Tensor, rank: int,
                 convex: bool, dtype: torch.dtype) -> torch.Tensor:
    """W~ in `dtype` by `CompiledMix` (u, v rank 1, in W's storage layout); differentiable in W, u and v."""
    if u.shape[1] != 1 or v.shape[0] != 1:
        raise ValueError(f"the compiled mixup takes rank-1 alphas, got factors {tuple(u.shape)} and {tuple(v.shape)}")
    return CompiledMix.apply(weight, weight0, u, v, rank, convex, dtype)


class CompiledMix(torch.autograd.Function):
    """W~ from (W, W0, u, v) in one compiled pass; its backward in at most two (see the module docstring)."""

    @staticmethod
    def forward(ctx, weight, weight0, u, v, rank: int, convex: bool, dtype: torch.dtype):
        ctx.rank, ctx.convex, ctx.buffers = rank, convex, None
        ctx.save_for_backward(weight, weight0, u, v)
        with torch.autocast(weight.device.type, enabled=False):
            return _compiled("mix")(weight, weight0, u, v, rank, convex, dtype)

    @staticmethod
    def backward(ctx, grad):
        if torch.is_grad_enabled():  # a double backward (neumann, cg): the eager, differentiable formula
            return fused_kernels.FusedMix.backward(ctx, grad)[:7]
        weight, weight0, u, v = ctx.saved_tensors
        group = fused_kernels.gradient_group()
        need_w = ctx.needs_input_grad[0] and group != "alpha"
        need_uv = (ctx.needs_input_grad[2] or ctx.needs_input_grad[3]) and group != "task"
        grad_w = grad_u = grad_v = None
        with torch.autocast(grad.device.type, enabled=False):
            if need_w:
                grad_w = _compiled("grad_w")(grad, u, v, ctx.rank)
            if need_uv:
                grad_u, grad_v = _compiled("grad_uv")(grad, weight, weight0, u, v, ctx.rank, ctx.convex)
        return (grad_w, None, grad_u if ctx.needs_input_grad[2] else None,
                grad_v if ctx.needs_input_grad[3] else None, None, None, None)
