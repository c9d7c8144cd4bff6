"""Hold what is written to the process's stderr file descriptor (2) for a while, native code's logs included.

torch's C++ logging (c10) writes to file descriptor 2 directly, at the level ``TORCH_CPP_LOG_LEVEL`` set when
torch was *imported*: nothing changes it at run time (torch 2.13 exposes no setter), and setting it before the
import would silence every later C++ error of training as well. :func:`held_stderr` instead routes descriptor 2
into an unlinked temporary file for the span of its body and writes what it held back to stderr afterwards,
unless the body drops it (a failure it reports in one line of its own).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class HeldStderr:
    """What :func:`held_stderr` holds; ``drop()`` discards it instead of writing it back."""

    keep: bool = True

    def drop(self) -> None:
        self.keep = False


@contextmanager
def held_stderr() -> Iterator[HeldStderr]:
    """Route file descriptor 2 into a temporary file for the body, then put it back and write the held bytes to
    it (all of them, in order), unless the body called ``drop()``. Without a usable descriptor 2 the body runs
    as it is."""
    held = HeldStderr()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no stderr (closed, or None under pythonw)
        yield held
        return
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield held
            finally:
                _flush_stderr()
                os.dup2(saved, 2)
                if held.keep:
                    sink.seek(0)
                    _write_all(saved, sink.read())
    finally:
        os.close(saved)


def _flush_stderr() -> None:
    try:
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
