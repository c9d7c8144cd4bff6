"""``us3l.train.held_stderr``: what native code writes to descriptor 2 while joining is held, then written back
or dropped."""

from __future__ import annotations

import os

import pytest

from us3l.train.held_stderr import held_stderr


def test_what_was_held_is_written_back_in_order(capfd: pytest.CaptureFixture[str]) -> None:
    os.write(2, b"before\n")
    with held_stderr():
        os.write(2, b"inside\n")
        assert capfd.readouterr().err == "before\n"  # not yet: held
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "inside\nafter\n"


def test_a_dropped_hold_writes_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    with held_stderr() as held:
        os.write(2, b"[E socket.cpp] timed out\n")
        held.drop()
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_an_exception_in_the_body_still_writes_back_what_was_held(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(KeyboardInterrupt), held_stderr():
        os.write(2, b"inside\n")
        raise KeyboardInterrupt
    assert capfd.readouterr().err == "inside\n"
