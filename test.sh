#!/usr/bin/env bash
# Run the default test suite (fast tests; `./test.sh -m slow` runs the slow ones, `./test.sh -m ''` all), in
# parallel workers (pytest-xdist, see pyproject.toml; `-n0` for one process).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup-env.sh
. .venv/bin/activate
exec python -m pytest "$@"
