"""Turn runs.jsonl files into tables (ours beside the paper's BERT-large numbers) and plots.

    agwm-report results/runs.jsonl [more.jsonl ...] --out results/ [--html] [--pairs setfit:agwm]
    (python experiments/report.py is the same program)
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
    parser.add_argument("--html", action="store_true",
                        help="also write report.html: the tables and plots on one self-contained page "
                             "(images embedded) that opens in a browser offline")
    parser.add_argument("--quiet", action="store_true", help="do not print the tables")
    parser.add_argument("--pairs", type=pairs_arg, default=(), metavar="A:B[,C:D...]",
                        help="also compare these method labels paired by seed (A - B per task, wins, paired p), "
                             "after agwm against its controls; e.g. setfit:vanilla-matched,setfit:agwm")
    return parser.parse_args(argv)


def pairs_arg(text: str) -> tuple[tuple[str, str], ...]:
    """'a:b,c:d' as ((a, b), (c, d)); an item without exactly one ':' is an argparse error."""
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        parts = [p.strip() for p in item.split(":")]
        if len(parts) != 2 or not all(parts):
            raise argparse.ArgumentTypeError(f"{item!r}: give a pair as LABEL:REFERENCE, e.g. setfit:vanilla")
        pairs.append((parts[0], parts[1]))
    return tuple(pairs)


def check_runs_file(path: Path) -> str | None:
    """Why `path` cannot be a runs file (missing, a folder, unreadable, not text, empty), or None."""
    if not path.exists():
        return f"{path}: no such file"
    if not path.is_file():
        return f"{path}: not a file (give the runs.jsonl inside it)"
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        return f"{path}: cannot be read ({err.strerror})"
    except UnicodeDecodeError:
        return f"{path}: not UTF-8 text, so not a runs file (JSON lines)"
    if not text.strip():
        return f"{path}: empty file, no run records in it"
    return None


def main(argv: list[str] | None = None) -> int:
    """Write the report and print it; a bad runs file is one line on stderr and exit code 2."""
    args = parse_args(argv)
    problem = next(filter(None, map(check_runs_file, args.runs)), None)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from agwm_betty.report import write_report  # pandas and matplotlib only once there is something to report

    out = args.out or args.runs[0].parent
    try:
        written = write_report(args.runs, out, args.pairs)
    except ValueError as err:  # a line that is not a JSON record: the message names the file and line
        print(f"error: {err} (each line of a runs file is one JSON record)", file=sys.stderr)
        return 2
    if args.html:
        from agwm_betty.report.html import write_html

        written.append(write_html(written[0]))
    if not args.quiet:
        print(written[0].read_text(encoding="utf-8"))
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0
