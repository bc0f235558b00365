"""Tasks, GLUE and custom data, the paper's subsets, BLO splits and loaders, from one import."""

from agwm_betty.data.custom import load_custom
from agwm_betty.data.glue_source import HUB_DATASET, load_glue, normalize_hub_split
from agwm_betty.data.loaders import make_loader, tokenize
from agwm_betty.data.splits import blo_splits
from agwm_betty.data.subsets import fingerprint, heldout, subsample
from agwm_betty.data.tasks import GLUE_TASKS, TASK_NAMES, DataError, TaskSpec, get_task

__all__ = [
    "GLUE_TASKS",
    "HUB_DATASET",
    "TASK_NAMES",
    "DataError",
    "TaskSpec",
    "blo_splits",
    "fingerprint",
    "get_task",
    "heldout",
    "load_custom",
    "load_glue",
    "make_loader",
    "normalize_hub_split",
    "subsample",
    "tokenize",
]


def __getattr__(name: str):
    """A submodule that moved in 0.3.0, read as an attribute the old way, with a warning."""
    from agwm_betty import _moved

    module = _moved.moved_attribute(__name__, name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return module
