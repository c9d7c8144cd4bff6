"""The bounded reads of an executor (``SSHSession`` on a device, ``LocalExecutor`` on the board itself), checked
alike: with ``devices.ssh.MAX_OUTPUT_BYTES`` lowered to 1 MiB, a command writing 2 MB to its standard output is
stopped (``OutputTooLarge``) and gone, exactly 1 MiB is read whole with the last 1 MiB of its standard error, a 2 MB
file is refused and a 1 MiB one read."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from us3l.devices.ssh import OutputTooLarge


def check_bounded_reads(ex: Any, tmp_path: Path, command: str, file_prefix: str, **run_kw: Any) -> float:
    """The checks above on ``ex``, whose errors name a command as ``command`` (``"command"``, ``"remote command on
    URL"``) and a file as ``file_prefix`` + its path; ``run_kw``: ``ex.run``'s options. Returns the seconds the
    2 MB command took to be refused."""
    pid_file = tmp_path / "pid"
    t0 = time.monotonic()
    with pytest.raises(OutputTooLarge) as info:  # was read whole: 2 MB returned after the command's 30 s
        ex.run(["sh", "-c", f'echo $$ > "{pid_file}"; head -c 2000000 /dev/zero; exec sleep 30'], **run_kw)
    took = time.monotonic() - t0
    assert str(info.value) == (f"{command} wrote more than 1 MiB to its standard output, which no command us3l runs "
                               f"does: sh -c 'echo $$ > \"{pid_file}\"; head -c 2000000 /dev/zero; exec sleep 30'")
    with pytest.raises(ProcessLookupError):  # stopped, not left printing
        os.kill(int(pid_file.read_text()), 0)
    res = ex.run(["sh", "-c", "head -c 1048576 /dev/zero; head -c 2000000 /dev/zero | tr '\\0' e >&2; printf x >&2"],
                 **run_kw)
    assert (res.returncode, len(res.stdout), len(res.stderr), res.stderr[-2:]) == (0, 1 << 20, 1 << 20, "ex")
    (tmp_path / "big").write_bytes(b"t" * 2000000)
    with pytest.raises(OutputTooLarge) as info:  # was read whole
        ex.read_text(str(tmp_path / "big"))
    assert str(info.value) == (f"reading {file_prefix}{tmp_path / 'big'} failed: the file is larger than 1 MiB, which "
                               "no file us3l reads back is")
    (tmp_path / "fits").write_bytes(b"t" * (1 << 20))
    assert len(ex.read_text(str(tmp_path / "fits"))) == 1 << 20
    return took
