# #34's plan, run by `bash scripts/sweep.sh start results/cpu_mpnet [HOURS]` (README.md here):
# MPNet-base on its bf16-rounded weights, every run in bf16 on the CPU.
#   1. the recipe, on held-out training data only: vanilla on seed 0's n = 300 subset, scored on 500
#      other training examples, for the candidates (lr, epochs) of scripts/pick_recipe.py;
#      its committed rule then picks (lr, epochs);
#   2. the grid: vanilla, vanilla-matched, random-alpha, agwm (darts-paper) at n = 300 on dev,
#      seeds 0-4 seed-major, K = 2, 3 search epochs, the recipe's lr (both phases) and epochs;
#      sst2,stsb first, then mrpc,cola, then rte.
# TINY=1: the same plumbing in minutes (n = 16, 2 steps, one seed).
plan() {
  local plm=mpnet-base-bf16 recipe_tasks=sst2,stsb,mrpc,cola size heldout search seeds candidates groups c lr epochs
  if [ "${TINY:-0}" = 1 ]; then
    size="--n 16 --batch-size 4 --max-steps 2" heldout=16 search="--K 1 --search-epochs 1 --diagnostic-points 1"
    candidates=("1e-4 1" "2e-5 1") seeds=1 groups=("sst2" "stsb")
  else
    size="--n 300" heldout=500 search="--K 2 --search-epochs 3"
    candidates=("2e-5 3" "2e-5 5" "5e-5 5" "1e-4 5") seeds=5 groups=("sst2,stsb" "mrpc,cola" "rte")
  fi
  for c in "${candidates[@]}"; do
    read -r lr epochs <<<"$c"
    # shellcheck disable=SC2086
    glue --plm "$plm" --precision bf16 --tasks "$recipe_tasks" --methods vanilla --seeds 1 $size --heldout "$heldout" \
      --lr "$lr" --epochs "$epochs" --output "$OUT_DIR/recipe"
  done
  local recorded wanted=$(( ${#candidates[@]} * 4 ))
  recorded=$(awk 'NF' "$OUT_DIR/recipe/runs.jsonl" 2>/dev/null | wc -l)
  if [ "$recorded" -lt "$wanted" ]; then
    echo "$(stamp) the recipe has $recorded of $wanted runs (a run failed: see above); no grid without it"
    return 1
  fi
  read -r lr epochs < <("$PY" scripts/pick_recipe.py "$OUT_DIR/recipe/runs.jsonl" --tasks "$recipe_tasks" \
    --plm "$plm" --shell)
  echo "$(stamp) recipe (pick_recipe.py's rule): lr $lr, $epochs epochs"
  for tasks in "${groups[@]}"; do
    # shellcheck disable=SC2086
    glue --plm "$plm" --precision bf16 --tasks "$tasks" --methods vanilla,vanilla-matched,random-alpha,agwm \
      --seeds "$seeds" $size $search --lr "$lr" --search-lr "$lr" --epochs "$epochs" --output "$OUT_DIR"
  done
}
