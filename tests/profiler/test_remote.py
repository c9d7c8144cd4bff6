"""The host side of the remote runner refuses answers that are not measurements (NaN, <= 0, wrong count)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest

from us3l.devices.spec import Reach
from us3l.devices.ssh import RemoteProcess
from us3l.errors import US3LError
from us3l.profiler.remote import RemoteRunner


class _Out(io.StringIO):
    channel = None


def _runner(answer: str) -> RemoteRunner:
    reach = Reach(kind="ssh", user="pi", host="board", port=22)
    session = SimpleNamespace(reach=reach)
    r = RemoteRunner(session, "onnx", {}, threads=1)  # type: ignore[arg-type]
    r._proc = RemoteProcess(session, 4242, io.StringIO(), _Out(answer + "\n"), io.StringIO())  # type: ignore[arg-type]
    return r


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ('{"samples": [NaN, 0.001]}', "remote runner on ssh://pi@board:22: samples[0] must be a finite positive "
                                     "number, got nan"),
        ('{"samples": [0.001, -Infinity]}', "remote runner on ssh://pi@board:22: samples[1] must be a finite "
                                           "positive number, got -inf"),
        ('{"samples": [0.001, "fast"]}', "remote runner on ssh://pi@board:22: samples[1] must be a finite "
                                        "positive number, got 'fast'"),
        ('{"samples": [0.001]}', "remote runner on ssh://pi@board:22 answered 1 samples, asked for 2 samples"),
        ('{"ready": true}', "remote runner on ssh://pi@board:22 answered None, asked for 2 samples"),
    ],
)
def test_remote_samples_are_validated(answer: str, message: str) -> None:
    timer = _runner(answer).timer("w0.5")
    with pytest.raises(US3LError) as info:
        timer(2)
    assert str(info.value) == message


def test_valid_remote_samples_pass() -> None:
    assert _runner('{"samples": [0.001, 0.002]}').timer("w0.5")(2) == [0.001, 0.002]


def test_an_answer_nested_too_deep_is_not_json() -> None:
    """Red-team 2026-12-05: only JSONDecodeError was caught, so a device answering a deeply nested array ended the
    sweep with "error: RecursionError"."""
    answer = "[" * 100_000 + "]" * 100_000
    with pytest.raises(US3LError) as info:
        _runner(answer).timer("w0.5")(2)
    assert str(info.value) == f"remote runner sent something that is not JSON: {(answer + chr(10))[:200]!r}"


def test_an_answer_longer_than_the_bound_is_refused_unread() -> None:
    """Red-team 2026-12-07: an answer line was read to its end, however long (a device printing without end filled
    the host's memory); a valid one of 5 MiB was taken whole (its padding bound for the profile's fingerprint)."""
    from us3l.profiler.remote import MAX_ANSWER_BYTES

    answer = '{"samples": [0.001, 0.002], "pad": "' + "x" * (5 << 20) + '"}'
    with pytest.raises(US3LError) as info:
        _runner(answer).timer("w0.5")(2)
    assert str(info.value) == (f"remote runner on ssh://pi@board:22 sent an answer longer than 4 MiB, which no runner "
                               f"answer is: {answer[:80]!r}...")
    assert MAX_ANSWER_BYTES == 4 << 20
    ok = '{"samples": [0.001, 0.002], "pad": "' + "x" * (MAX_ANSWER_BYTES - 100) + '"}'
    assert _runner(ok).timer("w0.5")(2) == [0.001, 0.002]  # just under the bound: read
