#!/usr/bin/env bash
# Which pool finishes more runs per hour on this CPU: W workers of one thread each, or one worker of W
# threads (#34, point 3)? The same run list (whole glue.py runs: training and dev evaluation) is run
# both ways, one after the other, each into a scratch folder; the script prints both wall times and
# runs per hour as a ratio. Run it on an idle machine: anything else running skews the comparison.
#
#   bash benchmarks/bench_workers.sh                  # MPNet-base bf16, SST-2, n = 64, 5 epochs, 2 runs
#   PLM=minilm PRECISION=fp32 N=300 bash benchmarks/bench_workers.sh
#
# Env: PLM (mpnet-base-bf16), PRECISION (bf16), TASK (sst2), N (64), EPOCHS (5), METHOD (vanilla),
# WORKERS (2: also the threads of the single worker, and the number of runs, one seed each),
# GLUE_DIR (../shared/glue_data), PYTHON (.venv/bin/python), JSON (optional: where to write the result).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
PLM=${PLM:-mpnet-base-bf16} PRECISION=${PRECISION:-bf16} TASK=${TASK:-sst2} N=${N:-64} EPOCHS=${EPOCHS:-5}
METHOD=${METHOD:-vanilla} W=${WORKERS:-2} GLUE_DIR=${GLUE_DIR:-../shared/glue_data}
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
ARGS=(--plm "$PLM" --precision "$PRECISION" --tasks "$TASK" --n "$N" --epochs "$EPOCHS" --methods "$METHOD"
      --seeds "$W" --data-dir "$GLUE_DIR" --no-progress)

timed() {  # timed LABEL THREADS WORKERS: seconds of one glue.py over the run list
  local start end
  start=$(date +%s.%N)
  OMP_NUM_THREADS=$2 "$PY" experiments/glue.py "${ARGS[@]}" --workers "$3" --output "$SCRATCH/$1" \
    >"$SCRATCH/$1.log" 2>&1 || { cat "$SCRATCH/$1.log" >&2; exit 1; }
  end=$(date +%s.%N)
  [ "$(awk 'NF' "$SCRATCH/$1/runs.jsonl" | wc -l)" = "$W" ] || { echo "$1: not every run recorded" >&2; exit 1; }
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }'
}

echo "$W runs of $METHOD, $PLM $PRECISION, $TASK n=$N, $EPOCHS epochs, dev evaluation; $(nproc) cores"
pool=$(timed pool 1 "$W")
echo "  $W workers x 1 thread : ${pool} s"
single=$(timed single "$W" 1)
echo "  1 worker x $W threads : ${single} s"
awk -v p="$pool" -v s="$single" -v w="$W" 'BEGIN {
  printf "runs per hour: %d x 1 thread %.1f, 1 x %d threads %.1f; ratio (pool / single) %.2f\n",
         w, 3600 * w / p, w, 3600 * w / s, s / p }'
if [ -n "${JSON:-}" ]; then
  awk -v p="$pool" -v s="$single" -v w="$W" -v plm="$PLM" -v prec="$PRECISION" -v task="$TASK" -v n="$N" \
      -v ep="$EPOCHS" -v m="$METHOD" -v c="$(nproc)" 'BEGIN {
    printf "{\"plm\": \"%s\", \"precision\": \"%s\", \"task\": \"%s\", \"n\": %d, \"epochs\": %d, \"method\": \"%s\", ", plm, prec, task, n, ep, m
    printf "\"runs\": %d, \"cores\": %d, \"pool_seconds\": %.1f, \"single_seconds\": %.1f, ", w, c, p, s
    printf "\"runs_per_hour\": {\"pool\": %.2f, \"single\": %.2f}, \"ratio_pool_over_single\": %.3f}\n", 3600 * w / p, 3600 * w / s, s / p
  }' >"$JSON"
  echo "wrote $JSON"
fi
