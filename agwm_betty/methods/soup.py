"""Uniform model soup (Wortsman et al. 2022; paper appendix H): the element-wise mean of vanilla
models finetuned on the same training set from different seeds."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from agwm_betty.config import TRAINING_FIELDS, MethodConfig, option, require_count
from agwm_betty.core.phases import average_states, snapshot
from agwm_betty.methods.base import FinetuneMethod, Method, RunContext, RunResult

MEMBER_SEED_STRIDE = 1000


def member_seed(seed: int, i: int) -> int:
    """Seed of the soup's i-th member: member 0 is the vanilla run of `seed` itself, the others
    shift by multiples of 1000, so the members of different runs (seeds < 1000) never coincide."""
    return seed + MEMBER_SEED_STRIDE * i


@dataclass
class SoupConfig(MethodConfig):
    """The soup's options."""

    soup_size: int = option(5, "number of vanilla models averaged")

    def validate(self) -> SoupConfig:
        require_count(self, "soup_size")
        return self


class Soup(Method):
    name = "soup"
    description = "uniform model soup (Wortsman et al. 2022): mean weights of soup_size vanilla models, other seeds"
    hparams = TRAINING_FIELDS + ("soup_size",)
    config_class = SoupConfig

    def run(self, ctx: RunContext) -> RunResult:
        vanilla = FinetuneMethod()
        states, seconds, steps, seeds = [], 0.0, 0, []
        for i in range(self.options(ctx.cfg).soup_size):
            seeds.append(member_seed(ctx.seed, i))
            log = None if ctx.log is None else ctx.log.scoped(f"member{i}")
            model, times, member_steps = vanilla.train(dataclasses.replace(ctx, seed=seeds[-1], log=log))
            states.append(snapshot(model))
            seconds += times["finetune"]
            steps += member_steps["finetune"]
        model.load_state_dict(average_states(states))
        return self.result(ctx, model, {"finetune": seconds}, {"finetune": steps}, member_seeds=seeds)
