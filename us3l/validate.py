"""Checks for values that come from outside: names that become path components, and measured numbers.

``safe_name`` is the one validator for every name that ends up in a path (device, model, backend names;
a device name from ``--device``, a device file or ``selection.json``). ``number`` checks one number read
from a file or a remote device. Both raise a one-line ``US3LError`` naming where the value came from.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from typing import Any

from us3l.errors import US3LError
from us3l.width_key import width_key

#: Upper bounds of counts that come from flags and files: beyond them a value is a mistake that would reach
#: onnxruntime, OpenMP or the allocator as a multi-line exception. ``MAX_THREADS`` bounds a thread count (``--threads``,
#: a device file's or config's ``threads``, the count a remote runner reports): a machine's CPUs, of which Linux
#: supports at most 8192 (NR_CPUS), so that a real device is never refused (1024 refused larger ones) while a garbage
#: count (100000, 2**31) still is. ``MAX_WORKERS`` bounds data-loader worker processes, each one forked: no machine
#: needs more than 1024, and 65536 processes would exhaust it.
MAX_THREADS = 65536
MAX_WORKERS = 1024
MAX_BATCH = 4096
MIN_INPUT_SIZE = 8  # pixels per side: the CIFAR ResNets' three stride-2 stages need 8 to keep one pixel
MAX_INPUT_SIZE = 4096  # pixels per side: a 1x3x4096x4096 input is 200 MB of activations per layer
#: The largest memory figure, in bytes: 2**50 (1 PiB), far above any device's memory. A remote runner's memory facts
#: are refused above it when they arrive (``us3l.profiler.remote.FACTS``), so a memory limit given in MiB
#: (``--max-memory-mb``, a device file's ``max_memory_mb``) is held to ``MAX_MEMORY_MB``: the runner reports it back
#: in bytes.
MAX_MEMORY_BYTES = 1 << 50
MAX_MEMORY_MB = MAX_MEMORY_BYTES >> 20

#: One path component: starts with a letter or digit, then letters, digits, '.', '_' or '-'; at most 64.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NAME_RULE = "1-64 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit"


def input_size(value: int, what: str, fix: str = "") -> int:
    """``value`` if it is an input side of ``MIN_INPUT_SIZE`` to ``MAX_INPUT_SIZE`` pixels, else a one-line
    ``US3LError`` naming ``what`` (``"--input-size"``, a file's field), with ``fix`` (how to mend it) after."""
    if not MIN_INPUT_SIZE <= value <= MAX_INPUT_SIZE:
        tail = f" ({fix})" if fix else ""
        raise US3LError(f"{what} must be {MIN_INPUT_SIZE} to {MAX_INPUT_SIZE} pixels, got {value}{tail}")
    return value


def safe_name(value: Any, what: str) -> str:
    """``value`` if it is one safe path component (see ``NAME_RE``), else a one-line ``US3LError``.

    ``what`` says where the name came from, e.g. ``"--device"`` or ``"selection.json: devices[0].device"``.
    """
    if not isinstance(value, str):
        raise US3LError(f"{what} must be a name ({NAME_RULE}), got {value!r}")
    if not NAME_RE.match(value):
        shown = value if len(value) <= 80 else f"{value[:40]}…({len(value)} characters)"
        raise US3LError(f"{what} must be a name ({NAME_RULE}), got {shown!r}")
    return value


def number(
    value: Any,
    what: str,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    integer: bool = False,
    at_most: float | None = None,
    optional: bool = False,
) -> float:
    """``float(value)`` if it is a finite number meeting the bounds, else a one-line ``US3LError``.

    ``what`` names the file and field (``"profiles/cpu.json: records[3].latency.p50_ms"``). JSON booleans are
    not numbers. ``optional`` lets ``None`` through (returned as NaN: the caller keeps its ``None``).
    """
    if value is None and optional:
        return math.nan
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if ok and positive:
        ok = value > 0
    if ok and nonnegative:
        ok = value >= 0
    if ok and at_most is not None:
        ok = value <= at_most
    if not ok:
        kind = "integer" if integer else "number"
        if positive:
            need = f"a finite positive {kind}"
        elif nonnegative:
            need = f"a finite non-negative {kind}"
        else:
            need = f"a finite {kind}"
        if at_most is not None:  # every digit of a whole bound ("<= 3600000", not "<= 3.6e+06"); 1e15 as 1e+15
            need += f" <= {at_most:.15g}"
        if optional:
            need += " or null"
        raise US3LError(f"{what} must be {need}, got {_show(value)}")
    return float(value)


def memory_mb(value: Any, what: str) -> float:
    """``float(value)`` when it is a memory limit of 1 to ``MAX_MEMORY_MB`` MiB (``--max-memory-mb``, a device file's
    ``max_memory_mb``, ``run_sweep``'s ``max_memory_mb``), else one line naming ``what``, worded alike wherever the
    limit is given: a remote runner reports it back in bytes, refused above 2**50 when it arrives (and a fraction of
    a MiB rounds to 0 bytes, refused below 1), so a value out of range would stop a sweep at its first device with
    the runner's error about a value the user never typed."""
    number(value, what, positive=True)  # nan, inf, 0, -5, a bool or a string: as every number is worded
    if not 1 <= value <= MAX_MEMORY_MB:
        raise US3LError(f"{what} must be from 1 to {MAX_MEMORY_MB} MiB (2**50 bytes), got {_show(value)}")
    return float(value)


def integer(value: Any, what: str, least: int, most: int, optional: bool = False) -> int | None:
    """``value`` if it is an ``int`` from ``least`` to ``most`` (a bool is not, nor is a float such as ``5.0``: a
    count or byte figure sent as one was not written by the code that counts), ``None`` when ``optional``; else a
    one-line ``US3LError`` naming ``what``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        raise US3LError(f"{what} must be an integer from {least} to {most}{' or null' if optional else ''}, "
                        f"got {_show(value)}")
    return value


def batch_size(value: int, least: int = 1, flag: str = "--batch-size") -> int:
    """``value`` when it is a batch size from ``least`` to ``MAX_BATCH`` (calibration and training need 2: batch
    statistics of one image are its own), else one line worded the same in every command that takes the flag."""
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= MAX_BATCH:
        raise US3LError(f"{flag} must be {least} to {MAX_BATCH}, got {_show(value)}")
    return value


def points(value: int | None) -> int | None:
    """``--points N``: at least one grid width (``None``: not given); one line, the same in every command."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise US3LError(f"--points must be >= 1 (0 is not allowed), got {_show(value)}")
    return value


def require_types(what: str, value: Any, kind: type, optional: bool = False) -> None:
    """A one-line ``US3LError`` when ``value`` is not a ``kind`` (``numbers.Integral`` or ``numbers.Real``, of which a
    bool is neither; or ``bool``, which takes only ``True`` and ``False``), or ``None`` when ``optional``: a
    settings object built in Python with ``epochs=2.5`` must not fail (or round) late, after the features it works
    on were computed, and a flag given ``"no"`` must not be read as true."""
    if value is None and optional:
        return
    if kind is bool:  # a flag: "no" or 0 would be read as true or false without a word
        if isinstance(value, bool):
            return
        need = "True or False"
    elif isinstance(value, kind) and not isinstance(value, bool):
        return
    else:
        need = "an integer" if kind is numbers.Integral else "a number"
    raise US3LError(f"{what} must be {need}{' or None' if optional else ''}, got {_show(value)}")


def one_of(value: Any, allowed: Sequence[str], what: str) -> str:
    """``value`` when it is one of ``allowed`` (a backend, a precision read from a file); one line otherwise."""
    if value not in allowed:
        raise US3LError(f"{what} must be one of {', '.join(allowed)}, got {value!r:.40}")
    return str(value)


def plain_number_text(text: str) -> bool:
    """Whether a number's text is free of ``_`` separators and non-ASCII characters, which int() and float() read
    (``1_0`` as 10, other scripts' digits: ``٣`` as 3) and every us3l flag refuses (``width_list`` stricter still)."""
    return "_" not in text and text.isascii()


def given_twice(name: str, seen: list[str], switch: bool) -> str:
    """The usage error for the single-valued option ``name`` given more than once (``seen``: what each occurrence
    said, a switch's spelling or an option's value), worded alike by the ``us3l`` commands
    (``us3l.cli_app.refuse_repeats``) and the benchmarks' scripts (``us3l.script_cli``): the values are named unless
    a switch was spelled the same way each time."""
    values = "" if switch and len(set(seen)) == 1 else f" ({', '.join(seen)})"
    return f"{name} given twice{values}: give it once"


#: A number as a flag takes it: ASCII digits, an optional sign, point and exponent (``0.25``, ``.5``, ``1e-1``).
_DECIMAL = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
#: Spellings float() reads that the bounds check then names ("nan", "inf": not a finite number).
_SPECIAL = frozenset({"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})


def width_list(text: str, flag: str = "--widths", unique: bool = True) -> list[float]:
    """A non-empty comma-separated list of finite positive numbers (``"1,0.5,0.25"``) as floats, in the order given,
    each once (to 4 decimals) unless ``unique`` is off; one line otherwise (a bad entry worded as ``number`` words
    it). The model checks each width against its range."""
    parts = text.replace(" ", "").split(",")
    if len(parts) > 1 and "" in parts:  # "1,,0.5": a typo, and for a switchable grid every index counts
        raise US3LError(f"{flag} has an empty entry, got {text!r}")
    # plain ASCII decimals: float() also reads "1_0" as 10 and other scripts' digits ("१" as 1)
    if not all(_DECIMAL.fullmatch(v) or v.lower() in _SPECIAL for v in parts if v):
        raise US3LError(f"{flag} must be comma-separated numbers like 0.25,0.5,1.0, got {text!r}")
    values = [float(v) for v in parts if v]
    if not values:
        raise US3LError(f"{flag} must name at least one value, got {text!r}")
    for v in values:  # nan, inf, 0, -1: the same line in every command that takes the flag
        number(v, flag, positive=True)
    seen: set[float] = set()
    for v in values if unique else ():
        if width_key(v) in seen:
            raise US3LError(f"{flag} lists {v:g} twice")
        seen.add(width_key(v))
    return values


def name_list(values: Sequence[str], flag: str) -> tuple[str, ...]:
    """The names of ``flag`` given several times and/or comma-separated (``--backend onnx --backend a,b``), in
    order, blanks dropped; a flag given only blanks (``--backend ''``) is refused rather than read as not given."""
    names = tuple(n.strip() for item in values for n in item.split(",") if n.strip())
    if values and not names:
        raise US3LError(f"{flag} names nothing, got {', '.join(map(repr, values))}")
    return names


def once_each(values: Sequence[str], flag: str, given: Sequence[str]) -> None:
    """One line naming the first of ``values`` (names read from ``flag``, aliases resolved) that is listed again:
    one backend would be profiled or exported twice. ``given`` is what was typed, quoted in the line."""
    for i, v in enumerate(values):
        if v in values[:i]:
            raise US3LError(f"{flag} lists {v} more than once, got {', '.join(given)!r}")


def _show(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)  # nan, inf, -1.0
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
