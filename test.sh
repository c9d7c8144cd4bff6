#!/usr/bin/env bash
# Run the default test suite (fast tests; `./test.sh -m slow` runs the slow ones, `./test.sh -m ''` all), in
# parallel workers (pytest-xdist, see pyproject.toml; `-n0` for one process).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup-env.sh
. .venv/bin/activate
# Python may cache compiled bytecode here (in the git-ignored __pycache__ folders) even where the environment asks
# it not to: each test worker and each CLI process a test starts would otherwise compile us3l and the test modules
# again (pytest rewrites every test module's asserts on import).
unset PYTHONDONTWRITEBYTECODE
exec python -m pytest "$@"
