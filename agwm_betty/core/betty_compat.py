"""Fail fast, with the fix, when the installed Betty is not the 0.2.1 this package is written for."""
from __future__ import annotations

REQUIRED_BETTY = "0.2.1"

FIX = (
    "agwm-betty needs betty-ml {req} (found {found}). On Python >= 3.11 pip silently picks the old "
    "0.1.1 because 0.2.1 declares Requires-Python <3.11; install it with\n"
    "    pip install --no-deps --ignore-requires-python betty-ml=={req}\n"
    "or run scripts/setup.sh, which does this for you."
)


def check_betty() -> str:
    """Return Betty's version, or raise ImportError saying how to install the right one."""
    try:
        import betty
    except ImportError as err:  # pragma: no cover - exercised by a subprocess test
        raise ImportError(FIX.format(req=REQUIRED_BETTY, found="none")) from err
    found = getattr(betty, "__version__", "unknown")
    if found != REQUIRED_BETTY:
        raise ImportError(FIX.format(req=REQUIRED_BETTY, found=found))
    return found


BETTY_VERSION = check_betty()  # a module that imports Betty imports this first
