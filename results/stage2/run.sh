#!/usr/bin/env bash
# Stage 2 of the outer-level study (#12): the full pipeline (K = 2 searches, then alpha fixed and
# W finetuned 5 epochs on all n) with the recipe of the GPU grid (scripts/reproduce_gpu.sh:
# MiniLM, n = 300, lr 1e-4, fp32), on this project's CPUs.
#   dev/      the answer: GLUE dev set, seeds 0-4 (the final seeds, as in the GPU grid), agwm (the
#             paper's setting, darts-paper), vanilla-matched, random-alpha and vanilla, task by
#             task: SST-2, then STS-B, then CoLA (DEV_TASKS).
#   heldout/  does the screen's gain survive the finetune phase: SST-2 (the one task where the
#             search-only screen found alpha ahead), its 500 held-out training examples and the
#             screen's seeds 100-104, vanilla-matched, random-alpha and agwm.
# The chosen setting is the paper's: no variant of the screen beat it, so there was nothing to
# choose on dev. One job is one glue.py process of one thread (a seed's agwm, or a seed's two
# controls, which take about as long); WORKERS=2 of them run at once, in queue order, so a partial
# run has whole seeds (every arm but vanilla, which each task queues after its seeds).
# Resumable: finished runs are lines of runs.jsonl and re-running skips them.
#   bash results/stage2/run.sh      # logs in results/logs/stage2/
#   .venv/bin/python experiments/report.py results/stage2/dev/runs.jsonl --out results/stage2/dev
set -uo pipefail
cd "$(dirname "$0")/../.."
export PY=${PY:-.venv/bin/python} OUT=${OUT:-results/stage2} LOGS=${LOGS:-results/logs/stage2}
export DATA=${DATA:-../shared/glue_data}
export OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
DEV_TASKS=${DEV_TASKS-sst2 stsb cola} HELDOUT_TASKS=${HELDOUT_TASKS-sst2}  # set empty for none

queue() {  # one line per job: split task seed methods
  local t s
  for t in $DEV_TASKS; do
    for s in 0 1 2 3 4; do echo "dev $t $s agwm"; echo "dev $t $s vanilla-matched,random-alpha"; done
    for s in 0 1 2 3 4; do echo "dev $t $s vanilla"; done
  done
  for t in $HELDOUT_TASKS; do
    for s in 100 101 102 103 104; do echo "heldout $t $s agwm"; echo "heldout $t $s vanilla-matched,random-alpha"; done
  done
}

job() {  # job SPLIT TASK SEED METHODS: one glue.py process
  local split=$1 task=$2 seed=$3 methods=$4 extra=()
  [ "$split" = heldout ] && extra=(--heldout 500)
  "$PY" experiments/glue.py --plm minilm --data-dir "$DATA" --no-progress --n 300 --lr 1e-4 \
    --search-lr 1e-4 --epochs 5 --K 2 --output "$OUT/$split" --tasks "$task" --seeds "$seed," \
    --methods "$methods" "${extra[@]}" >> "$LOGS/$split-$task-$seed-${methods//,/+}.log" 2>&1
  local rc=$?
  echo "$(date +%H:%M) exit $rc: $*"
}
export -f job
mkdir -p "$LOGS"
queue | xargs -P "${WORKERS:-2}" -L 1 bash -c 'job "$@"' _
