"""Where an agwm run's memory peak is: the high-water mark of each stretch of a search step (the inner
forward and backward, the outer backward, Betty's darts norm, the two finite-difference passes) and
of the rest of the run, each stretch measured from a reset of the mark (/proc/self/clear_refs, Linux).

    .venv/bin/python benchmarks/peak_phases.py --impl compiled      # MPNet-base's shape, bf16, 16 x 32

Prints each stretch's largest high-water mark (MiB) over the run: K = 2, 3 steps a phase, as bench_peak.py.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mpnet-base")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--impl", default="fused", help="--mixup-impl: fused, compiled or dense")
    args = parser.parse_args()
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:  # as bench_peak.py: freed large tensors leave at once
        os.environ["MALLOC_MMAP_THRESHOLD_"] = str(128 * 1024)
        os.execv(sys.executable, [sys.executable, *sys.argv])
    import torch

    from _variants import build_classifier, fixed_dataset, tokenizer
    from agwm_betty.config import Config
    from agwm_betty.core import hypergradients, problems
    from agwm_betty.core.fused_kernels import using
    from agwm_betty.data import GLUE_TASKS
    from agwm_betty.methods import RunContext, get_method
    from agwm_betty.runs import memory

    torch.set_num_threads(1)
    peaks: dict[str, float] = {}

    def mark(stretch: str) -> None:  # the stretch since the last mark ends here
        peaks[stretch] = max(peaks.get(stretch, 0.0), memory.peak_rss_mib())
        Path("/proc/self/clear_refs").write_text("5")

    def wrap(owner, name: str, before: str, after: str) -> None:
        original = getattr(owner, name)

        def wrapped(*a, **k):
            mark(before)
            result = original(*a, **k)
            mark(after)
            return result
        setattr(owner, name, wrapped)

    darts = importlib.import_module("betty.hypergradient.darts")
    wrap(problems.Inner, "backward", "inner forward (and what came before)", "inner backward")
    wrap(problems.Outer, "backward", "outer forward", "outer backward, darts passes")
    wrap(darts, "to_vec", "outer backward, until darts' norm", "darts' to_vec (the norm of v)")
    wrap(hypergradients, "darts", "outer backward, until darts", "darts passes")
    cfg = Config(K=2, max_steps=3, search_epochs=1, epochs=1, batch_size=16, max_length=32, precision=args.precision,
                 device="cpu", progress=False, diagnostic_points=0, mixup_impl=args.impl)
    ctx = RunContext(GLUE_TASKS["sst2"], fixed_dataset(40, 32), fixed_dataset(16, 32), tokenizer(), cfg, 0,
                     model_factory=lambda: build_classifier(args.model, 2, False))
    mark("start")
    with using(args.impl):
        get_method("agwm").run(ctx)
    mark("the rest (averaging, finetune phase, evaluation)")
    print(f"high-water mark per stretch, MiB ({args.model}, {args.precision}, mixup {args.impl}):")
    for stretch, peak in peaks.items():
        print(f"  {stretch:<52} {peak:7.0f}")


if __name__ == "__main__":
    main()
