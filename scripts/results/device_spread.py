"""How far the device alone moves one arm on one seed: per method (agwm only where both ran the
same hypergradient), |GPU grid - stage 2 dev| on the same task, n, seed and subset (the same
recipe and code path, another device), mean and max.

    .venv/bin/python scripts/results/device_spread.py [task] [gpu runs]  # default stsb gpu/runs.jsonl
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from agwm_betty.report import load_records, pair_by_seed, select

RESULTS = Path(__file__).resolve().parents[2] / "results"  # the runs paths below are relative to it


def main(task: str = "stsb", gpu_runs: str = "gpu/runs.jsonl") -> None:
    gpu, cpu = (load_records([RESULTS / p]) for p in (gpu_runs, "stage2/dev/runs.jsonl"))
    for method in ("vanilla-matched", "random-alpha", "vanilla", "agwm"):
        rows = [select(runs, task=task, n=300, method=method) for runs in (gpu, cpu)]
        hypergradients = [{r["hparams"].get("hypergradient") for r in runs} for runs in rows]
        if hypergradients[0] != hypergradients[1]:  # another outer level is another method
            print(f"{task} {method}: not comparable, hypergradient {hypergradients[0]} against {hypergradients[1]}")
            continue
        _, a, b = pair_by_seed(*rows)
        diff = np.abs(a - b)[~np.isnan(a - b)]
        mean, top = (diff.mean(), diff.max()) if len(diff) else (np.nan, np.nan)
        print(f"{task} {method}: {len(diff)} seeds, mean |GPU - CPU| {mean:.2f}, max {top:.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
