"""A sweep: every (task, seed, method) run of an `Experiment` not yet recorded, in this process,
in `--workers` processes or as one `--shard` of a job array; each run appends its record to
`<output>/runs.jsonl` under its lock, so a sweep killed at any moment resumes where it died."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from tqdm.auto import tqdm

from agwm_betty.data import fingerprint, heldout, subsample, tokenize
from agwm_betty.methods import get_method, setting_defaults
from agwm_betty.models.plm import load_tokenizer
from agwm_betty.runs import memory, pool, torchrun
from agwm_betty.runs.experiment import Experiment, base_record, planned_runs, search_needed
from agwm_betty.runs.records import RUNS_FILE, append_record, model_dir_name, read_records, run_id
from agwm_betty.runs.single_run import TaskData, load_task, run_one, save_search, summary_line


def sweep_jobs(exp: Experiment) -> list[tuple[str, int, str]]:
    """The runs this sweep command covers, in the order it starts them: `planned_runs` for the whole
    sweep in one process; with `workers` > 1 or a `shard`, seed-major `planned_runs`, or the shard's deal
    of it (`pool.shard`: of the whole list, so a shard does not depend on what is recorded).
    Only a run that starts from another's saved search (mean-alpha from agwm's) reads another's
    output: it goes to the shard of that run, right after it (in a pool, it waits for that run to
    end); every other run searches, saves and logs under its own name, so any split of this list
    gives the same records."""
    if exp.workers == 1 and exp.shard is None:
        return planned_runs(exp)
    jobs = planned_runs(exp, seed_major=True)
    if exp.shard is None:
        return jobs
    dealt = pool.shard([j for j in jobs if search_needed(exp, j) not in jobs], *exp.shard)
    for job in jobs:  # each dependent run right after the run it needs, in that run's shard
        needed = search_needed(exp, job)
        if needed in jobs and needed in dealt:
            dealt.insert(dealt.index(needed) + 1 + sum(search_needed(exp, j) == needed for j in dealt), job)
    return dealt


def _quiet_datasets(exp: Experiment) -> None:
    """Without progress bars, datasets' own (one Map bar per subset) are off too, in this process."""
    if not exp.cfg.progress:
        import datasets

        datasets.disable_progress_bars()


class SweepError(RuntimeError):
    """Some runs of a sweep failed; the others are recorded, and re-running retries the failed ones."""


def run_sweep(exp: Experiment, log=print) -> list[dict]:
    """Run every planned run not yet recorded in `<output>/runs.jsonl`; return the new records.
    With `exp.workers` > 1 the runs go to that many processes, and failures raise `SweepError`
    once every other run has ended."""
    exp.validate()
    _quiet_datasets(exp)
    path = Path(exp.output) / RUNS_FILE
    defaults = setting_defaults()
    done = {run_id(r, defaults) for r in read_records(path) if "hparams" in r}  # today's identity of each record
    jobs = sweep_jobs(exp)
    plan = [(t, s, m) for t, s, m in jobs if base_record(exp, t, s, m)["run_id"] not in done]
    skipped = len(jobs) - len(plan)
    if skipped:
        log(f"{skipped} run(s) already in {path}: skipped")
    if not plan:
        return []
    tokenizer = load_tokenizer(exp.plm)  # an unknown --plm fails here, before any run
    if exp.workers > 1 or exp.runs_per_worker is not None:
        return _run_in_workers(exp, plan, log)
    runner = SweepRunner(exp, keep_tasks=exp.shard is not None, tokenizer=tokenizer)
    new_records = []
    bar = tqdm(plan, desc="sweep", unit="run", disable=not exp.cfg.progress, dynamic_ncols=True)
    for job in bar:
        bar.set_postfix_str("{} seed={} {}".format(*job))
        record = runner(job)
        if record is None:  # under torchrun every rank ends with the same model; rank 0 writes
            continue
        new_records.append(record)
        (tqdm.write if exp.cfg.progress else log)(summary_line(record))
    return new_records


class SweepRunner:
    """Runs jobs (task, seed, method) of one sweep in this process and records each: a task's data
    is loaded once (and only the last task's kept, unless `keep_tasks`), a seed's subset once in a row."""

    def __init__(self, exp: Experiment, keep_tasks: bool = False, tokenizer=None):
        self.exp = exp
        self.keep_tasks = keep_tasks
        self.tokenizer = tokenizer
        self.task_data: dict[str, TaskData] = {}
        self.subset: dict[tuple[str, int], tuple] = {}

    def __getstate__(self) -> dict:  # sent to a worker process before any data is loaded
        return {"exp": self.exp, "keep_tasks": self.keep_tasks, "tokenizer": None, "task_data": {}, "subset": {}}

    def __call__(self, job: tuple[str, int, str]) -> dict | None:
        """Run one job, append its record to runs.jsonl and return it (None on a rank other than 0)."""
        task, seed, method_name = job
        exp = self.exp
        path = Path(exp.output) / RUNS_FILE
        if self.tokenizer is None:  # first job in a worker process
            _quiet_datasets(exp)
            self.tokenizer = load_tokenizer(exp.plm)
        tokenizer = self.tokenizer
        if task not in self.task_data:
            if not self.keep_tasks:
                self.task_data.clear()  # one task in memory at a time
            self.task_data[task] = load_task(exp, task, tokenizer)
        data = self.task_data[task]
        if (task, seed) not in self.subset:
            raw_train = subsample(data.train, exp.n, seed)
            raw_eval = heldout(data.train, exp.n, seed, exp.heldout) if exp.heldout else data.eval_raw
            train = tokenize(raw_train, tokenizer, data.spec, exp.cfg.max_length)
            evaluation = tokenize(raw_eval, tokenizer, data.spec, exp.cfg.max_length) if exp.heldout else data.eval
            # the training examples, so that records from two machines or methods can be checked to share them
            named = [c for c in (*data.spec.text_columns, "label") if c in raw_train.column_names]
            subset_sha1 = fingerprint(raw_train, tuple(named or raw_train.column_names))
            self.subset = {(task, seed): (train, evaluation, (raw_train, raw_eval), subset_sha1)}
        train, evaluation, raw, subset_sha1 = self.subset[(task, seed)]
        record, result = run_one(exp, data, train, evaluation, tokenizer, task, seed, method_name,
                                 curves=torchrun.is_main_process(), raw=raw)
        if not torchrun.is_main_process():
            return None
        record["subset_sha1"] = subset_sha1
        if exp.save_models:
            record["model_dir"] = str(get_method(method_name).save(
                result.model, tokenizer, path.parent / "models" / model_dir_name(record), data.spec))
        if exp.save_alphas and result.search is not None:
            record["alphas_file"] = str(save_search(result.search, record, path.parent / "alphas"))
        del result  # the run's model and searched state: nothing else holds them (tests/test_memory.py)
        memory.trim()  # and what they occupied goes back to the OS, not to this process's idle heap
        append_record(path, record)
        return record


def _position(plan: list, job) -> int | None:
    return plan.index(job) if job in plan else None


def _run_in_workers(exp: Experiment, plan: list[tuple[str, int, str]], log) -> list[dict]:
    """`plan` in `exp.workers` processes (`pool.run_pool`, each replaced by a fresh one after
    `exp.runs_per_worker` runs where that is set), each recording its own runs under
    runs.jsonl's lock; a progress bar over the runs here, failures reported as they happen."""
    gpus = [] if exp.cfg.device == "cpu" else pool.visible_gpus()
    threads = pool.threads_per_worker(exp.workers)
    count = min(exp.workers, len(plan))
    where = f"GPUs {','.join(gpus)}, round-robin" if gpus else f"CPU, {threads} torch thread(s) each"
    fresh = f", a fresh one every {exp.runs_per_worker} run(s)" if exp.runs_per_worker else ""
    log(f"{len(plan)} run(s) in {count} worker processes ({where}{fresh})")
    child = dataclasses.replace(exp, workers=1, shard=None, cfg=dataclasses.replace(exp.cfg, progress=False))
    records, failures = [], []
    bar = tqdm(total=len(plan), desc="sweep", unit="run", disable=not exp.cfg.progress, dynamic_ncols=True)
    say = tqdm.write if exp.cfg.progress else log

    def done(job: tuple, record: dict) -> None:
        bar.update()
        records.append(record)
        say(summary_line(record))

    def failed(job: tuple, error: str) -> None:
        bar.update()
        failures.append("{} seed={} {}".format(*job) + ": " + error.splitlines()[0])
        bar.set_postfix_str(f"{len(failures)} failed")
        tqdm.write("FAILED {} seed={} {}: ".format(*job) + error, file=sys.stderr)

    with bar:
        pool.run_pool(SweepRunner(child, keep_tasks=True), plan, exp.workers, gpus=gpus, threads=threads,
                         on_done=done, on_failed=failed, runs_per_worker=exp.runs_per_worker,
                         after=[_position(plan, search_needed(exp, job)) for job in plan])
    if failures:
        listed = "; ".join(failures[:3]) + ("; ..." if len(failures) > 3 else "")
        raise SweepError(f"{len(failures)} of {len(plan)} run(s) failed ({listed}); the {len(records)} others "
                         f"are recorded, and re-running the command retries the failed ones")
    return records


