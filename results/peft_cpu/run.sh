#!/usr/bin/env bash
# LoRA, prefix and prompt tuning at their own learning rates (--lora-lr 3e-4, --prefix-lr 1e-2,
# --prompt-lr 1e-3: the PEFT library's examples, as the paper's appendix F), on this CPU, after
# the GPU run of scripts/reproduce_gpu.sh had trained them at the full-finetuning lr (1e-4), where
# they stay at their start (results/gpu/peft_at_lr1e-4.jsonl). Same recipe and seeds otherwise.
# Two lanes, one thread each; resumable.
#   bash results/peft_cpu/run.sh        # logs in results/logs/peft_lane*.log
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
COMMON=(--plm minilm --data-dir ../shared/glue_data --output results/peft_cpu --no-progress
        --lr 1e-4 --epochs 5 --n 300 --seeds 5 --methods lora,prefix,prompt)
lane() { for task in "$@"; do OMP_NUM_THREADS=1 $PY experiments/glue.py "${COMMON[@]}" --tasks "$task"; done; }
mkdir -p results/logs
lane cola rte >> results/logs/peft_lane1.log 2>&1 &
lane stsb mrpc >> results/logs/peft_lane2.log 2>&1 &
wait
