# #44's plan (PLAN.md here, fixed before any record of seeds 5-14), run by
# `bash scripts/sweep.sh start results/confirm_mpnet [HOURS]` (README.md here). MPNet-base on its
# bf16-rounded weights, every run in bf16 on the CPU, #34's exact settings (../cpu_mpnet/):
#   1. STS-B, seeds 5-14 seed-major: vanilla, vanilla-matched, random-alpha, agwm (--save-alphas)
#      and mean-alpha (each layer's alphas at the means of agwm's, same seed: it waits for that agwm);
#   2. SetFit on SST-2 and CoLA, seeds 0-4 (#34's subsets), its documented settings, bf16;
#   3. CoLA, then SST-2, seeds 5-14: the four arms.
# TINY=1: the same plumbing in minutes (n = 16, 2 steps; seeds 5-6, SetFit seed 0).
plan() {
  local plm=mpnet-base-bf16 size search fresh=5,6,7,8,9,10,11,12,13,14 old=0,1,2,3,4 arms
  arms=vanilla,vanilla-matched,random-alpha,agwm
  if [ "${TINY:-0}" = 1 ]; then
    size="--n 16 --batch-size 4 --max-steps 2 --setfit-iterations 1" search="--K 1 --search-epochs 1 --diagnostic-points 1"
    fresh=5,6 old=1  # --seeds: a count (1 = seed 0) or a comma list
  else
    size="--n 300" search="--K 2 --search-epochs 3"
  fi
  # shellcheck disable=SC2086
  glue --plm "$plm" --precision bf16 --tasks stsb --methods "$arms,mean-alpha" --save-alphas --seeds "$fresh" \
    $size $search --lr 1e-4 --search-lr 1e-4 --epochs 5 --output "$OUT_DIR"
  # shellcheck disable=SC2086
  glue --plm "$plm" --precision bf16 --tasks sst2,cola --methods setfit --seeds "$old" $size --output "$OUT_DIR"
  for task in cola sst2; do
    # shellcheck disable=SC2086
    glue --plm "$plm" --precision bf16 --tasks "$task" --methods "$arms" --seeds "$fresh" \
      $size $search --lr 1e-4 --search-lr 1e-4 --epochs 5 --output "$OUT_DIR"
  done
}
