"""The run spec: what a sweep covers (`Experiment`: PLM x tasks x n x seeds x methods, one `Config`),
checked before anything loads, its runs in order, and each run's identity (`base_record`), known
before it runs. `runs.single_run` runs one of them; `runs.sweep` runs them all into
`<output>/runs.jsonl`."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agwm_betty.config import Config
from agwm_betty.core import saved_search
from agwm_betty.core.registry import check_hypergradient
from agwm_betty.data import TaskSpec, get_task
from agwm_betty.methods import get_method, setting_defaults
from agwm_betty.runs import pool, torchrun
from agwm_betty.runs.records import run_id, run_stem
from agwm_betty.runs.run_log import require_backend


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
    shard: tuple[int, int] | None = None  # (I, N): only shard I (0-based) of N of the runs (pool.shard)
    runs_per_worker: int | None = None  # a fresh worker process after this many runs (bounds memory growth)

    def validate(self) -> Experiment:
        """Check names and values before any data or model is loaded (ValueError with the choices)."""
        self.cfg.validate()
        check_hypergradient(self.cfg.hypergradient, load=True)  # a bad function fails here, before any model loads
        for name in self.cfg.methods:
            get_method(name).options(self.cfg)  # that method's own config class, or ValueError
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
            pool.check_shard(*self.shard)
        fresh = self.runs_per_worker
        if fresh is not None and not (isinstance(fresh, int) and fresh >= 1):
            raise ValueError(f"--runs-per-worker must be an integer >= 1, got {fresh!r}")
        if (self.workers > 1 or fresh is not None) and torchrun.launched():
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
        saved = saved_search.load_cached(self.alphas_from)[0]
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
    """Where `--save-alphas` puts the saved search of run `job`."""
    return search_path(Path(exp.output) / "alphas", base_record(exp, *job))


def search_path(directory: Path, record: dict) -> Path:
    """The saved search of the run `record` identifies, in `directory`: named after the run
    (hyperparameters included, so two sweeps into one folder do not overwrite each other)."""
    return Path(directory) / f"{run_stem(record)}.pt"


def base_record(exp: Experiment, task: str, seed: int, method_name: str) -> dict:
    """The identifying part of a record (what `run_id` hashes), known before the run."""
    method = get_method(method_name)
    record = {"task": task, "n": exp.n, "method": method_name, "seed": seed, "plm": exp.plm,
              "hparams": method.record_hparams(exp.cfg),
              "eval_split": f"heldout{exp.heldout}" if exp.heldout else "dev"}
    if exp.alphas_from is not None:
        saved, sha1 = saved_search.load_cached(exp.alphas_from)
        record["alphas_from"] = {"path": str(Path(exp.alphas_from).resolve()), "sha1": sha1,
                                 "task_weights": exp.reuse_task_weights, "searched_by": saved.meta.get("run_id")}
    record["run_id"] = run_id(record, setting_defaults())
    return record


# names that moved to runs.single_run and runs.versions in 0.3.0 (this module was the spec and the run)
_MOVED = {**dict.fromkeys(("TaskData", "load_task", "chance_level", "run_one", "save_search", "save_model",
                           "summary_line"), "agwm_betty.runs.single_run"),
          **dict.fromkeys(("versions", "code_commit"), "agwm_betty.runs.versions")}


def __getattr__(name: str):
    """`agwm_betty.experiment.run_one` and the others from before 0.3.0, with a warning."""
    if name in _MOVED:
        import importlib

        from agwm_betty._moved import warn_moved

        warn_moved(f"{__name__}.{name}", f"{_MOVED[name]}.{name}")
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
