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
                                     "number <= 3600, got nan"),
        ('{"samples": [0.001, -Infinity]}', "remote runner on ssh://pi@board:22: samples[1] must be a finite "
                                           "positive number <= 3600, got -inf"),
        ('{"samples": [0.001, "fast"]}', "remote runner on ssh://pi@board:22: samples[1] must be a finite "
                                        "positive number <= 3600, got 'fast'"),
        # red-team 2026-12-08: 1e300 s was recorded as measured (every sample alike), a mix refused only when the
        # profile was written, after the whole sweep
        ('{"samples": [1e300, 0.001]}', "remote runner on ssh://pi@board:22: samples[0] must be a finite positive "
                                       "number <= 3600, got 1e+300"),
        ('{"samples": [0.001, 3600.5]}', "remote runner on ssh://pi@board:22: samples[1] must be a finite "
                                        "positive number <= 3600, got 3600.5"),
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
    assert _runner('{"samples": [3600, 1e-9]}').timer("w0.5")(2) == [3600, 1e-9]  # the bound itself: taken


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


@pytest.mark.parametrize(("answer", "message"), [
    ('{"rss_bytes": -5, "peak_rss_bytes": 80000000, "available_bytes": null, "live": 0}',
     "rss_bytes must be an integer from 1 to 1125899906842624 or null, got -5"),
    ('{"rss_bytes": 50000000, "peak_rss_bytes": 1000000000000000000000000000000, "available_bytes": null}',
     "peak_rss_bytes must be an integer from 1 to 1125899906842624 or null, got 1000000000000000000000000000000"),
    ('{"rss_bytes": 50000000.0}', "rss_bytes must be an integer from 1 to 1125899906842624 or null, got 50000000.0"),
    ('{"rss_bytes": true}', "rss_bytes must be an integer from 1 to 1125899906842624 or null, got True"),
    ('{"available_bytes": "lots"}', "available_bytes must be an integer from 0 to 1125899906842624 or null, "
                                    "got 'lots'"),
    ('{"rss_bytes": 50000000, "live": 3}', "live must be an integer from 0 to 1, got 3"),  # one model given
    ('{"loaded": "w0.5", "session_bytes": -1}', "session_bytes must be an integer from 0 to 1125899906842624, "
                                                "got -1"),
    ('{"full": true, "limit_bytes": null}', "limit_bytes must be an integer from 1 to 1125899906842624, got None"),
    ('{"ready": true, "threads": 100000}', "threads must be an integer from 1 to 65536, got 100000"),
])
def test_a_memory_fact_is_checked_when_it_arrives(answer: str, message: str) -> None:
    """Red-team 2026-12-08: the runner's memory facts were only checked to be integers (sweep.py's stat): a
    negative RSS was the window plan's baseline and written into the profile, a peak of 10**30 was recorded, a
    negative peak refused the profile only when it was written, after the whole sweep."""
    runner = _runner(answer)
    runner.models = {"w0.5": ([], [1, 3, 32, 32])}  # type: ignore[dict-item]
    with pytest.raises(US3LError) as info:
        runner.stat()
    assert str(info.value) == f"remote runner on ssh://pi@board:22: {message}"
    assert runner.failed


def test_a_device_with_more_than_1024_cpus_is_taken() -> None:
    """MAX_THREADS was 1024: a runner on a 2048-thread device (it reports the cores it may use) was refused as if
    its count were garbage. Real hardware passes; a garbage count is still refused (the parametrized test above)."""
    assert _runner('{"ready": true, "threads": 2048}')._read()["threads"] == 2048
    assert _runner('{"ready": true, "threads": 65536}')._read()["threads"] == 65536


def _started(ready: str) -> RemoteRunner:
    """A runner started (``_upload_and_run``, no models) whose ready line is ``ready``."""
    reach = Reach(kind="ssh", user="pi", host="board", port=22)
    session = SimpleNamespace(reach=reach, put=lambda *a: None, mkdir=lambda *a: None, write_bytes=lambda *a: None)
    session.start = lambda argv, keep_stderr=0: RemoteProcess(  # type: ignore[attr-defined]
        session, 4242, io.StringIO(), _Out(ready + "\n"), io.StringIO())  # type: ignore[arg-type]
    r = RemoteRunner(session, "onnx", {}, threads=1)  # type: ignore[arg-type]
    r.workdir = "/tmp/us3l-profile-x"
    r._upload_and_run()
    return r


@pytest.mark.parametrize(("threads", "message"), [
    (None, "remote runner on ssh://pi@board:22 sent a ready line without threads (the thread count it runs with)"),
    ("4.0", "remote runner on ssh://pi@board:22: threads must be an integer from 1 to 65536, got 4.0"),
    ("null", "remote runner on ssh://pi@board:22: threads must be an integer from 1 to 65536, got None"),
    ("0", "remote runner on ssh://pi@board:22: threads must be an integer from 1 to 65536, got 0"),
])
def test_the_ready_line_threads_are_checked_once(threads: str | None, message: str) -> None:
    """The ready line's threads were checked twice: bounded as every fact is when the line arrived (FACTS), then
    again by number() in start, which only added that it is present. Now FACTS bounds it and start only asks for
    it to be there."""
    base = '"ready": true, "version": "1.17.3", "fingerprint": {"cpu": "x"}'
    with pytest.raises(US3LError) as info:
        _started("{" + base + ("" if threads is None else f', "threads": {threads}') + "}")
    assert str(info.value) == message
    assert _started("{" + base + ', "threads": 4}').ready["threads"] == 4


def test_memory_facts_the_runner_may_not_know_pass_as_null() -> None:
    answer = '{"rss_bytes": 53325824, "peak_rss_bytes": null, "available_bytes": 0, "live": 0}'
    assert _runner(answer).stat()["rss_bytes"] == 53325824
