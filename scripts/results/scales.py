"""One dev grid at several model scales, side by side and never pooled: per scale, each arm's
mean ± std per task and its average, and agwm's paired difference to vanilla-matched (wins/seeds,
paired p); the paper's BERT-large numbers in rows of their own. #34's two-scale answer:

    .venv/bin/python scripts/results/scales.py --seeds 0-4 --tasks sst2,stsb,mrpc,cola \\
        --scale "MiniLM 22M=results/gpu_dev/runs.jsonl" \\
        --scale "MPNet-base 110M=results/cpu_mpnet/runs.jsonl" --out results/scales.md

--seeds 0-4 keeps the seeds both grids ran: a seed draws the same training subset whatever the
PLM, so every scale is then scored on the same five subsets of each task.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from agwm_betty.report import load_runs, scales_table, to_markdown

ARMS = "vanilla,vanilla-matched,random-alpha (σ=0.005),agwm"


def parse_seeds(text: str) -> list[int]:
    """'0-4' or '0,2,5' -> a list of seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds.extend(range(int(low), int(high or low) + 1))
    return seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", action="append", required=True, metavar="NAME=RUNS[,RUNS]",
                        help="a scale's name and its runs.jsonl files (one PLM); repeat, in the order to print")
    parser.add_argument("--tasks", default="sst2,stsb,mrpc,cola", help="tasks, in column order")
    parser.add_argument("--arms", default=ARMS, help=f"row labels, in order (default {ARMS})")
    parser.add_argument("--n", type=int, default=300, help="training examples (default 300)")
    parser.add_argument("--seeds", default=None, help="keep only these seeds, e.g. 0-4 (default all)")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    args = parser.parse_args(argv)

    scales = {}
    for item in args.scale:
        name, sep, paths = item.partition("=")
        if not sep or not name or not paths:
            parser.error(f"--scale {item!r}: expected NAME=RUNS[,RUNS]")
        df = load_runs(paths.split(","))
        if args.seeds is not None:
            df = df[df["seed"].isin(parse_seeds(args.seeds))]
        if df["plm"].nunique() > 1:
            parser.error(f"--scale {name}: runs of several PLMs {sorted(df['plm'].unique())}")
        scales[name] = df
    table = scales_table(scales, args.n, args.tasks.split(","), args.arms.split(","))
    seeds = f", seeds {args.seeds}" if args.seeds else ""
    text = (f"Dev set, n = {args.n}{seeds}; cells are mean ± std over seeds, Average the mean of task "
            f"means. Paired rows: mean of agwm − vanilla-matched per seed (agwm ahead on wins/seeds, "
            f"paired t-test p). Each scale's rows come from its own runs only.\n\n{to_markdown(table)}\n")
    print(text, end="")
    if args.out:
        command = shlex.join(sys.argv[1:] if argv is None else argv)
        args.out.write_text(f"<!-- made by: python scripts/results/scales.py {command} -->\n{text}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
