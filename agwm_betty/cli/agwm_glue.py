"""Low-resource GLUE with attention-guided weight mixup (NAACL'24) and its baselines.

For each task and seed, draws --n training examples (the seed picks the subset), trains every
--methods entry on them and evaluates on the full dev set. Each finished run appends one JSON
line to <output>/runs.jsonl; re-running the same command skips recorded runs, so a killed sweep
resumes where it stopped. Summarise with agwm-report (experiments/report.py).

Examples (agwm-glue and python experiments/glue.py are the same program):
  agwm-glue --plm bert-large --n 300                                   # the paper's main job
  agwm-glue --plm minilm --tasks rte --n 300 --seeds 3 --methods vanilla,agwm \\
      --data-dir ../shared/glue_data --K 2
  agwm-glue --train-file my.csv --validation-file my_dev.csv \\
      --text-columns text --label-column label --methods vanilla,agwm --n 0
  agwm-glue --tasks rte --seeds 1 --methods agwm --save-alphas --output runs/a       # search once
  agwm-glue --tasks rte --seeds 1 --methods agwm --alphas-from runs/a/alphas/<file>.pt  # reuse, no search
  agwm-glue --plm bert-large --n 300 --workers 8            # 8 processes over the visible GPUs, one runs.jsonl
  agwm-glue --plm bert-large --n 300 --shard $SLURM_ARRAY_TASK_ID/16   # in a job array --array=0-15
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path


def seeds_arg(value: str) -> tuple[int, ...]:
    """'10' -> seeds 0..9 (a count, as the paper's ten seeds); '3,7,11' -> exactly those seeds."""
    try:
        if "," in value:
            return tuple(int(v) for v in value.split(",") if v.strip())
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes a count or a comma list of integers, got {value!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"--seeds count must be >= 1, got {count}")
    return tuple(range(count))


def positive_int(flag: str):
    """An argparse type for `flag`: an integer >= 1 (e.g. '4' -> 4 worker processes)."""
    def parse(value: str) -> int:
        try:
            count = int(value)
        except ValueError:
            count = 0
        if count < 1:
            raise argparse.ArgumentTypeError(f"{flag} takes an integer >= 1, got {value!r}")
        return count

    return parse


def shard_arg(value: str) -> tuple[int, int]:
    """'2/8' -> (2, 8): shard 2 of 8, 0-based."""
    from agwm_betty.runs.pool import parse_shard

    try:
        return parse_shard(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def comma_list(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def add_flag(group, f) -> None:
    """The flag of a config dataclass field: --name-with-dashes, its help and default from the field;
    default None, so that a flag given explicitly overrides the preset and the method's defaults."""
    flag = "--" + f.name.replace("_", "-")
    if f.type in ("bool", bool):
        group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                           help=f"{f.metadata['help']} (default {f.default!r})")
    else:
        kind = {"int": int, "float": float, "str": str}[str(f.type)]
        group.add_argument(flag, dest=f.name, type=kind, default=None,
                           help=f"{f.metadata['help']} (default {f.default!r})")


def build_parser() -> argparse.ArgumentParser:
    from agwm_betty.config import Config
    from agwm_betty.data import TASK_NAMES
    from agwm_betty.methods import METHODS
    from agwm_betty.models.plm import DEFAULT_PLM, PLM_REGISTRY

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep = parser.add_argument_group("sweep")
    sweep.add_argument("--plm", default=DEFAULT_PLM,
                       help=f"PLM: one of {', '.join(PLM_REGISTRY)}, an HF id or a local directory "
                            f"(default {DEFAULT_PLM}: the embedded all-MiniLM-L6-v2, offline)")
    sweep.add_argument("--n", type=int, default=300, help="training examples drawn per seed; 0 = whole training set")
    sweep.add_argument("--tasks", type=comma_list, default=TASK_NAMES,
                       help=f"comma list of GLUE tasks (default all eight: {','.join(TASK_NAMES)})")
    sweep.add_argument("--methods", type=comma_list, default=("agwm",),
                       help=f"comma list of methods: {', '.join(METHODS)} (default agwm)")
    sweep.add_argument("--seeds", type=seeds_arg, default=tuple(range(10)),
                       help="a count (10 = seeds 0..9, the paper's protocol) or a comma list of seeds "
                            "(one explicit seed: '42,')")
    sweep.add_argument("--data-dir", default=None,
                       help="GLUE in the original TSV layout (<dir>/CoLA/train.tsv, ...); default $GLUE_DIR, "
                            "else the HF hub (nyu-mll/glue). Nothing is downloaded when this is given.")
    sweep.add_argument("--heldout", type=int, default=0,
                       help="evaluate on this many training examples outside each seed's subset instead of "
                            "the dev set: for choosing a recipe without touching dev (default 0 = dev set)")
    sweep.add_argument("--save-models", action="store_true",
                       help="save each run's final model to <output>/models/<task>-n<n>-<method>-seed<seed> as a "
                            "plain HF checkpoint (mixup merged away: loads with transformers alone)")
    sweep.add_argument("--save-alphas", action="store_true",
                       help="save each searched alpha beside the record, in <output>/alphas/ (with the searched "
                            "task weights, for --alphas-from); the record's alphas_file names it")
    sweep.add_argument("--alphas-from", type=Path, default=None, metavar="PATH",
                       help="agwm without its search phase: load this saved alpha (--save-alphas, or the API's "
                            "save_alphas) and run the finetune phase only, W starting at the pretrained weights")
    sweep.add_argument("--reuse-task-weights", action="store_true",
                       help="with --alphas-from: also start from the file's searched task weights and random "
                            "state, so the finetune phase replays the searching run's (same task, n, seed)")
    sweep.add_argument("--output", type=Path, default=Path("runs"), help="folder of runs.jsonl (default ./runs)")

    procs = parser.add_argument_group("several processes (one runs.jsonl, resumable as one sweep)")
    procs.add_argument("--workers", type=positive_int("--workers"), default=1, metavar="N",
                       help="run the sweep's runs in N processes at once, taken seed by seed (seed, task, "
                            "method) so a cut sweep leaves whole paired seeds. Each process is pinned to one "
                            "visible GPU, round-robin (CUDA_VISIBLE_DEVICES picks them; N may exceed them, "
                            "several processes then share a GPU); on CPU each gets cores / N torch threads, or "
                            "$OMP_NUM_THREADS. A failed run is reported, the others go on, and the exit status "
                            "is 1. (default 1: one process, task by task)")
    procs.add_argument("--runs-per-worker", type=positive_int("--runs-per-worker"), default=None, metavar="N",
                       help="with --workers (1 included): a worker process runs at most N runs, then a fresh "
                            "one takes its place. A process's memory can grow across runs: on a long CPU sweep "
                            "of a 110M PLM two workers grew to 13 and 17 GiB and one was killed for memory. "
                            "1 costs a process start and a task load a run (seconds). (default: a worker runs "
                            "its share of the sweep)")
    procs.add_argument("--shard", type=shard_arg, default=None, metavar="I/N",
                       help="run only shard I of N of the sweep, I 0-based (0 .. N-1), e.g. --shard "
                            "$SLURM_ARRAY_TASK_ID/8 in a job array --array=0-7. The seed-major run list is "
                            "dealt to the N shards the same way whatever is already recorded, so shards never "
                            "overlap and together make the sweep; they may write to one --output at once")

    custom = parser.add_argument_group("custom dataset (instead of GLUE tasks)")
    custom.add_argument("--train-file", help="training set: .csv, .tsv or .jsonl")
    custom.add_argument("--validation-file", help="evaluation set, same format")
    custom.add_argument("--text-columns", type=comma_list, help="one or two text columns, comma separated")
    custom.add_argument("--label-column", help="label column")
    custom.add_argument("--task-type", choices=("classification", "regression"),
                        help="default: inferred from the labels")
    custom.add_argument("--task-name", help="name in the records (default: the training file's stem)")
    custom.add_argument("--metric", metavar="PATH[:KEY]",
                        help="score with your own `evaluate` module: a local script (my_metric.py) or a directory "
                             "holding one, loaded by path (offline); every number it returns is recorded, on its "
                             "own scale, and KEY (default: the module's name) ranks the runs. Default: accuracy "
                             "(and F1 for two classes), Spearman for regression, on a 0-100 scale")

    from agwm_betty.config import PRESETS, SECTIONS
    from agwm_betty.methods import METHOD_CONFIGS

    group = parser.add_argument_group("hyperparameters (defaults: the paper, appendix D)")
    official = ", ".join(f"{k}={v}" for k, v in PRESETS["official"].items())
    group.add_argument("--preset", default="paper",
                       help=f"named defaults: {', '.join(PRESETS)}. paper = the paper's text; official = what the "
                            f"official code ran ({official}). Explicit flags override the preset. (default paper)")
    for f in fields(Config):  # default None: a flag given explicitly overrides the preset
        if f.name in SECTIONS:
            group = parser.add_argument_group(SECTIONS[f.name])
        if f.metadata.get("cli", True):
            add_flag(group, f)
    added = set(Config.field_names())
    for name, config_class in METHOD_CONFIGS.items():  # a group per method with options of its own
        summary = (config_class.__doc__ or "").strip().splitlines()[0].rstrip(".")
        group = parser.add_argument_group(f"--methods {name}: {summary}")
        for f in fields(config_class):
            if f.name not in added:  # an option two methods share (num_virtual_tokens) appears once
                add_flag(group, f)
                added.add(f.name)
    return parser


def experiment_from_args(args: argparse.Namespace):
    """The library's `Experiment` for parsed arguments (everything the CLI does is reachable from Python)."""
    from agwm_betty.config import Config
    from agwm_betty.methods import METHOD_CONFIGS
    from agwm_betty.runs.experiment import CustomTask, Experiment

    explicit = {name: getattr(args, name) for name in Config.field_names() if getattr(args, name) is not None}
    methods = {}
    for name, config_class in METHOD_CONFIGS.items():
        given = {f.name: getattr(args, f.name) for f in fields(config_class) if getattr(args, f.name) is not None}
        if given:
            methods[name] = config_class(**given)
    cfg = Config.preset(args.preset, methods=methods, **explicit)
    custom = None
    if args.metric and not (args.train_file or args.validation_file):
        raise ValueError("--metric scores a custom dataset (--train-file ...); GLUE tasks keep GLUE's metrics")
    if args.train_file or args.validation_file:
        missing = [flag for flag, value in (("--train-file", args.train_file), ("--validation-file",
                   args.validation_file), ("--text-columns", args.text_columns), ("--label-column",
                   args.label_column)) if not value]
        if missing:
            raise ValueError(f"a custom dataset also needs {', '.join(missing)}")
        if args.metric:  # a bad module fails here, before any model is loaded
            from agwm_betty.metrics.scores import metric_module_spec

            metric_module_spec(args.metric)
        custom = CustomTask(args.train_file, args.validation_file, list(args.text_columns), args.label_column,
                            args.task_type, args.task_name, args.metric)
    return Experiment(plm=args.plm, tasks=tuple(t.lower() for t in args.tasks), methods=args.methods, n=args.n,
                      seeds=args.seeds, output=args.output, data_dir=args.data_dir, custom=custom,
                      heldout=args.heldout, save_models=args.save_models, save_alphas=args.save_alphas,
                      alphas_from=args.alphas_from, reuse_task_weights=args.reuse_task_weights, cfg=cfg,
                      workers=args.workers, shard=args.shard, runs_per_worker=args.runs_per_worker)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from agwm_betty.core.train_loop import DivergenceError
    from agwm_betty.runs.sweep import SweepError, run_sweep

    try:
        records = run_sweep(experiment_from_args(args))
    except (ValueError, DivergenceError) as err:  # DataError, PLMError, bad config: a message, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    except SweepError as err:  # each failure was reported as it happened, with its traceback
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished runs are in runs.jsonl; re-run the same command to resume", file=sys.stderr)
        return 130
    print(f"{len(records)} new run(s) recorded in {args.output / 'runs.jsonl'}")
    return 0

