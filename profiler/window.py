"""Bounded memory and time for a sweep: process memory readings, the session window, the per-width time share.

A sweep interleaves the widths' runtime sessions to cancel drift, but holds at most ``window`` of them at once
(sessions are rotated in as others finish, ``us3l.profiler.measure.measure_windowed``). The window is chosen from

* the memory one session takes: the widest width's session is loaded first and the process's resident memory
  (RSS) measured before and after one inference (``probe``), never less than ``estimate_session_bytes``;
* the memory limit: ``--max-memory-mb`` / the device file's ``max_memory_mb`` (resident memory of the process
  that holds the sessions: this one locally, the runner on a remote device), and never more than
  ``AVAILABLE_FRACTION`` of the memory the system reports available when the sweep starts;
* ``MAX_WINDOW``: interleaving more sessions than that cancels no more drift, it only spreads each width's
  samples over a longer time.

The time budget (``--max-total-seconds``) is spread over the widths: when a width is opened it gets an even
share of what is left (``width_share``); one that does not reach the CI target within its share stops with
``stop_reason = "budget"`` and is flagged unstable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from us3l.profiler.remote_runner import proc_bytes  # one /proc reader for host and device (the runner is stdlib-only)

#: The most sessions held at once when memory allows more (see the module docstring).
MAX_WINDOW = 8
#: Share of the system's available memory a sweep may take when no limit is set.
AVAILABLE_FRACTION = 0.5
#: Fixed per-session overhead of a runtime (graph, allocator, thread pool), beyond weights and activations.
SESSION_OVERHEAD = {"onnx": 8 << 20, "openvino": 24 << 20, "tensorrt": 0, "torch": 1 << 20}
MIB = 1 << 20


def rss_bytes() -> int | None:
    """Resident memory of this process now (Linux ``VmRSS``; None elsewhere)."""
    return proc_bytes("VmRSS")


def peak_rss_bytes() -> int | None:
    """Peak resident memory of this process (``VmHWM``, since start or the last ``reset_peak_rss``), falling
    back to ``getrusage`` where /proc is missing."""
    peak = proc_bytes("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource
        import sys

        ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(ru if sys.platform == "darwin" else ru * 1024)
    except (ImportError, OSError):  # pragma: no cover - non-POSIX
        return None


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (``/proc/self/clear_refs`` = 5, Linux >= 4.0) so that ``peak_rss_bytes``
    covers the sweep only; False when the kernel does not allow it (the peak then covers the whole process)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def available_bytes() -> int | None:
    """Memory the system can give without swapping (``MemAvailable`` of /proc/meminfo; None elsewhere)."""
    return proc_bytes("MemAvailable", "/proc/meminfo")


def estimate_session_bytes(backend: str, weight_bytes: int, activation_bytes: int) -> int:
    """A lower bound of one loaded session's memory: the runtime's copy of the weights (some runtimes keep a
    repacked copy as well: counted twice), its activation arena (twice the peak live activations) and a fixed
    per-session overhead."""
    return int(2 * weight_bytes + 2 * activation_bytes + SESSION_OVERHEAD.get(backend, 8 << 20))


@dataclass(frozen=True)
class WindowPlan:
    """How many sessions a sweep holds at once, and why (recorded in the profile as ``window``)."""

    size: int
    session_bytes: int
    baseline_bytes: int | None
    limit_bytes: int | None
    available_bytes: int | None
    max_memory_bytes: int | None
    reason: str  # "memory" | "max_window" | "widths"

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size, "session_bytes": self.session_bytes, "baseline_bytes": self.baseline_bytes,
            "limit_bytes": self.limit_bytes, "available_bytes": self.available_bytes,
            "max_memory_bytes": self.max_memory_bytes, "reason": self.reason,
        }


def choose_window(
    n_widths: int,
    session_bytes: int,
    baseline_bytes: int | None,
    available: int | None,
    max_memory_bytes: int | None,
    max_window: int = MAX_WINDOW,
) -> WindowPlan:
    """The window: as many sessions as fit between ``baseline_bytes`` (the process without sessions) and the
    limit -- ``max_memory_bytes`` and ``baseline + AVAILABLE_FRACTION * available``, whichever is lower --
    at ``session_bytes`` each; at least 1, at most ``max_window`` and ``n_widths``.

    A limit below the baseline still allows one session (nothing smaller can be measured); the profile then
    shows a peak above the limit.
    """
    if n_widths < 1:
        raise ValueError("no widths")
    base = baseline_bytes or 0
    limits = []
    if max_memory_bytes is not None:
        limits.append(int(max_memory_bytes))
    if available is not None:
        limits.append(base + int(AVAILABLE_FRACTION * available))
    limit = min(limits) if limits else None
    k, reason = min(max_window, n_widths), ("max_window" if max_window < n_widths else "widths")
    if limit is not None:
        fits = int((limit - base) // max(1, session_bytes))
        if fits < k:
            k, reason = max(1, fits), "memory"
    return WindowPlan(k, int(session_bytes), baseline_bytes, limit, available, max_memory_bytes, reason)


def width_share(remaining_s: float, reserved_s: float, n_after: int, overhead_s: float) -> float:
    """Seconds of timing the width being opened may take under a total budget.

    ``remaining_s``: budget left now; ``reserved_s``: what the widths already being timed may still take
    (their shares less what they used); ``n_after``: widths not opened yet after this one, each expected to
    cost ``overhead_s`` to open (load + warm-up). What is left is split evenly over this width and the
    ``n_after`` ones; 0 when the budget is spent (the width then takes one chunk of samples and stops).
    """
    if n_after < 0:
        raise ValueError("n_after must be >= 0")
    left = remaining_s - max(0.0, reserved_s) - n_after * max(0.0, overhead_s)
    if not math.isfinite(left) or left <= 0:
        return 0.0
    return left / (n_after + 1)


def coverage_order(n: int) -> list[int]:
    """Indices ``0..n-1`` starting with the last (the widest width of an ascending grid, so that the memory
    probe sees the largest session), then in van der Corput order over the rest: every prefix spreads over
    the whole range, so time drift does not line up with width and the ETA learns from typical widths early."""
    if n <= 0:
        return []
    rest = list(range(n - 1))
    keyed = []
    for i in rest:
        x, denom, v = 0.0, 1.0, i
        while v:
            denom *= 2
            x += (v & 1) / denom
            v >>= 1
        keyed.append((x, i))
    return [n - 1] + [i for _, i in sorted(keyed)]
