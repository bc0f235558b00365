"""#12's goal, checked on the dev grid: over CoLA, RTE, STS-B and SST-2 at n = 300, is agwm's
average at least +1.5 above vanilla-matched and above random-alpha, with a paired-by-seed
p < 0.05 (agwm ahead) against each on at least two tasks?

    .venv/bin/python results/gpu_dev/goal.py [runs.jsonl ...]     # default: this folder's runs
"""
from __future__ import annotations

import sys
from pathlib import Path

from agwm_betty.report import load_runs, paired_differences

GOAL_TASKS = ("cola", "rte", "stsb", "sst2")
CONTROLS = ("vanilla-matched", "random-alpha (σ=0.005)")


def main(paths: list[str]) -> None:
    df = load_runs(paths or [Path(__file__).with_name("runs.jsonl")])
    df = df[(df["n"] == 300) & df["task"].isin(GOAL_TASKS)]
    missing = sorted(set(GOAL_TASKS) - set(df["task"]))
    if missing:
        sys.exit(f"no n = 300 runs of {', '.join(missing)}: the goal needs all of {', '.join(GOAL_TASKS)}")
    means = df.groupby(["label", "task"])["metric"].mean().unstack()[list(GOAL_TASKS)]
    average = means.mean(axis=1)
    print("four-task average (n = 300): " + ", ".join(f"{label} {value:.2f}" for label, value in average.items()))
    met = True
    for control in CONTROLS:
        paired = paired_differences(df, "agwm", control)
        won = paired[(paired["mean_difference"] > 0) & (paired["p"] < 0.05)]["task"].tolist()
        gap = average["agwm"] - average[control]
        print(f"agwm - {control}: average {gap:+.2f} (goal +1.50); tasks ahead at p < 0.05: "
              f"{len(won)} {won} (goal 2); seeds per task {sorted(set(paired['seeds']))}")
        met &= gap >= 1.5 and len(won) >= 2
    print("goal met" if met else "goal not met")


if __name__ == "__main__":
    main(sys.argv[1:])
