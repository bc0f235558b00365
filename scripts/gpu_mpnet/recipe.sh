#!/usr/bin/env bash
# MPNet's recipe, chosen on held-out training data only (as ../recipe/run.sh did for MiniLM): vanilla
# finetuning on the n = 300 subset of seed 0 of each grid task, evaluated on 500 *other training
# examples* (--heldout 500), never the dev set, for each candidate (lr, epochs):
#   2e-5 x 3 (the paper's BERT-large recipe), 2e-5 x 5, 5e-5 x 5, 1e-4 x 5 (MiniLM's recipe).
# pick_recipe.py then picks one by its stated rule; grid.sh reads that pick itself.
# Runs on the CPU or a GPU; resumable (recorded runs are skipped); one glue.py job per (candidate,
# task), candidate by candidate, WORKERS at a time; with BUDGET_S, no job starts or runs past that
# many seconds from the start (the rule only counts complete candidates).
#   bash scripts/gpu_mpnet/recipe.sh                                  # CPU: 20 runs, 2 at a time
#   PY=python3 GLUE_DIR=/tmp/glue WORKERS=20 BUDGET_S=200 bash scripts/gpu_mpnet/recipe.sh   # the device
# TINY=1 rehearses the plumbing in minutes (RTE and SST-2, n = 16, 2 steps, 2 candidates).
# PLM: mpnet-base-bf16 (default; the grid's weights: every arm and the recipe use the same ones).
set -uo pipefail
cd "$(dirname "$0")/../.."
export PY=${PY:-.venv/bin/python} PLM=${PLM:-mpnet-base-bf16} GLUE=${GLUE_DIR:-../shared/glue_data}
export OUT_DIR=${OUT_DIR:-results/gpu_mpnet/recipe} LOG_DIR=${LOG_DIR:-results/logs/gpu_mpnet/recipe}
export BUDGET_S=${BUDGET_S:-1000000} START=$(date +%s)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
mkdir -p "$OUT_DIR" "$LOG_DIR"
if [ "${TINY:-0}" = 1 ]; then
  TASKS="rte sst2" SIZE_ARGS="--n 16 --heldout 16 --batch-size 4 --max-steps 2"
  CANDIDATES=("1e-4 1" "2e-5 1")
else
  TASKS="cola stsb mrpc rte sst2" SIZE_ARGS="--n 300 --heldout 500"
  CANDIDATES=("2e-5 3" "2e-5 5" "5e-5 5" "1e-4 5")
fi
export TASKS SIZE_ARGS

job() {  # job LR EPOCHS TASK: one vanilla run, stopped at the budget
  local left=$((START + BUDGET_S - $(date +%s)))
  [ "$left" -gt "${MIN_JOB_S:-30}" ] || { echo "skipped (budget): $*"; return 0; }
  # shellcheck disable=SC2086
  timeout "$left" "$PY" experiments/glue.py --plm "$PLM" --tasks "$3" $SIZE_ARGS --seeds 1 --methods vanilla \
    --lr "$1" --epochs "$2" --data-dir "$GLUE" --output "$OUT_DIR" --no-progress >"$LOG_DIR/$3_$1_$2.log" 2>&1
  echo "exit $? after $(($(date +%s) - START))s: lr $1 epochs $2 $3"
}
export -f job
for c in "${CANDIDATES[@]}"; do for t in $TASKS; do echo "$c $t"; done; done | xargs -P "${WORKERS:-2}" -L 1 bash -c 'job "$@"' _
echo "$(wc -l <"$OUT_DIR/runs.jsonl" 2>/dev/null || echo 0) runs recorded in $OUT_DIR/runs.jsonl"
"$PY" scripts/pick_recipe.py "$OUT_DIR/runs.jsonl" --tasks "${TASKS// /,}" --plm "$PLM"
