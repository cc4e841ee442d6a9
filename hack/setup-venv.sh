#!/usr/bin/env bash
# Create .venv with the locked dependencies. Uses uv (installed with pip if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v uv >/dev/null 2>&1; then
  echo "==> installing uv"
  python3 -m pip install --quiet uv
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  uv venv -q .venv --python 3.11
fi
echo "==> installing locked dependencies (requirements.lock)"
uv pip install -q --python .venv/bin/python -r requirements.lock
uv pip install -q --python .venv/bin/python --no-deps -e .
echo "==> .venv ready"
