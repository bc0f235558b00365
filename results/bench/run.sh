#!/usr/bin/env bash
# Cost of the method on this project's 2-core CPU (#13), measured side by side in one process:
# 1. one step of each variant on 16 x 128 tokens, interleaved over rounds, with the amortised
#    search cost per inner step for one outer step every T inner steps, T in {1, 2, 5, 10}, and
#    (#25) the search step with the dense mixup beside the fused one;
# 2. whole runs end to end at the paper's K = 5 on CoLA (n = 100 here: a CPU budget): vanilla,
#    agwm with T = 1 and T = 5, each in one process and split-parallel on P = 2 processes.
# 3. (#25) the fused mixup's search step against the dense one's, 10 rounds side by side.
# 4. (#26) the search step logging its curves to TensorBoard at every step (--log-every 1, the upper
#    bound of logging's cost) beside the search step that logs nothing.
# 5. (#34) bf16 against fp32 on this CPU, MiniLM and MPNet-base's shape, one thread, 16 x 32 tokens; the
#    profiles of MPNet-base's three bf16 steps; 2 workers x 1 thread against 1 worker x 2 threads.
#    Run it on an idle machine (`bash scripts/sweep.sh pause DIR` any running sweep, `resume` after).
# 6. (#45) the same bf16 steps with the compiled mixup (--mixup-impl compiled) interleaved beside the
#    fused (eager) one, at 16 x 32 (MiniLM fp32 and bf16, MPNet-base bf16) and 16 x 128 (MPNet-base bf16).
#   bash results/bench/run.sh [step|mixup|e2e|logging|bf16|workers|compiled]
#     -> results/bench/{step,mixup_ab,e2e,logging,cpu_bf16}.{txt,json}, cpu_bf16_*_profile.txt, cpu_workers.json
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=results/bench
part=${1:-all}
if [[ $part == all || $part == step ]]; then
  # #25: the 2026-11 command, with the dense mixup's search step interleaved beside the fused one
  $PY benchmarks/bench_step.py --no-memory --hypergradients "" --compare-mixup --repeats 3 --json $OUT/step.json \
    | tee $OUT/step.txt
fi
if [[ $part == all || $part == mixup ]]; then
  # #25: fused against dense mixup, the search step on a shorter batch (16 x 32: the mixing is a
  # larger share of it) over 10 interleaved rounds on one thread, per round side by side
  $PY benchmarks/bench_step.py --threads 1 --no-memory --no-flops --unrolls "" --hypergradients "" --compare-mixup \
    --repeats 10 --seq-len 32 --json $OUT/mixup_ab.json 2>&1 | tee $OUT/mixup_ab.txt
fi
if [[ $part == all || $part == e2e ]]; then
  $PY benchmarks/bench_step.py --no-memory --hypergradients "" --unrolls "" --repeats 1 --no-flops --e2e --task cola \
    --n 100 --K 5 --e2e-unroll 5 --e2e-procs 2 --data-dir ../shared/glue_data --json $OUT/e2e.json | tee $OUT/e2e.txt
fi
if [[ $part == all || $part == logging ]]; then
  $PY benchmarks/bench_step.py --no-memory --no-flops --unrolls "" --hypergradients "" --report-to tensorboard \
    --repeats 3 --json $OUT/logging.json 2>&1 | tee $OUT/logging.txt
fi
if [[ $part == all || $part == bf16 ]]; then
  $PY benchmarks/bench_step.py --models minilm,mpnet-base --precision fp32,bf16 --threads 1 --repeats 5 \
    --batch-size 16 --seq-len 32 --no-memory --unrolls "" --hypergradients "" --json $OUT/cpu_bf16.json 2>&1 \
    | grep -v -e Warning -e warnings.warn | tee $OUT/cpu_bf16.txt
  $PY benchmarks/bench_step.py --models mpnet-base --precision bf16 --threads 1 --repeats 3 --batch-size 16 \
    --seq-len 128 --no-memory --unrolls "" --hypergradients "" --json $OUT/cpu_bf16_seq128.json 2>&1 \
    | grep -v -e Warning -e warnings.warn | tee $OUT/cpu_bf16_seq128.txt
  for variant in search finetune vanilla; do
    rows=15; [ $variant = search ] && rows=25
    $PY benchmarks/profile_step.py --model mpnet-base --variant $variant --precision bf16 --steps 2 --rows $rows 2>&1 \
      | grep -v -e Warning -e warnings.warn -e USDT >$OUT/cpu_bf16_${variant}_profile.txt
  done
fi
if [[ $part == all || $part == compiled ]]; then
  $PY benchmarks/bench_step.py --models minilm,mpnet-base --precision fp32,bf16 --threads 1 --repeats 5 \
    --batch-size 16 --seq-len 32 --no-memory --unrolls "" --hypergradients "" --compare-mixup --compare-impls compiled \
    --json $OUT/cpu_bf16.json 2>&1 | grep -v -e Warning -e warnings.warn | tee $OUT/cpu_bf16.txt
  $PY benchmarks/bench_step.py --models mpnet-base --precision bf16 --threads 1 --repeats 3 --batch-size 16 \
    --seq-len 128 --no-memory --unrolls "" --hypergradients "" --compare-mixup --compare-impls compiled \
    --json $OUT/cpu_bf16_seq128.json 2>&1 | grep -v -e Warning -e warnings.warn | tee $OUT/cpu_bf16_seq128.txt
fi
if [[ $part == all || $part == workers ]]; then
  PYTHON=$PY JSON=$OUT/cpu_workers.json bash benchmarks/bench_workers.sh
fi
