"""agwm-betty: attention-guided weight mixup learned by bi-level optimization, on Betty."""
from agwm_betty._betty import check_betty

BETTY_VERSION = check_betty()

from agwm_betty._version import __version__ as __version__  # noqa: E402
from agwm_betty.config import Config  # noqa: E402
from agwm_betty.experiment import CustomTask, Experiment  # noqa: E402
from agwm_betty.hypergradients import register_hypergradient  # noqa: E402
from agwm_betty.methods import METHODS, RunContext, RunResult, get_method  # noqa: E402
from agwm_betty.mixup import (  # noqa: E402
    MixupLinear,
    alpha_parameters,
    alpha_state_dict,
    apply_mixup,
    clamp_alphas_,
    load_alpha_state_dict,
    load_alphas,
    merge_mixup,
    save_alphas,
    task_parameters,
)
from agwm_betty.plm import load_plm, resolve_plm  # noqa: E402
from agwm_betty.search import SearchResult, finetune_phase, search_phase  # noqa: E402
from agwm_betty.sweep import run_sweep  # noqa: E402


def __getattr__(name: str):
    """`agwm_betty.AGWMTrainer`, imported when first asked for (it imports transformers.Trainer)."""
    if name == "AGWMTrainer":
        from agwm_betty.trainer import AGWMTrainer

        return AGWMTrainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AGWMTrainer",
    "Config", "CustomTask", "Experiment", "METHODS", "MixupLinear", "RunContext", "RunResult", "SearchResult",
    "alpha_parameters", "alpha_state_dict", "apply_mixup", "clamp_alphas_", "finetune_phase", "get_method",
    "load_alpha_state_dict", "load_alphas", "load_plm", "merge_mixup", "register_hypergradient", "resolve_plm",
    "run_sweep", "save_alphas", "search_phase", "task_parameters",
]
