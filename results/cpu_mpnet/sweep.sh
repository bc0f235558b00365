#!/usr/bin/env bash
# #34: MPNet-base (mpnet-base-bf16 weights) in bf16 on this project's 2-core CPU, carried across
# sessions as one resumable background sweep. Stages, in order (each skips what is recorded):
#   recipe  vanilla on seed 0's n = 300 subset, scored on 500 held-out *training* examples, for the
#           candidates (lr, epochs) 2e-5 x 3, 2e-5 x 5, 5e-5 x 5, 1e-4 x 5 on sst2, stsb, mrpc, cola
#           -> recipe/runs.jsonl; ../gpu_mpnet/pick_recipe.py's committed rule then picks (lr, epochs)
#   grid    vanilla, vanilla-matched, random-alpha, agwm (darts-paper) at n = 300 on dev, seeds 0-4,
#           seed-major, K = 2, 3 search epochs, lr (both phases) and epochs from the pick:
#           sst2,stsb first, then mrpc,cola, then rte                                  -> runs.jsonl
# Every run is `experiments/glue.py ... --precision bf16`, driven by glue.py --workers (seed-major:
# a cut sweep leaves whole paired seeds); a run cut by the time limit is simply run again.
#
#   bash results/cpu_mpnet/sweep.sh start [HOURS]   # detach; stop by itself after HOURS (default 2.5)
#   bash results/cpu_mpnet/sweep.sh status          # running or not, runs recorded, the log's tail
#   bash results/cpu_mpnet/sweep.sh stop            # kill the sweep and every run it started
#
# WORKERS (default 1) processes of THREADS torch threads each (default 1; 2 workers x 1 thread or
# 1 x 2: see README.md). The log is sweep.log beside the records; each glue.py's own output goes
# there too. The sweep runs the code of the commit checked out when it started, from a worktree of
# its own (.sweep-tree/, git-ignored), so editing or checking out this tree meanwhile changes nothing
# in it. TINY=1 rehearses the plumbing into $OUT_DIR (n = 16, 2 steps; use a scratch OUT_DIR).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
HERE=${OUT_DIR:-$ROOT/results/cpu_mpnet}
PIDFILE="$HERE/sweep.pid" LOG="$HERE/sweep.log"

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }
count() { awk 'NF' "$1" 2>/dev/null | wc -l; }

case "${1:-}" in
  start)
    if running; then echo "sweep already running (pid $(cat "$PIDFILE")); see $LOG"; exit 0; fi
    hours=${2:-2.5}
    [[ "$hours" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "sweep.sh: HOURS must be a number, got '$hours'" >&2; exit 2; }
    mkdir -p "$HERE"
    TREE=${SWEEP_TREE:-$ROOT/.sweep-tree}
    git worktree remove --force "$TREE" 2>/dev/null; rm -rf "$TREE"; git worktree prune
    git worktree add --quiet --detach "$TREE" HEAD || exit 1
    # its own session (`stop` kills every process in it), the snapshot's code, absolute paths
    OUT_DIR=$HERE PY=${PY:-$ROOT/.venv/bin/python} GLUE_DIR=$(realpath "${GLUE_DIR:-../shared/glue_data}") \
      PYTHONPATH="$TREE" setsid nohup bash "$TREE/results/cpu_mpnet/sweep.sh" _run "$hours" >>"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    echo "sweep started (pid $!, stops within ${hours} h); log: $LOG"
    ;;
  status)
    if running; then echo "running (pid $(cat "$PIDFILE"))"; else echo "not running"; fi
    echo "recipe runs: $(count "$HERE/recipe/runs.jsonl") of 16; grid runs: $(count "$HERE/runs.jsonl") of 80 (+20 with rte)"
    [ -f "$LOG" ] && tail -n "${TAIL:-8}" "$LOG"
    ;;
  stop)
    # the whole session: timeout puts each glue.py (and its workers) in a process group of its own
    if running; then pkill -TERM -s "$(cat "$PIDFILE")" && echo "stopped pid $(cat "$PIDFILE")"; else echo "not running"; fi
    rm -f "$PIDFILE"
    ;;
  _run)
    PY=${PY:-$ROOT/.venv/bin/python} PLM=${PLM:-mpnet-base-bf16} GLUE=${GLUE_DIR:-../shared/glue_data}
    WORKERS=${WORKERS:-1} THREADS=${THREADS:-1}
    export OMP_NUM_THREADS=$THREADS TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
    END=$(( $(date +%s) + $(awk -v h="$2" 'BEGIN { printf "%d", h * 3600 }') ))
    if [ "${TINY:-0}" = 1 ]; then
      SIZE="--n 16 --batch-size 4 --max-steps 2" HELDOUT=16 SEARCH="--K 1 --search-epochs 1 --diagnostic-points 1"
      CANDIDATES=("1e-4 1" "2e-5 1") SEEDS=1 TASK_GROUPS=("sst2" "stsb")
    else
      SIZE="--n 300" HELDOUT=500 SEARCH="--K 2 --search-epochs 3"
      CANDIDATES=("2e-5 3" "2e-5 5" "5e-5 5" "1e-4 5") SEEDS=5 TASK_GROUPS=("sst2,stsb" "mrpc,cola" "rte")
    fi
    RECIPE_TASKS=sst2,stsb,mrpc,cola
    # one worker keeps the seed-major order through --shard 0/1 (the whole list, dealt to one shard)
    POOL="--workers $WORKERS"; [ "$WORKERS" = 1 ] && POOL="--workers 1 --shard 0/1"
    glue() {  # glue ARGS...: one glue.py, stopped at the time limit; returns 124 when cut
      local left=$((END - $(date +%s)))
      [ "$left" -gt 60 ] || { echo "$(date -u +%FT%TZ) time limit reached: not starting $*"; return 124; }
      echo "$(date -u +%FT%TZ) start ($left s left): $*"
      # shellcheck disable=SC2086
      timeout --kill-after 30 "$left" "$PY" experiments/glue.py --plm "$PLM" --precision bf16 --data-dir "$GLUE" \
        --no-progress $POOL "$@"
      local rc=$?
      echo "$(date -u +%FT%TZ) exit $rc: $*"
      return $rc
    }
    echo "$(date -u +%FT%TZ) sweep: $WORKERS worker(s) x $THREADS thread(s), until $(date -u -d "@$END" +%FT%TZ); $(git rev-parse --short HEAD)"
    for c in "${CANDIDATES[@]}"; do
      read -r lr epochs <<<"$c"
      glue --tasks "$RECIPE_TASKS" --methods vanilla --seeds 1 $SIZE --heldout "$HELDOUT" --lr "$lr" --epochs "$epochs" \
        --output "$HERE/recipe"
      rc=$?; [ $rc = 124 ] || [ $rc = 137 ] && exit 0
    done
    recorded=$(count "$HERE/recipe/runs.jsonl") wanted=$(( ${#CANDIDATES[@]} * 4 ))
    if [ "$recorded" -lt "$wanted" ]; then
      echo "$(date -u +%FT%TZ) the recipe has $recorded of $wanted runs (a run failed: see above); no grid without it"
      exit 1
    fi
    pick=$("$PY" results/gpu_mpnet/pick_recipe.py "$HERE/recipe/runs.jsonl" --tasks "$RECIPE_TASKS" --plm "$PLM" --shell)
    read -r LR EPOCHS <<<"$pick"
    echo "$(date -u +%FT%TZ) recipe (pick_recipe.py's rule): lr $LR, $EPOCHS epochs"
    for tasks in "${TASK_GROUPS[@]}"; do
      glue --tasks "$tasks" --methods vanilla,vanilla-matched,random-alpha,agwm --seeds "$SEEDS" $SIZE $SEARCH \
        --lr "$LR" --search-lr "$LR" --epochs "$EPOCHS" --output "$HERE"
      rc=$?; [ $rc = 124 ] || [ $rc = 137 ] && exit 0
    done
    echo "$(date -u +%FT%TZ) sweep complete"
    ;;
  *)
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
    [ -z "${1:-}" ] || { echo "sweep.sh: unknown command '$1'" >&2; exit 2; }
    ;;
esac
