#!/usr/bin/env bash
# #24's dev grid on MPNet-base (mpnet-base-bf16: every arm and the recipe on the same bf16-rounded
# weights): vanilla, vanilla-matched, random-alpha, agwm in the paper's setting (darts-paper, eq. 6)
# and agwm with --hypergradient first-order, on CoLA, RTE, MRPC, STS-B and SST-2 at n = 300, dev set.
# The recipe (lr for W in both phases, finetune epochs) is read from the recipe stage's records by
# pick_recipe.py's rule, with no one in the loop; K = 2 and 3 search epochs as the MiniLM grid.
# Seed-major: per seed, per task, three jobs (agwm, agwm first-order, the three controls in one
# process), so a cut lease leaves whole paired seeds; every arm of a seed shares its subset.
# Resumable (recorded runs are skipped); BUDGET_S: no job starts or runs past that many seconds.
#   SEEDS="0 1 2 3 4" bash scripts/gpu_mpnet/grid.sh                                # CPU
#   PY=python3 GLUE_DIR=/tmp/glue WORKERS=15 BUDGET_S=400 SEEDS="0 1 2 3 4" bash scripts/gpu_mpnet/grid.sh
# TINY=1 rehearses the plumbing (RTE and SST-2, n = 16, 2 steps, one seed, held-out eval).
set -uo pipefail
cd "$(dirname "$0")/../.."
export PY=${PY:-.venv/bin/python} PLM=${PLM:-mpnet-base-bf16} GLUE=${GLUE_DIR:-../shared/glue_data}
export OUT_DIR=${OUT_DIR:-results/gpu_mpnet} LOG_DIR=${LOG_DIR:-results/logs/gpu_mpnet/grid}
RECIPE_RUNS=${RECIPE_RUNS:-results/gpu_mpnet/recipe/runs.jsonl}
export BUDGET_S=${BUDGET_S:-1000000} START=$(date +%s)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
mkdir -p "$OUT_DIR" "$LOG_DIR"
if [ "${TINY:-0}" = 1 ]; then
  TASKS="rte sst2" SEEDS=${SEEDS:-0} N=16
  SIZE_ARGS="--n $N --heldout 16 --batch-size 4 --max-steps 2 --K 1 --search-epochs 1 --diagnostic-points 1"
else
  TASKS="cola rte mrpc stsb sst2" SEEDS=${SEEDS:-0 1 2 3 4} N=300
  SIZE_ARGS="--n $N --K 2 --search-epochs 3"
fi
read -r LR EPOCHS < <("$PY" scripts/pick_recipe.py "$RECIPE_RUNS" --tasks "${TASKS// /,}" --plm "$PLM" --shell)
echo "recipe from $RECIPE_RUNS: lr $LR, $EPOCHS epochs (pick_recipe.py's rule)"
export SIZE_ARGS LR EPOCHS

job() {  # job TASK SEED METHODS [EXTRA...]: one glue.py process, stopped at the budget
  local left=$((START + BUDGET_S - $(date +%s))) name
  name=$(echo "$*" | tr -c 'a-z0-9,\n-' '_')
  [ "$left" -gt "${MIN_JOB_S:-45}" ] || { echo "skipped (budget): $*"; return 0; }
  # shellcheck disable=SC2086
  timeout "$left" "$PY" experiments/glue.py --plm "$PLM" --tasks "$1" --seeds "$2," --methods "$3" "${@:4}" \
    $SIZE_ARGS --lr "$LR" --search-lr "$LR" --epochs "$EPOCHS" --data-dir "$GLUE" --output "$OUT_DIR" \
    --no-progress >"$LOG_DIR/$name.log" 2>&1
  echo "exit $? after $(($(date +%s) - START))s: $*"
}
export -f job
# Jobs whose runs are all recorded are not launched: a glue.py that only skips still costs its start
# (about 30 s of imports and loading), a whole wave of workers a seed when a later call resumes.
recorded=$("$PY" - "$OUT_DIR/runs.jsonl" "$PLM" "$LR" "$EPOCHS" "$N" <<'PYEOF'
import json, sys
path, plm, lr, epochs, n = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
try:
    lines = open(path).read().splitlines()
except OSError:
    lines = []
for line in filter(None, lines):
    r = json.loads(line)
    h = r["hparams"]
    if r["plm"] == plm and r["n"] == n and float(h["lr"]) == lr and float(h["epochs"]) == epochs:
        print(f'{r["task"]} {r["seed"]} {r["method"]} {h.get("hypergradient", "-")}')
PYEOF
)
done_job() {  # done_job TASK SEED KEY...: every KEY ("method" or "method hypergradient") recorded
  local key
  for key in "${@:3}"; do
    grep -q "^$1 $2 $key" <<<"$recorded" || return 1
  done
}
for s in $SEEDS; do
  for t in $TASKS; do
    done_job "$t" "$s" "agwm darts-paper" || echo "$t $s agwm"
    done_job "$t" "$s" "agwm first-order" || echo "$t $s agwm --hypergradient first-order"
    done_job "$t" "$s" random-alpha vanilla-matched "vanilla " || echo "$t $s random-alpha,vanilla-matched,vanilla"
  done
done | xargs -r -P "${WORKERS:-2}" -L 1 bash -c 'job "$@"' _
echo "$(wc -l <"$OUT_DIR/runs.jsonl" 2>/dev/null || echo 0) runs recorded in $OUT_DIR/runs.jsonl"
