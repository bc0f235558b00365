"""Module paths that moved in 0.3.0 (#46), still importable from where they were, with a warning.

`install()` puts a finder on `sys.meta_path` that answers each old path with the module now at the
new one (the same module object, so `isinstance` checks and monkeypatching see one thing) and warns
`DeprecationWarning` once a path. CHANGELOG.md lists the same table.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED: dict[str, str] = {  # old path -> new path
    "agwm_betty._betty": "agwm_betty.core.betty_compat",
    "agwm_betty.mixup": "agwm_betty.core.surgery",
    "agwm_betty.fused_mixup": "agwm_betty.core.fused_kernels",
    "agwm_betty.compiled_mixup": "agwm_betty.core.compiled_kernels",
    "agwm_betty.hypergradients": "agwm_betty.core.hypergradients",
    "agwm_betty.problems": "agwm_betty.core.problems",
    "agwm_betty.search": "agwm_betty.core.phases",
    "agwm_betty.train": "agwm_betty.core.train_loop",
    "agwm_betty.reuse": "agwm_betty.core.saved_search",
    "agwm_betty.diagnostics": "agwm_betty.core.diagnostics",
    "agwm_betty.experiment": "agwm_betty.runs.experiment",
    "agwm_betty.sweep": "agwm_betty.runs.sweep",
    "agwm_betty.workers": "agwm_betty.runs.pool",
    "agwm_betty.distributed": "agwm_betty.runs.torchrun",
    "agwm_betty.records": "agwm_betty.runs.records",
    "agwm_betty.curves": "agwm_betty.runs.curve_files",
    "agwm_betty.memory": "agwm_betty.runs.memory",
    "agwm_betty.jsonlines": "agwm_betty.runs.jsonlines",
    "agwm_betty.plm": "agwm_betty.models.plm",
    "agwm_betty.weights": "agwm_betty.models.weight_files",
    "agwm_betty.trainer": "agwm_betty.hf_trainer",
    "agwm_betty.metric_scripts": "agwm_betty.metrics",
    "agwm_betty.metric_scripts.glue": "agwm_betty.metrics.glue_metric",
    "agwm_betty.paper_tables": "agwm_betty.report.paper_numbers",
    "agwm_betty.report.records": "agwm_betty.report.selection",
    "agwm_betty.data.glue": "agwm_betty.data.glue_source",
    "agwm_betty.cli.glue": "agwm_betty.cli.agwm_glue",
    "agwm_betty.cli.report": "agwm_betty.cli.agwm_report",
    "agwm_betty.cli.weights": "agwm_betty.cli.agwm_weights",
}
# `agwm_betty.metrics` was a module and is now a package: its names live in `metrics.scores`
# and the package re-exports them, so `from agwm_betty.metrics import compute_metrics` still works.


def warn_moved(old: str, new: str, stacklevel: int = 3) -> None:
    warnings.warn(f"{old} moved to {new} in agwm-betty 0.3.0; import it from there (CHANGELOG.md)",
                  DeprecationWarning, stacklevel=stacklevel)


class _Alias(importlib.abc.InspectLoader):
    """Loads an old path as the module at its new one; `python -m <old path>` runs the new one's code."""

    def __init__(self, new: str):
        self.new = new

    def _own_loader(self):
        return importlib.util.find_spec(self.new).loader

    def get_code(self, fullname):
        return self._own_loader().get_code(self.new)

    def get_source(self, fullname):
        return self._own_loader().get_source(self.new)

    def is_package(self, fullname) -> bool:
        return self._own_loader().is_package(self.new)

    def create_module(self, spec):
        module = importlib.import_module(self.new)
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        # already executed at its new path; the import system has just set its __spec__ to the
        # old path's: give it back its own
        module.__spec__ = self.own_spec


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        warn_moved(fullname, new, stacklevel=3)  # the importing line (importlib's frames are skipped)
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    """Answer the old paths (once a process)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())


def moved_attribute(package: str, name: str):
    """`package.name` for an old submodule path read as an attribute (`agwm_betty.mixup` without an
    import): the module at its new path, with the warning; None when nothing moved from there."""
    new = MOVED.get(f"{package}.{name}")
    if new is None:
        return None
    warn_moved(f"{package}.{name}", new, stacklevel=4)  # the line that read the attribute
    return importlib.import_module(new)
