"""A process's memory: read its resident size and high-water mark, and give freed heap back to the OS.

glibc keeps memory that Python and torch free in its heap, for the next allocation: after a run,
a worker's resident size stays near its peak although nothing uses it. `trim` hands it back.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
from pathlib import Path


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to call
        return None


def trim() -> bool | None:
    """Give the heap's free pages back to the OS (glibc's `malloc_trim(0)`): True if it released
    any, False if none, None where the C library has no such call."""
    call = _malloc_trim()
    return None if call is None else bool(call(0))


def _status_mib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def rss_mib() -> float | None:
    """This process's resident set size now (MiB), from /proc; None off Linux."""
    return _status_mib("VmRSS")


def peak_rss_mib() -> float | None:
    """This process's resident high-water mark (MiB, the kernel's VmHWM); None off Linux."""
    return _status_mib("VmHWM")
