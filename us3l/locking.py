"""Exclusive locks on the folders a command writes (run folders, export roots, profile and quickstart outputs).

``folder_lock(folder)`` takes a non-blocking ``fcntl.flock`` on ``folder/.us3l.lock`` for as long as the
``with`` block runs. The kernel drops the lock when the process exits, also on a crash or SIGKILL, so a stale
lock never needs cleaning up; the lock file itself stays (removing it would race with a new holder). A second
process asking for the same folder fails at once with one line naming the folder and the holder's PID.
A folder the lock created is removed again on release when nothing but the lock file landed in it (a command
that failed before writing anything leaves no empty folder).
Within one process the lock is re-entrant (quickstart locks its output folder and then runs the steps that
lock their own folders, some of them the same).
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from us3l.errors import US3LError

LOCK_FILE = ".us3l.lock"

_held: dict[Path, tuple[int, int]] = {}  # resolved folder -> (fd, depth)
_created: dict[Path, list[Path]] = {}  # resolved folder -> the folders its acquire created, deepest first
_guard = threading.Lock()


def _holder(lock_path: Path) -> str:
    try:
        text = lock_path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {int(text)})" if text.isdigit() else ""


def _open_lock_file(lock_path: Path, what: str = "folder") -> int:
    """Open (or create) the lock file, refusing anything but a private regular file: the PID is written into it,
    and a run folder from elsewhere could otherwise hold a symlink or hard link that points the write at another
    file of the user's. A folder that cannot be written into (read-only file system, no write permission) is
    named as such: removing the lock file would not help there."""
    import stat

    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(lock_path, flags, 0o666)
    except OSError as exc:
        if _not_writable(exc, lock_path):
            raise US3LError(
                f"{what} {lock_path.parent} is not writable ({exc.strerror}): choose a folder you can write to"
            ) from None
        kind = "a symbolic link" if lock_path.is_symlink() else exc.strerror
        raise US3LError(f"cannot use the lock file {lock_path}: {kind}; remove it and retry") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        kind = "not a regular file" if not stat.S_ISREG(st.st_mode) else "a hard link to another file"
        raise US3LError(f"cannot use the lock file {lock_path}: {kind}; remove it and retry")
    return fd


def _not_writable(exc: OSError, lock_path: Path) -> bool:
    """``exc`` (opening ``lock_path``) says the folder cannot be written into: a read-only file system, or a lock
    file that could not be created there (no permission; a folder of /proc, where no file can be made; no free
    inode). A lock file that exists but cannot be opened is the other case: removing it may help."""
    return exc.errno == errno.EROFS or not os.path.lexists(lock_path)


#: How often ``acquire`` takes the lock again when the lock file it locked was removed meanwhile (see there).
_ATTEMPTS = 5


def acquire(folder: str | Path, what: str = "folder") -> Path:
    """Lock ``folder`` (created if needed) for this process; ``US3LError`` if another process holds it.

    Returns the resolved folder; pair every call with ``release``. Prefer ``folder_lock``.

    A holder that wrote nothing removes the folder it created on release, lock file first (``_remove_if_unused``).
    A process that opened the lock file just before that and locks it just after holds a lock on a removed file,
    for a folder that is gone: its command then failed writing there. ``acquire`` checks that the file it locked
    is still the folder's lock file and otherwise starts again (the folder is created anew).
    """
    path = Path(folder)
    check_lockable(path, what)
    for _ in range(_ATTEMPTS):
        created = _missing_levels(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from us3l.cli import os_error_text
            from us3l.io import broken_link_error

            why = broken_link_error(path) if isinstance(exc, FileExistsError) else None
            raise US3LError(f"cannot create {what} {path}: {os_error_text(why) if why else exc.strerror or exc}"
                            ) from None
        key = path.resolve()
        with _guard:
            if key in _held:
                fd, depth = _held[key]
                _held[key] = (fd, depth + 1)
                return key
            fd = _lock(path, key / LOCK_FILE, what)
            if fd is None:
                continue
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode("ascii"))
            except OSError as exc:  # a full disk: not even the PID fits; nothing is left behind
                _created[key] = created
                _remove_if_unused(key)
                os.close(fd)
                raise US3LError(f"{what} {path} is not writable ({exc.strerror or exc}): choose a folder you can "
                                "write to") from None
            _held[key] = (fd, 1)
            if created:
                _created[key] = created
            return key
    raise US3LError(f"{what} {path} was removed each time it was locked (another us3l process leaving it); retry")


def check_lockable(folder: str | Path, what: str = "folder") -> None:
    """Refuse (one line) a ``folder`` that is a file: ``acquire``'s first check, for a command that checks its
    output folder before it prints or builds anything."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise US3LError(f"{what} {path} is a file, not a folder; choose another --out")


def _lock(path: Path, lock_path: Path, what: str) -> int | None:
    """The descriptor of ``lock_path``, opened and locked; None if that file is no longer ``lock_path`` once
    locked (its holder removed it on release); ``US3LError`` if another process holds the lock."""
    import fcntl

    fd = _open_lock_file(lock_path, what)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise US3LError(
            f"{what} {path} is in use by another us3l process{_holder(lock_path)}; wait for it to finish "
            "or choose another folder"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    try:
        now = os.stat(lock_path, follow_symlinks=False)
    except OSError:
        now = None
    held = os.fstat(fd)
    if now is None or (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
        os.close(fd)  # unlocks it
        return None
    return fd


def _missing_levels(path: Path) -> list[Path]:
    """The folders ``mkdir(parents=True)`` would create for ``path``, deepest first."""
    missing = []
    p = path.absolute()
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    return missing


def _remove_if_unused(key: Path) -> None:
    """Remove a folder ``acquire`` created (and the parents it created) when nothing but the lock file is in it:
    a command that failed before writing anything leaves no empty folder behind. Runs while the lock is held, so
    no other us3l process can be using it; a folder anyone wrote into stays."""
    levels = _created.pop(key, [])
    if not levels:
        return
    try:
        if os.listdir(key) != [LOCK_FILE]:
            return
        (key / LOCK_FILE).unlink()
        for level in levels:
            os.rmdir(level)  # stops at the first folder that is not empty
    except OSError:
        pass


def release(key: Path) -> None:
    """Undo one ``acquire`` (the lock goes when the outermost one is released)."""
    import fcntl

    with _guard:
        if key not in _held:
            return
        fd, depth = _held[key]
        if depth > 1:
            _held[key] = (fd, depth - 1)
            return
        del _held[key]
        try:
            _remove_if_unused(key)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


@contextmanager
def folder_lock(folder: str | Path, what: str = "folder") -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` for the ``with`` block (see the module docstring)."""
    key = acquire(folder, what)
    try:
        yield key
    finally:
        release(key)
