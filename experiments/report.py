"""Turn runs.jsonl files into tables (ours beside the paper's BERT-large numbers) and plots.

    python experiments/report.py results/runs.jsonl [more.jsonl ...] --out results/
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description="Aggregate finished runs (one JSON record per line) into tables.md, CSVs "
        "(summary.csv with mean, sample std, seeds, Welch p vs vanilla, degenerate seeds) and PNG "
        "plots (metric box plots per n, learned alpha per layer and its histogram). The tables "
        "are also printed to stdout.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", type=Path,
                        help="runs.jsonl files; a run_id seen twice keeps its first record")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: the folder of the first runs file)")
    parser.add_argument("--quiet", action="store_true", help="do not print the tables")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Write the report and print it."""
    args = parse_args(argv)
    from agwm_betty.report import write_report  # after parsing, so --help answers at once

    written = write_report(args.runs, args.out or args.runs[0].parent)
    if not args.quiet:
        print(written[0].read_text(encoding="utf-8"))
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
