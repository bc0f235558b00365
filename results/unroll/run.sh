#!/usr/bin/env bash
# Quality against T, the inner steps per outer step (--unroll-steps; the paper's section 6 proposes
# updating alpha every T iterations), on held-out training data (--heldout 500, never the dev
# set): agwm on STS-B and SST-2, n = 300, seeds 0-4, T in {1, 5, 10, 2}. Recipe as in
# results/reproduce.sh (lr 1e-4 for W in both phases, 5 finetune epochs, K = 2). Resumable: every
# finished run is a line of $OUT/runs.jsonl and re-running skips it. Two lanes (one per task), one
# thread each; within a lane seed by seed, so a partial table has every T for its first seeds.
# The hypergradient is pinned to darts (Betty 0.2.1), what the study's first records ran.
#   bash results/unroll/run.sh                 # logs in results/logs/unroll-*.log
#   .venv/bin/python scripts/results/unroll_table.py   # -> results/unroll/table.md
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-results/unroll}
LOGS=${LOGS:-results/logs}
DATA=${DATA:-../shared/glue_data}
COMMON=(--plm minilm --data-dir "$DATA" --output "$OUT" --no-progress --n 300 --heldout 500
        --methods agwm --lr 1e-4 --search-lr 1e-4 --epochs 5 --K 2 --hypergradient darts)
lane() {  # lane <task>
  for seed in 0 1 2 3 4; do
    for T in 1 5 10 2; do
      OMP_NUM_THREADS=1 $PY experiments/glue.py "${COMMON[@]}" --tasks "$1" --seeds "$seed," --unroll-steps "$T"
    done
  done
}
mkdir -p "$LOGS"
lane stsb >> "$LOGS/unroll-stsb.log" 2>&1 &
lane sst2 >> "$LOGS/unroll-sst2.log" 2>&1 &
wait
