"""How far the device alone moves one arm on one seed: per method (agwm only where both ran the
same hypergradient), |GPU grid - stage 2 dev| on the same task, n, seed and subset (the same
recipe and code path, another device), mean and max.

    .venv/bin/python results/stage2/device_spread.py [task] [gpu runs]  # default stsb gpu/runs.jsonl
"""
from __future__ import annotations

import sys
from pathlib import Path

from agwm_betty.report import load_runs

ROOT = Path(__file__).resolve().parents[1]


def main(task: str = "stsb", gpu_runs: str = "gpu/runs.jsonl") -> None:
    gpu, cpu = (load_runs([ROOT / p]) for p in (gpu_runs, "stage2/dev/runs.jsonl"))
    for method in ("vanilla-matched", "random-alpha", "vanilla", "agwm"):
        rows = [df[(df["task"] == task) & (df["n"] == 300) & (df["method"] == method)] for df in (gpu, cpu)]
        hypergradients = [set(r["hparams"].map(lambda h: h.get("hypergradient"))) for r in rows]
        if hypergradients[0] != hypergradients[1]:  # another outer level is another method
            print(f"{task} {method}: not comparable, hypergradient {hypergradients[0]} against {hypergradients[1]}")
            continue
        a, b = (r.set_index("seed")["metric"] for r in rows)
        diff = (a - b).dropna().abs()
        print(f"{task} {method}: {len(diff)} seeds, mean |GPU - CPU| {diff.mean():.2f}, max {diff.max():.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
