"""us3l.data.loader: data-loader workers ignore SIGTERM from the moment they exist."""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
import threading
from typing import Any

import pytest
import torch
from torch.utils.data import Dataset
from torch.utils.data._utils import signal_handling

from us3l.data.loader import loader_batches


class _Numbers(Dataset[tuple[torch.Tensor, int]]):
    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.full((2,), float(i)), i


def _sigterm_during_worker_setup(monkeypatch: pytest.MonkeyPatch, also_parent: bool) -> None:
    """Make every worker receive a SIGTERM (and, with ``also_parent``, send one to this process) in PyTorch's
    worker set-up, before ``worker_init_fn`` runs: the window in which a SIGTERM to the process group killed it."""
    original = signal_handling._set_worker_signal_handlers

    def set_up_then_terminated(*args: Any) -> None:
        original(*args)
        os.kill(os.getpid(), signal.SIGTERM)
        if also_parent:
            os.kill(os.getppid(), signal.SIGTERM)

    monkeypatch.setattr(signal_handling, "_set_worker_signal_handlers", set_up_then_terminated)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_batches_come_in_sampler_order(num_workers: int) -> None:
    got = [(x[:, 0].tolist(), y.tolist()) for x, y in loader_batches(_Numbers(), [[4, 1], [0, 5, 2]], num_workers)]
    assert got == [([4.0, 1.0], [4, 1]), ([0.0, 5.0, 2.0], [0, 5, 2])]


def test_a_sigterm_before_worker_init_fn_does_not_kill_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent starts the workers with SIGTERM blocked; each ignores it before unblocking. Setting SIG_IGN in
    ``worker_init_fn`` alone left the fork-to-init window: "DataLoader worker (pid N) is killed by signal:
    Terminated" (a flaky CI failure of the torchrun SIGTERM test)."""
    _sigterm_during_worker_setup(monkeypatch, also_parent=False)
    got = [y.tolist() for _, y in loader_batches(_Numbers(), [[0, 1], [2, 3], [4, 5]], 2)]
    assert got == [[0, 1], [2, 3], [4, 5]]


def test_a_sigterm_to_the_parent_while_workers_start_is_still_delivered(monkeypatch: pytest.MonkeyPatch) -> None:
    _sigterm_during_worker_setup(monkeypatch, also_parent=True)
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        got = [y.tolist() for _, y in loader_batches(_Numbers(), [[0, 1, 2], [3, 4, 5]], 1)]
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert got == [[0, 1, 2], [3, 4, 5]]
    assert received == [signal.SIGTERM]
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, set())  # unblocked again


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_in_another_thread_while_workers_start_waits_for_them(monkeypatch: pytest.MonkeyPatch,
                                                                           signum: int) -> None:
    """Blocking SIGTERM acts on this thread only: in a process with other threads (gloo's, in a DDP worker) one
    of them takes it and Python runs the handler here at once (Ctrl-C, never blocked, likewise). Raised inside
    PyTorch's half-built iterator, the KeyboardInterrupt printed "Exception ignored in ... __del__ ...
    AttributeError" and left the started worker running (it ignores SIGTERM): the process hung at exit."""
    go, sent = threading.Event(), threading.Event()

    def other_thread() -> None:  # started before the loader, like gloo's threads: SIGTERM is not blocked here
        go.wait(60)
        signal.raise_signal(signum)  # its C handler runs in this thread; Python's runs in the main thread
        sent.set()

    threading.Thread(target=other_thread, daemon=True).start()
    original = signal_handling._set_SIGCHLD_handler

    def while_workers_start() -> None:  # the parent's side of the start-up, after the fork
        original()
        go.set()
        assert sent.wait(60)
        for _ in range(100):  # bytecode: an interrupt that is not held is raised here
            pass

    monkeypatch.setattr(signal_handling, "_set_SIGCHLD_handler", while_workers_start)
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)

    def interrupted(number: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signum, interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            next(loader_batches(_Numbers(), [[0, 1], [2, 3]], 1))
        gc.collect()
        assert [repr(u.exc_value) for u in unraisable] == []
        assert multiprocessing.active_children() == []  # the worker was stopped with the loader
    finally:
        signal.signal(signum, previous)
        for child in multiprocessing.active_children():  # the old code's worker: never left to hang the exit
            child.kill()
            child.join()


_UNCAUGHT = """
import torch
from torch.utils.data import Dataset
from us3l.data.loader import loader_batches

class Unreadable(Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, i):
        if i == 2:
            raise ValueError("cannot read image 2")
        return torch.full((2,), float(i)), i

for batch in loader_batches(Unreadable(), [[0, 1], [2, 3], [4, 5]], 1):
    pass
"""


@pytest.mark.slow  # a process with loader workers
def test_an_uncaught_error_from_a_worker_still_ends_the_process() -> None:
    """A worker's error (an unreadable image) is raised here from inside the loader, whose frame the traceback
    then holds: at exit PyTorch no longer shuts down its workers and multiprocessing stops them with SIGTERM,
    which they ignore. Uncaught (``US3L_DEBUG=1``, or a script of the user's), the process printed the traceback
    and then hung for good in multiprocessing's join."""
    import subprocess

    proc = subprocess.run([sys.executable, "-c", _UNCAUGHT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stderr.rstrip().endswith("ValueError: cannot read image 2"), proc.stderr[-2000:]
    assert "Exception ignored" not in proc.stderr and "killed by signal" not in proc.stderr, proc.stderr[-2000:]
