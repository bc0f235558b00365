"""Tables of the outer-level study (results/study/run.sh).

1. The screen (seeds 100 and 101): per arm, how far alpha moved, whether its per-layer change
   pattern is the same for two seeds of one task (within) and for two tasks of one seed (across),
   the signal probe, and the held-out score against vanilla-matched of the same seed (and search
   length: the longer-search arm has its own vanilla-matched). A task signal shows as within-task
   correlation clearly above the across-task one.
2. Five seeds (the arms run on more than two seeds): the held-out score paired by seed against
   vanilla-matched, random-alpha (sigma 0.005, alphas frozen at their init) and the paper's agwm,
   each of the arm's own search length, with wins and the paired t-test p, and the outer steps
   each arm took (the unroll arms: one every T inner steps; their cost per step is
   benchmarks/bench_step.py's).
3. Per seed: every five-seed arm's score on each seed.

    .venv/bin/python scripts/results/study_table.py [runs.jsonl] [--out table.md]
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from agwm_betty.report import fmt_p, load_records, pair_by_seed, paired_summary, pattern_correlations, select

STUDY = Path(__file__).resolve().parents[2] / "results" / "study"  # its runs.jsonl and table.md
BASE = "agwm"  # arm labels list the hyperparameters that differ from this method's paper setting
SCREEN_SEEDS = (100, 101)
CONTROL, RANDOM, PAPER = "vanilla-matched", "random-alpha sigma=0.005", "agwm (paper)"
PAPER_SETTING = {"hypergradient": "darts-paper", "alpha_lr": 2e-3, "alpha_form": "product", "alpha_param": "clamp",
                 "alpha_init_mean": 1.0, "rank": 1, "outer_batch_size": 0, "unroll_steps": 1}


def arm_label(record: dict, reference: dict) -> str:
    """The method, plus every hyperparameter that differs from the paper-setting agwm record's."""
    changed = [f"{k}={v}" for k, v in sorted(record["hparams"].items())
               if (record["method"] == BASE or k in reference) and reference.get(k) != v]
    if record["method"] == BASE and not changed:
        return PAPER
    name = (f"random-alpha sigma={record['hparams']['sigma']:g}" if record["method"] == "random-alpha"
            else record["method"])
    return name + (" " + ", ".join(changed) if changed else "")


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def fmt(value, digits=3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def r_cell(correlations: list[float]) -> str:
    """Mean correlation and, in brackets, how many pairs it averages."""
    return fmt(mean(correlations), 2) + (f" ({len(correlations)})" if correlations else "")


def paper_reference(rows: list[dict]) -> dict:
    """The hyperparameters of the paper-setting agwm arm (the labels list what differs from them)."""
    paper = [r for r in select(rows, method=BASE, hparams=PAPER_SETTING) if not r["hparams"].get("repeat_inner_step")]
    return paper[0]["hparams"] if paper else {}


def by_arm(rows: list[dict]) -> dict[str, list[dict]]:
    reference = paper_reference(rows)
    arms: dict[str, list[dict]] = {}
    for r in rows:
        arms.setdefault(arm_label(r, reference), []).append(r)
    return arms


def search_length(record: dict) -> float:
    """Epochs of the run's search: how long W trained before it was scored."""
    return record["hparams"].get("search_epochs")


def references(rows: list[dict]) -> dict[tuple[str, float], list[dict]]:
    """Runs by (label at the paper's search length, own search length): an arm's references are
    (CONTROL, RANDOM or PAPER, its length), the runs that trained W as long, whatever else it changes."""
    paper = paper_reference(rows)
    out: dict[tuple[str, float], list[dict]] = {}
    for r in rows:
        label = arm_label({**r, "hparams": {**r["hparams"], "search_epochs": paper.get("search_epochs")}}, paper)
        out.setdefault((label, search_length(r)), []).append(r)
    return out


def control_key(record: dict) -> tuple:
    """A run's vanilla-matched: same task and seed, and W trained as long (the search's epochs)."""
    return record["task"], record["seed"], search_length(record)


def screen_table(rows: list[dict]) -> str:
    rows = [r for r in rows if r["seed"] in SCREEN_SEEDS]
    arms = by_arm(rows)
    control = {control_key(r): r["metric"] for (label, _), runs in references(rows).items() if label == CONTROL
               for r in runs}
    tasks = sorted({r["task"] for r in rows})
    head = (["arm", "runs"] + [f"{t} held-out" for t in tasks] + [f"{t} - v-matched" for t in tasks]
            + ["max abs change", "mean abs layer change", "within-task r", "across-task r",
               "probe cosine", "direct norm", "implicit norm", "clamp undone"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, runs in arms.items():
        learned = [r for r in runs if "alpha_change_per_module" in r.get("diagnostics", {})
                   and r["method"] == BASE]
        within, across = pattern_correlations(learned)
        d = [r.get("diagnostics", {}) for r in runs]
        cells = [label, str(len(runs))]
        cells += [fmt(mean(r["metric"] for r in runs if r["task"] == t), 2) for t in tasks]
        cells += [fmt(mean(r["metric"] - control[control_key(r)] for r in runs
                           if r["task"] == t and control_key(r) in control), 2) for t in tasks]
        cells += [fmt(mean(x.get("alpha_max_abs_change") for x in d), 4),
                  fmt(mean(mean(abs(v) for v in x["alpha_change_per_module"].values())
                           for x in d if "alpha_change_per_module" in x), 5),
                  r_cell(within), r_cell(across),
                  fmt(mean(x.get("signal_cosine") for x in d), 2),
                  fmt(mean(x.get("signal_direct_norm") for x in d), 3),
                  fmt(mean(x.get("signal_implicit_norm") for x in d), 3),
                  fmt(mean(x.get("clamp_undone_share") for x in d), 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_cell(runs: list[dict], reference: list[dict], task: str) -> str:
    """mean difference (wins/seeds, paired p) on the seeds both ran."""
    seeds, a, b = pair_by_seed(select(runs, task=task), select(reference, task=task))
    if not seeds or {r["run_id"] for r in runs} == {r["run_id"] for r in reference}:  # an arm against itself
        return ""
    s = paired_summary(a, b)
    return f"{s['mean_difference']:+.2f} ({s['wins']}/{s['seeds']}, p {fmt_p(s['p'])})"


def five_seed_arms(rows: list[dict]) -> dict[str, list[dict]]:
    """The arms run on more seeds than the screen's."""
    return {label: runs for label, runs in by_arm(rows).items()
            if len({r["seed"] for r in runs}) > len(SCREEN_SEEDS)}


def five_seed_table(rows: list[dict], arms: dict[str, list[dict]]) -> str:
    """The `five_seed_arms` paired by seed against the references of their own search length."""
    refs = references(rows)
    lines = ["| task | arm | seeds | held-out, mean ± sd | - vanilla-matched (wins, p) | "
             "- random-alpha (wins, p) | - agwm paper (wins, p) | outer steps | alpha mean | "
             "within-task r | across-task r |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    correlations = {label: pattern_correlations([r for r in runs if r["method"] == BASE])
                    for label, runs in arms.items()}
    for task in sorted({r["task"] for runs in arms.values() for r in runs}):
        for label, runs in arms.items():
            mine = [r for r in runs if r["task"] == task]
            if not mine:
                continue
            metrics = [r["metric"] for r in mine]
            sd = f" ± {statistics.stdev(metrics):.2f}" if len(metrics) > 1 else ""
            outer = (mine[0]["steps"]["search_per_split"] // mine[0]["hparams"].get("unroll_steps", 1)
                     if mine[0]["method"] == BASE else 0)
            alpha = mean((r.get("alphas") or {}).get("mean") for r in mine)
            within, across = correlations[label]
            lines.append(f"| {task} | {label} | {len(mine)} | {statistics.mean(metrics):.2f}{sd} | "
                         + " | ".join(paired_cell(runs, refs.get((name, search_length(mine[0])), []), task)
                                      for name in (CONTROL, RANDOM, PAPER)) + f" | {outer} | "
                         f"{fmt(alpha, 4)} | {r_cell(within)} | {r_cell(across)} |")
    return "\n".join(lines) + "\n"


def per_seed_table(arms: dict[str, list[dict]]) -> str:
    """Every five-seed arm's score on each seed: the spread a paired difference comes from."""
    seeds = sorted({r["seed"] for runs in arms.values() for r in runs})
    lines = ["| task | arm | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---|---|" + "---:|" * len(seeds)]
    for task in sorted({r["task"] for runs in arms.values() for r in runs}):
        for label, runs in arms.items():
            score = {r["seed"]: r["metric"] for r in runs if r["task"] == task}
            if len(score) > len(SCREEN_SEEDS):
                lines.append(f"| {task} | {label} | " + " | ".join(fmt(score.get(s), 2) for s in seeds) + " |")
    return "\n".join(lines) + "\n"


def tables(rows: list[dict]) -> str:
    text = "## Screen (seeds 100 and 101)\n\n" + screen_table(rows)
    arms = five_seed_arms(rows)
    if arms:
        text += "\n## Five seeds: the controls, T and the longer search\n\n" + five_seed_table(rows, arms)
        text += "\n### Per seed\n\n" + per_seed_table(arms)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="?", default=STUDY / "runs.jsonl", type=Path)
    parser.add_argument("--out", default=STUDY / "table.md", type=Path)
    args = parser.parse_args()
    text = tables(load_records([args.runs], warn=False))  # a run recorded twice is the same run
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
