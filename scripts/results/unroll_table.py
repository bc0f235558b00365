"""Table of the unroll study (results/unroll/run.sh): held-out metric and search time against T.

    .venv/bin/python scripts/results/unroll_table.py [results/unroll/runs.jsonl]   # writes table.md beside it
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

from agwm_betty.report import load_records, pair_by_seed

RUNS = Path(__file__).resolve().parents[2] / "results" / "unroll" / "runs.jsonl"


def main(path: Path) -> str:
    """The table of the runs in `path`: a row per task and T, paired against T = 1 on the seeds both ran."""
    rows = {}
    for r in load_records([path]):
        rows.setdefault((r["task"], r["hparams"]["unroll_steps"]), {})[r["seed"]] = r
    lines = ["| task | T | seeds | held-out metric, mean ± sd | paired diff. vs T = 1 (same seeds) | "
             "search s, mean | outer steps per split |", "|---|---|---|---|---|---|---|"]
    for (task, unroll), by_seed in sorted(rows.items()):
        metrics = [r["metric"] for r in by_seed.values()]
        sd = statistics.stdev(metrics) if len(metrics) > 1 else float("nan")
        base = rows.get((task, 1), {})
        seeds, a, b = pair_by_seed(by_seed.values(), base.values())
        diff = (f"{(a - b).mean():+.2f} (n = {len(seeds)})" if seeds and unroll != 1 else "")
        search = statistics.mean(r["time"]["search"] for r in by_seed.values())
        per_split = by_seed[min(by_seed)]["steps"]["search_per_split"] // unroll
        name = next(iter(by_seed.values()))["metric_name"]
        lines.append(f"| {task} ({name}) | {unroll} | {','.join(map(str, sorted(by_seed)))} | "
                     f"{statistics.mean(metrics):.2f} ± {sd:.2f} | {diff} | {search:.0f} | {per_split} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    runs = Path(sys.argv[1]) if len(sys.argv) > 1 else RUNS
    table = main(runs)
    runs.with_name("table.md").write_text(table)
    print(table)
