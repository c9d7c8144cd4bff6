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

While the workers start, this process also holds Ctrl-C and SIGTERM where Python handles them (the CLI's
handlers raise ``KeyboardInterrupt``) and raises them again once the workers are up (``us3l.io.signals_held``,
as for atomic renames). The blocked
mask acts on the calling thread only: in a process with other threads (gloo's, in every DDP worker) the kernel
delivers SIGTERM to one of them and Python runs the handler in the main thread at once; Ctrl-C is never
blocked. Raised inside PyTorch's half-built worker iterator, the interrupt printed "Exception ignored in ...
_MultiProcessingDataLoaderIter.__del__ ... AttributeError: ... '_workers_status'", and the worker it had
started (ignoring SIGTERM) was never stopped: the process hung at exit in multiprocessing's join.

That join is also where an uncaught exception (``US3L_DEBUG=1``, or a script calling the library) left the
process: at exit PyTorch no longer shuts down the workers of an unfinished loader (the generator is still held
by the traceback) and multiprocessing stops daemon processes with SIGTERM, which these ignore. So at exit, before
multiprocessing's own clean-up, the workers of ours that are still alive are killed (SIGKILL).
"""

from __future__ import annotations

import atexit
import multiprocessing
import signal
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

from torch.utils.data import DataLoader, Dataset

__all__ = ["loader_batches"]

_TERM = {signal.SIGTERM}
_WORKERS: weakref.WeakSet[Any] = weakref.WeakSet()  # the worker processes loader_batches started
_at_exit: list[bool] = []  # whether _kill_left_workers is registered (once, after multiprocessing's clean-up)


def _ignore_sigterm(_worker_id: int) -> None:
    """``worker_init_fn``: ignore SIGTERM (discarding one that arrived while it was blocked), then unblock it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _TERM)


def _kill_left_workers() -> None:
    """``atexit``: kill the workers of ours still alive (an unfinished loader: see the module docstring) and reap
    them, with SIGCHLD at its default meanwhile: PyTorch's handler would report each as "DataLoader worker (pid
    N) is killed by signal"."""
    alive = [worker for worker in list(_WORKERS) if worker.is_alive()]
    if not alive:
        return
    previous = signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        for worker in alive:
            worker.kill()
        for worker in alive:
            worker.join()
    finally:
        signal.signal(signal.SIGCHLD, previous)


def _track(workers: set[Any]) -> None:
    """Remember ``workers`` for ``_kill_left_workers``, registered now: multiprocessing registered its clean-up
    before starting them, and ``atexit`` runs the later registration first."""
    _WORKERS.update(workers)
    if not _at_exit:
        atexit.register(_kill_left_workers)
        _at_exit.append(True)


def loader_batches(ds: Dataset[Any], batch_sampler: Sequence[Sequence[int]], num_workers: int) -> Iterator[Any]:
    """Iterate a ``DataLoader`` of ``ds`` over ``batch_sampler``, read in this process (``num_workers`` 0) or by
    ``num_workers`` worker processes that ignore SIGTERM from the moment they exist. A SIGTERM or Ctrl-C to this
    process while the workers start is delivered, as usual, once they have started."""
    if not num_workers:
        yield from DataLoader(ds, batch_sampler=batch_sampler)
        return
    loader = DataLoader(ds, batch_sampler=batch_sampler, num_workers=num_workers, worker_init_fn=_ignore_sigterm)
    from us3l.io import signals_held

    with signals_held():
        before = set(multiprocessing.active_children())
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _TERM)
        try:
            batches = iter(loader)  # forks the workers
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            _track(set(multiprocessing.active_children()) - before)
    yield from batches
