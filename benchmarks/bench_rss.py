"""Does a process that runs many runs stay flat? Its resident size after each of eight runs (MiniLM, or `--plm`)
(agwm and vanilla alternating, one process, the sweep's own loop), with what a run held freed as
the package frees it now, and beside it, in a second process, as before #45 (the split's Betty
engine left to the garbage collector, no `malloc_trim`).

    .venv/bin/python benchmarks/bench_rss.py                   # both, side by side (~10 min, one thread each)
    .venv/bin/python benchmarks/bench_rss.py --runs 4 --n 32   # quicker
    .venv/bin/python benchmarks/bench_rss.py --plm mpnet-base-bf16 --precision bf16   # MPNet-base, as the sweeps run it

Prints one line per run: the method, RSS after the run (MiB) in each process, and each process's
high-water mark so far. The data: SST-2 from --data-dir, the embedded MiniLM, `--max-steps` steps a phase.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("now", "before")  # now: as the package runs; before: engine cycle left alone, no trim


def child(args) -> None:
    """One process: the runs in sequence, a JSON line per run with its RSS and high-water mark."""
    import torch

    from agwm_betty.config import Config
    from agwm_betty.core import phases
    from agwm_betty.runs import memory
    from agwm_betty.runs.experiment import Experiment
    from agwm_betty.runs.sweep import run_sweep

    torch.set_num_threads(1)
    if args.child == "before":
        phases.release = lambda engine: None
        memory.trim = lambda: None
    seeds = tuple(range((args.runs + 1) // 2))
    exp = Experiment(plm=args.plm, tasks=("sst2",), methods=("agwm", "vanilla"), seeds=seeds, n=args.n,
                     data_dir=args.data_dir, output=Path(args.output) / args.child,
                     cfg=Config(K=2, max_steps=args.max_steps, search_epochs=1, batch_size=16, device="cpu",
                                progress=False, eval_batch_size=64, precision=args.precision))
    done = []

    def said(line: str) -> None:
        if "seed=" in line:
            done.append(line)
            print(json.dumps({"run": len(done), "what": line.split(":")[0], "rss": memory.rss_mib(),
                              "peak": memory.peak_rss_mib()}), flush=True)

    run_sweep(exp, log=said)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--n", type=int, default=64, help="training examples a run (default 64)")
    parser.add_argument("--max-steps", type=int, default=6, help="steps a phase (default 6)")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "glue_data"))
    parser.add_argument("--plm", default="minilm", help="the PLM (default minilm; mpnet-base-bf16 after its setup)")
    parser.add_argument("--precision", default="fp32", help="fp32 (default) or bf16")
    parser.add_argument("--output", default="/tmp/bench_rss")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    import shutil

    shutil.rmtree(args.output, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    procs = {mode: subprocess.Popen([sys.executable, __file__, *sys.argv[1:], "--child", mode], env=env,
                                    stdout=subprocess.PIPE, text=True, cwd=ROOT) for mode in MODES}
    rows = {mode: [json.loads(line) for line in proc.stdout if line.startswith("{")] for mode, proc in procs.items()}
    for mode, proc in procs.items():
        if proc.wait() != 0:
            sys.exit(f"the {mode} process failed (exit {proc.returncode})")
    print(f"RSS of one process after each run (MiB), {args.plm} {args.precision}, SST-2 n = {args.n}, "
          f"{args.max_steps} steps a phase, K = 2, one thread; 'now' frees a run as the package does, 'before' as "
          "before #45")
    print(f"{'run':>3}  {'method':<28} {'now':>8} {'before':>8}   {'peak now':>9} {'peak before':>11}")
    for now, before in zip(rows["now"], rows["before"], strict=True):
        print(f"{now['run']:>3}  {now['what']:<28} {now['rss']:>8.0f} {before['rss']:>8.0f}   "
              f"{now['peak']:>9.0f} {before['peak']:>11.0f}")
    first, last = rows["now"][1], rows["now"][-1]  # after the first pair: what one process settles at
    print(f"growth from run 2 to run {last['run']}: now {last['rss'] - first['rss']:+.0f} MiB, before "
          f"{rows['before'][-1]['rss'] - rows['before'][1]['rss']:+.0f} MiB")


if __name__ == "__main__":
    main()
