"""Step times, interleaved across variants so that outside load hits all alike, and FLOP counts."""
from __future__ import annotations

import sys
import time

from _variants import (
    BETTY_SEARCH,
    FT_MIXUP_PREFIX,
    HG_PREFIX,
    MIXUP_PREFIX,
    REPORT_PREFIX,
    UNROLL_PREFIX,
    VARIANTS,
    build_variant,
    sync,
    unroll_of,
)


def time_steps(model_name: str, args, cfg, tok, data) -> dict[str, list[float]]:
    """Per-variant step times (seconds), interleaved a, b, c, a, b, c, ..."""
    from agwm_betty.core.train_loop import resolve_device

    device = resolve_device(cfg)
    other_impl = tuple(f"{prefix}{i}" for i in args.compare_impls.split(",") if i and i != args.mixup_impl
                       for prefix in (MIXUP_PREFIX, FT_MIXUP_PREFIX))
    variants = (VARIANTS + (other_impl if args.compare_mixup else ()) + ((BETTY_SEARCH,) if args.compare else ())
                + tuple(f"{UNROLL_PREFIX}{t}" for t in args.unrolls if t > 1)
                + tuple(f"{HG_PREFIX}{h}" for h in args.hypergradients)
                + ((f"{REPORT_PREFIX}{args.report_to}",) if args.report_to != "none" else ()))
    steps = {v: build_variant(v, model_name, cfg, tok, data) for v in variants}
    warmup = {}
    for variant in variants:  # a compiled variant compiles here (the seconds are printed)
        started = time.perf_counter()
        for _ in range(args.warmup):
            steps[variant]()
        warmup[variant] = time.perf_counter() - started
    print(f"  [{model_name}] warm-up ({args.warmup} steps, compiling where compiled): "
          + " ".join(f"{v}={t:.1f}s" for v, t in warmup.items()), file=sys.stderr, flush=True)
    flops = {} if args.no_flops else {v: count_flops(steps[v]) / unroll_of(v) for v in variants}
    times = {v: [] for v in variants}
    for round_ in range(args.repeats):
        for variant in variants:
            sync(device)
            start = time.perf_counter()
            steps[variant]()
            sync(device)
            times[variant].append((time.perf_counter() - start) / unroll_of(variant))  # per inner step
        print(f"  [{model_name}] round {round_ + 1}/{args.repeats}: "
              + " ".join(f"{v}={t[-1]:.3f}s" for v, t in times.items()), file=sys.stderr, flush=True)
    return times, flops


def count_flops(step) -> int:
    """FLOPs of one step as torch's FlopCounterMode counts them (matmuls and attention: the
    work that does not depend on the machine's load)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()
