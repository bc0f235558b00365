#!/usr/bin/env bash
# Held-out study of the outer level (#12), stage 1: a search-only screen. Does any faithful variant
# of the outer level move alpha in a task-specific way? Each arm changes one thing from the paper's
# setting (darts-paper, alpha lr 2e-3, product form, clamp, init N(1, 0.005), rank 1), except
# the arms that build on the convex form (an init below 1 only keeps the pretrained function in the
# convex form: the product form at alpha = 0.5 starts from 0.25 (W + W0) = W0 / 2) and the last,
# which combines. Never the dev set: --heldout 500 scores 500 training examples outside each
# subset, and the seeds (100, 101) are not the final ones.
# Protocol: MiniLM, STS-B and SST-2, n = 300, one 80/20 split (K = 1), 3 search epochs (the
# paper's), --epochs 0 (no finetune phase: the model is scored as the search left it, so the screen
# costs the search alone), W lr 1e-4 (the CPU recipe, results/recipe/). Every record carries the
# per-layer alpha change and the signal probe; table.py compares the alpha change patterns between
# seeds of one task and between tasks of one seed.
# Resumable: finished runs are lines of $OUT/runs.jsonl and re-running skips them. Two lanes, one
# thread each; lane 1 runs (STS-B, seed 100) and (SST-2, seed 101) of each arm, lane 2 the other
# two, so the lanes take about as long and a partial study has whole arms, in the order below.
#   bash results/study/run.sh                 # logs in results/logs/study-*.log
#   .venv/bin/python results/study/table.py   # -> results/study/table.md
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-results/study}
LOGS=${LOGS:-results/logs}
DATA=${DATA:-../shared/glue_data}
COMMON=(--plm minilm --data-dir "$DATA" --output "$OUT" --no-progress --n 300 --heldout 500
        --lr 1e-4 --search-lr 1e-4 --K 1 --search-epochs 3 --epochs 0)
ARMS=(  # method | flags
  "vanilla-matched|"
  "agwm|"
  "agwm|--hypergradient darts"
  "agwm|--alpha-lr 1e-1"
  "agwm|--alpha-init-mean 0.5"
  "agwm|--alpha-form convex"
  "agwm|--alpha-form convex --alpha-init-mean 0.5"
  "agwm|--alpha-form convex --alpha-init-mean 0.5 --alpha-param sigmoid"
  "agwm|--preset official --K 1"
  "agwm|--hypergradient first-order"
  "agwm|--outer-batch-size 1000"
  "random-alpha|"
  "agwm|--rank 8"
  "agwm|--alpha-form convex --alpha-init-mean 0.5 --alpha-lr 1e-1 --outer-batch-size 1000"
)
lane() {  # lane <task>:<seed> <task>:<seed>
  for arm in "${ARMS[@]}"; do
    method=${arm%%|*}; read -r -a flags <<< "${arm#*|}"
    for job in "$@"; do
      OMP_NUM_THREADS=1 $PY experiments/glue.py "${COMMON[@]}" --methods "$method" \
        --tasks "${job%%:*}" --seeds "${job#*:}," "${flags[@]}"
    done
  done
}
mkdir -p "$LOGS"
lane stsb:100 sst2:101 >> "$LOGS/study-1.log" 2>&1 &
lane stsb:101 sst2:100 >> "$LOGS/study-2.log" 2>&1 &
wait
