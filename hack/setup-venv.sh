#!/usr/bin/env bash
# Create .venv with the locked dependencies. Uses uv; when uv is missing it is installed into a
# small bootstrap venv (.venv-uv), which works without root, without pip in the system Python and
# on distributions that refuse pip installs into the system ("externally managed").
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v uv >/dev/null 2>&1; then
  if [ ! -x .venv-uv/bin/uv ]; then
    echo "==> installing uv into .venv-uv"
    if ! python3 -m venv .venv-uv 2>/dev/null; then
      echo "hack/setup-venv.sh: python3 cannot create a venv; install python3-venv (Debian/Ubuntu)" \
        "or uv itself (https://docs.astral.sh/uv/), then run make setup again" >&2
      exit 1
    fi
    .venv-uv/bin/python -m pip install --quiet uv
  fi
  export PATH="$PWD/.venv-uv/bin:$PATH"
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  uv venv -q .venv --python 3.11
fi
echo "==> installing locked dependencies (requirements.lock)"
uv pip install -q --python .venv/bin/python -r requirements.lock
uv pip install -q --python .venv/bin/python --no-deps -e .
# the dev tooling (outrider_devcluster) is not part of the product's wheel: the dev venv finds it
# through a .pth file instead
purelib=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$PWD/hack" >"$purelib/outrider-devtools.pth"
echo "==> .venv ready"
