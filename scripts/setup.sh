#!/usr/bin/env bash
# Set up what is missing for agwm-betty in ./.venv (or in $VENV), idempotently.
#   - torch: kept if already importable (GPU users install their own first), else torch==2.13.0
#     (a CPU wheel on this kind of machine).
#   - betty-ml 0.2.1: its metadata says Requires-Python <3.11, so on 3.11 pip would silently
#     pick 0.1.1; install it alone with --ignore-requires-python and --no-deps (with deps,
#     pip would also ignore numpy's Python bound and try to build numpy from source).
#   - the package itself, editable, with its test extra (again when its commands agwm-glue /
#     agwm-report are missing, e.g. in a .venv made before they existed).
set -euo pipefail
cd "$(dirname "$0")/.."
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
if ! "$PY" -c "import agwm_betty" 2>/dev/null || [ ! -x "$VENV/bin/agwm-glue" ] || [ "${AGWM_REINSTALL:-0}" = 1 ]; then
  $PIP install -e ".[test]"
fi
