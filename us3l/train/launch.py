"""torchrun for ``us3l train --nproc``, with failures reported the way the CLI reports them.

``python -m us3l.train.launch ARGS`` is ``torchrun ARGS`` (``torch.distributed.run``), except for how it ends:

- a worker that failed has already printed its own one-line ``error: ...``; torchrun's ``ChildFailedError``
  traceback and failure table are not printed again. A worker killed by a signal prints nothing itself, so
  that is said here in one line. The exit status is the first failed worker's (128 + N for signal N;
  ``root_failure``); the workers torchrun then stopped are not reported.
- stopped by a signal (``us3l train`` forwards Ctrl-C and SIGTERM to it), torchrun stops its workers and this
  exits 128 + N without torchrun's ``SignalException`` traceback.
- torchrun's own log lines (the OMP_NUM_THREADS banner, per-failure lines) are off: ``us3l`` sets the thread
  count itself (``threads``), and the failures are reported as above.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping
from typing import Any

from us3l.errors import EXIT_TERMINATED


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def failure_line(rank: int, exitcode: int) -> str | None:
    """The one-line error for the first failed worker when a signal killed it (one that failed otherwise has
    printed its own); ``None`` otherwise. The workers torchrun stopped after it are not reported."""
    if exitcode >= 0:
        return None
    return f"error: training process rank {rank} was killed by {signal_name(-exitcode)}"


def stopped_by_sigterm(exitcode: int) -> bool:
    """Whether a worker's exit code says SIGTERM stopped it: killed by it (-15), or a us3l process that turned it
    into its clean-up and exited 143 -- which is how torchrun stops the other workers once one has failed."""
    return exitcode in (-signal.SIGTERM, EXIT_TERMINATED)


def root_failure(failures: Mapping[int, Any]) -> tuple[int, Any]:
    """The rank and failure (torchrun's ``ProcessFailure``: ``timestamp`` in whole seconds, ``exitcode``) that
    caused the others: the earliest; within the same second a worker killed by a signal other than SIGTERM
    (SIGKILL from the OOM killer, SIGABRT, SIGSEGV) before one that exited with an error status, which is how
    its peers end once it is gone ("another training process is gone"), a worker stopped by SIGTERM after
    both (torchrun stops the others with it once one has failed: a rank that was still on its way out after
    the same error was reported as the cause, exit 143), and then the lowest rank."""

    def order(rank: int) -> tuple[int, int, int]:
        code = int(failures[rank].exitcode)
        kind = 2 if stopped_by_sigterm(code) else 0 if code < 0 else 1
        return int(failures[rank].timestamp), kind, rank

    rank = min(failures, key=order)
    return rank, failures[rank]


def exit_status(exitcode: int) -> int:
    """A worker's exit code as a shell status: 128 + N for signal N (``Popen`` reports -N), never 0."""
    return 128 - exitcode if exitcode < 0 else (exitcode or 1)


def main(argv: list[str] | None = None) -> int:
    import logging

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    logging.disable(logging.CRITICAL)  # this process only: the workers are fresh interpreters
    try:
        torchrun(sys.argv[1:] if argv is None else argv)
    except SignalException as exc:
        return 128 + int(exc.sigval)
    except ChildFailedError as exc:
        rank, first = root_failure(exc.failures)
        line = failure_line(rank, int(first.exitcode))
        if line:
            print(line, file=sys.stderr)
        return exit_status(int(first.exitcode))
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a module by us3l train --nproc
    sys.exit(main())
