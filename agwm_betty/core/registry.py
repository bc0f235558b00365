"""Hypergradients by name: the built-in names, the ones a user registers, and the check of a name.

Nothing here imports torch or Betty, so a `Config` can check its `hypergradient` anywhere. Turning
a name into the function Betty calls happens in one place, where the outer problem is built
(`agwm_betty.core.hypergradients.resolve_hypergradient`, called by `core.problems`).
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable

# the paper's eq. 6, the official code's Betty 0.2.0 form, Betty 0.2.1's darts, first-order, and
# Betty's implicit ones (docs/hypergradients.md)
BUILT_IN = ("darts-paper", "darts-official", "darts", "first-order", "sama", "neumann", "cg")
# Betty's own names that no user function may take
BETTY_NAMES = ("darts", "neumann", "cg", "sama", "reinforce")
REINFORCE = ("hypergradient 'reinforce' does not apply: it is for non-differentiable (sampled) outer losses and "
             f"unfinished in Betty 0.2.1; choose from {', '.join(BUILT_IN)}")

_registered: dict[str, Callable] = {}  # a user's name -> its function, in this process


def register_hypergradient(name: str, fn: Callable) -> None:
    """Make `fn(vector, curr, prev, sync)` the hypergradient `Config(hypergradient=name)` selects.

    A built-in name cannot be taken; registering the same function under the same name again (a
    module imported twice) changes nothing. The name lives in this process: worker processes find a
    'package.module:function' name themselves."""
    if name in BUILT_IN or name in BETTY_NAMES:
        raise ValueError(f"hypergradient {name!r} is built in; register yours under another name")
    _checked(name, fn)
    if _registered.get(name, fn) is not fn:
        raise ValueError(f"hypergradient {name!r} is already registered to another function")
    _registered[name] = fn


def _checked(name: str, fn) -> Callable:
    """`fn`, if it can be called with Betty's four arguments."""
    if not callable(fn):
        raise ValueError(f"hypergradient {name!r}: a {type(fn).__name__} is not callable")
    try:
        inspect.signature(fn).bind(None, None, None, None)
    except TypeError:
        raise ValueError(f"hypergradient {name!r}: {getattr(fn, '__name__', fn)!r} must take Betty's four "
                         "arguments (vector, curr, prev, sync)") from None
    except ValueError:  # no signature to read (a builtin): let the call tell
        pass
    return fn


def registered(name: str) -> Callable | None:
    """The function registered under `name` in this process, or None."""
    return _registered.get(name)


def _split_path(name: str) -> tuple[str, str]:
    module_name, _, attribute = name.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"hypergradient {name!r}: give it as package.module:function")
    return module_name, attribute


def _with_cwd() -> None:
    """A user's module in the current directory imports, as under `python -m`."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())


def check_hypergradient(name: str, load: bool = False) -> None:
    """Raise ValueError unless `name` is built in, registered, or a 'package.module:function' whose
    module can be found. `load=True` (the command line, before any model loads) also imports that
    module and checks its function; either way nothing is registered and Betty is not touched."""
    if name == "reinforce":
        raise ValueError(REINFORCE)
    if name in BUILT_IN or name in _registered:
        return
    if ":" not in name:
        raise ValueError(f"unknown hypergradient {name!r}; choose from {', '.join(BUILT_IN)}, a registered "
                         "name, or package.module:function")
    module_name, _ = _split_path(name)
    _with_cwd()
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as err:
        raise ValueError(f"hypergradient {name!r}: cannot import {module_name!r} ({err})") from None
    if found is None:
        raise ValueError(f"hypergradient {name!r}: cannot import {module_name!r} (no module named {module_name!r})")
    if load:
        _checked(name, _load(name))


def _load(name: str) -> Callable:
    """The object a 'package.module:function' path names, its module imported."""
    module_name, attribute = _split_path(name)
    _with_cwd()
    try:
        fn = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"hypergradient {name!r}: cannot import {module_name!r} ({err})") from None
    for part in attribute.split("."):
        if not hasattr(fn, part):
            raise ValueError(f"hypergradient {name!r}: {module_name!r} has no attribute {attribute!r}")
        fn = getattr(fn, part)
    return fn


def user_function(name: str) -> Callable:
    """The function a registered name or a 'package.module:function' path names, the path's module
    imported and the function registered under the path (`core.hypergradients.resolve_hypergradient`)."""
    check_hypergradient(name)
    if name not in _registered:
        register_hypergradient(name, _load(name))
    return _registered[name]
