"""A run's curves: thinned per-step scalars in `<output>/curves/<name>.jsonl`, mirrored to
TensorBoard or W&B through Betty's own logger classes (`--report-to`).

`RunLog` is a Betty logger (`betty.logging.LoggerBase`): the search phase's problems hand it their
`log_step` stats, and the shared training loop calls the same `log(stats, tag, step)`. Stats may
nest dicts (joined into tags with "/") and hold tensors: they are read back to the host in one
transfer per call, at a log step only, so logging adds no host sync to the other steps.

Betty 0.2.1 builds its TensorBoard logger in `./betty_tensorboard/<time>_<host>`, a path fixed in
its code, and its W&B logger never calls `wandb.init`. Here the same classes write to the run's
own directory: `<output>/tb/<name>/` (TensorBoard) or `<output>/wandb/<name>/` (W&B, offline
with `WANDB_MODE=offline`).

The curves file (`runs.curve_files`) always exists, logger or not.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from agwm_betty.core.betty_compat import BETTY_VERSION  # noqa: F401  (checks Betty before it is imported)

# isort: split
import torch
from betty.logging.logger_base import LoggerBase
from betty.logging.logger_tensorboard import TensorBoardLogger
from betty.logging.logger_wandb import WandBLogger

from agwm_betty.config import REPORT_TO
from agwm_betty.core.surgery import layer_group, mixup_layers
from agwm_betty.runs.curve_files import CURVES_DIR, MAX_POINTS, Curve, write_curves

LOG_DIRS = {"tensorboard": "tb", "wandb": "wandb"}  # the run directory's parent under <output>
EXTRAS = {"tensorboard": "tensorboard", "wandb": "wandb"}  # --report-to -> package (and setup.py extra)


def require_backend(report_to: str) -> None:
    """Raise ValueError (one line, what to install) when `report_to`'s package is missing: Betty
    itself only warns and logs nothing."""
    if report_to not in REPORT_TO:
        raise ValueError(f"unknown report_to {report_to!r}; choose from {', '.join(REPORT_TO)}")
    package = EXTRAS.get(report_to)
    if package is None:
        return
    try:
        importlib.import_module(package)
    except ImportError:
        raise ValueError(f"--report-to {report_to} needs the {package} package: "
                         f"pip install 'agwm-betty[{report_to}]' (or pip install {package})") from None


class RouteTensorBoard(TensorBoardLogger):
    """Betty's TensorBoard logger writing to `log_dir` (Betty's own takes no directory)."""

    def __init__(self, log_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))  # closed by RunLog.close, not at exit


class RouteWandB(WandBLogger):
    """Betty's W&B logger with the `wandb.init` its constructor leaves out, files in `log_dir`."""

    def __init__(self, log_dir: Path, name: str, config: dict | None):
        import wandb

        self.run = wandb.init(dir=str(log_dir), name=name, config=config,
                              project=os.environ.get("WANDB_PROJECT", "agwm-betty"))

    def close(self) -> None:
        self.run.finish()


class RunLog(LoggerBase):
    """The curves of one run (see the module docstring); `scoped` views share them under a prefix."""

    def __init__(self, output: str | Path, name: str, report_to: str = "none", log_every: int = 5,
                 config: dict | None = None, max_points: int = MAX_POINTS):
        require_backend(report_to)
        if not (isinstance(log_every, int) and log_every >= 1):
            raise ValueError(f"log_every must be an integer >= 1, got {log_every!r}")
        self.output, self.name, self.report_to, self.log_every = Path(output), name, report_to, log_every
        self.prefix, self.max_points = "", max_points
        self.curves: dict[str, Curve] = {}
        self.backend: LoggerBase | None = None
        if report_to == "tensorboard":
            _remove_stale_events(self.log_dir)  # a resumed run starts its curves again
            self.backend = RouteTensorBoard(self.log_dir)
        elif report_to == "wandb":
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.backend = RouteWandB(self.log_dir, name, config)

    @property
    def curves_file(self) -> Path:
        return self.output / CURVES_DIR / f"{self.name}.jsonl"

    @property
    def log_dir(self) -> Path | None:
        """The run's TensorBoard / W&B directory (None without a logger)."""
        parent = LOG_DIRS.get(self.report_to)
        return None if parent is None else self.output / parent / self.name

    def due(self, step: int) -> bool:
        """Whether step `step` (counted from 1) is a log step."""
        return step % self.log_every == 0

    def scoped(self, prefix: str) -> RunLog:
        """A view logging under `prefix/` into the same curves and backend."""
        view = object.__new__(RunLog)
        view.__dict__.update(self.__dict__)
        view.prefix = _join(self.prefix, prefix)
        return view

    def log(self, stats: Mapping[str, Any], tag: str | None = None, step: int | None = None) -> None:
        """Record `stats` (nested dicts of numbers or 0-d tensors; None is skipped) at `step`."""
        flat = read_back(flatten(stats, _join(self.prefix, tag or "")))
        for key, value in flat.items():
            self.curves.setdefault(key, Curve(self.max_points)).add(int(step or 0), value)
        if self.backend is not None and flat:
            self.backend.log(flat, tag=None, step=step)

    def close(self) -> dict[str, str]:
        """Write the curves file, close the backend; return the paths (relative to the output) for
        the run's record."""
        write_curves(self.curves_file, {tag: curve.kept() for tag, curve in self.curves.items()})
        paths = {"curves_file": str(self.curves_file.relative_to(self.output))}
        if self.backend is not None:
            self.backend.close()
            paths["log_dir"] = str(self.log_dir.relative_to(self.output))
        return paths


def _join(prefix: str, name: str) -> str:
    return "/".join(part for part in (prefix, name) if part)


def _remove_stale_events(directory: Path) -> None:
    if directory.is_dir():
        for old in directory.glob("events.out.tfevents.*"):
            old.unlink()


def flatten(stats: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": x}} -> {"prefix/a/b": x}; a list or tuple becomes key_0, key_1 (Betty's naming)."""
    out: dict[str, Any] = {}
    for key, value in stats.items():
        name = _join(prefix, str(key))
        if isinstance(value, Mapping):
            out.update(flatten(value, name))
        elif isinstance(value, (list, tuple)):
            out.update(flatten({f"{key}_{i}": v for i, v in enumerate(value)}, prefix))
        elif value is not None:
            out[name] = value
    return out


def read_back(flat: Mapping[str, Any]) -> dict[str, float]:
    """Floats of `flat`'s values, the tensors moved to the host in one transfer per device."""
    out = {k: float(v) for k, v in flat.items() if not torch.is_tensor(v)}
    by_device: dict[torch.device, list[str]] = {}
    for key, value in flat.items():
        if torch.is_tensor(value):
            by_device.setdefault(value.device, []).append(key)
    for keys in by_device.values():
        values = torch.stack([flat[k].detach().float().reshape(()) for k in keys]).tolist()
        out.update(zip(keys, values, strict=True))
    return {k: out[k] for k in flat}


# ---------------------------------------------------------------- what the levels log

def alpha_reference(model: torch.nn.Module) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each mixup layer's alpha factors (entries in [0, 1]) now: the start that `alpha_curves`
    measures the change from (factors only, never the out x in matrix)."""
    with torch.no_grad():
        return {name: tuple(f.detach().clone() for f in m.factors()) for name, m in mixup_layers(model).items()}


@torch.no_grad()
def alpha_curves(model: torch.nn.Module, reference: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> dict:
    """Per layer group (`mixup.layer_group`: layer.i, pooler, embeddings): the mean, min and max of
    the effective alphas and their mean absolute change from `reference`, as device tensors."""
    groups: dict[str, list] = {}
    for name, m in mixup_layers(model).items():
        alpha = m.effective_alpha().float()
        a1, a2 = (f.to(alpha.device) for f in reference[name])  # a start kept before the model moved
        change = (alpha - (a1 @ a2).float() / m.rank).abs().sum()
        groups.setdefault(layer_group(name), []).append((alpha.sum(), alpha.min(), alpha.max(), change,
                                                         alpha.numel()))
    out = {}
    for group, parts in groups.items():
        count = sum(p[4] for p in parts)
        out[group] = {
            "mean": torch.stack([p[0] for p in parts]).sum() / count,
            "min": torch.stack([p[1] for p in parts]).min(),
            "max": torch.stack([p[2] for p in parts]).max(),
            "change": torch.stack([p[3] for p in parts]).sum() / count,
        }
    return out


def total_norm(tensors: Iterable[torch.Tensor | None]) -> torch.Tensor | None:
    """L2 norm over all given tensors (None entries skipped), on their device; None if none."""
    norms = [torch.linalg.vector_norm(t.detach().float()) for t in tensors if t is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else None


def hypergradient_norms(direct: Iterable[torch.Tensor | None], total: Iterable[torch.Tensor | None]) -> dict:
    """Norms of alpha's direct term and of its implicit term (the total gradient minus the direct)."""
    direct, total = list(direct), list(total)
    implicit = [t if d is None else (None if t is None else t - d) for d, t in zip(direct, total, strict=True)]
    zero = torch.zeros((), device=next((t.device for t in total if t is not None), "cpu"))
    norms = {"direct_norm": total_norm(direct), "implicit_norm": total_norm(implicit)}
    return {key: zero if norm is None else norm for key, norm in norms.items()}
