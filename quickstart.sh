#!/usr/bin/env bash
# Install into .venv (first run only) and run the whole pipeline on the built-in data:
# train -> calibrate + evaluate every width -> profile on this CPU -> select -> export ONNX/OpenVINO -> report.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup-env.sh
. .venv/bin/activate
exec us3l quickstart "$@"
