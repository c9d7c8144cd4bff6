#!/usr/bin/env bash
# Run the default test suite (fast tests; `./test.sh -m slow` runs the slow ones, `./test.sh -m ''` all).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup-env.sh
. .venv/bin/activate
exec python -m pytest "$@"
