"""The two levels of the search phase as Betty problems (section 3.2, eq. 1 and 2).

Both problems share one module: the inner problem owns the task parameters (W, biases,
LayerNorms, head), the outer problem owns the alphas. Betty computes the outer hypergradient
(`darts` by default: finite differences, appendix A) from the inner problem's training step.
"""
from __future__ import annotations

import logging

from agwm_betty.core.betty_compat import BETTY_VERSION  # noqa: F401  (checks Betty before it is imported)

# isort: split
import torch
from betty.configs import Config as ProblemConfig
from betty.configs import EngineConfig
from betty.hypergradient import jvp_fn_mapping
from betty.logging.logger_base import get_logger
from betty.problems import ImplicitProblem
from betty.utils import replace_none_with_zero
from tqdm.auto import tqdm

from agwm_betty.config import Config
from agwm_betty.core.fused_kernels import gradients_for
from agwm_betty.core.hypergradients import BETTY_TYPES, group_lrs, resolve_hypergradient
from agwm_betty.core.signal_probe import SignalProbe
from agwm_betty.core.surgery import alpha_parameters, clamp_alphas_, task_parameters
from agwm_betty.core.train_loop import divergence_error, task_loss
from agwm_betty.runs import torchrun
from agwm_betty.runs.run_log import RunLog, alpha_curves, alpha_reference, hypergradient_norms, total_norm
from agwm_betty.runs.torchrun import DISTRIBUTED_STRATEGIES, DistributedEngine

get_logger().setLevel(logging.WARNING)  # Betty logs every problem's wiring at INFO on stdout

# Host syncs: a level keeps its losses, their finiteness and the clamp share on the device and
# reads them back every FINITE_CHECK_EVERY of its steps and when the engine's run ends, rather
# than every step (a read of a device value waits for every queued kernel). What a search step
# still reads is darts' eps = radius / ||v|| (a Python float in Betty's darts, once per outer
# step), and at log steps the logged values (tests/test_host_syncs.py counts them).
FINITE_CHECK_EVERY = 16


class _SharedModuleProblem(ImplicitProblem):
    """A level that owns only part of the shared module's parameters; it records its losses.

    The overrides below replace the parts of Betty 0.2.1 that assume a module per problem, CUDA
    or a batch per rank (see `agwm_betty.runs.torchrun`); on one process they change nothing but
    autocast on CPU (Betty's is CUDA-only, docs/betty.md#pitfall-8)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.losses: list[float] = []
        self.batch_weight = 1.0  # this rank's share of the global batch (data parallel)
        self._params: list | None = None
        self._diverged: tuple[torch.Tensor, torch.Tensor] | None = None  # (first bad step or -1, its loss)

    def parameters(self):
        # Betty asks for these several times per step (darts: 7); the split never changes.
        if self._params is None:
            self._params = self.owned_parameters()
        return self._params

    trainable_parameters = parameters  # what Betty's optimizer, cg and parameter sync use

    def owned_parameters(self) -> list:
        raise NotImplementedError

    def log_due(self) -> bool:
        """Whether this step's stats go to the logger (Betty's `log_step`, counted per level)."""
        return self.log_step > 0 and self._count % self.log_step == 0

    def log(self, stats, global_step):
        # Betty's `log` first formats an INFO line (silenced above) by reading each tensor back
        # alone; the run's logger (agwm_betty.runs.run_log) reads them back in one transfer.
        step = self._count if global_step is None or self.log_local_step else global_step
        self.logger.log(stats, tag=self._name, step=step)

    def one_step_descent(self, batch=None):
        lr = self.optimizer.param_groups[0]["lr"]  # the lr of the step about to be taken
        loss_dict = super().one_step_descent(batch)
        self.losses.append(loss_dict["loss"])
        if self._count % FINITE_CHECK_EVERY == 0:
            self.raise_if_diverged()
        if self.log_due():
            loss_dict["lr"] = lr
        return loss_dict

    def get_loss(self, batch):
        # Betty's get_loss, but the loss it records stays a device tensor (Betty calls .item())
        out = self.training_step_exec(batch)
        loss = out["loss"] if isinstance(out, dict) else out
        loss_dict = {**(out if isinstance(out, dict) else {}), "loss": loss.detach()}
        if self.scaler is not None:
            loss = self.scaler.scale(loss)
        return loss / self.gas, loss_dict

    def watch_finite(self, loss: torch.Tensor) -> None:
        """Note on the device whether `loss` is finite; `raise_if_diverged` reads it back later."""
        loss = loss.detach().float()
        bad = ~torch.isfinite(loss).all()
        if self._diverged is None:
            self._diverged = (torch.full((), -1, dtype=torch.long, device=loss.device), loss.reshape(-1)[0])
        step, value = self._diverged
        first = bad & (step < 0)
        self._diverged = (torch.where(first, self._count, step), torch.where(first, loss.reshape(-1)[0], value))

    def raise_if_diverged(self) -> None:
        """Raise `DivergenceError` naming the first step whose loss was not finite (one host read)."""
        if self._diverged is not None:
            step, value = torch.stack([self._diverged[0].to(self._diverged[1]), self._diverged[1]]).tolist()
            if step >= 0:
                raise divergence_error(value, self.phase, int(step))

    def finish(self) -> None:
        """At the end of a run: the deferred finiteness check, and the losses read back as floats."""
        self.raise_if_diverged()
        if self.losses and torch.is_tensor(self.losses[-1]):
            self.losses = torch.stack([torch.as_tensor(v).float() for v in self.losses]).tolist()

    def param_groups(self):
        # Betty rebuilds the optimizer from these (docs/betty.md#pitfall-2 and #pitfall-3): keep the groups we built
        # (no weight decay on biases / LayerNorm), same count as the scheduler's lambdas.
        return [dict(group) for group in self.optimizer.param_groups]

    def training_step_exec(self, batch):
        if self.precision == "fp32":
            return self.training_step(batch)
        with torch.autocast(device_type=torch.device(self.device).type, dtype=self.dtype):
            return self.training_step(batch)

    # ---- data parallel (strategy distributed / zero): one module, no DDP, sliced global batches

    def patch_module(self):
        if self._strategy not in DISTRIBUTED_STRATEGIES:
            return super().patch_module()
        self.module.to(self.device)
        self.synchronize_params(self.parameters())  # same start on every rank

    def patch_data_loader(self, loader):
        if self._strategy not in DISTRIBUTED_STRATEGIES:
            return super().patch_data_loader(loader)
        return torchrun.ShardedLoader(loader, self._world_size or 1, self._rank or 0)

    def get_batch(self):
        batch = super().get_batch()
        self.batch_weight = torchrun.pop_weight(batch)
        return batch

    def grad_callback(self):
        if self._strategy in DISTRIBUTED_STRATEGIES:
            torchrun.all_reduce_grads_(self.trainable_parameters(), self.batch_weight)


class Inner(_SharedModuleProblem):
    """Stage I: the task weights W minimise the loss on BLO-train (eq. 5's G: weight decay lambda_1
    in the optimiser, and as an explicit ||W||^2 term when `l2` > 0)."""

    phase = "search phase (inner step, BLO-train)"
    l2 = 0.0
    repeat_step = False  # Betty 0.2.0's roll-back as the official code ran it (see `configure`)

    def training_step(self, batch):
        loss = task_loss(self.module, batch)
        self.watch_finite(loss)
        if self.l2:
            loss = loss + self.l2 * sum((p * p).sum() for p in self.parameters())
        return loss

    def owned_parameters(self):
        return task_parameters(self.module)

    def one_step_descent(self, batch=None):
        self.step_lrs = group_lrs(self)  # eta_w of this step, for darts-paper (read after the step)
        return super().one_step_descent(batch)

    def configure(self, cfg: Config) -> None:
        """Set what the engine's wiring cannot: the explicit L2 term and the repeated step.

        `repeat_inner_step` replays Betty 0.2.0 with `roll_back=True`: its state cache aliased the
        live tensors, so "recovering" restored nothing and the inner problem stepped a second time
        on the same BLO-train batch with the new alpha, its schedule advancing once per pair. Here
        Betty 0.2.1's own roll-back path runs with a cache that keeps and restores nothing."""
        self.l2 = cfg.inner_l2
        self.repeat_step = cfg.repeat_inner_step
        if self.repeat_step:
            self._roll_back = True

    def backward(self, loss, params, paths, create_graph=False, retain_graph=True, allow_unused=True):
        # the inner step asks for W's gradients alone: the mixup layers skip the alphas' (gradients_for)
        if paths or create_graph:
            return super().backward(loss, params, paths, create_graph, retain_graph, allow_unused)
        with gradients_for("task"):
            return super().backward(loss, params, paths, create_graph, retain_graph, allow_unused)

    def cache_states(self):
        if not self.repeat_step:
            super().cache_states()

    def recover_states(self, clean=True):
        if not self.repeat_step:
            super().recover_states(clean)


class Outer(_SharedModuleProblem):
    """Stage II: the alphas minimise the loss on BLO-val at the inner problem's current W."""

    phase = "search phase (outer step, BLO-val)"
    single_backward = True  # False: Betty's own two-pass backward (kept for comparison)
    probe: SignalProbe | None = None  # signal diagnostics at a few outer steps

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.clamp_moved = 0.0  # L1 size of the alpha updates the optimiser made
        self.clamp_undone = 0.0  # L1 size of what the clamp to [0, 1] took back from them
        self.alpha_start: dict | None = None  # alpha factors at the start, when curves are logged
        self._direct: list | None = None  # at a log step: alpha's direct term, before the implicit one
        self._hypergradient: dict = {}

    def training_step(self, batch):
        loss = task_loss(self.inner, batch)
        self.watch_finite(loss)
        return loss

    def owned_parameters(self):
        return alpha_parameters(self.module)

    def one_step_descent(self, batch=None):
        if self.probe is not None and self._count in self.probe.at:
            self.probe.measure(self, self._count)
        self._before_step = [p.detach().clone() for p in self.parameters()]
        loss_dict = super().one_step_descent(batch)
        if self.log_due():  # device tensors: the logger reads them back together
            loss_dict.update(clamp_share=self._clamp_share(), hypergradient=self._hypergradient,
                             alpha=alpha_curves(self.module, self.alpha_start) if self.alpha_start else None)
        return loss_dict

    def param_callback(self):
        stepped = [p.detach().clone() for p in self.parameters()]
        clamp_alphas_(self.module)
        with torch.no_grad():  # float64 sums kept on the device: read back when the share is asked for
            self.clamp_moved = self.clamp_moved + _l1(s - b for b, s in zip(self._before_step, stepped, strict=True))
            self.clamp_undone = self.clamp_undone + _l1(s - p for s, p in zip(stepped, self.parameters(), strict=True))

    def _clamp_share(self):
        """`clamp_undone_share` as a device tensor (no host read), or 0.0 before any outer step."""
        moved = torch.as_tensor(self.clamp_moved)
        return torch.where(moved > 0, self.clamp_undone / moved.clamp_min(1e-300), 0.0)

    @property
    def clamp_undone_share(self) -> float:
        """Share of the alpha updates (L1) that the clamp to [0, 1] undid."""
        return float(self._clamp_share())

    def grad_callback(self):
        # The direct term is already global (see backward); what is left is the hypergradient,
        # a mean over the inner problem's BLO-train batch, hence the inner's weight.
        if self._strategy in DISTRIBUTED_STRATEGIES:
            torchrun.all_reduce_grads_(self.trainable_parameters(), self.inner.batch_weight)
        if self.log_due():  # the direct term is None when Betty's own backward ran: the total alone
            total = [p.grad for p in self.trainable_parameters()]
            self._hypergradient = (hypergradient_norms(self._direct, total) if self._direct is not None
                                   else {"total_norm": total_norm(total)})
            self._direct = None

    def backward(self, loss, params, paths, create_graph=False, retain_graph=True, allow_unused=True):
        """Betty's outer backward, with one backward pass of the outer loss instead of two.

        Betty differentiates the outer loss for alpha (retaining the graph) and then again, in
        `betty.hypergradient.get_grads`, for the inner W (the vector v of the hypergradient).
        One `autograd.grad` call gives both; the rest is get_grads' loop over the path verbatim.
        Any other set-up (several paths, second order, gradient accumulation) goes to Betty."""
        if not self.single_backward or len(paths) != 1 or create_graph or not self.config.first_order \
                or self.gas != 1:
            return super().backward(loss, params, paths, create_graph, retain_graph, allow_unused)
        path = paths[0]  # [outer, inner, outer]
        if path[1].config.type == BETTY_TYPES["first-order"]:  # the direct term alone: no v
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            if self._strategy in DISTRIBUTED_STRATEGIES:
                torchrun.all_reduce_([g for g in grads if g is not None], self.batch_weight)
            self.set_grads(params, grads)
            if self.log_due():
                self._direct = list(grads)
            return
        inner_params = path[1].meta_trainable_parameters()
        grads = torch.autograd.grad(loss, [*params, *inner_params], allow_unused=True)
        direct, vector = grads[:len(params)], grads[len(params):]
        vector = replace_none_with_zero(vector, inner_params)
        if self._strategy in DISTRIBUTED_STRATEGIES:
            # v and the direct term are means over the BLO-val batch: make them global before
            # darts perturbs W by eps * v (grad_callback later averages the BLO-train part)
            torchrun.all_reduce_([g for g in direct if g is not None] + list(vector), self.batch_weight)
        self.set_grads(params, direct)
        if self.log_due():  # set_grads adds the implicit term out of place: these stay the direct term
            self._direct = list(direct)
        for i in range(1, len(path) - 1):
            jvp_fn = jvp_fn_mapping[path[i].config.type]
            vector = jvp_fn(vector, path[i], path[i + 1], i == len(path) - 2)


def _l1(tensors) -> torch.Tensor:
    """Sum of absolute entries over tensors, in float64, on the device."""
    return torch.stack([t.abs().sum(dtype=torch.float64) for t in tensors]).sum()


class SearchEngine(DistributedEngine):
    """Betty's engine (CPU-capable data parallelism) with a progress bar over the global (inner) steps,
    and the run's own logger in place of the one Betty would build from `logger_type`."""

    def __init__(self, problems, *args, desc: str = "search phase", show: bool = True,
                 logger: RunLog | None = None, **kwargs):
        self._desc, self._show = desc, show
        for problem in problems if logger is not None else ():
            problem.add_logger(logger)  # Betty keeps a problem's logger given before the engine's
        super().__init__(problems, *args, **kwargs)

    def parse_config(self):
        super().parse_config()
        # Betty's factory would open its logger of this type in ./betty_tensorboard (a fixed path);
        # the problems hold the run's logger of the same type, writing to the run's directory.
        self.logger_type = "none"

    def run(self):
        self._bar = tqdm(total=self.train_iters, desc=self._desc, leave=False, disable=not self._show)
        try:
            super().run()
        finally:
            self._bar.close()
        for problem in self.problems:
            problem.finish()

    def train_step(self):
        super().train_step()
        self._bar.update(1)


def release(engine: SearchEngine) -> None:
    """Free a finished split's engine at once: Betty links the problems both ways (`inner.outer`,
    `outer.inner`, their paths) and each to the module, its optimiser, loaders and last batch, a
    reference cycle that only a full garbage collection would free, whenever one runs. Clearing the
    engine's and problems' attributes cuts every edge; reference counting then frees what no one
    else holds (the model stays with its caller). Read what you need from them first."""
    for problem in engine.problems:
        problem.__dict__.clear()
    engine.__dict__.clear()


def problem_configs(cfg: Config, log_step: int = -1) -> tuple[ProblemConfig, ProblemConfig]:
    """Betty configs of the inner and outer problems from our `Config`; each logs every `log_step`
    of its own steps (-1: never), on the global (inner) step axis."""
    kind = resolve_hypergradient(cfg.hypergradient)  # a user's package.module:function is registered here too
    inner = ProblemConfig(
        type=kind,
        unroll_steps=cfg.unroll_steps,
        gradient_clipping=cfg.search_max_grad_norm,
        precision=cfg.precision,
        darts_alpha=cfg.darts_alpha,  # Betty reads a hypergradient's settings from the inner config
        neumann_iterations=cfg.ift_iterations,
        neumann_alpha=cfg.ift_alpha,
        cg_iterations=cfg.ift_iterations,
        cg_alpha=cfg.ift_alpha,
        log_step=log_step,
    )
    outer = ProblemConfig(
        type=kind,
        first_order=True,  # gates the hypergradient in Betty 0.2.1 (docs/betty.md#pitfall-5)
        retain_graph=True,  # only Betty's own outer backward needs it (see Outer.backward)
        precision=cfg.precision,
        log_step=log_step,
    )
    return inner, outer


def engine_config(cfg: Config, steps: int) -> EngineConfig:
    """Roll-back stays off: it restores the shared module and so undoes the alpha step (docs/betty.md#pitfall-1)."""
    strategy = cfg.strategy
    if strategy == "default" and cfg.device:
        strategy = "gpu" if cfg.device.startswith("cuda") else "cpu"
    backend = "nccl" if cfg.device.startswith("cuda") or (not cfg.device and _cuda()) else "gloo"
    return EngineConfig(
        train_iters=steps, valid_step=steps + 1, roll_back=False, logger_type=cfg.report_to,
        strategy=strategy, backend=backend,
    )


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def build_engine(
    module, train_loader, val_loader, optimizers: dict, schedulers: dict, cfg: Config, steps: int,
    learn_alpha: bool = True, desc: str = "search", log: RunLog | None = None,
) -> SearchEngine:
    """Wire inner (and, when alphas are learned, outer) problems into a Betty engine for `steps`;
    with a `log`, both levels log their curves into it (Betty's `log_step` = `cfg.log_every`)."""
    inner_cfg, outer_cfg = problem_configs(cfg, cfg.log_every if log is not None else -1)
    inner = Inner("inner", inner_cfg, module=module, optimizer=optimizers["inner"],
                  scheduler=schedulers["inner"], train_data_loader=train_loader)
    problems, deps = [inner], {"u2l": {}, "l2u": {}}
    if learn_alpha:
        outer = Outer("outer", outer_cfg, module=module, optimizer=optimizers["outer"],
                      scheduler=schedulers["outer"], train_data_loader=val_loader)
        problems.insert(0, outer)
        deps = {"u2l": {outer: [inner]}, "l2u": {inner: [outer]}}
        if log is not None:
            outer.alpha_start = alpha_reference(module)
    engine = SearchEngine(problems=problems, config=engine_config(cfg, steps), dependencies=deps,
                          desc=desc, show=cfg.progress, logger=log)
    inner.configure(cfg)  # without an outer problem a repeated step keeps the controls' W updates matched
    return engine
