"""``LocalExecutor``, trtexec on the board itself: the same interface, and the same bounds, as ``SSHSession``."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from us3l.devices import ssh
from us3l.devices.ssh import OutputTooLarge
from us3l.errors import US3LError
from us3l.profiler.executors import LocalExecutor


def test_a_commands_output_and_a_file_are_read_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``LocalExecutor.run`` read a command's output and ``read_text`` a file (trtexec's --exportTimes) to its end,
    however large, where ``SSHSession`` reads at most ``devices.ssh.MAX_OUTPUT_BYTES`` (here lowered to 1 MiB) and
    says so: trtexec printing without end on the board filled the memory."""
    monkeypatch.setattr(ssh, "MAX_OUTPUT_BYTES", 1 << 20)
    ex = LocalExecutor(60)
    pid_file = tmp_path / "pid"
    argv = ["sh", "-c", f'echo $$ > "{pid_file}"; head -c 2000000 /dev/zero; exec sleep 30']
    t0 = time.monotonic()
    with pytest.raises(OutputTooLarge) as info:  # was read whole: 2 MB returned after 30 s
        ex.run(argv)
    assert time.monotonic() - t0 < 20  # stopped, not waited for
    assert str(info.value) == ("command wrote more than 1 MiB to its standard output, which no command us3l runs "
                               f"does: sh -c 'echo $$ > \"{pid_file}\"; head -c 2000000 /dev/zero; exec sleep 30'")
    with pytest.raises(ProcessLookupError):  # killed, not left printing
        os.kill(int(pid_file.read_text()), 0)
    res = ex.run(["sh", "-c", "head -c 1048576 /dev/zero; head -c 2000000 /dev/zero | tr '\\0' e >&2; printf x >&2"])
    assert (res.returncode, len(res.stdout), len(res.stderr), res.stderr[-2:]) == (0, 1 << 20, 1 << 20, "ex")
    (tmp_path / "big").write_bytes(b"t" * 2000000)
    with pytest.raises(OutputTooLarge) as info:  # was read whole
        ex.read_text(str(tmp_path / "big"))
    assert str(info.value) == (f"reading {tmp_path / 'big'} failed: the file is larger than 1 MiB, which no file "
                               "us3l reads back is")
    (tmp_path / "fits").write_bytes(b"t" * (1 << 20))
    assert len(ex.read_text(str(tmp_path / "fits"))) == 1 << 20


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
