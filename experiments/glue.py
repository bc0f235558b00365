#!/usr/bin/env python
"""Low-resource GLUE sweeps: the same program as the `agwm-glue` command (agwm_betty/cli/agwm_glue.py).

    python experiments/glue.py --help
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from agwm_betty.cli.agwm_glue import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
