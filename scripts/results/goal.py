"""#12's goal, checked on a dev grid: over the goal's tasks at n = 300, is agwm's average at least
+1.5 above vanilla-matched and above random-alpha, with a paired-by-seed p < 0.05 (agwm ahead)
against each on at least two tasks? Fewer than --min-seeds seeds in any cell: no verdict.

    .venv/bin/python scripts/results/goal.py results/gpu_dev/runs.jsonl      # #12: CoLA, RTE, STS-B, SST-2
    .venv/bin/python scripts/results/goal.py results/cpu_mpnet/runs.jsonl \\
        --tasks sst2,stsb,mrpc,cola --informative                              # #34

--informative keeps, of --tasks, those some arm learns (`agwm_betty.report.informative_table`: the
best arm's mean at least 5 points above chance), the rule #34 fixed before its MRPC and CoLA records.
"""
from __future__ import annotations

import argparse
import sys

from agwm_betty.report import INFORMATIVE_MARGIN, informative_table, load_runs, paired_differences, task_name

ARMS = ("agwm", "vanilla-matched", "random-alpha (σ=0.005)")  # the goal's; vanilla is shown beside them
CONTROLS = ARMS[1:]
MARGIN, WINS, ALPHA = 1.5, 2, 0.05


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="runs.jsonl files of one PLM")
    parser.add_argument("--tasks", default="cola,rte,stsb,sst2", help="the goal's tasks (default #12's four)")
    parser.add_argument("--informative", action="store_true", help="keep only the informative ones of --tasks")
    parser.add_argument("--n", type=int, default=300, help="training examples (default 300)")
    parser.add_argument("--min-seeds", type=int, default=5, help="seeds every arm needs on every task (default 5)")
    args = parser.parse_args(argv)

    tasks = args.tasks.split(",")
    df = load_runs(args.runs)
    df = df[(df["n"] == args.n) & df["task"].isin(tasks) & df["label"].isin((*ARMS, "vanilla"))]
    if df["plm"].nunique() > 1:
        sys.exit(f"runs of several PLMs {sorted(df['plm'].unique())}: give one PLM's runs")
    missing = [t for t in tasks if t not in set(df["task"])]
    if missing:
        sys.exit(f"no n = {args.n} runs of {', '.join(missing)}: the goal needs all of {', '.join(tasks)}")
    if args.informative:
        table = informative_table(df).set_index("task")
        for task in tasks:
            row = table.loc[task]
            print(f"{task_name(task)}: best {row.best} {row.best_mean:.2f}, chance {row.chance:.2f}, "
                  f"margin {row.margin:+.2f}: {'informative' if row.informative else 'not informative'}")
        tasks = [t for t in tasks if table.loc[t, "informative"]]
        print(f"informative (margin >= {INFORMATIVE_MARGIN:g}): {', '.join(tasks) or 'none'}")
        if not tasks:
            print("no informative task: no verdict")
            return 0
        df = df[df["task"].isin(tasks)]

    seeds = df.groupby(["label", "task"])["seed"].nunique().unstack().reindex(index=list(ARMS), columns=tasks)
    short = [(arm, task, 0 if seeds.isna().loc[arm, task] else int(seeds.loc[arm, task]))
             for arm in ARMS for task in tasks
             if seeds.isna().loc[arm, task] or seeds.loc[arm, task] < args.min_seeds]
    means = df.groupby(["label", "task"])["metric"].mean().unstack()[tasks]
    average = means.mean(axis=1)
    print(f"{len(tasks)}-task average (n = {args.n}): "
          + ", ".join(f"{label} {value:.2f}" for label, value in average.items()))
    met = True
    for control in CONTROLS:
        paired = paired_differences(df, "agwm", control)
        won = paired[(paired["mean_difference"] > 0) & (paired["p"] < ALPHA)]["task"].tolist()
        gap = average.get("agwm", float("nan")) - average.get(control, float("nan"))
        print(f"agwm - {control}: average {gap:+.2f} (goal +{MARGIN:.2f}); tasks ahead at p < {ALPHA}: "
              f"{len(won)} {won} (goal {WINS}); seeds per task {sorted(set(paired['seeds']))}")
        met &= gap >= MARGIN and len(won) >= WINS
    if short:
        print(f"no verdict yet: fewer than {args.min_seeds} seeds in "
              + ", ".join(f"{arm} on {task_name(task)} ({k})" for arm, task, k in short))
    else:
        print("goal met" if met else "goal not met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
