"""Run commands and move files on *this* machine with the same methods as ``us3l.devices.ssh.SSHSession``.

The TensorRT timing code (``us3l.profiler.trt_timers``) is written once against this small interface
(``run``, ``mkdtemp``, ``rmtree``, ``put``, ``mkdir``, ``read_text``) and works locally (on the board) or over SSH.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Protocol

from us3l.devices.ssh import CommandResult
from us3l.errors import US3LError
from us3l.io import owned_temp_dir


class Executor(Protocol):
    """What ``trt_timers`` needs from a machine."""

    def run(self, argv: list[str], timeout: float | None = None, check: bool = False) -> CommandResult: ...
    def mkdtemp(self, prefix: str = "us3l") -> str: ...
    def rmtree(self, path: str) -> None: ...
    def mkdir(self, path: str) -> None: ...
    def put(self, local: str | Path, remote: str) -> None: ...
    def read_text(self, remote: str) -> str: ...


class LocalExecutor:
    """Subprocesses and plain file copies on this machine."""

    def __init__(self, command_timeout_s: float = 600.0) -> None:
        self.command_timeout_s = command_timeout_s

    def run(self, argv: list[str], timeout: float | None = None, check: bool = False) -> CommandResult:
        timeout = self.command_timeout_s if timeout is None else timeout
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise US3LError(f"command timed out after {timeout:g} s: {shlex.join(argv)}") from None
        except FileNotFoundError:
            raise US3LError(f"command not found: {argv[0]}") from None
        res = CommandResult(out.returncode, out.stdout, out.stderr)
        if check and out.returncode != 0:
            tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise US3LError(f"command failed (exit {out.returncode}): {shlex.join(argv)}: {tail[0]}")
        return res

    def mkdtemp(self, prefix: str = "us3l") -> str:
        return str(owned_temp_dir(f"{prefix}."))  # marked as ours: an export's clean-up may remove it once stale

    def rmtree(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def mkdir(self, path: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)

    def put(self, local: str | Path, remote: str) -> None:
        shutil.copyfile(local, remote)

    def read_text(self, remote: str) -> str:
        return Path(remote).read_text(encoding="utf-8", errors="replace")
