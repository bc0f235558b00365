"""Every method by its `--methods` name, behind one interface (`Method.run`)."""
from __future__ import annotations

import functools
from typing import Any

from agwm_betty.config import Config, MethodConfig
from agwm_betty.methods.agwm import AGWM, Joint, MeanAlpha, RandomAlpha, VanillaMatched
from agwm_betty.methods.base import FinetuneMethod, Method, RunContext, RunResult
from agwm_betty.methods.consistency import R3F, RDrop
from agwm_betty.methods.mixout import Mixout
from agwm_betty.methods.parameter_efficient import LoRA, PrefixTuning, PromptTuning
from agwm_betty.methods.reinit import ReInit
from agwm_betty.methods.setfit import SetFit
from agwm_betty.methods.soup import Soup
from agwm_betty.methods.subnetwork import DPS, ChildTuningD

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        FinetuneMethod(), AGWM(), Joint(), RandomAlpha(), MeanAlpha(), VanillaMatched(),  # the paper, ablations
        Mixout(), R3F(), RDrop(), ReInit(), ChildTuningD(), DPS(),  # regularisation baselines (table 3)
        LoRA(), PrefixTuning(), PromptTuning(),  # parameter-efficient baselines (table 9)
        Soup(),  # model soup (table 10)
        SetFit(),  # what a user would otherwise pick (the setfit library; extra agwm-betty[setfit])
    )
}


# each method's own config class, by --methods name (the methods without options of their own have none)
METHOD_CONFIGS: dict[str, type[MethodConfig]] = {m.name: m.config_class for m in METHODS.values() if m.config_class}


@functools.cache
def setting_defaults() -> dict[str, Any]:
    """Every setting's default by name: the shared config's and each method's own (their names never
    collide): what a run's identity leaves out (`runs.records.run_id`)."""
    shared = Config()
    defaults = {name: getattr(shared, name) for name in Config.field_names()}
    for config_class in METHOD_CONFIGS.values():
        defaults.update(config_class().to_dict())
    return defaults


def get_method(name: str) -> Method:
    """The method registered as `name`; ValueError listing the valid names otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None


__all__ = ["METHOD_CONFIGS", "METHODS", "Method", "RunContext", "RunResult", "get_method", "setting_defaults"]
