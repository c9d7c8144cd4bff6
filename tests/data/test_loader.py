"""us3l.data.loader: data-loader workers ignore SIGTERM from the moment they exist."""

from __future__ import annotations

import os
import signal
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
