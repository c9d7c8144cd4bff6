"""Per-phase wall and CPU time of an export (``benchmarks/export_time.py`` prints the breakdown).

``phase(name)`` marks a stretch of the export pipeline; it costs nothing unless a ``recording()`` is active::

    with recording() as phases:
        export_width(...)
    for p in phases:
        print(p.name, p.wall_s, p.cpu_s)

CPU time is the process's (``time.process_time``: every thread, the runtimes' worker threads included), so on a
shared machine it says how much work a phase is even when the wall time is inflated by other processes.
Phases do not nest: an inner ``phase`` inside an outer one is recorded as its own entry, so keep them flat.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    name: str
    wall_s: float
    cpu_s: float


_active: list[Phase] | None = None


@contextmanager
def recording() -> Iterator[list[Phase]]:
    """Record every ``phase`` run inside the block into the yielded list (in order)."""
    global _active
    previous, _active = _active, []
    try:
        yield _active
    finally:
        _active = previous


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Time the block as phase ``name`` when a ``recording()`` is active."""
    if _active is None:
        yield
        return
    rec = _active
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        rec.append(Phase(name, time.perf_counter() - w0, time.process_time() - c0))
