"""An agwm run's memory peak beside vanilla's: the whole run (search phase, K = 2 splits, and the
finetune phase, a few steps each, then the evaluation), each in a fresh process whose kernel
high-water mark (VmHWM) is read at the end.

    .venv/bin/python benchmarks/bench_peak.py                                  # MiniLM fp32, MPNet-base bf16
    .venv/bin/python benchmarks/bench_peak.py --models bert-large:bf16         # BERT-large's shape, random weights

Models as in bench_step.py (`_variants.build_classifier`): MiniLM's pretrained weights, MPNet-base's
and BERT-large's shapes with random weights (the peak does not depend on the values). The batch is
16 x --seq-len random tokens; the train set 40 rows (BLO-train 32, BLO-val 8), the eval set 16.
Like bench_step's memory children, each process runs with MALLOC_MMAP_THRESHOLD_=131072, so that a
freed large tensor leaves the process at once and the high-water mark counts live memory only.
Printed: each run's high-water mark, the process's resident size before the model was built (Python,
torch and the libraries), and agwm's peak over vanilla's, both whole and net of that base.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
DEFAULT = ("minilm:fp32", "mpnet-base:bf16")
MIXED = ("agwm", "random-alpha", "joint")  # methods with mixup layers: a row per --mixup-impls


def child(args) -> None:
    """One run in this fresh process; prints its peak and base as JSON."""
    import torch

    from agwm_betty.config import Config
    from agwm_betty.core.fused_kernels import using
    from agwm_betty.data import GLUE_TASKS
    from agwm_betty.methods import RunContext, get_method
    from agwm_betty.runs import memory

    torch.set_num_threads(1)
    from _variants import build_classifier, fixed_dataset, tokenizer

    name, precision, method, impl = args.child
    base = memory.rss_mib()
    tok = tokenizer()
    cfg = Config(K=2, max_steps=args.steps, search_epochs=1, epochs=1, batch_size=16, max_length=args.seq_len,
                 precision=precision, device="cpu", progress=False, diagnostic_points=0, mixup_impl=impl)
    spec = GLUE_TASKS["sst2"]
    ctx = RunContext(spec, fixed_dataset(40, args.seq_len), fixed_dataset(16, args.seq_len), tok, cfg, 0,
                     model_factory=lambda: build_classifier(name, 2, False))
    with using(impl):
        result = get_method(method).run(ctx)
    print(json.dumps({"peak": memory.peak_rss_mib(), "base": base, "metric": result.metric}))


def measure(name: str, precision: str, method: str, impl: str, args) -> dict:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", name, precision, method, impl, "--steps", str(args.steps),
           "--seq-len", str(args.seq_len)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{name} {precision} {method} ({impl}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(DEFAULT),
                        help="MODEL[:PRECISION],... (minilm, mpnet-base, bert-large; fp32 or bf16)")
    parser.add_argument("--precision", default="fp32", help="for a model listed without one")
    parser.add_argument("--methods", default="vanilla,agwm", help="the first is the reference (default vanilla,agwm)")
    parser.add_argument("--mixup-impls", default="fused,compiled",
                        help="a row per mixup implementation for the methods with mixup (default fused,compiled)")
    parser.add_argument("--steps", type=int, default=3, help="steps a phase (default 3)")
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    methods = args.methods.split(",")
    rows = []
    print(f"peak RSS (VmHWM) of one run, MiB: K = 2, {args.steps} steps a phase, 16 x {args.seq_len} tokens, "
          "one thread; base = RSS before the model is built")
    print(f"{'model':<12} {'precision':<9} {'method':<16} {'mixup':<9} {'peak':>8} {'base':>6} {'/ ref':>7} "
          f"{'net / ref':>10}")
    for item in args.models.split(","):
        name, _, precision = item.partition(":")
        precision = precision or args.precision
        ref = None
        for method in methods:
            for impl in args.mixup_impls.split(",") if method in MIXED else ["-"]:
                row = {"model": name, "precision": precision, "method": method, "mixup_impl": impl,
                       **measure(name, precision, method, "fused" if impl == "-" else impl, args)}
                ref = ref or row
                row["ratio"] = row["peak"] / ref["peak"]
                row["net_ratio"] = (row["peak"] - row["base"]) / (ref["peak"] - ref["base"])
                rows.append(row)
                print(f"{name:<12} {precision:<9} {method:<16} {impl:<9} {row['peak']:>8.0f} {row['base']:>6.0f} "
                      f"{row['ratio']:>7.2f} {row['net_ratio']:>10.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"steps": args.steps, "seq_len": args.seq_len, "rows": rows},
                                              indent=1) + "\n")


if __name__ == "__main__":
    main()
