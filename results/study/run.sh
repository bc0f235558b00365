#!/usr/bin/env bash
# Held-out study of the outer level (#12), stage 1: a search-only screen. Does any faithful variant
# of the outer level move alpha in a task-specific way? Each arm changes one thing from the paper's
# setting (darts-paper, alpha lr 2e-3, product form, clamp, init N(1, 0.005), rank 1), except
# the arms that build on the convex form (an init below 1 only keeps the pretrained function in the
# convex form: the product form at alpha = 0.5 starts from 0.25 (W + W0) = W0 / 2) and the last,
# which combines. Never the dev set: --heldout 500 scores 500 training examples outside each
# subset, and the seeds (100, 101) are not the final ones.
# Protocol: MiniLM, STS-B and SST-2, n = 300, one 80/20 split (K = 1), 3 search epochs (the
# paper's), --epochs 0 (no finetune phase: the model is scored as the search left it, so the screen
# costs the search alone), W lr 1e-4 (the CPU recipe, results/recipe/). Every record carries the
# per-layer alpha change and the signal probe; scripts/results/study_table.py compares the alpha
# change patterns between seeds of one task and between tasks of one seed.
# Resumable: finished runs are lines of $OUT/runs.jsonl and re-running skips them. Two lanes, one
# thread each, arm by arm, so a partial study has whole arms: first the screen's arms on seeds 100
# and 101, then the controls and the unroll arms on seeds 100-104, then the longer search's STS-B
# arms on seeds 100-104 (LONGER), then the rest of the screen.
# Lane 1 runs (STS-B, 100), (SST-2, 101), and of the new seeds STS-B 102 and 104 and SST-2 103;
# lane 2 the others, so the lanes take about as long.
#   bash results/study/run.sh                 # logs in results/logs/study-*.log
#   STAGES="longer later" bash results/study/run.sh  # only these stages (skips recorded ones fast)
#   .venv/bin/python scripts/results/study_table.py   # -> results/study/table.md
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-results/study}
LOGS=${LOGS:-results/logs}
DATA=${DATA:-../shared/glue_data}
STAGES=${STAGES:-screen five longer later}  # which arrays to run; each skipped run still costs an import
COMMON=(--plm minilm --data-dir "$DATA" --output "$OUT" --no-progress --n 300 --heldout 500
        --lr 1e-4 --search-lr 1e-4 --K 1 --search-epochs 3 --epochs 0)
SCREEN=(  # method | flags: stage 1, seeds 100 and 101
  "vanilla-matched|"
  "agwm|"
  "agwm|--hypergradient darts"
  "agwm|--alpha-lr 1e-1"
  "agwm|--alpha-init-mean 0.5"
  "agwm|--alpha-form convex"
  "agwm|--alpha-form convex --alpha-init-mean 0.5"
)
# The controls that separate a learned alpha from a mixed model (random-alpha: frozen alphas
# N(1, sigma); sigma 0.02 gives about the paper arm's mean alpha change, 0.013) and the unroll arms
# of #13 (T inner steps per outer step; T = infinity is random-alpha at sigma 0.005), over 5 seeds.
FIVE_SEEDS=(
  "random-alpha|"
  "random-alpha|--sigma 0.02"
  "vanilla-matched|"
  "agwm|--unroll-steps 5"
  "agwm|--unroll-steps 10"
  "agwm|"
  "agwm|--unroll-steps 2"
)
LATER=(  # the rest of stage 1, seeds 100 and 101
  "agwm|--hypergradient first-order"
  "agwm|--preset official --K 1"
  "agwm|--outer-batch-size 1000"
  "agwm|--rank 8"
  "agwm|--hypergradient sama"
  "agwm|--hypergradient neumann"
  "agwm|--alpha-lr 2e-2"
  "agwm|--rank 2"
  "agwm|--alpha-form convex --alpha-init-mean 0.5 --alpha-param sigmoid"
  "vanilla-matched|--search-epochs 6"  # a longer search, against W trained as long
  "agwm|--search-epochs 6"
  "random-alpha|--search-epochs 6"  # is the longer search's STS-B gap the learning?
  "agwm|--hypergradient darts-official"  # the official code's hypergradient alone, not its preset
  "agwm|--alpha-form convex --alpha-init-mean 0.5 --alpha-lr 1e-1 --outer-batch-size 1000"
)
# The longer search's STS-B gap over vanilla-matched, on all five seeds of STS-B (seeds 100 and 101
# of the three arms are in LATER): is it the learned alpha? random-alpha at sigma 0 is the mixup
# wrapper at alpha = 1 exactly (the same function as no mixup); sigma 0.04 freezes alpha at about
# the learned arm's mean at 6 epochs (0.97) with no pattern.
LONGER=(
  "random-alpha|--search-epochs 6 --sigma 0"
  "vanilla-matched|--search-epochs 6"
  "random-alpha|--search-epochs 6"
  "agwm|--search-epochs 6"
  "random-alpha|--search-epochs 6 --sigma 0.04"
)
arms() {  # arms <array name> <task>:<seed>...: every arm of the array on every job, arm by arm
  local -n list=$1; shift
  for arm in "${list[@]}"; do
    method=${arm%%|*}; read -r -a flags <<< "${arm#*|}"
    for job in "$@"; do
      OMP_NUM_THREADS=1 $PY experiments/glue.py "${COMMON[@]}" --methods "$method" \
        --tasks "${job%%:*}" --seeds "${job#*:}," "${flags[@]}"
    done
  done
}
lane() {  # lane <stage-1 jobs> <new-seed jobs>, each a comma list of <task>:<seed>
  IFS=, read -r -a first <<< "$1"; IFS=, read -r -a more <<< "$2"
  [[ " $STAGES " == *" screen "* ]] && arms SCREEN "${first[@]}"
  [[ " $STAGES " == *" five "* ]] && arms FIVE_SEEDS "${first[@]}" "${more[@]}"
  [[ " $STAGES " == *" longer "* ]] && arms LONGER $(printf '%s\n' "${first[@]}" "${more[@]}" | grep '^stsb:')
  [[ " $STAGES " == *" later "* ]] && arms LATER "${first[@]}"
}
mkdir -p "$LOGS"
lane stsb:100,sst2:101 stsb:102,sst2:103,stsb:104 >> "$LOGS/study-1.log" 2>&1 &
lane stsb:101,sst2:100 sst2:102,stsb:103,sst2:104 >> "$LOGS/study-2.log" 2>&1 &
wait
