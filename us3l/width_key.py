"""The one rule that turns a width into the key it is stored and matched under: 4 decimals, half up, as written.

Every file keys widths by it: ``bn_stats.safetensors`` (``0.7813/<layer>.mean``), an S-Nets model's switches,
canonical widths, accuracy rows, ``us3l select``'s tables and the report's, so 25/32 = 0.78125 is 0.7813 in all of
them and round-trips calibrate -> export -> eval --artifact -> report. The rounding is of the width's decimal
spelling (``repr``), half up, whatever the binary value: Python's ``round(0.78125, 4)``, how these keys were made
by earlier us3l versions, is 0.7812 (25/32 is an exact binary tie, rounded to even); :func:`width_keys` still matches
files written so.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

#: Decimals a width key keeps.
DECIMALS = 4
_STEP = Decimal(1).scaleb(-DECIMALS)


def width_key(w: float) -> float:
    """The key of width ``w``: its decimal spelling rounded half up to 4 decimals (0.78125 -> 0.7813)."""
    f = float(w)
    try:
        return float(Decimal(repr(f)).quantize(_STEP, rounding=ROUND_HALF_UP))
    except InvalidOperation:  # nan, inf: no width; the callers' checks say so
        return f


def width_key_text(w: float) -> str:
    """``width_key`` as stored in ``bn_stats.safetensors`` entry names and metadata: ``0.7813``."""
    return f"{width_key(w):.{DECIMALS}f}"


def legacy_width_key(w: float) -> float:
    """The key files of earlier us3l versions used for ``w``: Python's ``round(w, 4)`` (0.78125 -> 0.7812)."""
    return round(float(w), DECIMALS)


def width_keys(w: float) -> tuple[float, ...]:
    """The keys ``w`` is matched under: :func:`width_key`, then, where it differs, :func:`legacy_width_key` (an
    accuracy file, profile or selection written before the rule, whose 0.78125 was keyed 0.7812)."""
    key, legacy = width_key(w), legacy_width_key(w)
    return (key,) if legacy == key else (key, legacy)


def same_width(a: object, b: object) -> bool:
    """Whether ``a`` and ``b`` are numbers (not booleans) that name one width under :func:`width_keys`: 25/32 =
    0.78125 is a file's 0.7813, and an older file's 0.7812."""
    if not (isinstance(a, int | float) and isinstance(b, int | float)) or isinstance(a, bool) or isinstance(b, bool):
        return False
    return bool(set(width_keys(a)) & set(width_keys(b)))
