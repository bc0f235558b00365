#!/usr/bin/env bash
# Diagnostic probe (not part of the tables): does LoRA on MiniLM / STS-B learn with the PEFT
# example's epoch budget (20) instead of the recipe's 5? Evaluated on 500 held-out training
# examples (--heldout), like the recipe choice, never on dev.
cd "$(dirname "$0")/../.."
OMP_NUM_THREADS=1 .venv/bin/python experiments/glue.py --plm minilm --data-dir ../shared/glue_data \
  --output results/peft_probe --no-progress --lr 1e-4 --n 300 --seeds 0, --heldout 500 \
  --tasks stsb --methods lora --epochs 20
