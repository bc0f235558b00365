# #36's plan, run by `bash scripts/sweep.sh start results/setfit [HOURS]` (README.md here): SetFit
# on MiniLM, beside LoRA (the parameter-efficient row) and vanilla (the same machine's cost and
# score baseline), at the MiniLM dev grid's recipe (lr 1e-4, 5 epochs, n = 300, seeds 0-4): the
# grid's vanilla-matched and agwm records (../gpu_dev/, one H200) are reused, not rerun. Every arm
# of a seed draws the same n-example subset (the seed picks it, whatever the method or machine).
# SetFit at its documented settings (20 iterations, 1 epoch, body lr 2e-5, batch 16): not tuned.
# TINY=1: the same plumbing in minutes (n = 16, 1 iteration, one seed, held-out evaluation).
plan() {
  local size300="--n 300" size1000="--n 1000" seeds=5
  if [ "${TINY:-0}" = 1 ]; then
    size300="--n 16 --max-steps 2 --setfit-iterations 1 --heldout 16" size1000=$size300 seeds=1
  fi
  # shellcheck disable=SC2086
  glue --plm minilm --lr 1e-4 --epochs 5 --seeds "$seeds" $size300 --tasks sst2,cola --methods vanilla,setfit,lora \
    --output "$OUT_DIR"
  # shellcheck disable=SC2086
  glue --plm minilm --lr 1e-4 --epochs 5 --seeds "$seeds" $size1000 --tasks sst2 --methods vanilla,setfit,lora \
    --output "$OUT_DIR"
}
