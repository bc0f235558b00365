"""A sweep's runs in several processes (`--workers N`), and one sweep split into shards (`--shard I/N`).

Nothing here knows what a run is: `run_pool` calls a picklable function on each job in N spawned
worker processes, each pinned to one GPU (round-robin over the visible ones, several workers per
GPU when N exceeds them) or, without a GPU, given its share of the CPU cores. `shard` deals a job
list out to N shards. `sweep.run_sweep` uses both.
"""
from __future__ import annotations

import bisect
import multiprocessing as mp
import os
import signal
import traceback
from collections.abc import Callable, Sequence
from multiprocessing import connection
from typing import TypeVar

Job = TypeVar("Job")


def parse_shard(value: str) -> tuple[int, int]:
    """'I/N' -> (I, N): shard I of N, I 0-based (0 <= I < N); ValueError otherwise."""
    index, sep, count = value.partition("/")
    try:
        if not sep:
            raise ValueError
        index, count = int(index), int(count)
    except ValueError:
        raise ValueError(f"--shard takes I/N (shard I of N, I from 0 to N-1), got {value!r}") from None
    check_shard(index, count)
    return index, count


def check_shard(index: int, count: int) -> None:
    """ValueError unless `count` >= 1 and 0 <= `index` < `count`."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard {index}/{count}: I is 0-based and must satisfy 0 <= I < N, with N >= 1 "
                         f"(a SLURM array --array=0-{max(count, 1) - 1} gives I = $SLURM_ARRAY_TASK_ID)")


def dealt_to(position: int, count: int) -> int:
    """The shard that the job at `position` of the list goes to: the list is dealt out in rounds of
    `count`, forwards then backwards (0, 1, .., N-1, N-1, .., 0, 0, ..), so that a shard is not dealt
    the same method of a repeating (.., agwm, vanilla, ..) list every time."""
    rounds, place = divmod(position, count)
    return place if rounds % 2 == 0 else count - 1 - place


def shard(jobs: Sequence[Job], index: int, count: int) -> list[Job]:
    """Shard `index` (0-based) of `count`: its jobs in list order. Depends on the list alone, so the
    shards of one list never overlap and together hold every job."""
    check_shard(index, count)
    return [job for position, job in enumerate(jobs) if dealt_to(position, count) == index]


def visible_gpus() -> list[str]:
    """The CUDA devices a worker can be pinned to, as CUDA_VISIBLE_DEVICES entries (none without CUDA)."""
    import torch

    count = torch.cuda.device_count()  # counts what CUDA_VISIBLE_DEVICES leaves visible
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(i) for i in range(count)]
    return [d.strip() for d in listed.split(",") if d.strip()][:count]


def threads_per_worker(workers: int) -> int:
    """Torch threads for each of `workers` processes: $OMP_NUM_THREADS where set, else an even share
    of this process's cores (at least one), so the workers together do not oversubscribe them."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"])
    return max(1, len(os.sched_getaffinity(0)) // workers)


def run_pool(fn: Callable[[Job], object], jobs: Sequence[Job], workers: int, gpus: Sequence[str] = (),
             threads: int = 1, on_done: Callable[[Job, object], None] | None = None,
             on_failed: Callable[[Job, str], None] | None = None, runs_per_worker: int | None = None,
             after: Sequence[int | None] | None = None) -> None:
    """Call `fn(job)` for every job in `workers` spawned processes, taking the jobs in list order.

    Worker i sees only GPU `gpus[i % len(gpus)]` (CUDA_VISIBLE_DEVICES, set before CUDA starts);
    with no `gpus` it runs on the CPU. Each worker uses `threads` torch threads. `fn` is pickled
    once per worker, so state it builds (a loaded dataset) lives on across that worker's jobs.
    `on_done(job, result)` and `on_failed(job, error text)` are called in this process as jobs
    end. A job that raises is reported and the worker goes on; a worker that dies (killed, out of
    memory) fails its job in flight and the others go on; jobs left when no worker is alive
    fail as not run. With `runs_per_worker`, a worker retires after that many jobs and a fresh
    process (same GPU) takes its place, so memory that a process keeps growing across runs is given
    back. `after[i]`, where given and not None, is the position of a job that job i needs finished
    (done or failed) before it starts: job i is held back until then, and the others go on meanwhile.
    An interrupt here terminates the workers."""
    if not jobs:
        return
    on_done = on_done or (lambda job, result: None)
    on_failed = on_failed or (lambda job, error: None)
    ctx = mp.get_context("spawn")  # fork would copy a started CUDA context and torch's thread pools
    todo = ctx.Queue()
    ready: list[int] = []  # positions of the jobs free to start, in list order
    held: dict[int, list[int]] = {}  # position of a job -> positions of the jobs waiting for it
    for position in range(len(jobs)):
        first = None if after is None else after[position]
        if first is None:
            ready.append(position)
        elif not 0 <= first < len(jobs) or first == position or after[first] is not None:
            raise ValueError(f"after[{position}] = {first}: a job may wait only for another job that waits for none")
        else:
            held.setdefault(first, []).append(position)
    count = min(workers, len(jobs))
    queue = {"jobs": 0, "slots": count, "ended": False}  # jobs queued but not yet started; slots served

    def feed() -> None:
        """Queue the first ready jobs, one per idle worker and no more: a job released later still goes
        before the rest of the list. After the last job, one end marker per worker slot."""
        idle = queue["slots"] - len(in_flight) - queue["jobs"]
        while idle > 0 and ready:
            position = ready.pop(0)
            todo.put((position, jobs[position]))
            queue["jobs"] += 1
            idle -= 1
        if not ready and not held and not queue["ended"]:
            queue["ended"] = True
            for _ in range(count):
                todo.put(None)

    procs: dict[int, mp.process.BaseProcess] = {}  # worker slot -> its current, started process
    open_ends: dict[connection.Connection, int] = {}  # read end here -> worker slot
    in_flight: dict[int, int] = {}  # worker slot -> position of its job
    retiring: set[int] = set()  # slots whose process said it takes no more jobs
    settled: set[int] = set()

    def start(slot: int) -> None:
        read_end, write_end = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_work, name=f"sweep-worker-{slot}",
                           args=(fn, todo, write_end, gpus[slot % len(gpus)] if gpus else None, threads,
                                 runs_per_worker))
        proc.start()
        procs[slot] = proc  # a retired one it replaces was joined when its pipe ended
        write_end.close()  # the worker holds the only write end: its exit ends the pipe here
        open_ends[read_end] = slot

    def settle(position: int, error: str | None, result: object = None) -> None:
        settled.add(position)
        for waiting in held.pop(position, []):
            bisect.insort(ready, waiting)
        if error is None:
            on_done(jobs[position], result)
        else:
            on_failed(jobs[position], error)

    try:
        for slot in range(count):
            start(slot)
        feed()
        while open_ends:
            for read_end in connection.wait(list(open_ends)):
                worker = open_ends[read_end]
                try:
                    kind, position, payload = read_end.recv()
                except EOFError:  # the worker exited: after its end marker, retired, or killed mid-run
                    del open_ends[read_end]
                    procs[worker].join()
                    if worker in retiring:  # it left the end marker it would have taken to its successor
                        retiring.discard(worker)
                        start(worker)
                    else:
                        queue["slots"] -= 1
                        if worker in in_flight:
                            settle(in_flight.pop(worker), "its worker process exited with code "
                                                          f"{procs[worker].exitcode} (killed, or out of memory?)")
                    feed()
                    continue
                if kind == "start":
                    in_flight[worker] = position
                    queue["jobs"] -= 1
                elif kind == "retire":
                    retiring.add(worker)
                else:
                    del in_flight[worker]
                    settle(position, payload if kind == "failed" else None, payload)
                feed()
        for position in range(len(jobs)):
            if position not in settled:
                settle(position, "not run: no worker process was left to run it")
    finally:
        for proc in procs.values():
            if proc.is_alive():
                proc.terminate()
            proc.join()


def _work(fn: Callable, todo, results: connection.Connection, gpu: str | None, threads: int,
          runs_per_worker: int | None = None) -> None:
    """A worker process: pin to `gpu` (or hide every GPU), then run jobs until the end marker, or
    until it has run `runs_per_worker` of them (then it says it retires and exits)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops the workers
    os.environ["CUDA_VISIBLE_DEVICES"] = "" if gpu is None else gpu
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    parent = os.getppid()
    ran = 0
    for position, job in iter(todo.get, None):
        if os.getppid() != parent:  # the sweep was killed: take no new job
            return
        results.send(("start", position, None))  # sent at once (no feeder thread): a kill cannot lose it
        try:
            results.send(("done", position, fn(job)))
        except Exception as err:
            detail = traceback.format_exc(limit=-8)
            results.send(("failed", position, f"{type(err).__name__}: {err}\n{detail}"))
        ran += 1
        if runs_per_worker is not None and ran >= runs_per_worker:
            results.send(("retire", -1, None))
            return
