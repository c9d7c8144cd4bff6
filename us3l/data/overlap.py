"""Test images of an image folder that are byte-identical to a training image (a copy under another name, a hard or
symbolic link): evaluated, each is matched to itself in the kNN bank and was seen by the linear probe (and by the
network, where it trained on the folder), so the accuracy overstates.

Cheap by construction: every file is ``os.stat``-ed once (by the folder walk, whose sizes and inodes the data sets
carry: ``file_stats``); only test files with a training file of the same size
are candidates. A candidate that is the same file as a training one (``(st_dev, st_ino)``: a hard link, or a symbolic
link, which ``stat`` follows) is identical without a read; the others are compared by the sha256 of their first
``HEAD_BYTES``, then, where those agree and the files are longer, of the whole file. A file is read at most twice (its
head, then all of it); a file whose size no file of the other split has is never opened.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from us3l.data.tree import FileStat
from us3l.io import file_sha256

#: The bytes hashed first; the whole file is hashed only where these agree with a training file's.
HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Overlap:
    """``count`` test files identical to some training file; ``first``: the first of them in sorted order and a
    training file it equals (one linked to it where there is one, else the first of its content in sorted order;
    None when ``count`` is 0)."""

    count: int
    first: tuple[Path, Path] | None = None


def _digest(path: Path, limit: int | None) -> str | None:
    """sha256 of the first ``limit`` bytes of ``path`` (all of it: None); None where it cannot be read (the data
    loader reports such a file when it reads it)."""
    try:
        if limit is None:
            return file_sha256(path)
        with open(path, "rb") as f:
            return hashlib.sha256(f.read(limit)).hexdigest()
    except OSError:
        return None


@dataclass(frozen=True)
class _File:
    path: Path
    size: int
    inode: tuple[int, int]


def _stat_all(paths: Sequence[Path], known: Sequence[FileStat] | None = None) -> list[_File]:
    """Each file's size and inode: as the folder walk found them (``known``, in the order of ``paths``), else by
    ``os.stat``."""
    if known is not None:
        return [_File(Path(p), size, inode) for p, (size, inode) in zip(paths, known, strict=True)]
    out = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:  # vanished or unreadable: the data loader says so when it reads it
            continue
        out.append(_File(Path(p), st.st_size, (st.st_dev, st.st_ino)))
    return out


class _Index:
    """The training files of one size, by head digest, then by full digest within a head: each built on first need,
    so each file is hashed once per digest."""

    def __init__(self, files: list[_File]) -> None:
        self.files = files
        self._by_head: dict[str | None, list[_File]] | None = None
        self._by_full: dict[str | None, dict[str | None, list[Path]]] = {}

    def with_head(self, head: str) -> list[_File]:
        if self._by_head is None:
            self._by_head = defaultdict(list)
            for t in self.files:
                self._by_head[_digest(t.path, HEAD_BYTES)].append(t)
        return self._by_head.get(head, [])

    def with_content(self, head: str, full: str) -> list[Path]:
        if head not in self._by_full:
            by_full: dict[str | None, list[Path]] = defaultdict(list)
            for t in self.with_head(head):
                by_full[_digest(t.path, None)].append(t.path)
            self._by_full[head] = by_full
        return self._by_full[head].get(full, [])


def find_overlaps(train: Sequence[Path], test: Sequence[Path], train_stats: Sequence[FileStat] | None = None,
                  test_stats: Sequence[FileStat] | None = None) -> Overlap:
    """The test files of ``test`` whose content equals that of a file of ``train`` (module docstring);
    ``train_stats``/``test_stats``: their sizes and inodes as the folder walk found them (in their order), not
    stat-ed again."""
    by_size: dict[int, list[_File]] = defaultdict(list)
    by_inode: dict[tuple[int, int], list[Path]] = defaultdict(list)
    for t in _stat_all(train, train_stats):
        by_size[t.size].append(t)
        by_inode[t.inode].append(t.path)
    index = {size: _Index(files) for size, files in by_size.items()}
    matches: list[tuple[Path, Path]] = []
    for f in _stat_all(test, test_stats):
        if f.size not in index:
            continue  # no training file of its size: never opened
        twin = _twin(f, index[f.size], by_inode.get(f.inode))
        if twin is not None:
            matches.append((f.path, twin))
    return Overlap(len(matches), min(matches)) if matches else Overlap(0)


def _twin(f: _File, same_size: _Index, linked: list[Path] | None) -> Path | None:
    """A training file of ``f``'s size (``same_size``) with ``f``'s content, or None."""
    if linked:
        return min(linked)
    head = _digest(f.path, HEAD_BYTES)
    if head is None or not same_size.with_head(head):
        return None
    if f.size <= HEAD_BYTES:  # the head is the whole file
        return min(t.path for t in same_size.with_head(head))
    full = _digest(f.path, None)
    equal = same_size.with_content(head, full) if full is not None else []
    return min(equal) if equal else None


def folder_overlap(spec: str, train_ds: Any, test_ds: Any) -> tuple[Path, Overlap] | None:
    """The image folder ``spec`` names and the overlap of its splits ``train_ds``/``test_ds`` (folder data sets:
    ``samples``); None for other data (CIFAR, the built-in sets: no files to compare)."""
    from us3l.data.datasets import parse_data_spec

    if getattr(train_ds, "samples", None) is None or getattr(test_ds, "samples", None) is None:
        return None
    kind, root = parse_data_spec(spec)
    if kind != "folder" or root is None:
        return None
    from us3l.data.datasets import walked_stats

    known = [None if (w := walked_stats(ds)) is None else w.files() for ds in (train_ds, test_ds)]
    return root, find_overlaps([p for p, _ in train_ds.samples], [p for p, _ in test_ds.samples], *known)


def count_overlaps(spec: str, train_ds: Any, test_ds: Any, say: Callable[[str], None] | None = None) -> int | None:
    """How many test images of the image folder ``spec`` are identical to a training image, with ``say`` called once
    with the warning (``overlap_warning``) where any is (default: one ``warning:`` line on stderr); None for other
    data (not compared). ``us3l eval`` records the count in accuracy.json's ``data_check``, ``us3l train`` in
    checkpoint.json's ``data``."""
    found = folder_overlap(spec, train_ds, test_ds)
    if found is None:
        return None
    root, overlap = found
    text = overlap_warning(root, overlap)
    if text is not None:
        (say or _warn)(text)
    return overlap.count


def _warn(text: str) -> None:
    """``text`` as one ``warning:`` line on stderr (a path with ``[`` is not rich markup)."""
    from us3l.cli_output import warn

    warn(text, markup=False)


def overlap_warning(root: Path, overlap: Overlap) -> str | None:
    """The warning (without its ``warning:`` prefix) for ``overlap`` in the folder ``root``; None without one."""
    if overlap.first is None:
        return None
    test, train = (_below(p, root) for p in overlap.first)
    images = ("1 test image of {} is identical to a training image" if overlap.count == 1
              else f"{overlap.count} test images of {{}} are identical to training images").format(root)
    return (f"{images} (first: {test} = {train}); their accuracy counts images that the kNN bank, the linear probe "
            "and a network trained on this data have seen")


def _below(path: Path, root: Path) -> str:
    """``path`` below ``root`` (``test/cat/x.png``), POSIX separators; the whole path where it is not below it."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
