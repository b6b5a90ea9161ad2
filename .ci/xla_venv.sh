#!/usr/bin/env bash
# Build the torch-xla venv the TPU platform is tested in (XLA:CPU), print its python's path.
# torch-xla 2.9.0 is ABI-locked to torch 2.9.0 (a CUDA build from PyPI, ~3.9 GB of wheels).
# Usage: PLINTH_XLA_PYTHON=$(.ci/xla_venv.sh [DIR]) python -m pytest tests/platforms/tpu
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-$(mktemp -d)/xla-venv}
python_bin=${PYTHON:-python3.11}
command -v "$python_bin" >/dev/null || python_bin=python3
{
  "$python_bin" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q torch==2.9.0 torch-xla==2.9.0
  "$venv/bin/python" -m pip install -q -e "./core[test]" -e ./entrypoints -e ./platforms/tpu
} >&2
echo "$venv/bin/python"
