"""How a command reports that it cannot write its outputs: one ``error:`` line naming the path in the system's
words (``<strerror>: <path>``, as every other OS error), exit 1, nothing of the user's lost and no temporary file
left. Destinations: a path under ``/proc`` (no file can be made there), a file where a folder is needed, a full
disk (simulated: a write that fails with ENOSPC names no file)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.report.conftest import make_accuracy, make_profile, make_run, make_selection
from us3l.cli import main

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")


def _select(root: Path) -> list[str]:
    return ["select", "--profile", str(make_profile(root)), "--accuracy", str(make_accuracy(root)),
            "--latency-ms", "100", "--quiet"]


def _report(root: Path) -> list[str]:
    make_run(root)
    make_selection(root)
    return ["report", str(root), "--quiet"]


COMMANDS = {"select": _select, "report": _report}


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and err.endswith(lines[0] + "\n"), err
    assert "[Errno" not in err and "Traceback" not in err, err
    return lines[0]


@linux_only
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(("out", "named"), [
    ("/proc", "/proc/{file}"),  # a folder that holds no new file: the file is named
    ("/proc/us3l-x", "/proc/us3l-x"),  # a folder that cannot be made there: that folder is named
    ("/proc/us3l-x/{file}", "/proc/us3l-x"),  # the file itself
])
def test_an_out_under_proc_is_the_system_s_words_and_the_path(
    command: str, out: str, named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`us3l report DIR --out /proc` said `error: [Errno 2] No such file or directory: '/proc/report.html'`: a
    FileNotFoundError (or PermissionError) was printed as Python's text, unlike every other OS error."""
    file = {"select": "selection.json", "report": "report.html"}[command]
    argv = COMMANDS[command](tmp_path / "in")
    before = sorted(p for p in tmp_path.rglob("*"))
    assert main([*argv, "--out", out.format(file=file)]) == 1
    assert _one_error_line(capsys) == f"error: No such file or directory: {named.format(file=file)}"
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing new, nothing lost


def test_run_script_words_every_os_error_alike(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from us3l.cli import run_script

    monkeypatch.delenv("US3L_DEBUG", raising=False)

    def boom(exc: Exception):
        def main() -> int:
            raise exc
        return main

    cases = [
        (FileNotFoundError(2, "No such file or directory", "/proc/report.html"),
         "No such file or directory: /proc/report.html"),
        (PermissionError(13, "Permission denied", "/ro/selection.json"), "Permission denied: /ro/selection.json"),
        (OSError(28, "No space left on device"), "No space left on device"),
        (OSError(18, "Invalid cross-device link", "/a", None, "/b"), "Invalid cross-device link: /a -> /b"),
        (FileNotFoundError("no checkpoint in /x"), "no checkpoint in /x"),  # a message of our own stays as it is
    ]
    for exc, text in cases:
        assert run_script(boom(exc)) == 1
        assert capsys.readouterr().err == f"error: {text}\n"
