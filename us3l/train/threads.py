"""``threads: auto``: as many torch threads as this machine has cores idle when training starts.

One thread is robust where other processes keep the cores busy (threads that wait for each other on an
oversubscribed core spin), all cores are faster on an idle machine (docs/training.md, "Configuration"). ``auto``
measures which case this is: the idle share of the CPU time in ``/proc/stat`` over a short window, times the CPU
count, rounded so that a core counts as free when it is at least 75 % idle; divided among the processes torchrun
started on this node; at least 1 and at most the cores this process may run on. The count is resolved once, at the
start of a run, and recorded in the saved config (a resume keeps it: float results depend on the thread count).
:func:`kept_threads` gives the caller of ``run_training`` its own thread count back afterwards.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

AUTO = "auto"
WINDOW_S = 0.3  # long enough to see a busy process, short enough not to matter at the start of a run


def _cpu_times(stat: Path) -> tuple[int, int] | None:
    """(total, idle) jiffies of all CPUs from ``/proc/stat``'s first line; None where it cannot be read."""
    try:
        fields = stat.read_text(encoding="ascii").splitlines()[0].split()
    except (OSError, IndexError, UnicodeDecodeError):
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 5:
        return None
    try:
        values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal (not guest: in user)
    except ValueError:
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values), idle


#: The most threads a count applied in this process (PyTorch's, onnxruntime's, OpenVINO's) may ask for: this, or the
#: cores it may run on where there are more. ``us3l.validate.MAX_THREADS`` (65536) bounds a count's value, a remote
#: device's included; applied here, a count far above the cores makes OpenMP fail to create its threads and the process
#: die ("libgomp: Thread creation failed", then a segfault: 65536 on this 2-core machine, 2026-12-07).
MAX_LOCAL_THREADS = 1024


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), or the machine's CPU count where that is unknown."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def local_threads(threads: int, name: str = "--threads") -> int:
    """``threads``, to be applied in this process; a count above :data:`MAX_LOCAL_THREADS` and the usable cores is a
    one-line ``US3LError`` naming ``name``."""
    cores = usable_cores()
    most = max(MAX_LOCAL_THREADS, cores)
    if int(threads) > most:
        from us3l.errors import US3LError

        raise US3LError(f"{name} {threads} is more threads than this machine can start: at most {most} here "
                        f"({MAX_LOCAL_THREADS}, or its usable cores where more; it has {cores})")
    return int(threads)


def idle_cores(window_s: float = WINDOW_S, stat: Path = Path("/proc/stat")) -> float | None:
    """Cores idle over the next ``window_s`` seconds (a fraction), or None where ``/proc/stat`` is unavailable."""
    first = _cpu_times(stat)
    if first is None:
        return None
    time.sleep(window_s)
    second = _cpu_times(stat)
    if second is None:
        return None
    total, idle = second[0] - first[0], second[1] - first[1]
    if total <= 0:
        return None
    return (os.cpu_count() or 1) * idle / total


def auto_threads(processes: int = 1, idle: float | None = None) -> int:
    """The thread count ``threads: auto`` resolves to, for one of ``processes`` training processes on this node;
    ``idle``: cores idle (measured now when None). Where the idle time cannot be read: the usable cores."""
    free = idle_cores() if idle is None else idle
    cores = usable_cores()
    n = cores if free is None else math.floor(free + 0.25)
    return max(1, min(cores, n) // max(1, processes))


@contextmanager
def kept_threads() -> Iterator[None]:
    """Put torch's intra-op thread count (``torch.set_num_threads``, process-wide) back as it was once the body
    returns or raises: a run sets its ``threads``, and a program (or test) calling ``run_training`` went on with
    them."""
    import torch

    before = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
