"""#44's PLAN.md (results/confirm_mpnet/PLAN.md) applied exactly as written, to whatever records exist:
a cell short of its planned seeds is reported as incomplete and given no verdict.

    .venv/bin/python scripts/confirm_mpnet.py              # -> results/confirm_mpnet/confirm.md
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import pandas as pd

from agwm_betty.report import load_runs
from agwm_betty.report.confirm import collapse_table, confirmation_table, with_holm
from agwm_betty.report.selection import pair_by_seed
from agwm_betty.report.stats import paired_summary

ROOT = Path(__file__).resolve().parents[1]
FRESH, OLD = list(range(5, 15)), list(range(5))
RANDOM = "random-alpha (σ=0.005)"
CONTROLS = ["vanilla-matched", RANDOM, "vanilla"]
ARMS = ["vanilla", "vanilla-matched", RANDOM, "agwm"]
THRESHOLDS = {"stsb": 50.0, "cola": 10.0, "sst2": 60.0}  # PLAN.md: collapse below these
NAMES = {"stsb": "STS-B (Spearman)", "cola": "CoLA (MCC)", "sst2": "SST-2 (accuracy)"}


def fmt(x: float, digits: int = 2) -> str:
    return "—" if pd.isna(x) else f"{x:.{digits}f}" if abs(x) >= 1e-3 or x == 0 else f"{x:.1e}"


def paired_rows(table: pd.DataFrame, planned: int) -> list[str]:
    lines = ["| arm - control | seeds | mean | 95 % CI | wins | t p (Holm) | Wilcoxon p (Holm) | verdict |",
             "|---|---:|---:|---|---:|---|---|---|"]
    for r in table.to_dict("records"):
        said = r["verdict"] if r["seeds"] == planned else f"incomplete ({r['seeds']} of {planned} seeds): no verdict"
        lines.append(f"| {r['arm']} - {r['control']} | {r['seeds']} | {fmt(r['mean_difference'])} | "
                     f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}] | {r['wins']} | {fmt(r['t_p'], 4)} "
                     f"({fmt(r['t_p_holm'], 4)}) | {fmt(r['wilcoxon_p'], 4)} ({fmt(r['wilcoxon_p_holm'], 4)}) | "
                     f"{said} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "results" / "confirm_mpnet" / "confirm.md"))
    args = parser.parse_args()
    df = load_runs([ROOT / "results" / "cpu_mpnet" / "runs.jsonl", ROOT / "results" / "confirm_mpnet" / "runs.jsonl"])
    df = df[(df["n"] == 300) & (df["plm"] == "mpnet-base-bf16") & (df["eval_split"] == "dev")]
    out = ["# #44: PLAN.md applied (made by `scripts/confirm_mpnet.py`; do not edit by hand)", ""]

    primary = confirmation_table(df, "stsb", "agwm", CONTROLS, seeds=FRESH)
    out += ["## Primary endpoint: STS-B, seeds 5-14, agwm minus each control (Holm over the three)", ""]
    out += paired_rows(primary, len(FRESH))
    done = (primary["seeds"] == len(FRESH)).all()
    verdicts = dict(zip(primary["control"], primary["verdict"], strict=True))
    lead = ("confirmed" if verdicts["vanilla-matched"] == verdicts[RANDOM] == "confirmed" else "not confirmed")
    out += ["", f"**The lead: {lead if done else 'no verdict yet (seeds missing)'}** (confirmed only when "
                f"confirmed against both vanilla-matched and random-alpha)", ""]

    out += ["## Collapse, seeds 0-14 (Fisher's exact test, Holm over the three controls)", ""]
    out += ["| task | threshold | arm | runs | collapsed | Fisher p (Holm) |", "|---|---:|---|---:|---:|---|"]
    for task, threshold in THRESHOLDS.items():
        table = collapse_table(df, task, threshold, "agwm", CONTROLS, seeds=OLD + FRESH)
        if task == "stsb":  # the fifth arm (seeds 5-14 only), secondary: its own family of one
            fifth = collapse_table(df, task, threshold, "agwm", ["mean-alpha"], seeds=OLD + FRESH)
            table = pd.concat([table, fifth[1:]])
        for r in table.to_dict("records"):
            out.append(f"| {NAMES[task]} | < {threshold:g} | {r['label']} | {r['runs']} | {r['collapsed']} | "
                       f"{fmt(r['fisher_p'], 4)} ({fmt(r['fisher_p_holm'], 4)}) |")
    out += ["", "mean-alpha ran on seeds 5-14 only; its Fisher p is secondary and not in the three controls' "
            "Holm family.", ""]

    second = with_holm(pd.concat([confirmation_table(df, "stsb", "agwm", ["mean-alpha"], seeds=FRESH),
                                  confirmation_table(df, "stsb", "mean-alpha", [RANDOM], seeds=FRESH)]))
    out += ["## Secondary 1: STS-B's fifth arm (Holm over these two)", ""] + paired_rows(second, len(FRESH)) + [""]
    for task in ("cola", "sst2"):
        out += [f"## Secondary 2: {NAMES[task]}, seeds 5-14 (Holm over the three controls)", ""]
        out += paired_rows(confirmation_table(df, task, "agwm", CONTROLS, seeds=FRESH), len(FRESH)) + [""]

    out += ["## SetFit on MPNet-base, seeds 0-4 (paired by seed; cost: median wall time over vanilla's)", ""]
    out += ["| task | SetFit minus | seeds | mean | wins | paired t p |", "|---|---|---:|---:|---:|---|"]
    for task in ("sst2", "cola"):
        rows = df[(df["task"] == task) & df["seed"].isin(OLD)]
        setfit = rows[rows["label"] == "setfit"].to_dict("records")
        for arm in ARMS:
            seeds, a, b = pair_by_seed(setfit, rows[rows["label"] == arm].to_dict("records"))
            if seeds:
                s = paired_summary(a, b)
                out.append(f"| {NAMES[task]} | {arm} | {s['seeds']} | {fmt(s['mean_difference'])} | {s['wins']} | "
                           f"{fmt(s['p'], 4)} |")
        times = {label: [r["time"]["total"] for r in rows[rows["label"] == label].to_dict("records")]
                 for label in ("setfit", "vanilla")}
        if times["setfit"] and times["vanilla"]:
            ratio = statistics.median(times["setfit"]) / statistics.median(times["vanilla"])
            out.append(f"| {NAMES[task]} | cost | | {ratio:.1f}x vanilla | | |")
    Path(args.out).write_text("\n".join(out) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
