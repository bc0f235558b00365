"""Table of the outer-level screen (results/study/run.sh): per arm, how far alpha moved, whether
its per-layer change pattern is the same for two seeds of one task (within) and for two tasks of
one seed (across), the signal probe, and the held-out score against vanilla-matched of the same
seed. A task signal shows as within-task correlation clearly above the across-task one.

    .venv/bin/python results/study/table.py [runs.jsonl] [--out table.md]
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

HERE = Path(__file__).parent
BASE = "agwm"  # arm labels list the hyperparameters that differ from this method's paper setting


def records(path: Path) -> list[dict]:
    """The records of `path`, the first of each run_id (a run recorded twice is the same run)."""
    by_id: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            by_id.setdefault(record["run_id"], record)
    return list(by_id.values())


def arm_label(record: dict, reference: dict) -> str:
    """The method, plus every hyperparameter that differs from the paper-setting agwm record's."""
    if record["method"] != BASE:
        return record["method"]
    changed = [f"{k}={v}" for k, v in sorted(record["hparams"].items()) if reference.get(k) != v]
    return "agwm (paper)" if not changed else "agwm " + ", ".join(changed)


def pearson(a: list[float], b: list[float]) -> float | None:
    if len(a) < 3 or statistics.pstdev(a) == 0 or statistics.pstdev(b) == 0:
        return None
    return statistics.correlation(a, b)


def pattern_correlations(runs: list[dict]) -> tuple[list[float], list[float]]:
    """Pearson correlations of the per-layer alpha change between two runs: (same task, other
    seed) pairs and (same seed, other task) pairs."""
    within, across = [], []
    for a, b in itertools.combinations(runs, 2):
        ca, cb = a["diagnostics"]["alpha_change_per_module"], b["diagnostics"]["alpha_change_per_module"]
        keys = sorted(ca.keys() & cb.keys())
        r = pearson([ca[k] for k in keys], [cb[k] for k in keys])
        if r is None:
            continue
        if a["task"] == b["task"] and a["seed"] != b["seed"]:
            within.append(r)
        elif a["seed"] == b["seed"] and a["task"] != b["task"]:
            across.append(r)
    return within, across


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def fmt(value, digits=3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def table(rows: list[dict]) -> str:
    paper = [r for r in rows if r["method"] == BASE and r["hparams"].get("hypergradient") == "darts-paper"
             and r["hparams"].get("alpha_lr") == 2e-3 and r["hparams"].get("alpha_form") == "product"
             and r["hparams"].get("alpha_param") == "clamp" and r["hparams"].get("alpha_init_mean") == 1.0
             and r["hparams"].get("rank") == 1 and r["hparams"].get("outer_batch_size") == 0
             and not r["hparams"].get("repeat_inner_step")]
    reference = paper[0]["hparams"] if paper else {}
    control = {(r["task"], r["seed"]): r["metric"] for r in rows if r["method"] == "vanilla-matched"}
    arms: dict[str, list[dict]] = {}
    for r in rows:
        arms.setdefault(arm_label(r, reference), []).append(r)
    tasks = sorted({r["task"] for r in rows})
    head = (["arm", "runs"] + [f"{t} held-out" for t in tasks] + [f"{t} - v-matched" for t in tasks]
            + ["max abs change", "mean abs layer change", "within-task r", "across-task r",
               "probe cosine", "direct norm", "implicit norm", "clamp undone"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, runs in arms.items():
        learned = [r for r in runs if "alpha_change_per_module" in r.get("diagnostics", {})]
        within, across = pattern_correlations(learned)
        d = [r.get("diagnostics", {}) for r in runs]
        cells = [label, str(len(runs))]
        cells += [fmt(mean(r["metric"] for r in runs if r["task"] == t), 2) for t in tasks]
        cells += [fmt(mean(r["metric"] - control[(t, r["seed"])] for r in runs
                           if r["task"] == t and (t, r["seed"]) in control), 2) for t in tasks]
        cells += [fmt(mean(x.get("alpha_max_abs_change") for x in d), 4),
                  fmt(mean(mean(abs(v) for v in x["alpha_change_per_module"].values())
                           for x in d if "alpha_change_per_module" in x), 5),
                  fmt(mean(within), 2) + (f" ({len(within)})" if within else ""),
                  fmt(mean(across), 2) + (f" ({len(across)})" if across else ""),
                  fmt(mean(x.get("signal_cosine") for x in d), 2),
                  fmt(mean(x.get("signal_direct_norm") for x in d), 3),
                  fmt(mean(x.get("signal_implicit_norm") for x in d), 3),
                  fmt(mean(x.get("clamp_undone_share") for x in d), 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="?", default=HERE / "runs.jsonl", type=Path)
    parser.add_argument("--out", default=HERE / "table.md", type=Path)
    args = parser.parse_args()
    text = table(records(args.runs))
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
