"""The method (search + finetune) and its ablations: random-alpha, mean-alpha, vanilla-matched, joint training."""
from __future__ import annotations

import time

import torch
from torch import nn

from agwm_betty.config import ALPHA_FIELDS, MIXUP_FIELDS, SEARCH_FIELDS, TRAINING_FIELDS
from agwm_betty.core import saved_search
from agwm_betty.core.phases import finetune_phase, search_phase
from agwm_betty.core.surgery import (
    alpha_factors,
    alpha_parameters,
    apply_mixup,
    clamp_alphas_,
    load_alpha_state_dict,
    mixup_layers,
    module_alpha_means,
    named_task_parameters,
    set_alphas_trainable,
)
from agwm_betty.core.train_loop import Hooks, decay_groups
from agwm_betty.methods.base import FinetuneMethod, Method, RunContext, RunResult


class TwoPhase(Method):
    """Search phase on K splits, K-average, finetune phase: shared by agwm and its controls."""

    mixup = True
    learn_alpha = True

    def alpha_init(self, ctx: RunContext) -> tuple[float, float]:
        return ctx.cfg.alpha_init_mean, ctx.cfg.alpha_init_std

    def set_alphas(self, model: nn.Module, ctx: RunContext) -> dict:
        """Change the freshly drawn alphas before the search (none do but mean-alpha); return diagnostics."""
        return {}

    def run(self, ctx: RunContext) -> RunResult:
        cfg = ctx.cfg
        model = ctx.new_model()
        extra = {}
        if self.mixup:
            mean, std = self.alpha_init(ctx)
            apply_mixup(model, rank=cfg.rank, init_mean=mean, init_std=std, exclude_modules=ctx.exclude_modules,
                        form=cfg.alpha_form, param=cfg.alpha_param)
            extra = self.set_alphas(model, ctx)
        if ctx.alphas_from is not None:
            return self.run_from_saved(ctx, model)
        alphas_before = alpha_factors(model)
        keep = ctx.keep_search and self.mixup
        search = search_phase(model, ctx.train, ctx.tokenizer, cfg, seed=ctx.seed, learn_alpha=self.learn_alpha,
                              log=ctx.log, keep_state=keep)
        if ctx.log is not None and ctx.log.report_to != "none":  # dev metrics as the search left the model
            ctx.log.log(ctx.evaluate(model), tag="eval/search", step=search.steps_per_split)
        saved = saved_search.capture(search.state) if keep else None  # with the finetune phase's random state
        search.state = None
        started = time.perf_counter()
        losses = finetune_phase(model, ctx.train, ctx.tokenizer, cfg, seed=ctx.seed, log=ctx.log)
        times = {"search": search.seconds, "finetune": time.perf_counter() - started}
        steps = {"search": search.steps_per_split * cfg.K, "search_per_split": search.steps_per_split,
                 "finetune": len(losses)}
        result = self.result(ctx, model, times, steps, **_diagnostics(search, alphas_before, model), **extra)
        result.search = saved
        return result

    def run_from_saved(self, ctx: RunContext, model: nn.Module) -> RunResult:
        """The finetune phase alone from a saved search (`--alphas-from`): alphas fixed at the saved
        ones, W at the pretrained weights or, with `ctx.reuse_task_weights`, at the searched ones."""
        if not self.mixup:
            raise ValueError(f"{self.name} has no alpha to reuse")
        saved_search.apply(model, ctx.alphas_from, task_weights=ctx.reuse_task_weights)
        started = time.perf_counter()
        losses = finetune_phase(model, ctx.train, ctx.tokenizer, ctx.cfg, seed=ctx.seed, log=ctx.log)
        return self.result(ctx, model, {"finetune": time.perf_counter() - started}, {"finetune": len(losses)})


def _diagnostics(search, alphas_before: dict, model: nn.Module) -> dict:
    """Did the alphas move (largest change of an alpha1/alpha2 entry in [0, 1]; the change of each
    layer's mean effective alpha, the pattern compared across tasks), did the outer loss fall: the
    first questions when agwm does not help."""
    out = {}
    after = alpha_factors(model)
    if after:
        out["alpha_max_abs_change"] = max((after[k] - alphas_before[k]).abs().max().item() for k in after)
        before_means = module_alpha_means(alphas_before)
        out["alpha_change_per_module"] = {
            name: mean - before_means[name] for name, mean in module_alpha_means(after).items()}
    for level, traces in (("inner", search.inner_losses), ("outer", search.outer_losses)):
        traces = [t for t in traces if t]
        if traces:
            tenth = max(1, min(len(t) for t in traces) // 10)
            out[f"{level}_loss_first"] = float(torch.tensor([t[:tenth] for t in traces]).mean())
            out[f"{level}_loss_last"] = float(torch.tensor([t[-tenth:] for t in traces]).mean())
    out.update(_signal_summary(search))
    return out


def _signal_summary(search) -> dict:
    """Is there a task signal in alpha's hypergradient? The per-split probe records (cosine between
    two BLO-val batches' hypergradients, direct / implicit norms) and their means over splits and
    points, and the share of alpha updates the clamp to [0, 1] undid."""
    out = {}
    if search.clamp_undone_share:
        out["clamp_undone_share"] = sum(search.clamp_undone_share) / len(search.clamp_undone_share)
    points = [r for split in search.signal for r in split]
    if points:
        out["signal"] = search.signal
        for key in ("cosine", "cosine_direct", "cosine_implicit", "direct_norm", "implicit_norm"):
            values = [r[key] for r in points if r[key] is not None]
            out[f"signal_{key}"] = sum(values) / len(values) if values else None
    return out


class AGWM(TwoPhase):
    name = "agwm"
    description = "attention-guided weight mixup, alpha learned by bi-level optimisation (the paper)"
    hparams = TRAINING_FIELDS + SEARCH_FIELDS + ALPHA_FIELDS + MIXUP_FIELDS


class RandomAlpha(TwoPhase):
    name = "random-alpha"
    description = "ablation: alphas ~ N(1, sigma) clipped to [0, 1] and frozen; same pipeline as agwm"
    learn_alpha = False
    hparams = TRAINING_FIELDS + SEARCH_FIELDS + ("rank", "sigma") + MIXUP_FIELDS

    def alpha_init(self, ctx: RunContext) -> tuple[float, float]:
        return 1.0, ctx.cfg.sigma


class MeanAlpha(RandomAlpha):
    name = "mean-alpha"
    description = ("ablation: random-alpha with each layer's alpha1 and alpha2 set to the means of agwm's "
                   "searched ones (same task and seed): agwm's amount of mixing per layer, no pattern")
    needs_search_of = "agwm"
    hparams = TRAINING_FIELDS + SEARCH_FIELDS + ALPHA_FIELDS + ("sigma",) + MIXUP_FIELDS  # agwm's search: its alphas

    def set_alphas(self, model: nn.Module, ctx: RunContext) -> dict:
        """After random-alpha's draws (so every later random draw is random-alpha's), each layer's
        alpha1[:, k] and alpha2[k, :] become the means of agwm's: F(alpha1, alpha2) and
        F(1 - alpha1, 1 - alpha2) are then constant over the layer, equal to the means of agwm's."""
        if ctx.searched is None:
            raise ValueError("mean-alpha needs agwm's saved search of the same task and seed (RunContext.searched)")
        load_alpha_state_dict(model, ctx.searched.alphas)  # agwm's alphas, checked to fit this model
        factors = alpha_factors(model)
        with torch.no_grad():
            for name, layer in mixup_layers(model).items():
                mean1 = factors[f"{name}.alpha1"].mean(0, keepdim=True).expand_as(layer.alpha1)
                mean2 = factors[f"{name}.alpha2"].mean(1, keepdim=True).expand_as(layer.alpha2)
                for alpha, mean in ((layer.alpha1, mean1.to(layer.alpha1)), (layer.alpha2, mean2.to(layer.alpha2))):
                    alpha.copy_(mean.logit(eps=1e-6) if layer.param == "sigmoid" else mean)
        return {"alpha_per_module_from_agwm": module_alpha_means(factors)}


class VanillaMatched(TwoPhase):
    name = "vanilla-matched"
    description = "control: no mixup, same search-phase updates, K-averaging and finetune as agwm"
    mixup = False
    learn_alpha = False
    hparams = TRAINING_FIELDS + SEARCH_FIELDS


class JointHooks(Hooks):
    def after_step(self, model: nn.Module, step: int) -> None:
        clamp_alphas_(model)


class Joint(FinetuneMethod):
    name = "joint"
    description = "ablation: W and alpha trained together on the whole training set, no BLO"
    hparams = TRAINING_FIELDS + ALPHA_FIELDS + MIXUP_FIELDS

    def prepare(self, model: nn.Module, ctx: RunContext) -> nn.Module:
        cfg = ctx.cfg
        apply_mixup(model, rank=cfg.rank, init_mean=cfg.alpha_init_mean, init_std=cfg.alpha_init_std,
                    exclude_modules=ctx.exclude_modules, form=cfg.alpha_form, param=cfg.alpha_param)
        return model

    def param_groups(self, model: nn.Module, ctx: RunContext) -> list[dict]:
        cfg = ctx.cfg
        set_alphas_trainable(model, True)
        alpha_group = {"params": alpha_parameters(model), "lr": cfg.alpha_lr,
                       "weight_decay": cfg.alpha_weight_decay, "betas": (cfg.alpha_beta1, cfg.alpha_beta2),
                       "eps": cfg.alpha_eps}
        return decay_groups(named_task_parameters(model), cfg.weight_decay) + [alpha_group]

    def hooks(self, model: nn.Module, ctx: RunContext) -> Hooks:
        return JointHooks()
