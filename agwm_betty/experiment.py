"""The low-resource protocol (section 4.3): runs over tasks x seeds x methods, one JSON record per
finished run in `<output>/runs.jsonl`, written atomically so a sweep resumes where it died."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tqdm.auto import tqdm

from agwm_betty import distributed
from agwm_betty.config import Config
from agwm_betty.data import DataError, TaskSpec, get_task, heldout, load_custom, load_glue, subsample, tokenize
from agwm_betty.methods import RunContext, get_method
from agwm_betty.metrics import compute_metrics
from agwm_betty.plm import load_plm, load_tokenizer

RUNS_FILE = "runs.jsonl"


@dataclass
class CustomTask:
    """A user's own dataset run through the same protocol as GLUE."""

    train_file: str
    validation_file: str
    text_columns: list[str]
    label_column: str
    task_type: str | None = None
    name: str | None = None


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
    cfg: Config = field(default_factory=Config)

    def validate(self) -> "Experiment":
        """Check names and values before any data or model is loaded (ValueError with the choices)."""
        self.cfg.validate()
        for method in self.methods:
            get_method(method)
        if self.custom is None:
            for task in self.tasks:
                get_task(task)
        if self.n < 0:
            raise ValueError(f"--n must be >= 0 (0 = the whole training set), got {self.n}")
        if self.heldout < 0:
            raise ValueError(f"--heldout must be >= 0, got {self.heldout}")
        if not self.seeds or any(s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be non-negative and at least one, got {list(self.seeds)}")
        return self


@dataclass
class TaskData:
    spec: TaskSpec
    train: object  # datasets.Dataset, untokenised (subsampled per seed)
    eval: object  # tokenised dev set


def run_id(record: dict) -> str:
    """Identity of a run: PLM, task, n, method, seed and the hyperparameters it depends on."""
    digest = hashlib.sha1(json.dumps(record["hparams"], sort_keys=True).encode()).hexdigest()[:10]
    split = "" if record.get("eval_split", "dev") == "dev" else f"|{record['eval_split']}"
    return f"{record['plm']}|{record['task']}|n={record['n']}|{record['method']}|seed={record['seed']}|{digest}{split}"


def read_records(path: Path) -> list[dict]:
    """Records of a runs.jsonl (a missing file has none)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive lock beside `path`, so two sweeps writing one file never interleave."""
    with open(path.with_suffix(path.suffix + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def append_record(path: Path, record: dict) -> None:
    """Append one JSON line atomically: write a complete new file, fsync, then rename over the old
    one. A run killed at any moment (even kill -9) leaves the old or the new file, never half a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        old = path.read_bytes() if path.exists() else b""
        if old and not old.endswith(b"\n"):
            old += b"\n"
        tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
        with open(tmp, "wb") as handle:
            handle.write(old + (json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)


def versions() -> dict[str, str]:
    """Library versions a result depends on."""
    import betty
    import datasets
    import torch
    import transformers

    from agwm_betty import __version__

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "datasets": datasets.__version__, "betty": betty.__version__, "agwm_betty": __version__}


def load_task(exp: Experiment, task: str, tokenizer) -> TaskData:
    """The task's training set (untokenised) and tokenised dev set."""
    if exp.custom is not None:
        c = exp.custom
        data, spec = load_custom(c.train_file, c.validation_file, c.text_columns, c.label_column, c.task_type, c.name)
    else:
        spec = get_task(task)
        data = load_glue(spec.name, exp.data_dir)
    if exp.n > len(data["train"]):
        raise DataError(f"--n {exp.n} is larger than the {spec.name} training set ({len(data['train'])} examples)")
    return TaskData(spec, data["train"], tokenize(data["validation"], tokenizer, spec, exp.cfg.max_length))


def chance_level(spec: TaskSpec, eval_set) -> float:
    """Main metric of always predicting the dev set's majority class (0 for regression): the
    level at or below which a seed counts as degenerate."""
    if spec.is_regression:
        return 0.0
    import numpy as np

    labels = np.asarray(eval_set["labels"])
    majority = np.bincount(labels).argmax()
    return compute_metrics(spec, np.full_like(labels, majority), labels)[spec.metric]


def planned_runs(exp: Experiment) -> list[tuple[str, int, str]]:
    """(task, seed, method) in sweep order: a task's data is loaded once, a seed's subset once."""
    tasks = [exp.custom.name or Path(exp.custom.train_file).stem] if exp.custom else list(exp.tasks)
    return [(t, s, m) for t in tasks for s in exp.seeds for m in exp.methods]


def base_record(exp: Experiment, task: str, seed: int, method_name: str) -> dict:
    """The identifying part of a record (what `run_id` hashes), known before the run."""
    method = get_method(method_name)
    record = {"task": task, "n": exp.n, "method": method_name, "seed": seed, "plm": exp.plm,
              "hparams": exp.cfg.to_dict(method.hparams),
              "eval_split": f"heldout{exp.heldout}" if exp.heldout else "dev"}
    record["run_id"] = run_id(record)
    return record


def run_sweep(exp: Experiment, log=print) -> list[dict]:
    """Run every planned run not yet recorded in `<output>/runs.jsonl`; return the new records."""
    exp.validate()
    if not exp.cfg.progress:
        import datasets

        datasets.disable_progress_bars()
    path = Path(exp.output) / RUNS_FILE
    done = {r.get("run_id") for r in read_records(path)}
    plan = [(t, s, m) for t, s, m in planned_runs(exp) if base_record(exp, t, s, m)["run_id"] not in done]
    skipped = len(planned_runs(exp)) - len(plan)
    if skipped:
        log(f"{skipped} run(s) already in {path}: skipped")
    if not plan:
        return []
    task_data: dict[str, TaskData] = {}
    tokenizer = load_tokenizer(exp.plm)
    new_records = []
    bar = tqdm(plan, desc="sweep", unit="run", disable=not exp.cfg.progress, dynamic_ncols=True)
    subsets: dict[tuple[str, int], object] = {}
    for task, seed, method_name in bar:
        bar.set_postfix_str(f"{task} seed={seed} {method_name}")
        if task not in task_data:
            task_data = {task: load_task(exp, task, tokenizer)}  # one task in memory at a time
        data = task_data[task]
        if (task, seed) not in subsets:
            train = tokenize(subsample(data.train, exp.n, seed), tokenizer, data.spec, exp.cfg.max_length)
            evaluation = data.eval
            if exp.heldout:
                evaluation = tokenize(heldout(data.train, exp.n, seed, exp.heldout), tokenizer, data.spec,
                                      exp.cfg.max_length)
            subsets = {(task, seed): (train, evaluation)}
        record, model = run_one(exp, data, *subsets[(task, seed)], tokenizer, task, seed, method_name)
        if not distributed.is_main_process():  # under torchrun every rank ends with the same model
            continue
        if exp.save_models:
            record["model_dir"] = str(save_model(model, tokenizer, path.parent / "models" / _model_dir(record)))
        append_record(path, record)
        new_records.append(record)
        (tqdm.write if exp.cfg.progress else log)(summary_line(record))
    return new_records


def run_one(exp: Experiment, data: TaskData, train, evaluation, tokenizer, task: str, seed: int,
            method_name: str) -> tuple[dict, object]:
    """Train and evaluate one (task, seed, method); return its record and the final model."""
    record = base_record(exp, task, seed, method_name)
    method = get_method(method_name)
    reason = method.applies_to(data.spec)
    if reason is not None:  # e.g. R3F on regression: report vanilla there, as the paper does
        record["note"] = f"{reason}; vanilla finetuning reported instead"
        method = get_method("vanilla")
    spec = data.spec
    ctx = RunContext(spec, train, evaluation, tokenizer, exp.cfg, seed,
                     model_factory=lambda: _factory(exp.plm, spec))
    started = time.time()
    result = method.run(ctx)
    record.update(
        metric=result.metric, metric_name=spec.metric, metrics=result.metrics, chance=chance_level(spec, evaluation),
        time=result.time, steps=result.steps, alphas=result.alphas, diagnostics=result.diagnostics,
        num_train=len(train), num_eval=len(evaluation), versions=versions(), device=_device_name(exp.cfg),
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        command=" ".join(sys.argv),
    )
    return record, result.model


def _model_dir(record: dict) -> str:
    return f"{record['task']}-n{record['n']}-{record['method']}-seed{record['seed']}"


def save_model(model, tokenizer, directory: Path) -> Path:
    """Save `model` as a plain HF checkpoint (mixup merged: loads without agwm_betty)."""
    from agwm_betty.mixup import merge_mixup

    merge_mixup(model).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


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
