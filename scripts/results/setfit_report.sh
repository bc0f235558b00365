#!/usr/bin/env bash
# #36's report: `bash scripts/results/setfit_report.sh` (from the repository root) writes tables.md, the CSVs
# and the figures here from
#   runs.jsonl    this folder's own runs (vanilla, setfit, lora; this CPU, plan.sh), and
#   reused.jsonl  the MiniLM dev grid's vanilla-matched and agwm records (../gpu_dev/, one H200) on
#                 the same tasks, n and seeds (0-4: SST-2 and CoLA at n = 300, SST-2 at n = 1000),
#                 filtered out of ../gpu_dev/runs.jsonl below.
# Every arm of a seed trains on the same n-example subset (the seed alone draws it), so the
# paired tables compare SetFit with each arm on the same examples.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
HERE=results/setfit
"$PY" - <<'EOF' >"$HERE/reused.jsonl"
import json

for line in open("results/gpu_dev/runs.jsonl", encoding="utf-8"):
    if not line.strip():
        continue
    run = json.loads(line)
    compared = (run["n"] == 300 and run["task"] in ("sst2", "cola")) or (run["n"] == 1000 and run["task"] == "sst2")
    if (run["plm"] == "minilm" and compared and run["seed"] < 5
            and run["method"] in ("vanilla-matched", "agwm") and run["eval_split"] == "dev"):
        print(line, end="" if line.endswith("\n") else "\n")
EOF
"$PY" experiments/report.py "$HERE/runs.jsonl" "$HERE/reused.jsonl" --out "$HERE" --quiet \
  --pairs setfit:vanilla,setfit:vanilla-matched,setfit:agwm,setfit:lora
