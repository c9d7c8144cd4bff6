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
from typing import Any, NoReturn


def _number(text: str, kind: type[int] | type[float]) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        kind_name = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expects {kind_name}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expects a finite number, got {text!r}")
    return value


def _bounded(kind: type[int] | type[float], ok: Callable[[float], bool], need: str, doc: str) -> Callable[[str], Any]:
    """An argparse type: ``text`` as ``kind``, refused with ``must be <need>`` unless ``ok(value)``."""
    def parse(text: str) -> Any:
        value = kind(_number(text, kind))
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {need}, got {text!r}")
        return value

    parse.__doc__ = doc
    return parse


positive_int = _bounded(int, lambda v: v >= 1, ">= 1", "A count: 1 or more.")
nonnegative_int = _bounded(int, lambda v: v >= 0, ">= 0", "A seed, or a count where 0 means none.")
positive_float = _bounded(float, lambda v: v > 0, "> 0", "A duration, size or budget: above 0.")
nonnegative_float = _bounded(float, lambda v: v >= 0, ">= 0", "A margin: 0 or more.")
width = _bounded(float, lambda v: 0 < v <= 1, "in (0, 1]", "A width multiplier in (0, 1].")


def run(main: Callable[[], int | None]) -> NoReturn:
    """Exit with ``main()``'s status under the CLI's error policy (``us3l.cli.run_script``)."""
    from us3l.cli import run_script

    sys.exit(run_script(main))
