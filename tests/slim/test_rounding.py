import math

import pytest

from us3l.errors import US3LError
from us3l.slim import WidthRange, make_divisible


@pytest.mark.parametrize(
    ("v", "expected"),
    [(16.0, 16), (64 * 0.25, 16), (100, 104), (12, 16), (20, 24), (10, 16), (3, 9), (0.5, 1), (512 * 0.75, 384)],
)
def test_make_divisible_matches_reference_rule(v: float, expected: int) -> None:
    # reference: new = max(1, int(v + 4) // 8 * 8); if new < 0.9 v: new += 8
    assert make_divisible(v) == expected


def test_make_divisible_other_divisor() -> None:
    assert make_divisible(30, divisor=4) == 32
    assert make_divisible(30, divisor=1) == 30


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((math.nan, 8), "v must be a finite positive number, got nan"),  # was int()'s ValueError
        ((math.inf, 8), "v must be a finite positive number, got inf"),  # was an OverflowError
        ((-math.inf, 8), "v must be a finite positive number, got -inf"),
        ((-8, 8), "v must be a finite positive number, got -8"),  # was 1 channel
        ((0, 8), "v must be a finite positive number, got 0"),
        ((None, 8), "v must be a finite positive number, got None"),  # was a TypeError
        ((64, 0), "divisor must be a finite positive integer, got 0"),  # was a ValueError not naming the rule
        ((64, -8), "divisor must be a finite positive integer, got -8"),
        ((64, 2.5), "divisor must be a finite positive integer, got 2.5"),  # was 65 channels
        ((64, True), "divisor must be a finite positive integer, got True"),
        ((64, 8, -1), "min_value must be a finite non-negative integer, got -1"),
        ((64, 8, None), "min_value must be a finite non-negative integer, got None"),  # was a TypeError
    ],
)
def test_make_divisible_refuses_what_is_no_channel_count(args: tuple, message: str) -> None:
    with pytest.raises(US3LError) as err:
        make_divisible(*args)
    assert str(err.value) == message


def test_channels_never_exceed_max_and_full_width_is_full() -> None:
    wr = WidthRange()
    assert wr.channels(3, 1.0) == 3
    assert wr.channels(12, 0.9) <= 12
    assert wr.channels(64, 0.25) == 16
    assert wr.channels(96 * 6, 0.5, ratio=6) == make_divisible(96 * 0.5) * 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-64, 0.5), "max_channels must be a finite positive integer, got -64"),  # was returned as -64
        ((0, 0.5), "max_channels must be a finite positive integer, got 0"),
        ((64.5, 0.5), "max_channels must be a finite positive integer, got 64.5"),
        ((True, 0.5), "max_channels must be a finite positive integer, got True"),
        ((None, 0.5), "max_channels must be a finite positive integer, got None"),  # was a TypeError
        ((64, 0.5, 0), "ratio must be a finite positive integer, got 0"),  # was a ZeroDivisionError
        ((64, 0.5, 1.5), "ratio must be a finite positive integer, got 1.5"),  # was 36.0 channels
    ],
)
def test_channels_refuses_a_count_that_is_no_channel_count(args: tuple, message: str) -> None:
    with pytest.raises(US3LError) as err:
        WidthRange().channels(*args)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("w", "message"),
    [
        (None, "width must be a number in [0.25, 1], got None"),  # was a TypeError
        (math.nan, "width must be in [0.25, 1], got nan"),  # was int()'s ValueError
        (-0.5, "width must be in [0.25, 1], got -0.5"),  # was 1 channel
        (2, "width must be in [0.25, 1], got 2"),  # was all 64
    ],
)
def test_channels_checks_the_width_like_check(w: object, message: str) -> None:
    with pytest.raises(ValueError) as err:
        WidthRange().channels(64, w)  # type: ignore[arg-type]
    assert str(err.value) == message


@pytest.mark.parametrize("bad", [(0.0, 1.0), (0.5, 0.25), (0.25, 1.5), (-0.1, 1.0), (math.nan, 1.0)])
def test_width_range_rejects_bad_bounds(bad: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="width range"):
        WidthRange(*bad)


def test_width_range_check_names_valid_range() -> None:
    wr = WidthRange(0.25, 1.0)
    assert wr.check(0.5) == 0.5
    for bad in (1.01, 0.2, math.nan, math.inf, "0.5", None, True):
        with pytest.raises(ValueError, match=r"\[0.25, 1\]"):
            wr.check(bad)


def test_width_range_round_trip() -> None:
    wr = WidthRange(0.3, 0.9, 4)
    assert WidthRange.from_dict(wr.to_dict()) == wr


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (None, "width range must be a mapping of min, max and divisor, got None"),  # was a TypeError
        ({}, "width range min must be a finite number, got None"),  # was a KeyError
        ({"min": "x", "max": 1}, "width range min must be a finite number, got 'x'"),  # was float()'s ValueError
        ({"min": 0.25, "max": None}, "width range max must be a finite number, got None"),
        ({"min": 0.25, "max": 1, "divisor": 2.5}, "width range divisor must be a finite positive integer, got 2.5"),
        ({"min": 0.5, "max": 1, "divisor": math.nan}, "width range divisor must be a finite positive integer, got nan"),
    ],
)
def test_width_range_from_dict_refuses_a_document_without_numbers(doc: object, message: str) -> None:
    with pytest.raises(US3LError) as err:  # divisor 2.5 was truncated to 2 without a word
        WidthRange.from_dict(doc)  # type: ignore[arg-type]
    assert str(err.value) == message
    assert WidthRange.from_dict({"min": 0.25, "max": 1, "divisor": 8.0}) == WidthRange(0.25, 1.0, 8)
