"""Atomic file writes and common metadata (schema version, tool version, environment) for result files."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from us3l.errors import US3LError
from us3l.version import __version__


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file over ``path``.

    A reader never sees a half-written file: an interrupted write leaves only a ``.tmp`` file behind,
    which is removed on error.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def read_json(path: str | Path, what: str = "file") -> Any:
    """Read a JSON file, turning a missing or malformed file into a one-line ``US3LError``."""
    path = Path(path)
    if not path.is_file():
        raise US3LError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise US3LError(f"{what} {path} is not valid JSON: {exc}") from None


def check_schema(doc: Any, kind: str, version: int, path: str | Path) -> None:
    """Reject a result document of another kind or schema version with a clear message."""
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        raise US3LError(f"{path} is not a us3l {kind} file")
    found = doc.get("schema_version")
    if found != version:
        raise US3LError(
            f"{path} has {kind} schema version {found}, this us3l ({__version__}) reads version {version}"
        )


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def header(kind: str, version: int) -> dict[str, Any]:
    """The common head of every result file: what it is, which schema, which tool, which environment."""
    return {
        "kind": kind,
        "schema_version": version,
        "tool": "us3l",
        "tool_version": __version__,
        "environment": basic_environment(),
    }


def basic_environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    try:
        import torch

        env["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return env
