"""Every network wait is bounded: an exit status that never comes is a timeout, not a hang."""

from __future__ import annotations

import threading
import time

import pytest

from us3l.devices.ssh import exit_status


class _Channel:
    def __init__(self, status: int | None) -> None:
        self.status_event = threading.Event()
        self.status = status
        if status is not None:
            self.status_event.set()

    def recv_exit_status(self) -> int:
        assert self.status is not None, "would block forever"
        return self.status


def test_exit_status_waits_a_bounded_time() -> None:
    assert exit_status(_Channel(3), 1.0) == 3
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="no exit status within 0.2 s"):
        exit_status(_Channel(None), 0.2)
    assert time.monotonic() - t0 < 5
