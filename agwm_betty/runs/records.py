"""Run records: what identifies a run (`run_id`), and the runs.jsonl that holds one JSON line per
finished run, appended atomically under a lock so that any number of processes (`--workers`,
`--shard`, two sweeps) can share one file and a killed one never leaves half a line."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from agwm_betty.runs.jsonlines import read_objects

RUNS_FILE = "runs.jsonl"


def run_id(record: dict, defaults: Mapping[str, Any]) -> str:
    """Identity of a run: PLM, task, n, method, seed, the hyperparameters it depends on and, for a
    run without search, the saved alpha it started from (by content).

    A hyperparameter at today's default (`defaults`: every setting's, the shared config's and each
    method's own, `agwm_betty.methods.setting_defaults()`) leaves the digest, so a field added later
    (which must default to the behaviour before it existed) keeps older records resumable. Records
    store every value, so a changed default still separates old runs from new ones."""
    digest = hashlib.sha1(json.dumps(_identity(record["hparams"], defaults), sort_keys=True).encode()).hexdigest()[:10]
    split = "" if record.get("eval_split", "dev") == "dev" else f"|{record['eval_split']}"
    reused = record.get("alphas_from")
    if reused:
        split += f"|alphas={reused['sha1'][:10]}" + ("+W" if reused["task_weights"] else "")
    return f"{record['plm']}|{record['task']}|n={record['n']}|{record['method']}|seed={record['seed']}|{digest}{split}"


def model_dir_name(record: dict) -> str:
    """A run's readable name (task, n, method, seed): its saved model's folder under models/."""
    return f"{record['task']}-n{record['n']}-{record['method']}-seed{record['seed']}"


def run_stem(record: dict) -> str:
    """A run's file name stem, readable and unique per run_id: its saved search, curves and logs."""
    return f"{model_dir_name(record)}-{hashlib.sha1(record['run_id'].encode()).hexdigest()[:8]}"


def _identity(hparams: dict, defaults: Mapping[str, Any]) -> dict:
    """The hyperparameters that are not at their default; an int given for a float
    field counts as that float (epochs=5 from the API is the CLI's epochs=5.0)."""
    out = {}
    for k, v in hparams.items():
        if isinstance(defaults.get(k), float) and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if k not in defaults or defaults[k] != v:
            out[k] = v
    return out


def read_records(path: Path) -> list[dict]:
    """Records of a runs.jsonl (a missing file has none)."""
    if not path.exists():
        return []
    return [record for _, record in read_objects(path)]


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
