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

Frozen alphas (the finetune phase) make A and B * W0 constants, cached per layer: W~ = B W0 + A * W.
`FrozenMix` writes W~ into buffers the layer keeps (`MixBuffers`) instead of new tensors: on a CPU a
fresh out x in tensor per step costs page faults that outweigh the arithmetic. Under autocast it also keeps the
low-precision copy the matmul reads, rounded from the fp32 W~ as autocast would round it, so the
values and gradients are bit for bit those of `addcmul(B W0, A, W)` cast by autocast.
"""
from __future__ import annotations

import contextlib
import weakref

import torch

MIXUP_IMPLS = ("fused", "dense", "compiled")  # compiled: agwm_betty.core.compiled_kernels (rank 1; else fused)
_impl = "fused"
# Which of W's and the alphas' gradients the backward passes running now are asked for (see
# `gradients_for`): autograd calls a Function's backward with every input's `needs_input_grad`,
# even when `autograd.grad` asks for the other group alone.
GRADIENT_GROUPS = ("all", "task", "alpha")
_wanted = "all"


def set_mixup_impl(name: str) -> None:
    """Choose how every mixup layer forms W~ (`MIXUP_IMPLS`): "fused" (eager, kept buffers; the
    default), "dense" (the reference autograd path) or "compiled" (`compiled_kernels`)."""
    global _impl
    if name not in MIXUP_IMPLS:
        raise ValueError(f"unknown mixup implementation {name!r}; choose from {', '.join(MIXUP_IMPLS)}")
    _impl = name


def mixup_impl() -> str:
    """The implementation mixup layers use now (see `set_mixup_impl`)."""
    return _impl


@contextlib.contextmanager
def using(name: str):
    """Within the block, mixup layers form W~ by implementation `name` (`set_mixup_impl`)."""
    before = mixup_impl()
    set_mixup_impl(name)
    try:
        yield
    finally:
        set_mixup_impl(before)


def gradient_group() -> str:
    """The gradients the backward passes running now are asked for (`gradients_for`)."""
    return _wanted


@contextlib.contextmanager
def gradients_for(group: str):
    """Within the block, `FusedMix` computes only the gradients of `group`: "task" (W: the search's
    inner step), "alpha" (darts' finite-difference passes) or "all". Use it only around backward
    passes that ask for that group alone: another group's gradient comes back None."""
    global _wanted
    if group not in GRADIENT_GROUPS:
        raise ValueError(f"unknown gradient group {group!r}; choose from {', '.join(GRADIENT_GROUPS)}")
    before, _wanted = _wanted, group
    try:
        yield
    finally:
        _wanted = before


def storage_factors(f1: torch.Tensor, f2: torch.Tensor, transposed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(u, v) with u @ v the coefficient matrix in W's storage layout: (f1, f2), or (f2^T, f1^T) for Conv1D."""
    return (f2.t(), f1.t()) if transposed else (f1, f2)


def fused_mix(weight: torch.Tensor, weight0: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor, rank: int,
              convex: bool, transposed: bool, buffers: MixBuffers | None = None,
              dtype: torch.dtype | None = None) -> torch.Tensor:
    """W~ by `FusedMix`: the value and gradients of the dense path (`MixupLinear.mix_coefficients`
    under autograd) in fewer passes over out x in. With `buffers` (a layer's), W~ and the formulas'
    temporaries are written into kept tensors; without, every tensor is new. W~ comes back in
    `dtype` (default: the one the matmul will read, `autocast_weight_dtype`), rounded from the W~
    formed in W's dtype as autocast's cast would round it."""
    u, v = storage_factors(f1, f2, transposed)
    dtype = dtype or autocast_weight_dtype(weight)
    return FusedMix.apply(weight, weight0, u, v, rank, convex, dtype, buffers)


class FusedMix(torch.autograd.Function):
    """W~ from (W, W0, u, v) in one autograd node; see the module docstring for the formulas."""

    @staticmethod
    def forward(ctx, weight, weight0, u, v, rank: int, convex: bool, dtype: torch.dtype = None,
                buffers: MixBuffers | None = None):
        with torch.autocast(weight.device.type, enabled=False):  # the caller's dtypes, as the dense path
            return FusedMix._forward(ctx, weight, weight0, u, v, rank, convex, dtype or weight.dtype, buffers)

    @staticmethod
    def _forward(ctx, weight, weight0, u, v, rank, convex, dtype, buffers):
        ctx.rank, ctx.convex, ctx.buffers = rank, convex, buffers
        ctx.save_for_backward(weight, weight0, u, v)
        if buffers is None:
            full, low, a = None, None, None
        else:
            full, low = buffers.output(weight, dtype)
            # A's scratch is the first half of the backward's [G * W, G * W0] scratch: a forward
            # never runs inside a backward that still reads it, and one buffer fewer is kept
            a = buffers.scratch("both", (2, *weight.shape), weight)[0]
        a = torch.mm(u / rank, v, out=a)
        if convex:  # W0 + A * (W - W0)
            out = torch.sub(weight, weight0, out=full).mul_(a).add_(weight0)
        else:
            out = torch.mm((1 - u) / rank, 1 - v, out=full).mul_(weight0).addcmul_(a, weight)
        if buffers is None:
            return out if dtype == out.dtype else out.to(dtype)
        return buffers.publish(ctx, out, low)

    @staticmethod
    def backward(ctx, grad):
        ctx.backward_done = not torch.is_grad_enabled()  # the matmul's backward has run: W~ is free again
        with torch.autocast(grad.device.type, enabled=False):
            return FusedMix._backward(ctx, grad)

    @staticmethod
    def _backward(ctx, grad):
        weight, weight0, u, v = ctx.saved_tensors
        rank, convex, buffers = ctx.rank, ctx.convex, ctx.buffers
        kept = buffers is not None and not torch.is_grad_enabled()  # out= cannot be differentiated again
        need_w, _, need_u, need_v = ctx.needs_input_grad[:4]
        need_w = need_w and _wanted != "alpha"
        need_u, need_v = need_u and _wanted != "task", need_v and _wanted != "task"
        grad_w = grad_u = grad_v = None
        if grad.dtype != weight.dtype:  # W~ was autocast's copy: its gradient back in W's dtype, as the cast's
            grad = grad.to(weight.dtype) if not kept else \
                buffers.scratch("gradient", grad.shape, weight).copy_(grad)
        if need_w:
            grad_w = torch.mm(u / rank, v).mul_(grad)
        if need_u or need_v:
            if convex:
                gw = torch.sub(weight, weight0, out=buffers.scratch("both", weight.shape, weight) if kept else None)
                gw = gw.mul_(grad)
                grad_u = torch.mm(gw, v.t()) / rank if need_u else None
                grad_v = torch.mm(u.t(), gw) / rank if need_v else None
            else:
                if not torch.is_grad_enabled():  # [G * W, G * W0]: each pass writes its half
                    both = buffers.scratch("both", (2, *grad.shape), weight) if kept else \
                        grad.new_empty((2, *grad.shape))
                    torch.mul(grad, weight, out=both[0])
                    torch.mul(grad, weight0, out=both[1])
                else:  # a double backward (neumann, cg)
                    both = torch.stack((grad * weight, grad * weight0))
                if need_u:  # (G*W) v^T - (G*W0) (1 - v)^T, as one batched product summed over the halves
                    right = torch.stack((v.t(), v.t() - 1)) / rank
                    grad_u = torch.bmm(both, right).sum(0)
                if need_v:  # u^T (G*W) - (1 - u)^T (G*W0), as one product over the stacked halves
                    left = torch.cat((u.t(), u.t() - 1), dim=1) / rank
                    grad_v = torch.mm(left, both.view(-1, grad.shape[1]))
        return grad_w, None, grad_u, grad_v, None, None, None, None


class MixBuffers:
    """Where a layer keeps its out x in tensors per device, instead of allocating them per step:
    W~ (fp32, and the copy autocast's matmul reads) with a weak reference to the graph node of the
    forward that wrote it last, and scratch space the formulas use within one call. Per device, so
    that replicas of one layer on several devices (`nn.DataParallel`) never share one."""

    def __init__(self) -> None:
        self.slots: dict[torch.device, dict] = {}  # device -> {"full", "low", "writer", scratch names}

    # A cache: a copy of the layer (deepcopy, pickle, a process of its own) starts with none of it.
    def __getstate__(self) -> dict:
        return {"slots": {}}

    def __deepcopy__(self, memo) -> MixBuffers:
        return MixBuffers()

    def output(self, weight: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(full, low) to write W~ into (low: None unless `dtype` differs from W's): the kept ones,
        unless a graph that has not run its backward yet may still read them (two forwards before
        one backward, or a double backward); then new ones, kept from now on."""
        slot = self.slots.setdefault(weight.device, {})
        ref = slot.get("writer")
        writer = ref() if ref is not None else None
        in_use = writer is not None and not getattr(writer, "backward_done", False)
        full, low = slot.get("full"), slot.get("low")
        if in_use or full is None or full.shape != weight.shape or full.dtype != weight.dtype:
            full, low = torch.empty_like(weight, memory_format=torch.contiguous_format), None
        if dtype != weight.dtype and (low is None or low.dtype != dtype):
            low = torch.empty_like(full, dtype=dtype)
        slot.update(full=full, low=low, writer=None)
        return full, (low if dtype != weight.dtype else None)

    def publish(self, ctx, full: torch.Tensor, low: torch.Tensor | None) -> torch.Tensor:
        """W~ as a forward returns it, `full` written: rounded into `low` where there is one (as
        autocast's cast would round it), `ctx` recorded as the node whose graph reads it until its
        backward has run, and a new tensor on the kept storage sharing its version counter, so that
        a graph that saved it fails loudly rather than read a later W~ (a backward run twice with
        retain_graph, say)."""
        if low is not None:
            low.copy_(full)
        self.slots[full.device]["writer"] = weakref.ref(ctx)
        return (full if low is None else low).detach()

    def scratch(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """A kept tensor of `shape` (`like`'s dtype and device) for use within one call, never returned."""
        slot = self.slots.setdefault(like.device, {})
        kept = slot.get(name)
        if kept is None or kept.shape != torch.Size(shape) or kept.dtype != like.dtype:
            kept = slot[name] = like.new_empty(shape)
        return kept


def autocast_weight_dtype(weight: torch.Tensor) -> torch.dtype:
    """The dtype a matmul will read `weight` in: autocast's, when it is on for the weight's device and
    the weight is fp32; the weight's own otherwise."""
    device_type = weight.device.type
    if weight.dtype == torch.float32 and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return weight.dtype


def frozen_mix(weight: torch.Tensor, a: torch.Tensor, bw0: torch.Tensor, buffers: MixBuffers) -> torch.Tensor:
    """W~ = B W0 + A * W with constant A and B W0 (frozen alphas), in the dtype the matmul reads.

    Formed at every call (an optimiser may change W without bumping its version: torch's fused AdamW
    does), into `buffers`: the tensor returned lives there until the next forward writes again, so
    clone it to keep it."""
    return FrozenMix.apply(weight, a, bw0, autocast_weight_dtype(weight), buffers)


class FrozenMix(torch.autograd.Function):
    """W~ from (W, A, B W0) with A constant: dW = A * dW~ (see `frozen_mix`)."""

    @staticmethod
    def forward(ctx, weight, a, bw0, dtype: torch.dtype, buffers: MixBuffers):
        ctx.save_for_backward(a)
        full, low = buffers.output(weight, dtype)
        with torch.autocast(weight.device.type, enabled=False):
            torch.addcmul(bw0, a, weight, out=full)
        return buffers.publish(ctx, full, low)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        ctx.backward_done = not torch.is_grad_enabled()  # the matmul's backward has run: W~ is free again
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        if grad.dtype != a.dtype and not torch.is_grad_enabled():
            grad_w = grad.to(a.dtype).mul_(a)  # autocast's cast back to W's dtype, then A, in its buffer
        else:
            grad_w = grad.to(a.dtype) * a
        return grad_w, None, None, None, None
