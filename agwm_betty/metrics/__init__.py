"""Metrics: GLUE's scores through `evaluate`, offline (`scores`), and the local `evaluate` module
they load by path (`glue_metric`)."""


def __getattr__(name: str):
    """`agwm_betty.metrics.<name>` from before 0.3.0, when `metrics` was one module: now `metrics.scores`."""
    if name.startswith("__"):
        raise AttributeError(name)
    import importlib

    from agwm_betty import _moved

    if name in ("scores", "glue_metric"):  # a submodule read as an attribute
        return importlib.import_module(f"{__name__}.{name}")
    scores = importlib.import_module("agwm_betty.metrics.scores")

    if not hasattr(scores, name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _moved.warn_moved(f"agwm_betty.metrics.{name}", f"agwm_betty.metrics.scores.{name}")
    return getattr(scores, name)
