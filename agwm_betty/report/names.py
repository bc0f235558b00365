"""Names and order of a report's rows: task display names, method labels and their sort keys."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

TASK_NAMES = {
    "cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B",
    "qqp": "QQP", "mnli": "MNLI", "qnli": "QNLI", "rte": "RTE",
}
METHOD_ORDER = (
    "vanilla", "agwm", "joint", "random-alpha", "vanilla-matched", "mixout", "r3f", "rdrop",
    "reinit", "child-tuning-d", "dps", "lora", "prefix", "prompt", "soup",
)
ABLATION_METHODS = ("agwm", "vanilla", "joint", "random-alpha", "vanilla-matched")


PAPER_HYPERGRADIENT = "darts-paper"  # eq. 6: the plain method label where hypergradients are mixed


def hypergradient_of(record: Mapping[str, Any]) -> str | None:
    """The hypergradient a record's run searched with (None where its method has no search)."""
    hparams = record.get("hparams")
    return hparams.get("hypergradient") if isinstance(hparams, Mapping) else None


def method_label(record: Mapping[str, Any], name_hypergradient: bool = False) -> str:
    """Row label of a record: its method, plus σ for random-alpha so each σ is its own row, and a
    mark for a run that reused a saved alpha (`--alphas-from`) instead of searching. With
    `name_hypergradient` (its method's runs use more than one), a hypergradient other than the
    paper's eq. 6 is named: `agwm (first-order)`."""
    method = str(record["method"])
    hparams = record.get("hparams")
    if method == "random-alpha" and isinstance(hparams, Mapping) and hparams.get("sigma") is not None:
        return f"random-alpha (σ={float(hparams['sigma']):g})"
    reused = record.get("alphas_from")
    if isinstance(reused, Mapping):
        return f"{method} (saved alpha{' + W' if reused.get('task_weights') else ''})"
    hypergradient = hypergradient_of(record)
    if name_hypergradient and hypergradient not in (None, PAPER_HYPERGRADIENT):
        return f"{method} ({hypergradient})"
    return method


def file_label(label: str) -> str:
    """A row label as a file-name part: `random-alpha (σ=0.005)` -> `random-alpha_sigma0.005`."""
    return label.replace(" (σ=", "_sigma").replace(" (", "_").replace(")", "").replace(" ", "_")


def label_key(label: str) -> tuple:
    """Sort labels in METHOD_ORDER, random-alpha rows by σ, a saved-alpha rerun or a named
    hypergradient after its method, unknown methods last by name."""
    match = re.fullmatch(r"(.+?)(?: \(σ=(.+)\)| \((.+)\))?", label)
    base, sigma, suffix = match.group(1), match.group(2), match.group(3)
    rank = METHOD_ORDER.index(base) if base in METHOD_ORDER else len(METHOD_ORDER)
    return (rank, base, float(sigma) if sigma else -1.0, suffix or "")


def task_key(task: str) -> tuple:
    """Sort tasks in the GLUE order of TASK_NAMES, custom tasks after by name."""
    names = list(TASK_NAMES)
    return (names.index(task) if task in names else len(names), task)


def task_name(task: str) -> str:
    """Display name of a task (GLUE spelling for GLUE tasks)."""
    return TASK_NAMES.get(task, task)


def n_name(n: int) -> str:
    """Display a training-set size; 0 means the full training set."""
    return "full" if int(n) == 0 else str(int(n))
