"""Peak memory of one variant, each in a fresh subprocess (CUDA allocator peak, or peak RSS on CPU)."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from _variants import build_variant, config, fixed_dataset, sync, tokenizer


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(args) -> None:
    """Run in a fresh process: build one variant, step it, print its peak memory (bytes) as JSON."""
    import torch

    from agwm_betty.core.train_loop import resolve_device

    model_name, variant = args.memory_child
    cfg = config(args)
    device = resolve_device(cfg)
    tok, data = tokenizer(), fixed_dataset(args.batch_size, args.seq_len)
    before = _status_kib("VmRSS") if device.type != "cuda" else 0
    step = build_variant(variant, model_name, cfg, tok, data)
    method = "cuda max_memory_allocated"
    if device.type != "cuda":
        try:  # the peak so far is the build (a checkpoint load may spike); measure the steps
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            method = "peak RSS (VmHWM) - RSS before build"
        except OSError:
            method = "peak RSS (ru_maxrss, includes the build) - RSS before build"
    for _ in range(args.memory_steps):
        step()
    sync(device)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated()
    elif method.startswith("peak RSS (VmHWM"):
        peak = (_status_kib("VmHWM") - before) * 1024
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    print(json.dumps({"peak_bytes": peak, "method": method}))


def measure_memory(model_name: str, variant: str, args) -> dict:
    """Peak memory of one variant, measured in a fresh subprocess (see the module docstring)."""
    cmd = [sys.executable, str(Path(__file__).with_name("bench_step.py")), "--memory-child", model_name, variant,
           "--memory-steps", str(args.memory_steps), "--precision", args.precision,
           "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len), "--mixup-impl", args.mixup_impl] + (
        ["--device", args.device] if args.device else [])
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"memory subprocess for {model_name}/{variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
