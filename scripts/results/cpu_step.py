#!/usr/bin/env python
"""Seconds per vanilla training step of an opt-in PLM on this CPU, on real GLUE batches: the figure
that says whether the MPNet recipe (recipe.sh) can run on the CPU in the background.

    .venv/bin/python scripts/results/cpu_step.py --threads 1 --tasks rte sst2
    .venv/bin/python scripts/results/cpu_step.py --threads 2

One step = forward, backward, clip and AdamW update at --batch-size sentences (pairs) from the first
training rows of each task, padded to the batch's longest (max 128 tokens), as glue.py trains.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from agwm_betty.models.plm import load_plm  # noqa: E402

COLUMNS = {"rte": ("RTE", "sentence1", "sentence2"), "sst2": ("SST-2", "sentence", None),
           "cola": ("CoLA", None, None), "mrpc": ("MRPC", "#1 String", "#2 String"),
           "stsb": ("STS-B", "sentence1", "sentence2")}


def first_rows(data_dir: Path, task: str, count: int) -> tuple[list[str], list[str] | None]:
    """The first `count` training texts (and second texts of a pair task) from the GLUE TSV."""
    folder, first, second = COLUMNS[task]
    path = data_dir / folder / "train.tsv"
    if task == "cola":  # no header: source, label, original label, sentence
        with open(path, newline="") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:count]
        return [r[3] for r in rows], None
    with open(path, newline="") as f:
        # strict=False: the first `count` rows of a longer file are meant
        rows = [r for _, r in zip(range(count), csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE),
                                  strict=False)]
    return [r[first] for r in rows], [r[second] for r in rows] if second else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plm", default="mpnet-base")
    parser.add_argument("--tasks", nargs="+", default=["rte", "sst2"], choices=sorted(COLUMNS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per task, after one untimed")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/glue_data"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, tokenizer, _ = load_plm(args.plm, num_labels=2)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.plm}: {type(model).__name__}, {params / 1e6:.1f}M parameters, {args.threads} thread(s), "
          f"batch {args.batch_size}")
    for task in args.tasks:
        first, second = first_rows(args.data_dir, task, args.batch_size)
        batch = tokenizer(first, second, truncation=True, max_length=128, padding=True, return_tensors="pt")
        labels = torch.arange(args.batch_size) % 2
        times = []
        for step in range(args.steps + 1):
            start = time.perf_counter()
            loss = model(**batch, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step:
                times.append(time.perf_counter() - start)
        print(f"{task}: batch {args.batch_size} x {batch['input_ids'].shape[1]} tokens, "
              f"{statistics.median(times):.2f} s/step (median of {len(times)}: "
              f"{', '.join(f'{t:.2f}' for t in times)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
