#!/usr/bin/env bash
# GPU bench of #25 (fused mixup, fewer host syncs), one short run (target ~3-4 minutes on an H200;
# the stage limits, 90 + 75 + 120 + 150 s, bound it at 7.5). Usage: `bash benchmarks/gpu_bench.sh`, with
# OUT set to the folder that comes back (default results/bench), GLUE_DIR to the GLUE TSVs
# (default ../shared/glue_data; the e2e stages need CoLA's), PYTHON to the interpreter (default
# .venv/bin/python, else python3). It writes, all under $OUT: gpu_fp32.json and gpu_bf16.json
# (benchmarks/bench_step.py --json: models.<minilm|bert-large>.time_ratio.{finetune,search} with
# the fused mixup, and .time_ratio["search-mixup:dense"] the same search step with the dense
# one, timed interleaved in the same process), gpu_e2e_minilm.json and gpu_e2e_bert-large.json
# (whole runs on CoLA's real batches: vanilla, agwm in one process, and agwm with --strategy
# splits on P = K = 5 processes sharing the one GPU: e2e_measured.ratios), a .txt log per stage
# and env.txt. BERT-large is its config with random weights (no download). TINY=1 rehearses the
# plumbing on a CPU in minutes (batch 2 x 16, one round, BERT-large's widths with 1 layer, n = 16,
# K = P = 2). BENCH_INIT=random builds MiniLM from its config with random weights (the ratios do not
# depend on the weights' values), its config and tokenizer read from BENCH_MINILM_DIR (a directory
# without model.safetensors): a machine without the embedded MiniLM package can then run every
# stage. Default: pretrained, the embedded package's weights. env.txt and every JSON say which.
# Exit status 0 when every stage ran; a failed stage is named and the rest still run.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-results/bench}"
source benchmarks/_stages.sh
INIT="${BENCH_INIT:-pretrained}"

if [ "${TINY:-0}" = 1 ]; then  # a busy 2-core CPU: tiny work, generous limits
  export BENCH_BERT_LARGE_LAYERS=1
  STEP=(--threads 1 --repeats 1 --warmup 0 --batch-size 2 --seq-len 16)  # one thread: two spin on a busy CPU
  E2E=(--threads 1 --n 16 --K 2 --e2e-procs 2)
  E2E_LARGE=(--threads 1 --n 16 --K 2 --e2e-procs 2)
  SCALE=10
else
  STEP=(--device cuda --repeats 10 --warmup 2)
  E2E=(--device cuda --n 300 --K 5 --e2e-procs 5)
  E2E_LARGE=(--device cuda --n 100 --K 5 --e2e-procs 5)  # n = 100: 75 search steps in each run
  SCALE=1
fi
COMMON=(--models minilm,bert-large --compare-mixup --no-memory --no-flops --unrolls "" --hypergradients "" --init "$INIT")

STAGE_TAIL=25
write_env
{
  git log -1 --format='commit %H %s' 2>/dev/null
  echo "MiniLM init: $INIT (config and tokenizer: ${BENCH_MINILM_DIR:-the embedded package})"
} >>"$OUT_DIR/env.txt" 2>&1
cat "$OUT_DIR/env.txt"

stage gpu_fp32 90 "$PY" benchmarks/bench_step.py "${STEP[@]}" "${COMMON[@]}" --json "$OUT_DIR/gpu_fp32.json"
stage gpu_bf16 75 "$PY" benchmarks/bench_step.py "${STEP[@]}" "${COMMON[@]}" --precision bf16 --json "$OUT_DIR/gpu_bf16.json"
# whole runs: MiniLM in fp32 (its target), the BERT-large shape in bf16 (how users run it)
stage gpu_e2e_minilm 120 "$PY" benchmarks/bench_step.py --e2e-only --e2e-model minilm --task cola --e2e-unroll 1 \
  "${E2E[@]}" --init "$INIT" --data-dir "$GLUE" --json "$OUT_DIR/gpu_e2e_minilm.json"
stage gpu_e2e_bert-large 150 "$PY" benchmarks/bench_step.py --e2e-only --e2e-model bert-large --task cola --e2e-unroll 1 \
  --precision bf16 "${E2E_LARGE[@]}" --init "$INIT" --data-dir "$GLUE" --json "$OUT_DIR/gpu_e2e_bert-large.json"
echo "== done in $((SECONDS - started))s, status $status, everything in $OUT_DIR"
exit $status
