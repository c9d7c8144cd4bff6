"""A SIGTERM that lands the moment a writer's temporary file exists (tests of the make-and-list-for-removal step of
``us3l.io.atomic_write_all`` and ``us3l.checkpoint._commit``, both through ``us3l.io.temp_for``)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, ModuleType

import pytest


class Interrupted(Exception):
    """What the test's SIGTERM handler raises (the CLI's handler turns SIGTERM into an exception too)."""


@contextlib.contextmanager
def sigterm_once_a_temporary_exists(module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Inside: ``module.temp_file`` raises SIGTERM right after it made its file, SIGTERM raises ``Interrupted``, and
    the body must end with it (``pytest.raises``); the previous SIGTERM handler is put back on exit."""
    real = module.temp_file

    def made_then_signalled(directory: Path, prefix: str, suffix: str = ".tmp") -> Path:
        tmp = real(directory, prefix, suffix)
        signal.raise_signal(signal.SIGTERM)
        return tmp

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted

    monkeypatch.setattr(module, "temp_file", made_then_signalled)
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with pytest.raises(Interrupted):
            yield
    finally:
        signal.signal(signal.SIGTERM, previous)
