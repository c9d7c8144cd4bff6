"""``LocalExecutor``, trtexec on the board itself: the same interface, and the same bounds, as ``SSHSession``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.bounded_reads import check_bounded_reads
from us3l.devices import ssh
from us3l.errors import US3LError
from us3l.profiler.executors import LocalExecutor


@pytest.mark.slow  # 5.0 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_commands_output_and_a_file_are_read_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``LocalExecutor.run`` read a command's output and ``read_text`` a file (trtexec's --exportTimes) to its end,
    however large, where ``SSHSession`` reads at most ``devices.ssh.MAX_OUTPUT_BYTES`` (here lowered to 1 MiB) and
    says so: trtexec printing without end on the board filled the memory."""
    monkeypatch.setattr(ssh, "MAX_OUTPUT_BYTES", 1 << 20)
    assert check_bounded_reads(LocalExecutor(60), tmp_path, "command", "") < 20  # stopped, not waited for


def test_run_keeps_its_answers(tmp_path: Path) -> None:
    """What the bounded reads must not change: text with its line ends as before, exit status, check, timeout, a
    missing command."""
    ex = LocalExecutor(60)
    res = ex.run([sys.executable, "-c", "import sys; sys.stdout.write('a\\r\\nb\\n'); sys.stderr.write('w\\xe9\\n'); "
                  "sys.exit(3)"])
    assert (res.returncode, res.stdout, res.stderr) == (3, "a\nb\n", "wé\n")
    with pytest.raises(US3LError, match=r"^command failed \(exit 3\): sh -c 'echo no >&2; exit 3': no$"):
        ex.run(["sh", "-c", "echo no >&2; exit 3"], check=True)
    with pytest.raises(US3LError, match=r"^command timed out after 0\.5 s: sleep 30$"):
        ex.run(["sleep", "30"], timeout=0.5)
    with pytest.raises(US3LError, match=r"^command not found: no-such-command-us3l$"):
        ex.run(["no-such-command-us3l"])
