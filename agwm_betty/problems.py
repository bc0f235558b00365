"""The two levels of the search phase as Betty problems (section 3.2, eq. 1 and 2).

Both problems share one module: the inner problem owns the task parameters (W, biases,
LayerNorms, head), the outer problem owns the alphas. Betty computes the outer hypergradient
(`darts` by default: finite differences, appendix A) from the inner problem's training step.
"""
from __future__ import annotations

import logging

import torch
from betty.configs import Config as ProblemConfig
from betty.configs import EngineConfig
from betty.hypergradient import jvp_fn_mapping
from betty.problems import ImplicitProblem
from betty.utils import replace_none_with_zero
from betty.logging.logger_base import get_logger
from tqdm.auto import tqdm

from agwm_betty import distributed
from agwm_betty.config import Config
from agwm_betty.distributed import DISTRIBUTED_STRATEGIES, DistributedEngine
from agwm_betty.mixup import alpha_parameters, clamp_alphas_, task_parameters
from agwm_betty.train import check_finite, task_loss

get_logger().setLevel(logging.WARNING)  # Betty logs every problem's wiring at INFO on stdout


class _SharedModuleProblem(ImplicitProblem):
    """A level that owns only part of the shared module's parameters; it records its losses.

    The overrides below replace the parts of Betty 0.2.1 that assume a module per problem, CUDA
    or a batch per rank (see `agwm_betty.distributed`); on one process they change nothing but
    autocast on CPU (Betty's is CUDA-only, BETTY_NOTES 8)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.losses: list[float] = []
        self.batch_weight = 1.0  # this rank's share of the global batch (data parallel)
        self._params: list | None = None

    def parameters(self):
        # Betty asks for these several times per step (darts: 7); the split never changes.
        if self._params is None:
            self._params = self.owned_parameters()
        return self._params

    trainable_parameters = parameters  # what Betty's optimizer, cg and parameter sync use

    def owned_parameters(self) -> list:
        raise NotImplementedError

    def one_step_descent(self, batch=None):
        loss_dict = super().one_step_descent(batch)
        self.losses.append(loss_dict["loss"])
        return loss_dict

    def param_groups(self):
        # Betty rebuilds the optimizer from these (BETTY_NOTES 2, 3): keep the groups we built
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
        return distributed.ShardedLoader(loader, self._world_size or 1, self._rank or 0)

    def get_batch(self):
        batch = super().get_batch()
        self.batch_weight = distributed.pop_weight(batch)
        return batch

    def grad_callback(self):
        if self._strategy in DISTRIBUTED_STRATEGIES:
            distributed.all_reduce_grads_(self.trainable_parameters(), self.batch_weight)


class Inner(_SharedModuleProblem):
    """Stage I: the task weights W minimise the loss on BLO-train (weight decay lambda_1 via AdamW)."""

    phase = "search phase (inner step, BLO-train)"

    def training_step(self, batch):
        loss = task_loss(self.module, batch)
        check_finite(loss, self.phase, self._count)
        return loss

    def owned_parameters(self):
        return task_parameters(self.module)


class Outer(_SharedModuleProblem):
    """Stage II: the alphas minimise the loss on BLO-val at the inner problem's current W."""

    phase = "search phase (outer step, BLO-val)"
    single_backward = True  # False: Betty's own two-pass backward (kept for comparison)

    def training_step(self, batch):
        loss = task_loss(self.inner, batch)
        check_finite(loss, self.phase, self._count)
        return loss

    def owned_parameters(self):
        return alpha_parameters(self.module)

    def param_callback(self):
        clamp_alphas_(self.module)

    def grad_callback(self):
        # The direct term is already global (see backward); what is left is the hypergradient,
        # a mean over the inner problem's BLO-train batch, hence the inner's weight.
        if self._strategy in DISTRIBUTED_STRATEGIES:
            distributed.all_reduce_grads_(self.trainable_parameters(), self.inner.batch_weight)

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
        inner_params = path[1].meta_trainable_parameters()
        grads = torch.autograd.grad(loss, [*params, *inner_params], allow_unused=True)
        direct, vector = grads[:len(params)], grads[len(params):]
        vector = replace_none_with_zero(vector, inner_params)
        if self._strategy in DISTRIBUTED_STRATEGIES:
            # v and the direct term are means over the BLO-val batch: make them global before
            # darts perturbs W by eps * v (grad_callback later averages the BLO-train part)
            distributed.all_reduce_([g for g in direct if g is not None] + list(vector), self.batch_weight)
        self.set_grads(params, direct)
        for i in range(1, len(path) - 1):
            jvp_fn = jvp_fn_mapping[path[i].config.type]
            vector = jvp_fn(vector, path[i], path[i + 1], i == len(path) - 2)


class SearchEngine(DistributedEngine):
    """Betty's engine (CPU-capable data parallelism) with a progress bar over the global (inner) steps."""

    def __init__(self, *args, desc: str = "search phase", show: bool = True, **kwargs):
        self._desc, self._show = desc, show
        super().__init__(*args, **kwargs)

    def run(self):
        self._bar = tqdm(total=self.train_iters, desc=self._desc, leave=False, disable=not self._show)
        try:
            super().run()
        finally:
            self._bar.close()

    def train_step(self):
        super().train_step()
        self._bar.update(1)


def problem_configs(cfg: Config) -> tuple[ProblemConfig, ProblemConfig]:
    """Betty configs of the inner and outer problems from our `Config`."""
    inner = ProblemConfig(
        type=cfg.hypergradient,
        unroll_steps=cfg.unroll_steps,
        gradient_clipping=cfg.max_grad_norm,
        precision=cfg.precision,
    )
    outer = ProblemConfig(
        type=cfg.hypergradient,
        first_order=True,  # gates the hypergradient in Betty 0.2.1 (BETTY_NOTES 5)
        retain_graph=True,  # only Betty's own outer backward needs it (see Outer.backward)
        darts_alpha=cfg.darts_alpha,
        sama_adam_alpha=cfg.darts_alpha,
        precision=cfg.precision,
    )
    return inner, outer


def engine_config(cfg: Config, steps: int) -> EngineConfig:
    """Roll-back stays off: it restores the shared module and so undoes the alpha step (BETTY_NOTES 1)."""
    strategy = cfg.strategy
    if strategy == "default" and cfg.device:
        strategy = "gpu" if cfg.device.startswith("cuda") else "cpu"
    backend = "nccl" if cfg.device.startswith("cuda") or (not cfg.device and _cuda()) else "gloo"
    return EngineConfig(
        train_iters=steps, valid_step=steps + 1, roll_back=False, logger_type="none",
        strategy=strategy, backend=backend,
    )


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def build_engine(
    module, train_loader, val_loader, optimizers: dict, schedulers: dict, cfg: Config, steps: int,
    learn_alpha: bool = True, desc: str = "search",
) -> SearchEngine:
    """Wire inner (and, when alphas are learned, outer) problems into a Betty engine for `steps`."""
    inner_cfg, outer_cfg = problem_configs(cfg)
    inner = Inner("inner", inner_cfg, module=module, optimizer=optimizers["inner"],
                  scheduler=schedulers["inner"], train_data_loader=train_loader)
    problems, deps = [inner], {"u2l": {}, "l2u": {}}
    if learn_alpha:
        outer = Outer("outer", outer_cfg, module=module, optimizer=optimizers["outer"],
                      scheduler=schedulers["outer"], train_data_loader=val_loader)
        problems.insert(0, outer)
        deps = {"u2l": {outer: [inner]}, "l2u": {inner: [outer]}}
    return SearchEngine(problems=problems, config=engine_config(cfg, steps), dependencies=deps,
                        desc=desc, show=cfg.progress)
