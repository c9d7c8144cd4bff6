"""The command line of the repository's scripts (``benchmarks/``, ``scripts/``), which use argparse: argument
types that refuse nonsense with argparse's usage error (exit 2), and :func:`run`, the ``us3l`` CLI's error policy
around a script's ``main`` (an error is one ``error:`` line and exit 1, ``US3L_DEBUG=1`` shows the traceback;
Ctrl-C exits 130, SIGTERM 143).

A benchmark given ``--iters 0`` used to fail deep inside with a ``statistics`` traceback."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import NoReturn


def _number(text: str, kind: type[int] | type[float]) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        kind_name = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expects {kind_name}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expects a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A count: 1 or more."""
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def nonnegative_int(text: str) -> int:
    """A seed, or a count where 0 means none."""
    value = int(_number(text, int))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A duration, size or budget: above 0."""
    value = float(_number(text, float))
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def nonnegative_float(text: str) -> float:
    """A margin: 0 or more."""
    value = float(_number(text, float))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def width(text: str) -> float:
    """A width multiplier in (0, 1]."""
    value = float(_number(text, float))
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text!r}")
    return value


def run(main: Callable[[], int | None]) -> NoReturn:
    """Exit with ``main()``'s status under the CLI's error policy (``us3l.cli.run_script``)."""
    from us3l.cli import run_script

    sys.exit(run_script(main))
