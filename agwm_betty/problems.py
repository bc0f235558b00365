"""The two levels of the search phase as Betty problems (section 3.2, eq. 1 and 2).

Both problems share one module: the inner problem owns the task parameters (W, biases,
LayerNorms, head), the outer problem owns the alphas. Betty computes the outer hypergradient
(`darts` by default: finite differences, appendix A) from the inner problem's training step.
"""
from __future__ import annotations

import logging

from betty.configs import Config as ProblemConfig
from betty.configs import EngineConfig
from betty.engine import Engine
from betty.problems import ImplicitProblem
from betty.logging.logger_base import get_logger
from tqdm.auto import tqdm

from agwm_betty.config import Config
from agwm_betty.mixup import alpha_parameters, clamp_alphas_, task_parameters
from agwm_betty.train import check_finite, task_loss

get_logger().setLevel(logging.WARNING)  # Betty logs every problem's wiring at INFO on stdout


class _SharedModuleProblem(ImplicitProblem):
    """A level that owns only part of the shared module's parameters; it records its losses."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.losses: list[float] = []

    def one_step_descent(self, batch=None):
        loss_dict = super().one_step_descent(batch)
        self.losses.append(loss_dict["loss"])
        return loss_dict

    def param_groups(self):
        # Betty rebuilds the optimizer from these (BETTY_NOTES 2, 3): keep the groups we built
        # (no weight decay on biases / LayerNorm), same count as the scheduler's lambdas.
        return [dict(group) for group in self.optimizer.param_groups]


class Inner(_SharedModuleProblem):
    """Stage I: the task weights W minimise the loss on BLO-train (weight decay lambda_1 via AdamW)."""

    phase = "search phase (inner step, BLO-train)"

    def training_step(self, batch):
        loss = task_loss(self.module, batch)
        check_finite(loss, self.phase, self._count)
        return loss

    def trainable_parameters(self):
        return task_parameters(self.module)

    parameters = trainable_parameters  # what Betty's cg and parameter sync differentiate/broadcast


class Outer(_SharedModuleProblem):
    """Stage II: the alphas minimise the loss on BLO-val at the inner problem's current W."""

    phase = "search phase (outer step, BLO-val)"

    def training_step(self, batch):
        loss = task_loss(self.inner, batch)
        check_finite(loss, self.phase, self._count)
        return loss

    def trainable_parameters(self):
        return alpha_parameters(self.module)

    parameters = trainable_parameters

    def param_callback(self):
        clamp_alphas_(self.module)


class SearchEngine(Engine):
    """Betty's engine with a progress bar over the global (inner) steps."""

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
        retain_graph=True,  # the outer loss is differentiated for alpha, then for W (the darts vector)
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
