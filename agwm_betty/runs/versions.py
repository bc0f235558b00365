"""Which code a record ran: the library versions a result depends on, and the git commit of this
package's code."""
from __future__ import annotations

import functools
import platform
from pathlib import Path


def versions() -> dict[str, str]:
    """Library versions a result depends on."""
    import betty
    import datasets
    import torch
    import transformers

    from agwm_betty._version import __version__

    found = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
             "datasets": datasets.__version__, "betty": betty.__version__, "agwm_betty": __version__}
    commit = code_commit()
    if commit is not None:
        found["agwm_betty_commit"] = commit
    return found


@functools.lru_cache(maxsize=1)
def code_commit() -> str | None:
    """The git commit this package's code was checked out at ('-dirty' when its files differ from it),
    or None outside a git checkout: which code a record ran, finer than the version number."""
    import subprocess

    here = Path(__file__).resolve().parents[1]  # the package's folder
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."], cwd=here,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
