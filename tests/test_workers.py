"""Spec of a sweep in several processes (`--workers N`) and of a sweep split into shards (`--shard I/N`).

Two workers, or two shards run one after the other into one folder, record the runs one process
records, with the same metrics; shards never overlap and together make the sweep; a failed run
or a dead worker is reported without stopping the rest; bad values are refused at the command line.
"""
import json
import os
from pathlib import Path

import pytest
import torch

from agwm_betty.config import Config
from agwm_betty.runs import pool
from agwm_betty.runs.experiment import CustomTask, Experiment, planned_runs
from agwm_betty.runs.sweep import run_sweep, sweep_jobs

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # as each of two worker processes


def sweep(**kwargs) -> Experiment:
    return Experiment(tasks=("rte", "cola", "stsb"), seeds=(0, 1, 2, 3), methods=("agwm", "vanilla"), **kwargs)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 30])
def test_shards_never_overlap_and_together_hold_every_run_in_list_order(count):
    jobs = planned_runs(sweep(), seed_major=True)
    shards = [pool.shard(jobs, i, count) for i in range(count)]
    assert sorted(job for s in shards for job in s) == sorted(jobs)  # union, each job once
    assert sum(len(s) for s in shards) == len(jobs)
    for s in shards:
        assert s == [job for job in jobs if job in s]  # a shard runs its jobs in the list's order
        assert len(s) in (len(jobs) // count, -(-len(jobs) // count))  # dealt evenly
    assert shards == [pool.shard(jobs, i, count) for i in range(count)]  # stable


def test_a_shard_depends_on_the_sweep_alone_not_on_the_workers_or_what_is_recorded(tmp_path):
    plain = [sweep_jobs(sweep(shard=(i, 3), output=tmp_path)) for i in range(3)]
    assert plain == [sweep_jobs(sweep(shard=(i, 3), workers=4, output=tmp_path / "x")) for i in range(3)]
    assert sorted(j for s in plain for j in s) == sorted(planned_runs(sweep()))


def test_a_shard_is_dealt_every_method_not_the_same_one_each_round():
    for count in (2, 4):
        for i in range(count):
            assert {m for _, _, m in sweep_jobs(sweep(shard=(i, count)))} == {"agwm", "vanilla"}


def test_one_process_keeps_task_major_order_and_workers_or_shards_go_seed_by_seed():
    assert sweep_jobs(sweep()) == planned_runs(sweep())
    assert [j[:2] for j in planned_runs(sweep())][:3] == [("rte", 0), ("rte", 0), ("rte", 1)]
    by_seed = sweep_jobs(sweep(workers=2))
    assert by_seed[:4] == [("rte", 0, "agwm"), ("rte", 0, "vanilla"), ("cola", 0, "agwm"), ("cola", 0, "vanilla")]
    assert [s for _, s, _ in by_seed] == sorted(s for _, s, _ in by_seed)
    assert sweep_jobs(sweep(shard=(0, 1))) == by_seed


@pytest.mark.parametrize("flag, value, message", [
    ("--workers", "0", "--workers takes an integer >= 1"),
    ("--workers", "two", "--workers takes an integer >= 1"),
    ("--runs-per-worker", "0", "--runs-per-worker takes an integer >= 1"),
    ("--shard", "2/2", "0 <= I < N"),
    ("--shard", "-1/2", "0 <= I < N"),
    ("--shard", "0/0", "0 <= I < N"),
    ("--shard", "1", "--shard takes I/N"),
    ("--shard", "a/b", "--shard takes I/N"),
])
def test_bad_workers_or_shard_is_one_line_and_exit_2(flag, value, message, capsys, tmp_path):
    from agwm_betty.cli.agwm_glue import main

    with pytest.raises(SystemExit) as exit_:
        main([f"{flag}={value}", "--output", str(tmp_path)])
    assert exit_.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and message in errors[0] and flag in errors[0]


def test_the_flags_reach_the_experiment():
    from agwm_betty.cli.agwm_glue import build_parser, experiment_from_args

    flags = ["--workers", "3", "--shard", "1/4", "--runs-per-worker", "2"]
    exp = experiment_from_args(build_parser().parse_args(flags))
    assert (exp.workers, exp.shard, exp.runs_per_worker) == (3, (1, 4), 2)
    exp = experiment_from_args(build_parser().parse_args([]))
    assert (exp.workers, exp.shard, exp.runs_per_worker) == (1, None, None)


@pytest.mark.parametrize("kwargs, message", [
    (dict(workers=0), "--workers must be an integer >= 1"),
    (dict(shard=(3, 3)), "0 <= I < N"),
    (dict(runs_per_worker=0), "--runs-per-worker must be an integer >= 1"),
    (dict(workers=2, cfg=Config(device="cuda:1")), "--device cuda:1 puts every run on one GPU"),
])
def test_the_api_refuses_the_same_values(kwargs, message):
    """Everything the CLI can do is reachable from Python, with the same checks."""
    with pytest.raises(ValueError, match=message):
        sweep(**kwargs).validate()


def test_worker_processes_are_pinned_round_robin_to_the_gpus_and_share_the_cores(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert pool.visible_gpus() == []
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert pool.threads_per_worker(1) == len(os.sched_getaffinity(0))
    assert pool.threads_per_worker(10 * os.cpu_count()) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert pool.threads_per_worker(2) == 3


def job_in_a_worker(job):
    """A pool job: fails on 'boom', kills its worker on 'die', else says where it ran."""
    if job == "boom":
        raise ValueError("boom went the run")
    if job == "die":
        os._exit(3)
    return job, os.environ["CUDA_VISIBLE_DEVICES"], torch.get_num_threads()


def test_a_failed_run_and_a_dead_worker_are_reported_and_the_other_runs_finish():
    done, failed = {}, {}
    jobs = ["a", "boom", "die", "b", "c", "d"]
    pool.run_pool(job_in_a_worker, jobs, 2, gpus=["7", "9"], threads=1, on_done=done.__setitem__,
                     on_failed=failed.__setitem__)
    assert set(done) == {"a", "b", "c", "d"} and set(failed) == {"boom", "die"}
    assert "ValueError: boom went the run" in failed["boom"]
    assert "exited with code 3" in failed["die"]
    assert {gpu for _, gpu, _ in done.values()} <= {"7", "9"}  # each worker sees only its GPU
    assert {threads for _, _, threads in done.values()} == {1}


def pid_of_a_worker(job):
    """A pool job that says which process ran it."""
    return job, os.getpid()


@pytest.mark.parametrize("runs_per_worker", [1, 2])
def test_a_worker_retires_after_its_runs_and_a_fresh_process_takes_its_place(runs_per_worker):
    done = {}
    jobs = list("abcdefg")
    pool.run_pool(pid_of_a_worker, jobs, 2, on_done=done.__setitem__, runs_per_worker=runs_per_worker)
    assert sorted(done) == jobs  # every run, once
    pids = [pid for _, pid in done.values()]
    runs_in = {pid: pids.count(pid) for pid in pids}
    assert max(runs_in.values()) == runs_per_worker  # no process ran more than its share
    assert len(runs_in) >= -(-len(jobs) // runs_per_worker)
    kept = {}
    pool.run_pool(pid_of_a_worker, jobs, 2, on_done=kept.__setitem__)
    assert len({pid for _, pid in kept.values()}) <= 2  # without it, two processes run everything


def test_a_failed_or_dying_run_in_a_retiring_pool_leaves_the_other_runs_to_fresh_workers():
    done, failed = {}, {}
    jobs = ["a", "boom", "die", "b", "c", "d"]
    pool.run_pool(job_in_a_worker, jobs, 2, threads=1, on_done=done.__setitem__,
                     on_failed=failed.__setitem__, runs_per_worker=1)
    assert set(done) == {"a", "b", "c", "d"} and set(failed) == {"boom", "die"}


def tiny(data: dict, output: Path, **kwargs) -> Experiment:
    return Experiment(plm=data["plm"], custom=CustomTask(data["train"], data["dev"], ["text"], "score"),
                      methods=("vanilla", "agwm"), seeds=(0,), n=12, output=output,
                      cfg=Config(K=1, max_steps=2, search_epochs=1, batch_size=4, device="cpu", progress=False),
                      **kwargs)


def by_run(output: Path) -> dict[str, dict]:
    records = [json.loads(line) for line in (output / "runs.jsonl").read_text().splitlines()]
    assert len({r["run_id"] for r in records}) == len(records)  # nothing recorded twice
    return {r["run_id"]: r for r in records}


def test_two_workers_and_two_shards_record_what_one_process_records(tiny_regression, tmp_path):
    one = by_run(tmp_path / "one") if run_sweep(tiny(tiny_regression, tmp_path / "one"), log=lambda *_: None) else {}
    assert len(one) == 2 and len({json.dumps(r["metrics"]) for r in one.values()}) > 1  # runs that differ

    for i in (0, 1):  # one shard after the other, into one folder
        run_sweep(tiny(tiny_regression, tmp_path / "shards", shard=(i, 2)), log=lambda *_: None)
    shards = by_run(tmp_path / "shards")

    said = []
    run_sweep(tiny(tiny_regression, tmp_path / "workers", workers=2), log=said.append)
    assert "2 run(s) in 2 worker processes (CPU, 1 torch thread(s) each)" in said
    parallel = by_run(tmp_path / "workers")

    run_sweep(tiny(tiny_regression, tmp_path / "fresh", runs_per_worker=1), log=said.append)
    assert any(line.startswith("2 run(s) in 1 worker processes") and "a fresh one every 1 run(s)" in line
               for line in said)
    fresh = by_run(tmp_path / "fresh")

    for name, other in (("shards", shards), ("workers", parallel), ("fresh workers", fresh)):
        assert other.keys() == one.keys(), name
        for key, record in one.items():
            assert other[key]["metrics"] == record["metrics"], (name, key)
            assert other[key]["alphas"] == record["alphas"], (name, key)


def in_this_process(fn, jobs, count, gpus=(), threads=1, on_done=None, on_failed=None, runs_per_worker=None,
                    after=None):
    """`pool.run_pool`'s contract without spawning (the pool itself is tested above)."""
    for job in jobs:
        try:
            result = fn(job)
        except Exception as err:
            on_failed(job, f"{type(err).__name__}: {err}\nTraceback ...")
        else:
            on_done(job, result)


def test_failed_runs_in_workers_are_reported_and_the_exit_status_is_1(tiny_regression, tmp_path, capsys, monkeypatch):
    from agwm_betty.cli.agwm_glue import main

    monkeypatch.setattr(pool, "run_pool", in_this_process)
    code = main(["--plm", tiny_regression["plm"], "--train-file", tiny_regression["train"], "--validation-file",
                 tiny_regression["dev"], "--text-columns", "text", "--label-column", "score", "--methods", "vanilla",
                 "--seeds", "2", "--n", "100", "--device", "cpu", "--no-progress", "--workers", "2",
                 "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("FAILED mine seed=") == 2 and "larger than the mine training set" in err
    assert "error: 2 of 2 run(s) failed" in err.splitlines()[-1]
    assert not (tmp_path / "runs.jsonl").exists()
