"""Symbolic links that lead to no folder, for the tests of `--out` and folder locking (us3l.io.broken_link_error)."""

from __future__ import annotations

from pathlib import Path


def link_to_no_folder(path: Path, kind: str) -> str:
    """Make ``path`` a symbolic link that leads to no folder: ``kind`` "loop" (through a second link ``other`` beside
    it) or "dangling" (to a missing target ``missing`` beside it). Returns the error following it gives, as us3l
    words it."""
    if kind == "loop":
        path.symlink_to(path.parent / "other")
        (path.parent / "other").symlink_to(path)
        return f"Too many levels of symbolic links: {path}"
    path.symlink_to(path.parent / "missing")
    return f"No such file or directory: {path} -> {path.parent / 'missing'}"
