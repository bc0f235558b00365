"""One (task, seed, method) run of the low-resource protocol (section 4.3), from its data to its JSON
record: the task's data, the method's run in its `RunContext`, the record, and the saved search a
run leaves (`--save-alphas`) or starts from."""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from agwm_betty.config import Config
from agwm_betty.core import saved_search
from agwm_betty.core.fused_kernels import using as mixup_kernels
from agwm_betty.core.saved_search import SavedSearch
from agwm_betty.data import DataError, TaskSpec, get_task, load_custom, load_glue, tokenize
from agwm_betty.methods import RunContext, RunResult, get_method
from agwm_betty.metrics.scores import compute_metrics, metric_module_spec
from agwm_betty.models.plm import load_plm, resolve_plm
from agwm_betty.runs.curve_files import log_name
from agwm_betty.runs.experiment import (
    Experiment,
    _refuse_inapplicable,
    base_record,
    search_file,
    search_needed,
    search_path,
)
from agwm_betty.runs.run_log import RunLog
from agwm_betty.runs.versions import versions


@dataclass
class TaskData:
    spec: TaskSpec
    train: object  # datasets.Dataset, untokenised (subsampled per seed)
    eval: object  # tokenised dev set
    eval_raw: object = None  # the dev set untokenised


def load_task(exp: Experiment, task: str, tokenizer) -> TaskData:
    """The task's training set (untokenised) and tokenised dev set."""
    if exp.custom is not None:
        c = exp.custom
        data, spec = load_custom(c.train_file, c.validation_file, c.text_columns, c.label_column, c.task_type, c.name)
        if c.metric:
            path, key = metric_module_spec(c.metric)
            spec = dataclasses.replace(spec, metric=key, metrics=(key,), metric_module=path)
    else:
        spec = get_task(task)
        data = load_glue(spec.name, exp.data_dir)
    if exp.n > len(data["train"]):
        raise DataError(f"--n {exp.n} is larger than the {spec.name} training set ({len(data['train'])} examples)")
    return TaskData(spec, data["train"], tokenize(data["validation"], tokenizer, spec, exp.cfg.max_length),
                    data["validation"])


def chance_level(spec: TaskSpec, eval_set) -> float:
    """Main metric of always predicting the dev set's majority class (0 for regression): the
    level at or below which a seed counts as degenerate."""
    if spec.is_regression:
        return 0.0
    import numpy as np

    labels = np.asarray(eval_set["labels"])
    majority = np.bincount(labels).argmax()
    return compute_metrics(spec, np.full_like(labels, majority), labels)[spec.metric]


def run_one(exp: Experiment, data: TaskData, train, evaluation, tokenizer, task: str, seed: int,
            method_name: str, curves: bool = False, raw: tuple | None = None) -> tuple[dict, RunResult]:
    """Train and evaluate one (task, seed, method); return its record and the method's result
    (final model, and the saved search of a two-phase run). With `curves`, the run's curves go to
    `<output>/curves/` (and to `cfg.report_to`), and the record names the files. `raw`: the training
    and evaluation examples untokenised, for a method that tokenises them its own way."""
    record = base_record(exp, task, seed, method_name)
    method = get_method(method_name)
    _refuse_inapplicable(method, [data.spec])  # a custom dataset's spec is known only now
    reason = method.applies_to(data.spec)
    if reason is not None:  # e.g. R3F on regression: report vanilla there, as the paper does
        record["note"] = f"{reason}; vanilla finetuning reported instead"
        method = get_method("vanilla")
    spec = data.spec
    source = search_needed(exp, (task, seed, method.name))
    searched = None if source is None else _needed_search(exp, source, (task, seed, method.name), record)
    ctx = RunContext(spec, train, evaluation, tokenizer, exp.cfg, seed, searched=searched,
                     model_factory=lambda: _factory(exp.plm, spec),
                     alphas_from=None if exp.alphas_from is None else saved_search.load_cached(exp.alphas_from)[0],
                     reuse_task_weights=exp.reuse_task_weights, keep_search=exp.save_alphas,
                     raw_train=raw[0] if raw else None, raw_eval=raw[1] if raw else None,
                     plm_path=resolve_plm(exp.plm))
    if curves:
        about = {k: record[k] for k in ("task", "n", "method", "seed", "plm", "run_id")}
        ctx.log = RunLog(exp.output, log_name(record), exp.cfg.report_to, exp.cfg.log_every,
                         config={**about, **record["hparams"]})
    started = time.time()
    try:
        with mixup_kernels(exp.cfg.mixup_impl):
            result = method.run(ctx)
        if ctx.log is not None:
            ctx.log.log(result.metrics, tag="eval/finetune", step=result.steps.get("finetune", 0))
    finally:
        if ctx.log is not None:  # a failed run's curves too, up to where it stopped
            record.update(ctx.log.close())
    record.update(
        metric=result.metric, metric_name=spec.metric, metrics=result.metrics, chance=chance_level(spec, evaluation),
        time=result.time, steps=result.steps, alphas=result.alphas, diagnostics=result.diagnostics,
        num_train=len(train), num_eval=len(evaluation), versions=versions(), device=_device_name(exp.cfg),
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        command=" ".join(sys.argv),
    )
    return record, result


def _needed_search(exp: Experiment, source: tuple[str, int, str], job: tuple[str, int, str],
                   record: dict) -> SavedSearch:
    """The saved search of run `source` that run `job` starts from; the record names it (path,
    SHA-1, the searching run)."""
    path = search_file(exp, source)
    if not path.is_file():
        raise ValueError(f"{job[2]} on {job[0]} seed {job[1]} starts from {source[2]}'s saved search of that task "
                         f"and seed, and there is none at {path}: run {source[2]} with --save-alphas into "
                         f"the same --output (same settings) first")
    searched, sha1 = saved_search.load_cached(path)
    expected = base_record(exp, *source)["run_id"]
    if searched.meta.get("run_id") != expected:
        raise ValueError(f"{path} was saved by run {searched.meta.get('run_id')}, not by {expected} ({source[2]} "
                         f"on {job[0]} seed {job[1]} with these settings)")
    record["search_from"] = {"path": str(path), "sha1": sha1, "searched_by": expected}
    return searched


def save_search(search: SavedSearch, record: dict, directory: Path) -> Path:
    """Save a run's searched alpha, task weights and random state for `--alphas-from`, in
    `directory` under the run's name (`runs.experiment.search_path`)."""
    meta = {k: record[k] for k in ("task", "n", "seed", "plm", "method", "run_id")}
    return saved_search.save(SavedSearch(search.alphas, search.task_weights, search.rng, meta),
                             search_path(directory, record))


def save_model(model, tokenizer, directory: Path) -> Path:
    """Deprecated: `get_method(name).save(model, tokenizer, directory, spec)`, which also names the classes."""
    import warnings

    warnings.warn("agwm_betty.runs.single_run.save_model is deprecated; use get_method(name).save(model, tokenizer, "
                  "directory, spec), which also names the classes", DeprecationWarning, stacklevel=2)
    return get_method("vanilla").save(model, tokenizer, directory)


def _factory(plm: str, spec: TaskSpec):
    model, _, new_modules = load_plm(plm, spec.num_labels, spec.is_regression)
    return model, new_modules


def _device_name(cfg: Config) -> str:
    import torch

    from agwm_betty.core.train_loop import resolve_device

    device = resolve_device(cfg)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)"


def summary_line(record: dict) -> str:
    """One line per finished run."""
    alphas = record.get("alphas")
    extra = f" alpha mean={alphas['mean']:.4f}" if alphas else ""
    return (f"{record['task']} n={record['n']} {record['method']} seed={record['seed']}: "
            f"{record['metric_name']}={record['metric']:.2f} ({record['time']['total']:.0f}s){extra}")
