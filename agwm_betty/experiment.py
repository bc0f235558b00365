"""The low-resource protocol (section 4.3): one (task, seed, method) run, from its data to its JSON
record; `sweep.py` runs them over tasks x seeds x methods into `<output>/runs.jsonl`."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from agwm_betty import distributed, reuse, workers
from agwm_betty.config import Config
from agwm_betty.curves import RunLog, log_name, require_backend
from agwm_betty.data import DataError, TaskSpec, get_task, load_custom, load_glue, tokenize
from agwm_betty.fused_mixup import using as mixup_kernels
from agwm_betty.methods import RunContext, RunResult, get_method
from agwm_betty.metrics import compute_metrics, metric_module_spec
from agwm_betty.plm import load_plm, resolve_plm
from agwm_betty.records import run_id, run_stem
from agwm_betty.reuse import SavedSearch


@dataclass
class CustomTask:
    """A user's own dataset run through the same protocol as GLUE."""

    train_file: str
    validation_file: str
    text_columns: list[str]
    label_column: str
    task_type: str | None = None
    name: str | None = None
    metric: str | None = None  # a local `evaluate` module scoring it, 'PATH[:KEY]' (default: accuracy/F1, Spearman)


@dataclass
class Experiment:
    """What a sweep covers: PLM x tasks x n x seeds x methods, with one `Config` for all runs."""

    plm: str = "minilm"
    tasks: tuple[str, ...] = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte")
    methods: tuple[str, ...] = ("agwm",)
    n: int = 300
    seeds: tuple[int, ...] = tuple(range(10))
    output: Path = Path("runs")
    data_dir: str | None = None
    custom: CustomTask | None = None
    heldout: int = 0  # > 0: evaluate on this many training examples outside the subset, not on dev
    save_models: bool = False  # save each run's final model, merged to a plain HF checkpoint
    save_alphas: bool = False  # save each searched alpha (and task weights) beside the record
    alphas_from: str | Path | None = None  # agwm from this saved alpha, without a search phase
    reuse_task_weights: bool = False  # with alphas_from: also its searched task weights and random state
    cfg: Config = field(default_factory=Config)
    workers: int = 1  # processes running the runs at once, pinned round-robin to the visible GPUs
    shard: tuple[int, int] | None = None  # (I, N): only shard I (0-based) of N of the runs (workers.shard)
    runs_per_worker: int | None = None  # a fresh worker process after this many runs (bounds memory growth)

    def validate(self) -> Experiment:
        """Check names and values before any data or model is loaded (ValueError with the choices)."""
        self.cfg.validate()
        require_backend(self.cfg.report_to)  # Betty would only warn and log nothing
        for method in self.methods:
            get_method(method).check_available()
        if self.custom is None:
            for task in self.tasks:
                get_task(task)
            for method in self.methods:
                _refuse_inapplicable(get_method(method), [get_task(t) for t in self.tasks])
        if self.n < 0:
            raise ValueError(f"--n must be >= 0 (0 = the whole training set), got {self.n}")
        if self.heldout < 0:
            raise ValueError(f"--heldout must be >= 0, got {self.heldout}")
        if not self.seeds or any(s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be non-negative and at least one, got {list(self.seeds)}")
        self._validate_workers()
        self._validate_dependencies()
        if self.alphas_from is not None:
            self._validate_reuse()
        elif self.reuse_task_weights:
            raise ValueError("--reuse-task-weights needs --alphas-from (the saved search to take them from)")
        return self

    def _validate_workers(self) -> None:
        if not (isinstance(self.workers, int) and self.workers >= 1):
            raise ValueError(f"--workers must be an integer >= 1, got {self.workers!r}")
        if self.shard is not None:
            workers.check_shard(*self.shard)
        fresh = self.runs_per_worker
        if fresh is not None and not (isinstance(fresh, int) and fresh >= 1):
            raise ValueError(f"--runs-per-worker must be an integer >= 1, got {fresh!r}")
        if (self.workers > 1 or fresh is not None) and distributed.launched():
            raise ValueError("--workers and --runs-per-worker start their own processes: not under torchrun")
        if self.workers > 1 and self.cfg.device.startswith("cuda:"):
            raise ValueError(f"--device {self.cfg.device} puts every run on one GPU: with --workers, leave "
                             "--device empty (or 'cuda') and set CUDA_VISIBLE_DEVICES to choose the GPUs")

    def _validate_dependencies(self) -> None:
        """A method that starts from another's saved search (mean-alpha from agwm's) needs that search
        saved: `--save-alphas` whenever the sweep also runs the method it depends on."""
        for name in self.methods:
            needed = get_method(name).needs_search_of
            if needed in self.methods and not self.save_alphas:
                raise ValueError(f"{name} starts from {needed}'s saved search of the same task and seed: add "
                                 f"--save-alphas so that the {needed} runs of this sweep save theirs")

    def _validate_reuse(self) -> None:
        """--alphas-from runs agwm's finetune phase only; reusing the task weights also needs the
        searching run's task, n, seed and PLM (W has seen that subset and no other)."""
        if self.save_alphas:
            raise ValueError("--save-alphas saves a search, and a run with --alphas-from does none")
        if set(self.methods) != {"agwm"}:
            raise ValueError(f"--alphas-from replaces agwm's search phase: use it with --methods agwm only "
                             f"(got {','.join(self.methods)}); run other methods in a separate command")
        saved = saved_search(self.alphas_from)
        if self.reuse_task_weights:
            if saved.task_weights is None:
                raise ValueError(f"{self.alphas_from} carries alphas only (save_alphas): no task weights to reuse")
            meta = saved.meta
            for task, seed, _ in planned_runs(self):
                ours = {"task": task, "n": self.n, "seed": seed, "plm": self.plm}
                theirs = {k: meta.get(k) for k in ours}
                if ours != theirs:
                    raise ValueError(f"--reuse-task-weights: {self.alphas_from} was searched for {theirs}, this "
                                     f"run is {ours}; its task weights have seen that run's training subset")


def _refuse_inapplicable(method, specs: list[TaskSpec]) -> None:
    """ValueError when a method that does not stand in vanilla for itself cannot run on one of the tasks."""
    if method.vanilla_where_inapplicable:
        return
    for spec in specs:
        reason = method.applies_to(spec)
        if reason is not None:
            raise ValueError(f"{method.name} does not apply to {spec.name}: {reason}")


@dataclass
class TaskData:
    spec: TaskSpec
    train: object  # datasets.Dataset, untokenised (subsampled per seed)
    eval: object  # tokenised dev set
    eval_raw: object = None  # the dev set untokenised


def versions() -> dict[str, str]:
    """Library versions a result depends on."""
    import betty
    import datasets
    import torch
    import transformers

    from agwm_betty._version import __version__

    found = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
             "datasets": datasets.__version__, "betty": betty.__version__, "agwm_betty": __version__}
    commit = code_commit()
    if commit is not None:
        found["agwm_betty_commit"] = commit
    return found


@functools.lru_cache(maxsize=1)
def code_commit() -> str | None:
    """The git commit this package's code was checked out at ('-dirty' when its files differ from it),
    or None outside a git checkout: which code a record ran, finer than the version number."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."], cwd=here,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


@functools.lru_cache(maxsize=2)
def _saved_search(path: str, mtime_ns: int, size: int) -> tuple[SavedSearch, str]:
    return reuse.load(path), hashlib.sha1(Path(path).read_bytes()).hexdigest()


def saved_search(path: str | Path) -> SavedSearch:
    """The saved search in `path` (read once per version of the file); ValueError if it is none."""
    return _saved_search_and_sha1(path)[0]


def _saved_search_and_sha1(path: str | Path) -> tuple[SavedSearch, str]:
    path = Path(path).resolve()
    if not path.is_file():
        raise ValueError(f"--alphas-from {path}: no such file")
    stat = path.stat()
    return _saved_search(str(path), stat.st_mtime_ns, stat.st_size)


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


def task_names(exp: Experiment) -> list[str]:
    """The experiment's task names: the GLUE tasks, or the custom dataset's one name."""
    return [exp.custom.name or Path(exp.custom.train_file).stem] if exp.custom else list(exp.tasks)


def planned_runs(exp: Experiment, seed_major: bool = False) -> list[tuple[str, int, str]]:
    """(task, seed, method) of every run: task by task (a task's data is loaded once, a seed's
    subset once), or with `seed_major` seed by seed, then task, then method (a sweep cut short
    leaves every task's first seeds whole, with all their methods: the paired comparisons). A method
    that starts from another's saved search comes after the methods it does not depend on."""
    tasks = task_names(exp)
    order = [(t, s) for s in exp.seeds for t in tasks] if seed_major else [(t, s) for t in tasks for s in exp.seeds]
    methods = sorted(exp.methods, key=lambda m: get_method(m).needs_search_of in exp.methods)
    return [(t, s, m) for t, s in order for m in methods]


def search_needed(exp: Experiment, job: tuple[str, int, str]) -> tuple[str, int, str] | None:
    """The run whose saved search the run `job` starts from (same task and seed), or None."""
    task, seed, method = job
    needed = get_method(method).needs_search_of
    return None if needed is None else (task, seed, needed)


def search_file(exp: Experiment, job: tuple[str, int, str]) -> Path:
    """Where `--save-alphas` puts the saved search of run `job` (`save_search`'s name for it)."""
    return Path(exp.output) / "alphas" / f"{run_stem(base_record(exp, *job))}.pt"


def base_record(exp: Experiment, task: str, seed: int, method_name: str) -> dict:
    """The identifying part of a record (what `run_id` hashes), known before the run."""
    method = get_method(method_name)
    record = {"task": task, "n": exp.n, "method": method_name, "seed": seed, "plm": exp.plm,
              "hparams": exp.cfg.to_dict(method.hparams),
              "eval_split": f"heldout{exp.heldout}" if exp.heldout else "dev"}
    if exp.alphas_from is not None:
        saved, sha1 = _saved_search_and_sha1(exp.alphas_from)
        record["alphas_from"] = {"path": str(Path(exp.alphas_from).resolve()), "sha1": sha1,
                                 "task_weights": exp.reuse_task_weights, "searched_by": saved.meta.get("run_id")}
    record["run_id"] = run_id(record)
    return record


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
    searched = None
    if search_needed(exp, (task, seed, method.name)) is not None:
        searched = _needed_search(exp, (task, seed, method.name), record)
    ctx = RunContext(spec, train, evaluation, tokenizer, exp.cfg, seed, searched=searched,
                     model_factory=lambda: _factory(exp.plm, spec),
                     alphas_from=None if exp.alphas_from is None else saved_search(exp.alphas_from),
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


def _needed_search(exp: Experiment, job: tuple[str, int, str], record: dict) -> SavedSearch:
    """The saved search run `job` starts from; the record names it (path, SHA-1, the searching run)."""
    source = search_needed(exp, job)
    path = search_file(exp, source)
    if not path.is_file():
        raise ValueError(f"{job[2]} on {job[0]} seed {job[1]} starts from {source[2]}'s saved search of that task "
                         f"and seed, and there is none at {path}: run {source[2]} with --save-alphas into "
                         f"the same --output (same settings) first")
    searched, sha1 = _saved_search_and_sha1(path)
    expected = base_record(exp, *source)["run_id"]
    if searched.meta.get("run_id") != expected:
        raise ValueError(f"{path} was saved by run {searched.meta.get('run_id')}, not by {expected} ({source[2]} "
                         f"on {job[0]} seed {job[1]} with these settings)")
    record["search_from"] = {"path": str(path), "sha1": sha1, "searched_by": expected}
    return searched


def save_search(search: SavedSearch, record: dict, directory: Path) -> Path:
    """Save a run's searched alpha, task weights and random state for `--alphas-from`, named after
    the run (hyperparameters included, so two sweeps into one folder do not overwrite each other)."""
    meta = {k: record[k] for k in ("task", "n", "seed", "plm", "method", "run_id")}
    return reuse.save(SavedSearch(search.alphas, search.task_weights, search.rng, meta),
                      directory / f"{run_stem(record)}.pt")


def save_model(model, tokenizer, directory: Path) -> Path:
    """Deprecated: `get_method(name).save(model, tokenizer, directory, spec)`, which also names the classes."""
    import warnings

    warnings.warn("agwm_betty.experiment.save_model is deprecated; use get_method(name).save(model, tokenizer, "
                  "directory, spec), which also names the classes", DeprecationWarning, stacklevel=2)
    return get_method("vanilla").save(model, tokenizer, directory)


def _factory(plm: str, spec: TaskSpec):
    model, _, new_modules = load_plm(plm, spec.num_labels, spec.is_regression)
    return model, new_modules


def _device_name(cfg: Config) -> str:
    import torch

    from agwm_betty.train import resolve_device

    device = resolve_device(cfg)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)"


def summary_line(record: dict) -> str:
    """One line per finished run."""
    alphas = record.get("alphas")
    extra = f" alpha mean={alphas['mean']:.4f}" if alphas else ""
    return (f"{record['task']} n={record['n']} {record['method']} seed={record['seed']}: "
            f"{record['metric_name']}={record['metric']:.2f} ({record['time']['total']:.0f}s){extra}")
