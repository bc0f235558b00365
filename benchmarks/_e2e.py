"""End to end: the step-count estimate of a whole run, and whole runs of vanilla and agwm measured."""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from _variants import UNROLL_PREFIX, build_classifier, tokenizer, unroll_of


def e2e_estimate(t: dict[str, float], cfg, n: int) -> dict:
    """agwm / vanilla wall time at `n` examples from step counts x median step times."""
    from agwm_betty.config import Config
    from agwm_betty.core.train_loop import num_steps

    cfg = Config(K=cfg.K)  # the default schedule (3 + 3 epochs, batch 16), not the benchmark's
    search = cfg.K * num_steps(int(round(cfg.split_ratio * n)), cfg.batch_size, cfg.search_epochs)
    finetune = num_steps(n, cfg.batch_size, cfg.epochs)
    agwm = search * t["search"] + finetune * t["finetune"]
    vanilla = finetune * t["vanilla"]
    by_unroll = {unroll_of(v): (search * t[v] + finetune * t["finetune"]) / vanilla
                 for v in t if v.startswith(UNROLL_PREFIX)}
    return {"n": n, "K": cfg.K, "search_steps": search, "finetune_steps": finetune,
            "vanilla_steps": finetune, "agwm_seconds": agwm, "vanilla_seconds": vanilla,
            "ratio": agwm / vanilla, "ratio_by_unroll": {1: agwm / vanilla, **by_unroll},
            "kind": "estimate (step counts x median step times)"}


def _e2e_data(args):
    """(spec, train, evaluation, tokenizer) of the end-to-end runs: `args.task`, n = args.n, seed 0."""
    from agwm_betty.data import get_task, load_glue, subsample, tokenize

    spec = get_task(args.task)
    tok = tokenizer()
    glue = load_glue(args.task, args.data_dir)
    split = "validation" if "validation" in glue else [k for k in glue if k != "train"][0]
    return spec, tokenize(subsample(glue["train"], args.n, 0), tok, spec), tokenize(glue[split], tok, spec), tok


def _e2e_run(name: str, run_cfg, data, model: str = "minilm") -> dict:
    """One whole run of method `name` (seed 0) on `model` in this process: wall time, phase times, metric."""
    from agwm_betty.methods import RunContext, get_method

    spec, train, evaluation, tok = data

    def factory():
        return build_classifier(model, spec.num_labels, spec.is_regression, run_cfg.device or None)

    ctx = RunContext(spec, train, evaluation, tok, run_cfg, seed=0, model_factory=factory)
    started = time.perf_counter()
    result = get_method(name).run(ctx)
    return {"wall": time.perf_counter() - started, "time": result.time, "metric": result.metric}


def _e2e_rank(rank: int, world: int, port: int, args, run_cfg, out: str) -> None:
    """One process of a split-parallel agwm run; rank 0 writes its timings to `out`."""
    import torch
    import torch.distributed as dist

    # More processes than GPUs (P = K processes sharing one GPU): every rank on cuda:0, and gloo,
    # since nccl refuses two ranks on one device; the ranks only meet to gather the split results.
    shared_gpu = (run_cfg.device or "cpu").startswith("cuda") and world > torch.cuda.device_count()
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK="0" if shared_gpu else str(rank))
    torch.set_num_threads(max(1, args.threads // world))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from agwm_betty.core.surgery import set_mixup_impl
    from agwm_betty.runs import torchrun

    set_mixup_impl(args.mixup_impl)
    data = _e2e_data(args)
    if shared_gpu:
        torch.cuda.set_device(0)
        dist.init_process_group(backend="gloo")  # torchrun.init then finds the group joined
    torchrun.init(run_cfg.device or "cpu")
    dist.barrier()  # start the clocks together, after the data loading
    result = _e2e_run("agwm", run_cfg, data, args.e2e_model)
    if rank == 0:
        Path(out).write_text(json.dumps({**result, "threads_per_process": torch.get_num_threads()}))


def _e2e_spawn(args, run_cfg, procs: int) -> dict:
    """agwm with `--strategy splits` on `procs` local processes (gloo on CPU or on one shared GPU)."""
    import socket
    import tempfile

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rank0.json")
        mp.spawn(_e2e_rank, args=(procs, port, args, run_cfg, out), nprocs=procs, join=True)
        return json.loads(Path(out).read_text())


def e2e_measure(args, cfg) -> dict:
    """Run vanilla and agwm (T = 1 and T = args.e2e_unroll, one process and args.e2e_procs
    processes) on `args.task` (n = args.n, seed 0) and compare their wall times with vanilla's."""
    import torch

    from agwm_betty.config import Config

    data = _e2e_data(args)
    args.threads = args.threads or torch.get_num_threads()
    # diagnostic_points=0: the signal probe is a diagnostic, not the method's cost (at its default
    # it adds several hypergradients per split, a larger share at T > 1)
    run_cfg = Config(progress=False, device=args.device, precision=args.precision, diagnostic_points=0,
                     **({"K": args.K} if args.K else {}))
    out = {"vanilla": _e2e_run("vanilla", run_cfg, data, args.e2e_model)}
    print(f"  [e2e] vanilla: {out['vanilla']['wall']:.1f}s", file=sys.stderr, flush=True)
    for unroll in sorted({1, args.e2e_unroll}):
        name = "agwm" if unroll == 1 else f"agwm T={unroll}"
        out[name] = _e2e_run("agwm", dataclasses.replace(run_cfg, unroll_steps=unroll), data, args.e2e_model)
        print(f"  [e2e] {name}: {out[name]['wall']:.1f}s", file=sys.stderr, flush=True)
        if args.e2e_procs > 1:
            out[f"{name} P={args.e2e_procs}"] = _e2e_spawn(
                args, dataclasses.replace(run_cfg, unroll_steps=unroll, strategy="splits"), args.e2e_procs)
            print(f"  [e2e] {name} P={args.e2e_procs}: {out[f'{name} P={args.e2e_procs}']['wall']:.1f}s",
                  file=sys.stderr, flush=True)
    train_time = {k: v["time"]["total"] - v["time"].get("eval", 0.0) for k, v in out.items()}
    ratios = {k: out[k]["wall"] / out["vanilla"]["wall"] for k in out if k != "vanilla"}
    return {"task": args.task, "n": args.n, "K": run_cfg.K, "threads": args.threads, "model": args.e2e_model,
            "mixup_impl": args.mixup_impl, "runs": out,
            "ratio": ratios["agwm"], "ratio_without_eval": train_time["agwm"] / train_time["vanilla"],
            "ratios": ratios, "ratios_without_eval": {k: train_time[k] / train_time["vanilla"] for k in ratios},
            "search_time_vs_one_process": {k: out[k]["time"]["search"] / out[k.split(" P=")[0]]["time"]["search"]
                                           for k in ratios if " P=" in k},
            "kind": "measured"}
