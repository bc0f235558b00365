#!/usr/bin/env bash
# Long CPU sweeps in the background, carried across sessions (a session ends after 180 minutes).
# A sweep is a folder of results/ holding plan.sh, a bash function `plan` that calls
# `glue ARGS...` (experiments/glue.py with --data-dir, --no-progress and the worker pool added)
# once per group of runs. Every glue.py appends its finished runs to the runs.jsonl of its
# --output and skips what is recorded there, so starting a sweep again resumes it; a run cut by
# the time limit is simply run again next time.
#
#   bash scripts/sweep.sh start DIR [HOURS]   # detach; stop by itself within HOURS (default 2.5)
#   bash scripts/sweep.sh status DIR          # running or not, runs recorded per runs.jsonl, the log's tail
#   bash scripts/sweep.sh stop DIR            # end the sweep and every run it started
#   bash scripts/sweep.sh pause|resume DIR    # freeze it (SIGSTOP) for a timing on an idle machine, and go on;
#                                             # its time limit is wall time and keeps running meanwhile
#
# The sweep runs the code of the commit checked out when it started, from a git worktree of its
# own (.sweeps/<DIR's name>, git-ignored): editing or checking out this tree meanwhile changes
# nothing in it. SWEEP_COMMIT=<commit> runs that commit's code and plan instead (to finish a grid, or
# a part of it, on the code its first records ran); the results still go to DIR here. Its log is DIR/sweep.log. WORKERS (default 1) processes of THREADS torch threads
# each (default 1); one worker keeps glue.py's seed-major order through --shard 0/1 (the whole
# list dealt to one shard), so a cut sweep leaves whole paired seeds. A worker process runs its whole
# share; RUNS_PER_WORKER=N retires it after N runs for a fresh one (`glue.py --runs-per-worker`). Before
# #45 a process that ran many MPNet-base runs grew to 13-17 GiB; since, one stays near 1 GiB over eight
# MPNet-base runs (+224 MiB from run 2 to 8; benchmarks/bench_rss.py, results/bench/rss_mpnet.txt).
# TINY=1 is passed to the plan, for a rehearsal of its plumbing into a scratch OUT_DIR.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
command=${1:-} dir=${2:-}
if [ -z "$command" ] || [ -z "$dir" ]; then usage; [ -z "$command" ] && exit 0 || exit 2; fi
[ -f "$dir/plan.sh" ] || { echo "sweep.sh: $dir/plan.sh: no such plan" >&2; exit 2; }
NAME=$(basename "$(realpath "$dir")")
HERE=$(realpath "${OUT_DIR:-$dir}")
PIDFILE="$HERE/sweep.pid" LOG="$HERE/sweep.log"
running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case "$command" in
  start)
    if running; then echo "sweep already running (pid $(cat "$PIDFILE")); see $LOG"; exit 0; fi
    hours=${3:-2.5}
    [[ "$hours" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "sweep.sh: HOURS must be a number, got '$hours'" >&2; exit 2; }
    mkdir -p "$HERE"
    TREE=${SWEEP_TREE:-$ROOT/.sweeps/$NAME}
    git worktree remove --force "$TREE" 2>/dev/null; rm -rf "$TREE"; git worktree prune
    mkdir -p "$(dirname "$TREE")" && git worktree add --quiet --detach "$TREE" "${SWEEP_COMMIT:-HEAD}" || exit 1
    # its own session (`stop` ends every process in it), the snapshot's code, absolute paths
    OUT_DIR=$HERE PY=${PY:-$ROOT/.venv/bin/python} GLUE_DIR=$(realpath "${GLUE_DIR:-../shared/glue_data}") \
      PLAN="$TREE/$(realpath --relative-to="$ROOT" "$dir")/plan.sh" PYTHONPATH="$TREE" \
      setsid nohup bash "$TREE/scripts/sweep.sh" _run "$dir" "$hours" >>"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    echo "sweep $NAME started (pid $!, stops within ${hours} h); log: $LOG"
    ;;
  status)
    if running; then echo "running (pid $(cat "$PIDFILE"))"; else echo "not running"; fi
    find "$HERE" -name runs.jsonl | sort | while read -r f; do
      echo "$(awk 'NF' "$f" | wc -l) runs in ${f#"$ROOT"/}"
    done
    [ -f "$LOG" ] && tail -n "${TAIL:-8}" "$LOG"
    ;;
  stop)
    # the whole session: timeout puts each glue.py (and its workers) in a process group of its own
    if running; then pkill -TERM -s "$(cat "$PIDFILE")" && echo "stopped pid $(cat "$PIDFILE")"; else echo "not running"; fi
    rm -f "$PIDFILE"
    ;;
  pause|resume)
    if ! running; then echo "not running"; exit 0; fi
    signal=STOP; [ "$command" = resume ] && signal=CONT
    pkill -"$signal" -s "$(cat "$PIDFILE")" && echo "${command}d sweep $NAME (pid $(cat "$PIDFILE"))"
    ;;
  _run)
    END=$(( $(date +%s) + $(awk -v h="$3" 'BEGIN { printf "%d", h * 3600 }') ))
    WORKERS=${WORKERS:-1} THREADS=${THREADS:-1}
    export OMP_NUM_THREADS=$THREADS TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
    POOL="--workers $WORKERS"; [ "$WORKERS" = 1 ] && POOL="--workers 1 --shard 0/1"
    [ -n "${RUNS_PER_WORKER:-}" ] && POOL="$POOL --runs-per-worker $RUNS_PER_WORKER"  # default: long-lived workers
    stamp() { date -u +%FT%TZ; }
    glue() {  # glue ARGS...: one glue.py, stopped at the time limit; a cut ends the sweep (exit 0)
      local left=$((END - $(date +%s))) rc
      [ "$left" -gt 60 ] || { echo "$(stamp) time limit reached: not starting $*"; exit 0; }
      echo "$(stamp) start ($left s left): $*"
      # shellcheck disable=SC2086
      timeout --kill-after 30 "$left" "$PY" experiments/glue.py --data-dir "$GLUE_DIR" --no-progress $POOL "$@"
      rc=$?
      echo "$(stamp) exit $rc: $*"
      if [ $rc = 124 ] || [ $rc = 137 ]; then exit 0; fi
      return $rc
    }
    echo "$(stamp) sweep $NAME: $WORKERS worker(s) x $THREADS thread(s), until $(date -u -d "@$END" +%FT%TZ);" \
      "code at $(git rev-parse --short HEAD)"
    # shellcheck disable=SC1090
    source "$PLAN"
    plan
    echo "$(stamp) sweep complete"
    ;;
  *) usage; echo "sweep.sh: unknown command '$command'" >&2; exit 2 ;;
esac
