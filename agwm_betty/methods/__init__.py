"""Every method by its `--methods` name, behind one interface (`Method.run`)."""
from __future__ import annotations

from agwm_betty.methods.agwm import AGWM, Joint, RandomAlpha, VanillaMatched
from agwm_betty.methods.base import FinetuneMethod, Method, RunContext, RunResult

METHODS: dict[str, Method] = {m.name: m for m in (FinetuneMethod(), AGWM(), Joint(), RandomAlpha(), VanillaMatched())}


def get_method(name: str) -> Method:
    """The method registered as `name`; ValueError listing the valid names otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None


__all__ = ["METHODS", "Method", "RunContext", "RunResult", "get_method"]
