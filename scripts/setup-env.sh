#!/usr/bin/env bash
# Create (or reuse) .venv with us3l and all CPU runtimes. Idempotent; used by quickstart.sh, test.sh and CI.
# torch is pinned to the CPU wheel (2.13.0) in the same pip command so that no dependency pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.us3l-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  python -m pip install -q --upgrade pip
  # US3L_TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu): where this first step takes torch from
  python -m pip install -q "torch==${US3L_TORCH_VERSION:-2.13.0}" ${US3L_TORCH_INDEX_URL:+--index-url "$US3L_TORCH_INDEX_URL"}
  python -m pip install -q "torch==${US3L_TORCH_VERSION:-2.13.0}" -e '.[all,dev]'
  touch "$stamp"
fi
