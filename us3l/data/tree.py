"""The image files of one class folder of an ImageFolder tree, found the same way on every machine.

Folders are walked with their symbolic links followed. A folder that cannot be read, a link back to a folder being
walked (a loop, which would also put other classes' images into this one) and a file with an image extension that
is not a readable regular file (a dangling link; a FIFO, which would block the reading worker) are each a one-line
``US3LError`` naming the path, never skipped.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from us3l.errors import US3LError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff"}
)
#: Folder names skipped like hidden (dot) names, at every level of a folder tree: Synology's thumbnail folders.
SKIPPED_NAMES = frozenset({"@eaDir"})


def skipped(name: str) -> bool:
    """Hidden files and folders (macOS ``._*`` AppleDouble files, ``.DS_Store``, ``.thumbnails/``) and
    :data:`SKIPPED_NAMES`: metadata, not images of the class."""
    return name.startswith(".") or name in SKIPPED_NAMES


def image_files(folder: Path) -> list[Path]:
    """The image files under ``folder`` (recursively, links followed, sorted), none inside or named by a skipped
    name; an unreadable folder, a link loop or an image name that is no regular file is a ``US3LError``."""
    found: list[Path] = []
    walked: set[Path] = set()
    _refuse_loop(folder, Path(os.path.realpath(folder.parent)), walked)

    def unreadable(exc: OSError) -> None:
        raise US3LError(f"cannot read folder {exc.filename or folder}: {exc.strerror or exc}")

    for root, dirs, files in os.walk(folder, onerror=unreadable, followlinks=True):
        here = Path(root)
        real = Path(os.path.realpath(here))
        walked.add(real)
        dirs[:] = [d for d in dirs if not skipped(d)]
        for d in dirs:
            _refuse_loop(here / d, real, walked)
        found.extend(_images(here, files))
    return sorted(found)


def _images(folder: Path, names: Iterable[str]) -> list[Path]:
    images = []
    for name in names:
        path = folder / name
        if skipped(name) or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            what = "a broken symbolic link" if path.is_symlink() else "unreadable"
            raise US3LError(f"cannot read image {path}: {what} ({exc.strerror or exc})") from None
        if not stat.S_ISREG(mode):
            raise US3LError(f"cannot read image {path}: not a regular file; move it out of the class folder")
        images.append(path)
    return images


def _refuse_loop(path: Path, parent_real: Path, walked: set[Path]) -> None:
    """Refuse a link to a folder that contains it (``a/loop -> ..``) or that this walk has read already (``a/x ->
    ../b`` beside ``b/y -> ../a``): walking it never ends, or reads the images of sibling classes into this one."""
    if not path.is_symlink():
        return
    target = Path(os.path.realpath(path))
    if target == parent_real or target in parent_real.parents or target in walked:
        raise US3LError(f"{path} is a symbolic link to {target}, a folder that contains it or is read already "
                        "(a loop); remove the link")
