#!/usr/bin/env python
"""Pick MPNet's recipe from recipe.sh's records, by a rule fixed before any of them was read.

Rule: among the (lr, epochs) candidates whose vanilla runs are all recorded (every task x seed of the
recipe stage), take the one with the highest mean held-out score over those runs (each task's main
metric on the 0-100 scale, on 500 training examples outside the subset, never the dev set). Ties go
to fewer epochs, then the smaller lr. If no candidate is complete (a cut stage), the paper's BERT-large
recipe (lr 2e-5, 3 epochs) is used, and the table says so.

    python scripts/pick_recipe.py results/gpu_mpnet/recipe/runs.jsonl            # table + choice
    python scripts/pick_recipe.py results/gpu_mpnet/recipe/runs.jsonl --shell    # "LR EPOCHS" only

The table goes to stderr with --shell, so `read LR EPOCHS < <(pick_recipe.py ... --shell)` works.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

FALLBACK = (2e-5, 3.0)  # the paper's recipe for BERT-large


def load(path: Path, plm: str | None) -> list[dict]:
    """The vanilla held-out records in `path` (of `plm` if given)."""
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r["method"] == "vanilla" and str(r.get("eval_split", "")).startswith("heldout")
            and (plm is None or r["plm"] == plm)]


def pick(records: list[dict], tasks: list[str], seeds: list[int]) -> tuple[tuple[float, float], list[str], bool]:
    """((lr, epochs), table lines, whether the rule chose it rather than the fallback)."""
    scores: dict[tuple[float, float], dict[tuple[str, int], float]] = defaultdict(dict)
    for r in records:
        key = (float(r["hparams"]["lr"]), float(r["hparams"]["epochs"]))
        scores[key].setdefault((r["task"], r["seed"]), float(r["metric"]))
    wanted = [(t, s) for t in tasks for s in seeds]
    lines = ["| lr | epochs | " + " | ".join(tasks) + " | mean | complete |", "|---" * (len(tasks) + 4) + "|"]
    complete = {}
    for key in sorted(scores):
        got = scores[key]
        per_task = []
        for t in tasks:
            values = [got[(t, s)] for s in seeds if (t, s) in got]
            per_task.append(f"{sum(values) / len(values):.2f}" if values else "-")
        done = all(w in got for w in wanted)
        mean = sum(got[w] for w in wanted) / len(wanted) if done else None
        if done:
            complete[key] = mean
        row = f"| {key[0]:g} | {key[1]:g} | " + " | ".join(per_task)
        lines.append(row + (f" | {mean:.2f} | yes |" if done else " | - | no |"))
    if not complete:
        return FALLBACK, lines, False
    best = max(complete, key=lambda k: (complete[k], -k[1], -k[0]))
    return best, lines, True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", type=Path)
    parser.add_argument("--tasks", default="cola,stsb,mrpc,rte,sst2")
    parser.add_argument("--seeds", default="0", help="comma list of the recipe stage's seeds")
    parser.add_argument("--plm", default=None, help="only records of this --plm name")
    parser.add_argument("--shell", action="store_true", help="print only 'LR EPOCHS' on stdout")
    args = parser.parse_args()
    tasks, seeds = args.tasks.split(","), [int(s) for s in args.seeds.split(",")]
    (lr, epochs), lines, chosen = pick(load(args.records, args.plm), tasks, seeds)
    note = (f"chosen by the rule: lr {lr:g}, {epochs:g} epochs" if chosen else
            f"no candidate complete: the fallback, lr {lr:g}, {epochs:g} epochs (the paper's BERT-large recipe)")
    table = sys.stderr if args.shell else sys.stdout
    print("\n".join(lines + ["", note]), file=table)
    if args.shell:
        print(f"{lr:g} {epochs:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
