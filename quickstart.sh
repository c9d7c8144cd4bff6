#!/usr/bin/env bash
# Install into .venv (first run only) and run the whole pipeline on the built-in data:
# train -> calibrate + evaluate every width -> profile on this CPU -> select -> export ONNX/OpenVINO -> report.
# Runs in the folder it is called from: --out (default ./quickstart) and --config are read from there.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/scripts/setup-env.sh"
. "$here/.venv/bin/activate"
exec us3l quickstart "$@"
