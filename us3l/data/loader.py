"""Data-loader worker processes that leave SIGTERM to the process that started them.

A SIGTERM to a whole process group (torchrun stopping a worker, a scheduler's ``kill -- -PGID``) reaches the
loader's worker processes as well. Killed first, they make the training or evaluation process, already
stopping on its own SIGTERM, print PyTorch's "Exception ignored ... RuntimeError: DataLoader worker (pid N) is
killed by signal: Terminated" traceback before its one-line exit. So every worker ignores SIGTERM; the process
that started it stops it when it stops (the loader's shutdown, or the worker's own check that its parent is
gone). A worker ignores SIGTERM from its first instruction on: the parent starts the workers with SIGTERM
blocked, the workers inherit the blocked mask, and each one sets SIGTERM to ignored (which discards one
already pending) before unblocking it. Setting it in ``worker_init_fn`` alone left the time from the fork to
that call (PyTorch's worker set-up: seeding, imports), in which a SIGTERM still killed the worker.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence
from typing import Any

from torch.utils.data import DataLoader, Dataset

__all__ = ["loader_batches"]

_TERM = {signal.SIGTERM}


def _ignore_sigterm(_worker_id: int) -> None:
    """``worker_init_fn``: ignore SIGTERM (discarding one that arrived while it was blocked), then unblock it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _TERM)


def loader_batches(ds: Dataset[Any], batch_sampler: Sequence[Sequence[int]], num_workers: int) -> Iterator[Any]:
    """Iterate a ``DataLoader`` of ``ds`` over ``batch_sampler``, read in this process (``num_workers`` 0) or by
    ``num_workers`` worker processes that ignore SIGTERM from the moment they exist. A SIGTERM to this process
    while the workers start is delivered, as usual, once they have started."""
    if not num_workers:
        yield from DataLoader(ds, batch_sampler=batch_sampler)
        return
    loader = DataLoader(ds, batch_sampler=batch_sampler, num_workers=num_workers, worker_init_fn=_ignore_sigterm)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _TERM)
    try:
        batches = iter(loader)  # forks the workers
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    yield from batches
