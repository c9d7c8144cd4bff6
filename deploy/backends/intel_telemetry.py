"""Intel's usage telemetry, off while us3l runs OpenVINO's converter and NNCF.

``openvino.convert_model`` and NNCF report usage events (tool, version, conversion parameters and result) to Google
Analytics through the ``openvino_telemetry`` package, which ``openvino`` installs. They ask no one: with no consent
file (``~/intel/openvino_telemetry``, written by Intel's ``opt_in_out`` tool) they generate a client id in
``~/intel`` and send. On a machine without internet access the attempts are not free either: every conversion
submits about 20 sends to a thread pool, and one ``convert_model`` + ``save_model`` of cifar_resnet18 at width 0.5
took 0.75 s with them against 0.19 s without (same process, AVX2 EPYC, 2 cores), the difference between a sweep
that prepares every OpenVINO width within its budget and one that does not.

Both libraries decline when they run in a CI job (``CI=true`` in the environment, their documented check), and
both decide when their telemetry object is set up, which happens on ``import openvino`` (it imports the
converter, which sets it up and writes ``~/intel/openvino_ga_cid`` and ``~/intel/stats``), on ``import nncf`` and
inside each ``convert_model``. :func:`telemetry_off` sets ``CI=true`` around those calls and puts the environment
back after, unless the user opted in with Intel's tool (the consent file says 1): that choice is theirs and is
kept. us3l imports OpenVINO through :func:`import_openvino`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: The variable ``openvino_telemetry`` reads to decline in CI jobs (``OptInChecker._run_in_ci``).
CI_VARIABLE = "CI"


def user_opted_in() -> bool:
    """Whether this machine's user opted in to Intel's telemetry (the consent file written by ``opt_in_out
    --opt_in``); False without ``openvino_telemetry`` (nothing is sent then) or when it cannot tell."""
    try:
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError:
        return False
    try:
        return OptInChecker().check(enable_opt_in_dialog=False, disable_in_ci=False) == ConsentCheckResult.ACCEPTED
    except Exception:  # noqa: BLE001 - a telemetry library's failure must not fail an export
        return False


@contextmanager
def telemetry_off() -> Iterator[None]:
    """Run the block with ``openvino_telemetry`` declining (see the module docstring); the environment is as it
    was afterwards."""
    if user_opted_in():
        yield
        return
    previous = os.environ.get(CI_VARIABLE)
    os.environ[CI_VARIABLE] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(CI_VARIABLE, None)
        else:
            os.environ[CI_VARIABLE] = previous


def import_openvino() -> Any:
    """``openvino``, imported (the first time) with the telemetry off."""
    module = sys.modules.get("openvino")
    if module is None:
        with telemetry_off():
            import openvino as module
    return module
