"""The mixed weight W~ of a mixup layer and its gradients, formed densely or by one fused autograd node.

With u (out x r), v (r x in) the factors of alpha in [0, 1] and eq. 3's 1 / r,
    product: W~ = (u v / r) * W + ((1 - u)(1 - v) / r) * W0
    convex:  W~ = A * W + (1 - A) * W0 = W0 + A * (W - W0),   A = u v / r
and, with G the gradient of W~ (all in the storage layout; GPT-2's Conv1D stores the transpose,
whose coefficient is v^T u^T / r, so its factors are swapped and transposed):
    dW = G * A,   du = ((G * W) v^T - (G * W0)(1 - v)^T) / r,   dv = (u^T (G * W) - (1 - u)^T (G * W0)) / r
(convex: du = (G * (W - W0)) v^T / r, dv = u^T (G * (W - W0)) / r).

"dense" lets autograd differentiate the formula: ~6 out x in kernels per forward (two products, two
divisions by r, the W0 term, the sum) and ~10 per backward, and autograd keeps both coefficient
matrices per layer for the backward. "fused" (`FusedMix`) forms W~ in 4 passes, keeps no
out x in temporary for the backward (it recomputes A there), and runs its backward in at most 6
passes: G * A for W, G * W and G * W0 written once into one buffer, and one matrix product each for
u and v over both halves; it skips the parts whose inputs need no gradient. Its backward is made of
differentiable operations, so the second-order hypergradients (neumann, cg) differentiate it again.
"""
from __future__ import annotations

import torch

MIXUP_IMPLS = ("fused", "dense")
_impl = "fused"


def set_mixup_impl(name: str) -> None:
    """Choose how every mixup layer forms W~ (`MIXUP_IMPLS`); "dense" is the reference autograd path."""
    global _impl
    if name not in MIXUP_IMPLS:
        raise ValueError(f"unknown mixup implementation {name!r}; choose from {', '.join(MIXUP_IMPLS)}")
    _impl = name


def mixup_impl() -> str:
    """The implementation mixup layers use now (see `set_mixup_impl`)."""
    return _impl


def storage_factors(f1: torch.Tensor, f2: torch.Tensor, transposed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(u, v) with u @ v the coefficient matrix in W's storage layout: (f1, f2), or (f2^T, f1^T) for Conv1D."""
    return (f2.t(), f1.t()) if transposed else (f1, f2)


def fused_mix(weight: torch.Tensor, weight0: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor, rank: int,
              convex: bool, transposed: bool) -> torch.Tensor:
    """W~ by `FusedMix`: the value and gradients of the dense path (`MixupLinear.mix_coefficients`
    under autograd) in fewer passes over out x in."""
    u, v = storage_factors(f1, f2, transposed)
    return FusedMix.apply(weight, weight0, u, v, rank, convex)


class FusedMix(torch.autograd.Function):
    """W~ from (W, W0, u, v) in one autograd node; see the module docstring for the formulas."""

    @staticmethod
    def forward(ctx, weight, weight0, u, v, rank: int, convex: bool):
        with torch.autocast(weight.device.type, enabled=False):  # the caller's dtypes, as the dense path
            return FusedMix._forward(ctx, weight, weight0, u, v, rank, convex)

    @staticmethod
    def _forward(ctx, weight, weight0, u, v, rank: int, convex: bool):
        ctx.rank, ctx.convex = rank, convex
        ctx.save_for_backward(weight, weight0, u, v)
        a = torch.mm(u / rank, v)
        if convex:  # W0 + A * (W - W0)
            return torch.sub(weight, weight0).mul_(a).add_(weight0)
        out = torch.mm((1 - u) / rank, 1 - v).mul_(weight0)
        return out.addcmul_(a, weight)

    @staticmethod
    def backward(ctx, grad):
        with torch.autocast(grad.device.type, enabled=False):
            return FusedMix._backward(ctx, grad)

    @staticmethod
    def _backward(ctx, grad):
        weight, weight0, u, v = ctx.saved_tensors
        rank, convex = ctx.rank, ctx.convex
        need_w, _, need_u, need_v = ctx.needs_input_grad[:4]
        grad_w = grad_u = grad_v = None
        if need_w:
            grad_w = torch.mm(u / rank, v).mul_(grad)
        if need_u or need_v:
            if convex:
                gw = torch.sub(weight, weight0).mul_(grad)
                grad_u = torch.mm(gw, v.t()) / rank if need_u else None
                grad_v = torch.mm(u.t(), gw) / rank if need_v else None
            else:
                if torch.is_grad_enabled():  # a double backward (neumann, cg): out= cannot be differentiated
                    both = torch.stack((grad * weight, grad * weight0))
                else:  # [G * W, G * W0]: each pass writes its half
                    both = grad.new_empty((2, *grad.shape))
                    torch.mul(grad, weight, out=both[0])
                    torch.mul(grad, weight0, out=both[1])
                if need_u:  # (G*W) v^T - (G*W0) (1 - v)^T, as one batched product summed over the halves
                    right = torch.stack((v.t(), v.t() - 1)) / rank
                    grad_u = torch.bmm(both, right).sum(0)
                if need_v:  # u^T (G*W) - (1 - u)^T (G*W0), as one product over the stacked halves
                    left = torch.cat((u.t(), u.t() - 1), dim=1) / rank
                    grad_v = torch.mm(left, both.view(-1, grad.shape[1]))
        return grad_w, None, grad_u, grad_v, None, None
