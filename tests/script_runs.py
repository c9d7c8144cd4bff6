"""Run several ``python SCRIPT ARGS...`` command lines in one fresh interpreter, for tests of what a script prints
and how it exits (tests/test_script_cli.py).

Each script starting its own interpreter pays torch's import (about a second of CPU) again, which is most of what a
usage-error test costs. Here one child process runs the command lines one after the other, each as Python would
run it: ``sys.argv`` as typed, the script's folder first on ``sys.path``, executed as ``__main__``, file
descriptors 1 and 2 captured (so that output from C libraries and import-time warnings are seen too), its exit
status taken from ``SystemExit`` and an uncaught exception printed as a traceback with status 1. A module imported
by an earlier command line is not imported again by a later one, as in any warm process.

Run as a file (``python tests/script_runs.py RESULTS.json`` with the command lines as JSON on stdin): stdlib only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import runpy
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class ScriptRun:
    """What one command line did: its exit status and everything it wrote to stdout and stderr."""

    returncode: int
    stdout: str
    stderr: str


def run_scripts(argvs: Sequence[Sequence[str]], cwd: Path, timeout: float = 300.0) -> list[ScriptRun]:
    """Run each of ``argvs`` (``[script path, *args]``, as after ``python``) in one fresh interpreter in ``cwd``."""
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.json"
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(results)], cwd=cwd,
                              input=json.dumps([list(a) for a in argvs]), capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0 or not results.is_file():
            raise RuntimeError(f"the script runner failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
        return [ScriptRun(**r) for r in json.loads(results.read_text())]


def _exit_status(exc: SystemExit, err: object) -> int:
    """The status Python exits with on ``sys.exit(code)``; a code that is not an int is printed, as Python does."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=err)  # type: ignore[call-overload]
    return 1


def _run_one(argv: list[str]) -> ScriptRun:
    sys.argv = list(argv)
    sys.path[0] = str(Path(argv[0]).resolve().parent)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            try:
                runpy.run_path(argv[0], run_name="__main__")
                code = 0
            except SystemExit as exc:
                code = _exit_status(exc, sys.stderr)
            except BaseException:  # noqa: BLE001 - what Python does with an uncaught exception
                traceback.print_exc()
                code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        out.seek(0)
        err.seek(0)
        return ScriptRun(code, out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def main() -> None:
    results = Path(sys.argv[1])  # before the command lines replace sys.argv
    argvs = json.loads(sys.stdin.read())
    runs = [dataclasses.asdict(_run_one(a)) for a in argvs]
    results.write_text(json.dumps(runs))


if __name__ == "__main__":
    main()
