"""The image files of one class folder of an ImageFolder tree, found the same way on every machine.

Folders are walked with their symbolic links followed. A folder that cannot be read, a link back to a folder being
walked (a loop, which would also put other classes' images into this one), a link (to a folder or to an image) into
another class folder or to a folder that holds one (its images would carry two labels, and a test image could sit in
the training split under another name) and a file with an image extension that is not a readable regular file (a
dangling link; a FIFO, which would block the reading worker) are each a one-line ``US3LError`` naming the path,
never skipped.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
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


class ClassFolders:
    """The real paths of every class folder of a data set (both splits), to refuse a link from one class folder
    into another. A link is looked up by its target's ancestors (sets), so it costs the target's depth, not the
    class count: a symlink farm of ImageNet (1.28 M image links, 1000 classes) is checked in seconds."""

    def __init__(self, folders: Iterable[Path]) -> None:
        self.folders = frozenset(folders)
        # each ancestor of a class folder -> up to two class folders it holds (one of them may be the link's own)
        self._held: dict[Path, list[Path]] = {}
        for folder in sorted(self.folders):
            for parent in folder.parents:
                held = self._held.setdefault(parent, [])
                if len(held) < 2:
                    held.append(folder)

    def refuse_link(self, path: Path, target: Path, own: Path) -> None:
        """Refuse the link ``path`` (inside the class folder whose real path is ``own``) when its real ``target``
        is another class folder, lies inside one (``a/x -> ../b``, ``a/0.png -> ../b/0.png``) or holds one
        (``train/a/x -> ../../test``): its images would be read as this class too (two labels for one image; a
        test image in the training split under another name)."""
        where = None
        if target != own and target in self.folders:
            where = f"the class folder {target}"
        else:
            inside = next((p for p in target.parents if p != own and p in self.folders), None)
            if inside is not None:
                where = f"inside the class folder {inside}"
            else:
                held = next((f for f in self._held.get(target, ()) if f != own), None)
                if held is not None:
                    where = f"a folder that holds the class folder {held}"
        if where is not None:
            raise US3LError(f"{path} is a symbolic link to {target}, {where}: its images would be read with two "
                            "labels; remove the link")


#: What the walk learns of each image file from the one ``stat`` it makes of it (links followed): its size in bytes
#: and its ``(st_dev, st_ino)``, which the data fingerprint (``us3l.train.data_identity``) and the train/test overlap
#: check (``us3l.data.overlap``) use rather than ``stat`` the file again (a folder data set keeps them per sample:
#: ``us3l.data.datasets.SampleStats``).
FileStat = tuple[int, tuple[int, int]]
#: Each image file a walk found (its path as listed) -> its :data:`FileStat`.
FileStats = dict[Path, FileStat]


def image_files(folder: Path, fences: ClassFolders | None = None, stats: FileStats | None = None) -> list[Path]:
    """The image files under ``folder`` (recursively, links followed, sorted), none inside or named by a skipped
    name; an unreadable folder, a link loop, a link into another class folder of ``fences`` (the data set's class
    folders) or an image name that is no regular file is a ``US3LError``. ``stats``: filled with each image's
    :data:`FileStat`, from the ``stat`` that checks it."""
    found: list[Path] = []
    walked: set[Path] = set()
    own = Path(os.path.realpath(folder))
    link = (lambda path, target: fences.refuse_link(path, target, own)) if fences is not None else None
    _refuse_loop(folder, Path(os.path.realpath(folder.parent)), walked, link)

    def unreadable(exc: OSError) -> None:
        raise US3LError(f"cannot read folder {exc.filename or folder}: {exc.strerror or exc}")

    for root, dirs, files in os.walk(folder, onerror=unreadable, followlinks=True):
        here = Path(root)
        real = Path(os.path.realpath(here))
        walked.add(real)
        dirs[:] = [d for d in dirs if not skipped(d)]
        for d in dirs:
            _refuse_loop(here / d, real, walked, link)
        found.extend(_images(here, files, link, stats))
    return sorted(found)


def holds_files(folder: Path) -> bool:
    """Whether any file not skipped (``skipped``) lies under ``folder`` (recursively; links to folders not
    followed): for a class folder without images, whether it holds files of another kind (.heic, .jfif)."""
    for _, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not skipped(d)]
        if any(not skipped(name) for name in files):
            return True
    return False


#: A check of one link (its path, its real target) against the other class folders (``ClassFolders.refuse_link``).
LinkCheck = Callable[[Path, Path], None]


def _images(folder: Path, names: Iterable[str], link: LinkCheck | None = None,
            stats: FileStats | None = None) -> list[Path]:
    images = []
    for name in names:
        path = folder / name
        if skipped(name) or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        try:
            st = os.lstat(path)  # one call for a regular file, as stat() was; a link is followed below
            if stat.S_ISLNK(st.st_mode):
                if link is not None:
                    link(path, Path(os.path.realpath(path)))
                st = path.stat()
        except OSError as exc:
            what = "a broken symbolic link" if path.is_symlink() else "unreadable"
            raise US3LError(f"cannot read image {path}: {what} ({exc.strerror or exc})") from None
        if not stat.S_ISREG(st.st_mode):
            raise US3LError(f"cannot read image {path}: not a regular file; move it out of the class folder")
        images.append(path)
        if stats is not None:
            stats[path] = (st.st_size, (st.st_dev, st.st_ino))
    return images


def _refuse_loop(path: Path, parent_real: Path, walked: set[Path], link: LinkCheck | None = None) -> None:
    """Refuse a link to a folder that contains it (``a/loop -> ..``) or that this walk has read already (``a/x ->
    ../b`` beside ``b/y -> ../a``): walking it never ends, or reads the images of sibling classes into this one;
    and a link into another class folder (``link``: ``ClassFolders.refuse_link``)."""
    if not path.is_symlink():
        return
    target = Path(os.path.realpath(path))
    if target == parent_real or target in parent_real.parents or target in walked:
        raise US3LError(f"{path} is a symbolic link to {target}, a folder that contains it or is read already "
                        "(a loop); remove the link")
    if link is not None:
        link(path, target)
