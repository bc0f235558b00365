"""agwm-betty: attention-guided weight mixup learned by bi-level optimization (NAACL'24), on Betty.

The package by role:

- `config`: `Config`, the training, search and alpha settings every run shares (no torch).
- `core/`, the method: `surgery` (mixup layers), `fused_kernels` and `compiled_kernels` (W~ and its
  gradients), `registry` and `hypergradients` (the outer level's gradient by name), `problems` (the
  two Betty levels), `phases` (search and finetune, Algorithm 1), `train_loop` (the loop every
  method shares), `saved_search`, `signal_probe`, `diagnostics`, `betty_compat`.
- `methods/`: every `--methods` name behind one interface, each baseline with its options.
- `runs/`, running experiments: `experiment` (the run spec), `single_run`, `sweep`, `pool` (workers
  and shards), `torchrun`, `records` (runs.jsonl), `versions`, `curve_files` and `run_log`, `memory`,
  `jsonlines`.
- `models/`: `plm` (the `--plm` registry and loading), `weight_files` (opt-in weights in pieces).
- `data/`: GLUE and custom data, the paper's subsets, BLO splits, loaders.
- `metrics/`: GLUE's scores through `evaluate`, offline.
- `report/`: runs.jsonl to tables, figures and curves (no torch).
- `cli/`: `agwm_glue`, `agwm_report`, `agwm_weights`, one module per command.
- `hf_trainer`: `AGWMTrainer`, the method as a drop-in `transformers.Trainer`.

Importing the package is quick: each name below loads its module (and torch, Betty) when first used.
"""
from agwm_betty import _moved
from agwm_betty._version import __version__ as __version__

_moved.install()

# each public name -> the module that defines it
_PUBLIC = {
    "AGWMTrainer": "agwm_betty.hf_trainer",
    "BETTY_VERSION": "agwm_betty.core.betty_compat",
    "Config": "agwm_betty.config",
    "CustomTask": "agwm_betty.runs.experiment",
    "Experiment": "agwm_betty.runs.experiment",
    "METHODS": "agwm_betty.methods",
    "MixupLinear": "agwm_betty.core.surgery",
    "RunContext": "agwm_betty.methods",
    "RunResult": "agwm_betty.methods",
    "SearchResult": "agwm_betty.core.phases",
    "alpha_parameters": "agwm_betty.core.surgery",
    "alpha_state_dict": "agwm_betty.core.surgery",
    "apply_mixup": "agwm_betty.core.surgery",
    "check_betty": "agwm_betty.core.betty_compat",
    "clamp_alphas_": "agwm_betty.core.surgery",
    "finetune_phase": "agwm_betty.core.phases",
    "get_method": "agwm_betty.methods",
    "load_alpha_state_dict": "agwm_betty.core.surgery",
    "load_alphas": "agwm_betty.core.surgery",
    "load_plm": "agwm_betty.models.plm",
    "merge_mixup": "agwm_betty.core.surgery",
    "register_hypergradient": "agwm_betty.core.registry",
    "resolve_plm": "agwm_betty.models.plm",
    "run_sweep": "agwm_betty.runs.sweep",
    "save_alphas": "agwm_betty.core.surgery",
    "search_phase": "agwm_betty.core.phases",
    "task_parameters": "agwm_betty.core.surgery",
}
__all__ = sorted(set(_PUBLIC) - {"BETTY_VERSION", "check_betty"})  # those two: importable as before 0.3.0


def __getattr__(name: str):
    """A public name, imported from its module on first use; an old submodule path, with a warning."""
    import importlib

    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    module = _moved.moved_attribute(__name__, name)
    if module is not None:
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
