"""Run commands and move files on *this* machine with the same methods as ``us3l.devices.ssh.SSHSession``.

The TensorRT timing code (``us3l.profiler.trt_timers``) is written once against this small interface
(``run``, ``mkdtemp``, ``rmtree``, ``put``, ``mkdir``, ``read_text``) and works locally (on the board) or over SSH.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
from pathlib import Path
from typing import IO, Protocol

from us3l.devices import ssh
from us3l.devices.ssh import CommandResult, OutputTooLarge
from us3l.errors import US3LError
from us3l.io import owned_temp_dir, read_at_most


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
        """Run ``argv`` and wait for it, as ``SSHSession.run`` does on a device: ``check`` raises on non-zero exit; a
        command still running after ``timeout`` seconds is killed, and so is one that writes more than
        ``devices.ssh.MAX_OUTPUT_BYTES`` to its standard output (``OutputTooLarge``, read no further; of its standard
        error the last ``MAX_OUTPUT_BYTES`` are kept)."""
        timeout = self.command_timeout_s if timeout is None else timeout
        limit = ssh.MAX_OUTPUT_BYTES
        cmd = shlex.join(argv)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise US3LError(f"command not found: {argv[0]}") from None
        out, err = bytearray(), bytearray()
        too_large = threading.Event()

        def read_out(pipe: IO[bytes]) -> None:  # bounded: a command printing without end is not read to its end
            while chunk := os.read(pipe.fileno(), 1 << 16):
                out.extend(chunk)
                if len(out) > limit:
                    too_large.set()
                    proc.kill()
                    return

        def read_err(pipe: IO[bytes]) -> None:  # read as it comes (unread, a full pipe blocks the command): its end
            while chunk := os.read(pipe.fileno(), 1 << 16):
                err.extend(chunk)
                del err[:-limit]

        readers = [threading.Thread(target=f, args=(p,), daemon=True)
                   for f, p in ((read_out, proc.stdout), (read_err, proc.stderr))]
        for t in readers:
            t.start()
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        except BaseException:  # Ctrl-C: the command does not outlive us3l (as subprocess.run)
            proc.kill()
            raise
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for t in readers:  # a child the command left holding its pipes: not waited on for long
                t.join(5.0)
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None and not any(t.is_alive() for t in readers):
                    pipe.close()
        if too_large.is_set():
            raise OutputTooLarge(f"command wrote more than {limit >> 20} MiB to its standard output, which no command "
                                 f"us3l runs does: {cmd[:200]}")
        if rc is None:
            raise US3LError(f"command timed out after {timeout:g} s: {cmd}")
        res = CommandResult(rc, _text(bytes(out)), _text(bytes(err)))
        if check and rc != 0:
            tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise US3LError(f"command failed (exit {rc}): {cmd}: {tail[0]}")
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
        """The text of a file of at most ``devices.ssh.MAX_OUTPUT_BYTES`` (a larger one: ``OutputTooLarge``, read no
        further), as ``SSHSession.read_text`` reads one on a device."""
        limit = ssh.MAX_OUTPUT_BYTES
        with open(remote, "rb") as fh:
            data = read_at_most(fh, limit)
        if data is None:
            raise OutputTooLarge(f"reading {remote} failed: the file is larger than {limit >> 20} MiB, which no file "
                                 "us3l reads back is")
        return _text(data)


def _text(data: bytes) -> str:
    """Bytes a command wrote or a file held, as text: UTF-8 (a byte that is not: U+FFFD), line ends as ``\\n`` (as
    ``subprocess.run(text=True)`` and ``Path.read_text`` read them before the reads were bounded)."""
    return data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
