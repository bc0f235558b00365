# Sourced by the device scripts (gpu_check.sh, gpu_bench.sh) from the repository root once they have
# set OUT_DIR: it picks the interpreter (PYTHON, else .venv/bin/python, else python3) and the GLUE
# folder (GLUE_DIR, else ../shared/glue_data), makes OUT_DIR and starts the clock and the status.
# stage() reads SCALE (its limits' factor), STAGE_LOG_EXT (the log files' extension, default txt)
# and STAGE_TAIL (> 0: print that many last lines of each stage's log, rounds and e2e progress left
# out).
PY="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
GLUE="${GLUE_DIR:-../shared/glue_data}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT_DIR"
status=0
started=$SECONDS

stage() {  # stage NAME SECONDS COMMAND...: run with a time limit (x SCALE), log to $OUT_DIR/NAME.<ext>
  local name=$1 limit=$(($2 * SCALE)) log="$1.${STAGE_LOG_EXT:-txt}"
  shift 2
  echo "== $name (limit ${limit}s, at $((SECONDS - started))s)"
  timeout "$limit" "$@" >"$OUT_DIR/$log" 2>&1
  local rc=$?
  [ $rc -ne 0 ] && { echo "   $name FAILED (exit $rc), see $log"; status=1; }
  [ "${STAGE_TAIL:-0}" -gt 0 ] && grep -v "round \|^\s*\[e2e\]" "$OUT_DIR/$log" | tail -n "$STAGE_TAIL"
  return $rc
}

write_env() {  # the date, the GPU and the stack, to $OUT_DIR/env.txt (callers append to it, then print it)
  {
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "no nvidia-smi"
    "$PY" -c "import sys, torch, transformers, betty; print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__, 'betty', betty.__version__, 'cuda', torch.cuda.is_available())"
  } >"$OUT_DIR/env.txt" 2>&1
}
