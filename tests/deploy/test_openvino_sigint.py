"""Ctrl-C during OpenVINO's conversion is held until the conversion returns, then raised as KeyboardInterrupt
(deploy/backends/openvino.py ``sigint_deferred``): raised inside the converter, which calls back into Python, it
came out as a RuntimeError (exit 1), was lost, or crashed the process."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from us3l.deploy.backends.openvino import sigint_deferred


@pytest.fixture(autouse=True)
def _default_sigint() -> object:
    """Python's own SIGINT handler for each test, whatever an earlier test (in any order) left."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_inside_the_block_is_raised_after_it() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt):
        with sigint_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # bytecode runs: an undeferred SIGINT would raise here
                pass
            done.append(True)
    assert done == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_no_signal_no_exception_and_errors_pass_through() -> None:
    with sigint_deferred():
        pass
    with pytest.raises(ValueError, match="boom"), sigint_deferred():
        raise ValueError("boom")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_ignored_sigint_stays_ignored_and_other_threads_run_the_block_as_is() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with sigint_deferred():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    ran = []

    def worker() -> None:
        with sigint_deferred():
            ran.append(True)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert ran == [True]
