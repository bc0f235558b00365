"""Cost of one training step of the method against vanilla finetuning: time and peak memory.

    python benchmarks/bench_step.py                      # MiniLM (+ BERT-large on CUDA)
    python benchmarks/bench_step.py --models minilm,bert-large --repeats 3
    python benchmarks/bench_step.py --quick              # a smoke run: 2 repeats, 1 memory step
    python benchmarks/bench_step.py --e2e --task cola    # also run vanilla and agwm end to end
    python benchmarks/bench_step.py --e2e --n 100 --threads 1 --no-memory   # e2e on a small CPU
    python benchmarks/bench_step.py --compare-mixup      # the dense mixup's search step beside the fused one
    python benchmarks/bench_step.py --e2e-only --e2e-model bert-large --device cuda --e2e-procs 5 --K 5
    bash benchmarks/gpu_bench.sh                         # #25's GPU bench (TINY=1: a CPU rehearsal)

This file is the CLI and the report; the work lives beside it: `_variants.py` (config, model, fixed
batch, one step of each variant), `_timing.py` (interleaved step times, FLOPs), `_memory.py` (peak
memory, a subprocess per variant), `_e2e.py` (the end-to-end estimate and measured runs).

Variants, on one fixed batch of 16 sequences x 128 tokens (random ids, random labels):
  (a) vanilla   `train.TrainStep` on the plain PLM: forward, backward, clipping, AdamW, schedule;
  (b) finetune  the same `TrainStep` after `apply_mixup` with frozen alphas (the finetune phase);
  (c) search    one global step of the Betty engine that `search._split_engine` builds for a
                split: the inner step (W on BLO-train) and the outer step it triggers (alpha on
                BLO-val, darts hypergradient: two extra forward/backward passes of the inner loss).
Each variant draws its batch from a `data.make_loader` loader, as in training.
  (c, T)  search-T<T> (`--unrolls`, default 2,5,10): the same engine with `unroll_steps` T, one
          outer step every T inner steps (the paper's section 6); timed T inner steps at a time
          (T - 1 plain inner steps and one that triggers the outer step), reported per inner
          step: the amortised search cost (T * inner + outer) / T.
  (c, log) search-report:<logger> (`--report-to tensorboard` or `wandb`): the search step logging its
          curves (agwm_betty.runs.run_log) at every step, the upper bound of what logging costs; every
          other variant logs nothing.
  (c, dense)  search-mixup:dense (`--compare-mixup`): the search step with the dense mixup
          (`agwm_betty.core.fused_kernels`), the "before" of #25, interleaved with the fused one (or the
          other way round with `--mixup-impl dense`). The finetune step is the same in both.
BERT-large is built from its config with random weights on the device (BENCH_BERT_LARGE_LAYERS=1
keeps its widths with one layer, for a rehearsal on a CPU).

Time: every variant gets `--warmup` untimed steps, then the variants alternate a, b, c, a, b, c,
... for `--repeats` rounds so that load from other processes hits all three alike; the report
gives medians (and the ratios of medians). On CUDA each step is synchronised before the clock.

Memory: each (model, variant) runs in a fresh subprocess, so one variant's memory cannot hide
another's. CUDA: `torch.cuda.max_memory_allocated()` after `--memory-steps` steps (everything the
variant allocates: weights, W0, gradients, optimiser state, activations, temporaries). CPU: PyTorch
keeps no allocator statistics there and tracemalloc does not see its tensors, so we measure the
process: peak resident set (VmHWM, reset through /proc/self/clear_refs once the variant is built)
minus the resident set before the model was built. glibc is told to serve blocks >= 128 KiB with
mmap (MALLOC_MMAP_THRESHOLD_), so freed tensors leave the resident set at once and it follows the
live tensors instead of malloc's cache. Same quantity as on CUDA, plus allocator slack.

End to end (n = 300, one task): by default an estimate, step counts x measured step times:
    agwm / vanilla = (K * steps(0.8 n, search_epochs) * t_c + steps(n, epochs) * t_b)
                     / (steps(n, epochs) * t_a)
with the Config defaults (K=5, 3 + 3 epochs, batch 16; `--K` to change). It assumes every batch
is 16 x 128 (real GLUE batches are padded to their longest sentence and are shorter, which moves
both sides alike) and leaves out evaluation and engine set-up; it is given for every T as well.
`--e2e` measures instead: it runs `vanilla` and `agwm` through `agwm_betty.methods` on `--task`
from `--data-dir` (seed 0, n = `--n`), agwm with T = 1 and T = `--e2e-unroll`, each in this process
and with `--strategy splits` on `--e2e-procs` processes (torch.multiprocessing, gloo on CPU, each
process torch's threads / P threads); ratios are wall times of whole runs (evaluation included
and left out) against vanilla in this process, and the search phase's time against P = 1.

Results. Ratios against (a); "paired" = median over rounds of each step / the vanilla step
timed just before it; FLOPs from torch's FlopCounterMode (load-independent); memory as above.
"Betty" = the search step as Betty 0.2.1 runs it (`--compare`: two backward passes of the outer
loss), timed in the same process, interleaved, as the "before" of this package's changes.

  H100 (2026-11-26), fp32          finetune  search  search(Betty)  search FLOPs  memory b / c
    MiniLM      (a) = 16 ms          1.13     6.26       7.30       3.98 (4.63)   1.27 / 1.32
                paired               1.05     5.90       7.42
    BERT-large  (a) = 109 ms         1.03     4.25       4.79       4.00 (4.66)   1.65 / 1.66
                paired               1.04     4.30       4.79
  H100, bf16 (time only)
    MiniLM      (a) = 19 ms          0.88     5.01
    BERT-large  (a) = 60 ms          1.24     6.46   (paired 1.17 / 6.06)
  CPU, shared 2 cores (load 5-7 from other jobs: one step took 8 s to 22 s within the run), MiniLM,
  fp32: finetune 0.86, search 4.12 (paired 3.94; Betty's 3.92: the noise is larger than the gain),
  memory 1.18 / 1.24 (peak RSS), FLOPs 1.00 / 3.98 (Betty's 4.63).
  CPU after #25 (2026-12-01, idle, results/bench/step.txt), MiniLM, fp32: finetune 0.99, search
  3.93 (paired 3.83) with the fused mixup, 3.96 with the dense one in the same run, FLOPs 3.98;
  on 16 x 32 tokens over 10 rounds (1 thread, mixup_ab.txt) 3.79 fused, 3.87 dense.
  End to end, n = 300, H100, measured by gpu_check.sh (K = 2, four tasks sharing the GPU, 9-10
  seeds): agwm / vanilla = 11.4-11.8x on cola, rte, mrpc (8.6x stsb); the estimate from the
  MiniLM step times at K = 2 gives 11.0x, at the paper's K = 5 26x (BERT-large 18x).

What changed for speed: `Outer.backward` differentiates the outer loss once, for alpha and W
together (Betty 0.2.1 runs two backward passes of it): search FLOPs 4.63x -> 3.98x of vanilla,
time -11 to -14 % on the H100. `MixupLinear` keeps alpha's coefficients out of autocast (a
correctness fix for bf16; free in fp32), and the problems cache their parameter lists (Betty
asks for them ~10 times a step). Targets: finetune <= 1.15x, search <= 4.5x, memory <= 2x.
Met in fp32 on BERT-large (1.03, 4.25, 1.66) and for MiniLM's finetune step and memory.
Above target: the search step of MiniLM on a GPU (6.3x) and everything in bf16 on BERT-large
(finetune 1.24x, search 6.5x). The FLOPs say 4.0x: a search step is 4 forward and 4 backward
passes (inner step 1 + 1, outer loss 1 + 1, darts' two perturbed inner passes 2 + 2) where vanilla
does 1 + 1, which is the floor of Betty's darts. The rest is per-kernel overhead that does not
shrink with the model's matmuls: each mixup layer adds ~6 small kernels per forward and ~10 per
backward (forming W~ and its gradients), darts adds a pass over all of W per perturbation, and
Betty synchronises with the GPU ~7 times a step (loss.item(), ||v||.item(), finiteness checks).
On a 16 ms MiniLM step or a bf16 BERT-large step the GPU then waits for the CPU.

#25 (the rows above are from before it; `gpu_bench.sh` measures it on the next GPU): the mixup
layers form W~ in one custom autograd node (`agwm_betty/core/fused_kernels.py`: 4 passes over out x in
per forward instead of ~6, at most 6 per backward instead of ~10, and no coefficient matrix kept
for the backward), and a search step reads the device back once (darts' eps) where it read it 9
times (Betty's loss.item() per level, four finiteness checks, two clamp-share sums): losses,
finiteness and the clamp share stay on the device until every 16th step or a split's end
(`tests/test_host_syncs.py` counts them). The finetune step already adds one kernel per layer each
way (frozen alphas: W~ = A * W + the cached B * W0). CUDA graphs are not used; torch.compile only
with `--mixup-impl compiled` or `--compare-impls compiled` (agwm_betty/core/compiled_kernels.py).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from _e2e import e2e_estimate, e2e_measure
from _memory import measure_memory, memory_child
from _timing import time_steps
from _variants import (
    BETTY_SEARCH,
    FT_MIXUP_PREFIX,
    HG_PREFIX,
    INIT_ENV,
    INITS,
    MIXUP_PREFIX,
    MODELS,
    REPORT_PREFIX,
    UNROLL_PREFIX,
    VARIANTS,
    config,
    fixed_dataset,
    minilm_dir,
    tokenizer,
    unroll_of,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--models", default="",
                        help="comma list of minilm, mpnet-base, bert-large (default: minilm on CPU, all on CUDA; "
                        "BERT-large takes minutes per step on a CPU)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds a, b, c")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant first")
    parser.add_argument("--memory-steps", type=int, default=2, help="steps per memory subprocess")
    parser.add_argument("--quick", action="store_true", help="2 rounds, 1 memory step (smoke run)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--compare", action="store_true",
                        help=f"also time {BETTY_SEARCH!r}: the search step with Betty's own outer backward")
    parser.add_argument("--no-flops", action="store_true", help="skip the (noise-free) FLOP count")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--device", default="", help="cpu, cuda (default: cuda if available)")
    parser.add_argument("--precision", default="fp32", type=precisions_arg,
                        help="fp32, bf16 or fp16, or a comma list (fp32,bf16): each model timed at each, in one "
                             "run, keyed '<model> <precision>' in the JSON")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--n", type=int, default=300, help="training-set size of the end-to-end ratio")
    parser.add_argument("--K", type=int, default=None, help="splits of the end-to-end ratio (Config default)")
    parser.add_argument("--e2e", action="store_true", help="measure vanilla and agwm end to end")
    parser.add_argument("--unrolls", type=lambda v: tuple(int(t) for t in v.split(",") if t.strip()),
                        default=(2, 5, 10), help="T values of the amortised search step (empty = none)")
    parser.add_argument("--hypergradients", type=lambda v: tuple(t for t in v.split(",") if t.strip()),
                        default=None, help="hypergradients timed side by side, a row each (default: all "
                        "built-ins; empty = none; a package.module:function of your own too)")
    parser.add_argument("--e2e-unroll", type=int, default=5, help="--e2e: the T measured beside T = 1")
    parser.add_argument("--e2e-procs", type=int, default=2,
                        help="--e2e: processes of the split-parallel run (1 = none)")
    parser.add_argument("--task", default="cola", help="task of --e2e")
    parser.add_argument("--data-dir", default=os.environ.get("GLUE_DIR", "/work/shared/glue_data"))
    parser.add_argument("--mixup-impl", default="fused", choices=("fused", "dense", "compiled"),
                        help="how mixup layers form W~ (agwm_betty.core.fused_kernels, compiled_kernels): fused, dense "
                             "(the reference) or compiled")
    parser.add_argument("--compare-mixup", action="store_true",
                        help=f"also time the search and finetune steps with the --compare-impls "
                             f"({MIXUP_PREFIX}<impl>, {FT_MIXUP_PREFIX}<impl>)")
    parser.add_argument("--compare-impls", default="dense,fused",
                        help="--compare-mixup: the other implementations (default dense,fused; not the run's own)")
    parser.add_argument("--report-to", default="none", choices=("none", "tensorboard", "wandb"),
                        help=f"also time the search step logging its curves there at every step "
                             f"({REPORT_PREFIX}<logger>; the other rows log nothing)")
    parser.add_argument("--e2e-only", action="store_true", help="--e2e without the step timing before it")
    parser.add_argument("--e2e-model", default="minilm", choices=MODELS, help="--e2e: the model of the whole runs")
    parser.add_argument("--init", choices=INITS, default=os.environ.get(INIT_ENV, "pretrained"),
                        help=f"MiniLM's weights: the embedded checkpoint, or random from its config (times and "
                             f"memory do not depend on the values; config and tokenizer from $BENCH_MINILM_DIR "
                             f"if set). Default: ${INIT_ENV}, else pretrained")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--memory-child", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.init not in INITS:  # a bad $BENCH_INIT default escapes argparse's choices
        parser.error(f"{INIT_ENV}={args.init!r}: choose from {', '.join(INITS)}")
    if args.hypergradients is None:
        from agwm_betty.config import HYPERGRADIENTS

        args.hypergradients = HYPERGRADIENTS
    from agwm_betty.core.registry import check_hypergradient

    for name in args.hypergradients:  # a bad name fails here, not after the other variants' timing
        try:
            check_hypergradient(name, load=True)
        except ValueError as err:
            parser.error(str(err))
    if args.quick:
        args.repeats, args.memory_steps = min(args.repeats, 2), 1
    return args



def precisions_arg(value: str) -> str:
    """'fp32,bf16' -> itself, once every entry is a known precision."""
    bad = [p for p in value.split(",") if p not in ("fp32", "bf16", "fp16")]
    if bad or not value:
        raise argparse.ArgumentTypeError(f"precision must be fp32, bf16, fp16 or a comma list of them, got {value!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ[INIT_ENV] = args.init  # the memory subprocesses and split-parallel ranks read it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from agwm_betty.core.surgery import set_mixup_impl

    set_mixup_impl(args.mixup_impl)
    if args.memory_child:
        memory_child(args)
        return 0
    import torch

    from agwm_betty.core.train_loop import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    precisions = args.precision.split(",")
    args.precision = precisions[0]  # the memory subprocesses and e2e runs take one; the loop below sets each
    cfg = config(args)
    device = resolve_device(cfg)
    models = [m for m in args.models.split(",") if m] or (list(MODELS) if device.type == "cuda" else ["minilm"])
    if args.e2e_only:
        args.e2e, models = True, []
    for m in models:
        if m not in MODELS:
            raise SystemExit(f"unknown model {m!r}; choose from {', '.join(MODELS)}")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"device {device} ({name}), {torch.get_num_threads()} threads, precision {','.join(precisions)}, "
          f"mixup {args.mixup_impl}, batch {args.batch_size} x {args.seq_len}, {args.repeats} rounds", flush=True)
    print(f"MiniLM: {args.init} weights, config and tokenizer from {minilm_dir()}", flush=True)
    tok, data = tokenizer(), fixed_dataset(args.batch_size, args.seq_len)
    results = {"device": str(device), "device_name": name, "precision": ",".join(precisions),
               "mixup_impl": args.mixup_impl, "minilm_init": args.init, "minilm_dir": minilm_dir(), "models": {}}
    for model_name, precision in [(m, p) for p in precisions for m in models]:
        args.precision = precision
        cfg = config(args)
        times, flops = time_steps(model_name, args, cfg, tok, data)
        med = {v: statistics.median(t) for v, t in times.items()}
        res = {"times": times, "median_s": med,
               "time_ratio": {v: med[v] / med["vanilla"] for v in med if v != "vanilla"},
               # per round, each variant against the vanilla step timed just before it
               "paired_time_ratio": {
                   v: statistics.median(t / a for t, a in zip(times[v], times["vanilla"], strict=True))
                   for v in med if v != "vanilla"}}
        if flops:
            res.update(flops=flops, flop_ratio={v: flops[v] / flops["vanilla"] for v in flops if v != "vanilla"})
        if not args.no_memory:
            mem = {v: measure_memory(model_name, v, args) for v in VARIANTS}
            peak = {v: mem[v]["peak_bytes"] for v in VARIANTS}
            res.update(memory_method=mem["vanilla"]["method"], peak_bytes=peak,
                       memory_ratio={"finetune": peak["finetune"] / peak["vanilla"],
                                     "search": peak["search"] / peak["vanilla"]})
        res["e2e"] = e2e_estimate(med, cfg, args.n)
        key = model_name if len(precisions) == 1 else f"{model_name} {precision}"
        results["models"][key] = res
        print(f"\n{key}:")
        for v in VARIANTS:
            mem_txt = f"  peak {res['peak_bytes'][v] / 2**20:8.0f} MiB" if "peak_bytes" in res else ""
            print(f"  ({'abc'[VARIANTS.index(v)]}) {v:8s} median {med[v]:8.3f} s{mem_txt}")
        print(f"  time    finetune/vanilla {res['time_ratio']['finetune']:.2f}   "
              f"search/vanilla {res['time_ratio']['search']:.2f}")
        print(f"  paired  finetune/vanilla {res['paired_time_ratio']['finetune']:.2f}   "
              f"search/vanilla {res['paired_time_ratio']['search']:.2f}   (median of per-round ratios)")
        if flops:
            print(f"  FLOPs   finetune/vanilla {res['flop_ratio']['finetune']:.2f}   "
                  f"search/vanilla {res['flop_ratio']['search']:.2f}   (vanilla {flops['vanilla'] / 1e9:.0f} GFLOP)")
        amortised = {1: res["time_ratio"]["search"], **{unroll_of(v): res["time_ratio"][v]
                                                        for v in med if v.startswith(UNROLL_PREFIX)}}
        res["amortised_search_ratio"] = amortised
        if len(amortised) > 1:
            print("  amortised search cost per inner step / vanilla (one outer step every T inner steps): "
                  + "  ".join(f"T={t} {r:.2f}" for t, r in sorted(amortised.items())))
        for v in (v for v in med if v.startswith((MIXUP_PREFIX, FT_MIXUP_PREFIX))):
            phase, impl = v.split("-mixup:")
            print(f"  {phase} step with mixup {impl} (this run: {args.mixup_impl}): /vanilla "
                  f"{res['time_ratio'][v]:.2f}, paired {res['paired_time_ratio'][v]:.2f}; "
                  f"{args.mixup_impl}/{impl} {med[phase] / med[v]:.3f}")
        for v in (v for v in med if v.startswith(REPORT_PREFIX)):
            print(f"  search step logging to {v[len(REPORT_PREFIX):]} at every step (--log-every 1): /vanilla "
                  f"{res['time_ratio'][v]:.2f}, paired {res['paired_time_ratio'][v]:.2f}; /search without "
                  f"logging {med[v] / med['search']:.3f} (at --log-every k the extra is about 1/k of that)")
        rows = [v for v in med if v.startswith(HG_PREFIX)]
        if rows:
            print(f"  per hypergradient (search step / vanilla; default {cfg.hypergradient}):")
            for v in rows:
                print(f"    {v[len(HG_PREFIX):]:15s} time {res['time_ratio'][v]:5.2f}   paired "
                      f"{res['paired_time_ratio'][v]:5.2f}"
                      + (f"   FLOPs {res['flop_ratio'][v]:5.2f}" if flops else ""))
        if BETTY_SEARCH in med:
            print(f"  ({BETTY_SEARCH}: median {med[BETTY_SEARCH]:.3f} s, /vanilla "
                  f"{res['time_ratio'][BETTY_SEARCH]:.2f}, paired {res['paired_time_ratio'][BETTY_SEARCH]:.2f}"
                  + (f", FLOPs {res['flop_ratio'][BETTY_SEARCH]:.2f}" if flops else "")
                  + ": Betty's two backward passes of the outer loss)")
        if "memory_ratio" in res:
            print(f"  memory  finetune/vanilla {res['memory_ratio']['finetune']:.2f}   "
                  f"search/vanilla {res['memory_ratio']['search']:.2f}   ({res['memory_method']})")
        e2e = res["e2e"]
        print(f"  end to end at n={e2e['n']}, K={e2e['K']}: agwm/vanilla ~ {e2e['ratio']:.1f}x ({e2e['kind']}: "
              f"{e2e['search_steps']} search + {e2e['finetune_steps']} finetune vs {e2e['vanilla_steps']} steps)")
        if len(e2e["ratio_by_unroll"]) > 1:
            print("    with one outer step every T inner steps: "
                  + "  ".join(f"T={t} ~{r:.1f}x" for t, r in sorted(e2e["ratio_by_unroll"].items())))
    if args.e2e:
        args.precision = precisions[0]  # the end-to-end runs take the first precision
        cfg = config(args)
        results["e2e_measured"] = e2e_measure(args, cfg)
        m = results["e2e_measured"]
        print(f"\nend to end, measured on {m['task']} n={m['n']} K={m['K']} ({m['threads']} threads in all): "
              f"agwm/vanilla {m['ratio']:.1f}x (without evaluation {m['ratio_without_eval']:.1f}x)")
        for name, ratio in m["ratios"].items():
            speed = m["search_time_vs_one_process"].get(name)
            print(f"  {name:16s} / vanilla {ratio:5.2f}x (without evaluation {m['ratios_without_eval'][name]:5.2f}x)"
                  + (f"; search phase {speed:.2f}x of its one-process time" if speed else ""))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    if not results["models"]:
        return 0
    head = results["models"].get("minilm") or next(iter(results["models"].values()))
    memory = f"{head['memory_ratio']['search']:.2f}" if "memory_ratio" in head else "nan"
    t5 = head["amortised_search_ratio"].get(5, float("nan"))
    print(f"finetune_step_ratio={head['time_ratio']['finetune']:.2f} "
          f"search_step_ratio={head['time_ratio']['search']:.2f} search_memory_ratio={memory} "
          f"amortised_search_ratio_T5={t5:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
