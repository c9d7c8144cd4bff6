"""``trtexec`` timing runs: command construction and parsing of its ``--exportTimes`` JSON.

``trtexec --exportTimes=FILE`` writes one JSON array with one record per inference. The trtexec of the releases us3l
builds for (8.5, 8.6, 10.x; NVIDIA/TensorRT ``samples/common/sampleReporting.cpp``, ``exportJSONTrace``, which
skips the warm-up records) writes the keys ``startEnqMs``, ``endEnqMs``, ``startH2dMs``, ``endH2dMs``,
``startComputeMs``, ``endComputeMs``, ``startD2hMs``, ``endD2hMs``, ``h2dMs``, ``computeMs``, ``d2hMs`` and
``latencyMs`` (= h2d + compute + d2h), and no ``endToEndMs``: that key (= ``endD2hMs - startH2dMs``) is only in
older trtexecs' records (2021's sampleReporting.cpp, which also wrote the warm-up records), so it is computed from
those two timestamps where a record lacks it. TensorRT 7 used ``startInMs``/``inMs`` and ``startOutMs``/``outMs``
instead of the H2D/D2H names. Keys are matched case-insensitively, and records without the requested metric are
skipped (a ``{"count": N}`` head is what ``--exportProfile`` writes, not ``--exportTimes``; it is skipped too).

Engines are built with ``us3l.deploy.backends.tensorrt.trtexec_build_command`` (one place for build flags).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from us3l.errors import US3LError

#: Metrics a caller may choose as "the latency" of one inference.
METRICS = ("latencyMs", "computeMs", "endToEndMs")
_FALLBACK_DURATIONS = {
    "computems": ("startcomputems", "endcomputems"),
    "h2dms": ("starth2dms", "endh2dms"),
    "d2hms": ("startd2hms", "endd2hms"),
    # trtexec 8.5+ writes no endToEndMs; older ones defined it as the D2H end minus the H2D start
    "endtoendms": ("starth2dms", "endd2hms"),
}


def timing_command(
    engine_path: str | Path,
    times_path: str | Path,
    iterations: int,
    warmup_ms: int = 200,
    trtexec: str = "trtexec",
    spin_wait: bool = True,
) -> list[str]:
    """Argument list of a ``trtexec`` run that times ``iterations`` inferences of a built engine.

    ``--duration=0`` stops after ``iterations`` (trtexec otherwise runs for at least 3 s); it may time one or two
    more (``--iterations`` is "at least N"), which ``TrtexecSession`` drops;
    ``--warmUp`` (milliseconds) warms the GPU up inside this process before the timed inferences;
    ``--useSpinWait`` synchronises by spinning, which gives steadier timings than blocking sync.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if warmup_ms < 0:
        raise ValueError(f"warmup_ms must be >= 0, got {warmup_ms}")
    cmd = [
        trtexec,
        f"--loadEngine={engine_path}",
        f"--iterations={int(iterations)}",
        f"--warmUp={int(warmup_ms)}",
        "--duration=0",
        f"--exportTimes={times_path}",
    ]
    if spin_wait:
        cmd.append("--useSpinWait")
    return cmd


def _lower_keys(record: dict[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in record.items()}


def parse_times(text: str, metric: str = "latencyMs") -> list[float]:
    """Per-inference ``metric`` values in milliseconds from the text of an ``--exportTimes`` file."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise US3LError(f"trtexec --exportTimes output is not valid JSON: {exc}") from None
    except RecursionError:  # arrays nested deeper than the parser goes: "error: RecursionError" before
        raise US3LError("trtexec --exportTimes output is not valid JSON: nested too deep") from None
    if not isinstance(doc, list):
        raise US3LError("trtexec --exportTimes output is not a JSON array of inference records")
    key = metric.lower()
    out: list[float] = []
    for rec in doc:
        if not isinstance(rec, dict):
            continue
        low = _lower_keys(rec)
        if key in low:
            out.append(_ms(low[key], metric))
        elif key == "latencyms" and all(k in low for k in ("computems",)):
            # very old traces: latency = in + compute + out
            parts = (low.get("inms", 0.0), low["computems"], low.get("outms", 0.0))
            out.append(_ms(sum(_ms(v, metric) for v in parts), metric))
        elif key in _FALLBACK_DURATIONS and all(k in low for k in _FALLBACK_DURATIONS[key]):
            start, end = _FALLBACK_DURATIONS[key]
            out.append(_ms(_number(low[end], metric) - _number(low[start], metric), metric))
    if not out:
        raise US3LError(f"trtexec --exportTimes output has no '{metric}' values")
    return out


def _number(value: Any, metric: str) -> float:
    """A finite number of an ``--exportTimes`` record, else one line (not a TypeError from ``float(None)``, nor a
    NaN that would pass into the latency statistics)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise US3LError(f"trtexec --exportTimes output has a {metric} record that is not a finite number: "
                        f"{value!r:.40}")
    return float(value)


def _ms(value: Any, metric: str) -> float:
    """A duration in milliseconds: a finite number >= 0."""
    ms = _number(value, metric)
    if ms < 0:
        raise US3LError(f"trtexec --exportTimes output has a negative {metric} duration: {ms:g} ms")
    return ms


_VERSION_RE = re.compile(r"TensorRT(?:\.trtexec)?\s*\[?\s*v?(\d{4,6})\]?", re.IGNORECASE)


def parse_version(output: str) -> str | None:
    """TensorRT version from trtexec's banner (``[TensorRT v100300]`` -> ``"10.3.0"``), if present."""
    m = _VERSION_RE.search(output)
    if not m:
        return None
    code = m.group(1)
    # The banner prints NV_TENSORRT_VERSION: 8.x major*1000 + minor*100 + patch (v8601 -> 8.6.1, 4 digits), 10.x
    # major*10000 + minor*100 + patch (v100300 -> 10.3.0). A 5-digit code cannot be the 8.x form (its major would
    # be 10 or more), so it is the 10.x form of a major below 10 (v90200 -> 9.2.0, refused as such), not "90.2.0".
    num = int(code)
    if len(code) >= 5:
        return f"{num // 10000}.{num // 100 % 100}.{num % 100}"
    return f"{num // 1000}.{num // 100 % 10}.{num % 100}"


def summarize_command(argv: Sequence[str]) -> str:
    """A short, readable form of a trtexec command for error messages."""
    return " ".join(argv[:3]) + (" ..." if len(argv) > 3 else "")
