#!/usr/bin/env bash
# Cost of the method on this project's 2-core CPU (#13), measured side by side in one process:
# 1. one step of each variant on 16 x 128 tokens, interleaved over rounds, with the amortised
#    search cost per inner step for one outer step every T inner steps, T in {1, 2, 5, 10};
# 2. whole runs end to end at the paper's K = 5 on CoLA (n = 100 here: a CPU budget): vanilla,
#    agwm with T = 1 and T = 5, each in one process and split-parallel on P = 2 processes.
#   bash results/bench/run.sh [step|e2e]      # -> results/bench/{step,e2e}.{txt,json}
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=results/bench
part=${1:-all}
if [[ $part == all || $part == step ]]; then
  $PY benchmarks/bench_step.py --no-memory --hypergradients "" --repeats 3 --json $OUT/step.json | tee $OUT/step.txt
fi
if [[ $part == all || $part == e2e ]]; then
  $PY benchmarks/bench_step.py --no-memory --hypergradients "" --unrolls "" --repeats 1 --no-flops --e2e --task cola \
    --n 100 --K 5 --e2e-unroll 5 --e2e-procs 2 --data-dir ../shared/glue_data --json $OUT/e2e.json | tee $OUT/e2e.txt
fi
