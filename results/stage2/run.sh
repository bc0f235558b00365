#!/usr/bin/env bash
# Stage 2 of the outer-level study (#12): SST-2, the one task where the search-only screen
# (results/study/) found the learned alpha ahead of its controls, now through the full pipeline
# (K = 2 searches, then alpha fixed and W finetuned 5 epochs on all n) with the recipe of the GPU
# grid (results/reproduce_gpu.sh: MiniLM, n = 300, lr 1e-4, fp32).
#   dev/      the answer: GLUE dev set, seeds 0-4 (the final seeds, as in the GPU grid),
#             vanilla, vanilla-matched, random-alpha and agwm (the paper's setting, darts-paper).
#   heldout/  does the screen's gain survive the finetune phase: 500 held-out training examples,
#             the screen's seeds 100-104, vanilla-matched, random-alpha and agwm.
# The chosen setting is the paper's: no variant of the screen beat it, so there was nothing to
# choose on dev. Two lanes of one thread each, seed by seed, so a partial run has whole seeds
# (every arm of a seed); dev first. Resumable: finished runs are lines of runs.jsonl.
#   bash results/stage2/run.sh      # logs in results/logs/stage2-*.log
#   .venv/bin/python experiments/report.py results/stage2/dev/runs.jsonl --out results/stage2/dev
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-results/stage2}
LOGS=${LOGS:-results/logs}
DATA=${DATA:-../shared/glue_data}
export OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
COMMON=(--plm minilm --data-dir "$DATA" --no-progress --tasks sst2 --n 300
        --lr 1e-4 --search-lr 1e-4 --epochs 5 --K 2)
run() {  # run <split: dev|heldout> <methods> <seeds...>
  local split=$1 methods=$2 seed extra=(); shift 2
  [ "$split" = heldout ] && extra=(--heldout 500)
  for seed in "$@"; do
    $PY experiments/glue.py "${COMMON[@]}" --output "$OUT/$split" --methods "$methods" \
      --seeds "$seed," "${extra[@]}"
  done
}
mkdir -p "$LOGS"
# agwm takes about as long as the three controls together, so each lane gets one side.
{ run dev agwm 0 1 2 3 4; run heldout agwm 100 101 102 103 104; } >> "$LOGS/stage2-1.log" 2>&1 &
{ run dev vanilla,vanilla-matched,random-alpha 0 1 2 3 4
  run heldout vanilla-matched,random-alpha 100 101 102 103 104; } >> "$LOGS/stage2-2.log" 2>&1 &
wait
