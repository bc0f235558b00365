"""Where one step's time goes: torch.profiler's table (self CPU time per operator) for one variant of
`bench_step.py` (vanilla, finetune or search), the same model, batch and step as the benchmark.

    python benchmarks/profile_step.py --model mpnet-base --variant search --precision bf16 --seq-len 32
    python benchmarks/profile_step.py --variant finetune --rows 30

It times nothing against anything (bench_step.py does); it names the operators a ratio is made of.
The mixup layers' own share is in the rows `FusedMix`/`FusedMixBackward` (trained alphas) and
`FrozenMix`/`FrozenMixBackward` (frozen ones), whose CPU total includes the kernels they call.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", default="mpnet-base", choices=("minilm", "mpnet-base", "bert-large"))
    parser.add_argument("--variant", default="search", choices=("vanilla", "finetune", "search"))
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=2, help="profiled steps")
    parser.add_argument("--rows", type=int, default=25, help="operators shown, by self CPU time")
    args = parser.parse_args(argv)

    import torch
    from torch.profiler import profile

    from _variants import build_variant, config, fixed_dataset, tokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config(argparse.Namespace(K=None, device=args.device, precision=args.precision,
                                    batch_size=args.batch_size, seq_len=args.seq_len))
    step = build_variant(args.variant, args.model, cfg, tokenizer(), fixed_dataset(args.batch_size, args.seq_len))
    for _ in range(args.warmup):
        step()
    with profile() as prof:
        for _ in range(args.steps):
            step()
    print(f"{args.model} {args.precision}, {args.variant} step, batch {args.batch_size} x {args.seq_len}, "
          f"{torch.get_num_threads()} thread(s), {args.steps} step(s) profiled")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
