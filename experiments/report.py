#!/usr/bin/env python
"""Tables and plots from runs.jsonl files: the same program as the `agwm-report` command
(agwm_betty/cli/agwm_report.py).

    python experiments/report.py results/runs.jsonl [more.jsonl ...] --out results/ [--html]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from agwm_betty.cli.agwm_report import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
