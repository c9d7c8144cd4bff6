"""Atomic file writes and common metadata (schema version, tool version, environment) for result files."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from us3l.errors import US3LError
from us3l.version import __version__


def process_umask() -> int:
    """The process umask, read without changing it where the OS allows (``/proc/self/status`` on Linux).

    Elsewhere it is read once (``os.umask`` can only be read by setting it, which is not thread-safe) and
    cached.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _umask_once()


@cache
def _umask_once() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Mode of a regular file created the usual way (``0o666`` less the umask): 0644 under umask 022."""
    return 0o666 & ~process_umask()


def dir_mode() -> int:
    """Mode of a folder created the usual way (``0o777`` less the umask): 0755 under umask 022."""
    return 0o777 & ~process_umask()


def follow_umask(path: str | Path) -> None:
    """Give a file or folder created private (``mkstemp`` 0600, ``mkdtemp`` 0700) the umask's usual mode."""
    os.chmod(path, dir_mode() if Path(path).is_dir() else file_mode())


def temp_file(directory: str | Path, prefix: str, suffix: str = ".tmp") -> Path:
    """A new empty temporary file in ``directory`` with the umask's usual mode (not ``mkstemp``'s 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    try:
        os.fchmod(fd, file_mode())
    finally:
        os.close(fd)
    return Path(tmp)


def temp_dir(directory: str | Path, prefix: str) -> Path:
    """A new temporary folder in ``directory`` with the umask's usual mode (not ``mkdtemp``'s 0700)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=directory))
    follow_umask(tmp)
    return tmp


#: Written into every temporary folder us3l makes under ``$TMPDIR`` (``pid N``): ``us3l.deploy.staging.clean_stale``
#: removes only folders that hold it, never a user's own ``/tmp/us3l-*`` folder.
OWNER_FILE = ".us3l-owner"


def owned_temp_dir(prefix: str) -> Path:
    """A new private folder under ``$TMPDIR`` named ``<prefix>...``, marked as us3l's with ``OWNER_FILE``."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        (tmp / OWNER_FILE).write_text(f"pid {os.getpid()}\n", encoding="ascii")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


@contextlib.contextmanager
def owned_temporary_directory(prefix: str) -> Iterator[Path]:
    """``tempfile.TemporaryDirectory`` made by :func:`owned_temp_dir`: removed on exit."""
    tmp = owned_temp_dir(prefix)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def owner_pid(folder: Path) -> int | None:
    """The PID recorded in ``folder``'s ``OWNER_FILE``; None when the folder is not one us3l marked (or the file
    is unreadable); -1 when it is marked but names no PID. Only a regular file is read, and only its first bytes:
    anyone can make a ``us3l-*`` folder in a shared ``/tmp``, and a FIFO there blocked every export's clean-up
    forever (a link to ``/dev/zero`` read until memory ran out)."""
    import stat

    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(folder / OWNER_FILE, flags)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        text = os.read(fd, 64).decode("ascii", errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)
    parts = text.split()
    return int(parts[1]) if len(parts) == 2 and parts[0] == "pid" and parts[1].isdigit() else -1


#: The longest part of a temporary file's name that stands for the file it becomes (``temp_stem``): with the
#: ``.``, ``.<pid>-<random>.tmp`` around it the temporary stays under the usual 255-byte file-name limit.
TEMP_STEM_MAX = 200


def temp_stem(name: str) -> str:
    """What ``atomic_write``'s temporary file is named after for ``name``: the name itself, or, for a name so long
    that the temporary's would pass the file system's 255-byte limit (a 245-character ``--out`` is legal), its
    first bytes and a digest of the whole."""
    raw = os.fsencode(name)
    if len(raw) <= TEMP_STEM_MAX:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:12]
    return f"{os.fsdecode(raw[: TEMP_STEM_MAX - 13])}~{digest}"  # a cut character: its bytes, as the fs takes them


@contextlib.contextmanager
def naming(target: str | Path, staged: str | Path | None = None) -> Iterator[None]:
    """Have a failure to write ``target`` name ``target``. ``write()`` and ``fsync`` name no file (a full disk:
    ``No space left on device``, and nothing said where), and a writer that works on a temporary file or folder
    ``staged`` (removed on the error, never seen by the user) names that: an ``OSError`` of either kind is raised
    again naming ``target`` (or the file in it that the staged one stands for). Other errors pass unchanged."""
    try:
        yield
    except Exception as exc:
        named = named_write_error(exc, target, staged)
        if named is None:
            raise
        raise named from exc


def named_write_error(exc: BaseException, target: str | Path, staged: str | Path | None = None) -> OSError | None:
    """The error :func:`naming` raises in place of ``exc`` (None: ``exc`` is left as it is), for a writer whose
    clean-up must run first (an export's staging folder; call it before the clean-up frees the space).

    A writer that is not Python's own fails on a full disk with a ``RuntimeError`` of its own words (``torch.save``:
    ``[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534``, OpenVINO's ``save_model``:
    ``basic_ios::clear: iostream error``): when the file system of ``staged`` (else ``target``) then has almost no
    room left (``FULL_DISK_BYTES``), that is ``OSError(ENOSPC)`` naming ``target``."""
    if isinstance(exc, RuntimeError):
        if not _disk_full(Path(staged if staged is not None else target)):
            return None
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
    if not isinstance(exc, OSError) or not exc.strerror:
        return None
    name = _name_for(exc.filename, Path(target), None if staged is None else Path(staged))
    return None if name is None else OSError(exc.errno, exc.strerror, name)


#: Free bytes below which a file system counts as full once a write failed there (a writer fills a disk to its
#: last blocks before it fails).
FULL_DISK_BYTES = 1 << 20


def _disk_full(path: Path) -> bool:
    """Whether the file system holding ``path`` (or its nearest existing parent) has under ``FULL_DISK_BYTES``
    free for this user (root may use the blocks reserved for it)."""
    level = path.absolute()
    while not os.path.lexists(level) and level != level.parent:
        level = level.parent
    try:
        st = os.statvfs(level)
    except (OSError, AttributeError):  # AttributeError: no statvfs on this OS
        return False
    root = getattr(os, "geteuid", lambda: -1)() == 0
    return (st.f_bfree if root else st.f_bavail) * st.f_frsize < FULL_DISK_BYTES


def _name_for(filename: Any, target: Path, staged: Path | None) -> str | None:
    if filename is None:
        return str(target)
    if staged is None or not isinstance(filename, (str, bytes, os.PathLike)):
        return None
    named = Path(os.fsdecode(filename))
    if named == staged:
        return str(target)
    return str(target / named.relative_to(staged)) if staged in named.parents else None


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file over ``path``.

    A reader never sees a half-written file: an interrupted write leaves only a ``.tmp`` file behind,
    which is removed on error. The file gets the umask's usual mode (0644 under umask 022).
    """
    return atomic_write_all([(path, write)])[0]


def atomic_write_all(files: Sequence[tuple[str | Path, Callable[[Path], None]]]) -> list[Path]:
    """``atomic_write`` for files that belong together (a profile's JSON and its CSV table): every file is
    written to its temporary name first, then all are renamed with Ctrl-C and SIGTERM held back, so an
    interrupt leaves either all the old files or all the new ones, never a new one beside an old one."""
    staged: list[tuple[Path, Path]] = []
    made: list[Path] = []  # the folders made for the files, deepest first per file: removed again on failure
    try:
        for path, write in files:
            path = Path(path)
            made[:0] = make_folders(path.parent)
            # made and listed for removal as one step: a Ctrl-C or SIGTERM landing between the two left the file
            with signals_held():  # the PID in the name: a later write removes what a SIGKILLed one left
                tmp_path = temp_for(path, prefix=f".{temp_stem(path.name)}.{os.getpid()}-")
                staged.append((tmp_path, path))
            fill_temp(tmp_path, path, write)
        rename_into_place(staged)
    except BaseException:
        for tmp_path, _ in staged:
            tmp_path.unlink(missing_ok=True)
        for folder in made:  # a failed write leaves no empty folder of its own (one anyone wrote into stays)
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    for _, path in staged:
        remove_dead_temps(path)
    return [path for _, path in staged]


def temp_for(path: Path, prefix: str) -> Path:
    """A new temporary file beside ``path`` (``temp_file`` in its folder) that will become ``path``; a failure to make
    it (a read-only folder) names ``path``, the file asked for, not a temporary never made."""
    try:
        return temp_file(path.parent, prefix=prefix)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None


def fill_temp(tmp_path: Path, path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp_path)``, then the umask's mode (a writer that replaced the file, e.g. by rename, gets it back) and
    ``fsync``; a failure (a full disk) names ``path``, the file the temporary stands for (:func:`naming`)."""
    with naming(path, staged=tmp_path):
        write(tmp_path)
        follow_umask(tmp_path)
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())


def rename_into_place(staged: Sequence[tuple[Path, Path]]) -> None:
    """Rename each (temporary, final path) of ``staged`` over its final path, in order, with Ctrl-C and SIGTERM held
    back until all are done (raised again then), so an interrupt never leaves new files beside old ones; a failure
    (e.g. a folder in a file's place) names the final path, not the temporary."""
    with signals_held():
        for tmp_path, path in staged:
            try:
                os.replace(tmp_path, path)
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror, str(path)) from None


def make_folders(folder: Path) -> list[Path]:
    """Make ``folder`` and its missing parents; returns the folders made, deepest first. A file where one of them
    must go is ``NotADirectoryError`` naming that file (``mkdir`` says ``File exists``, as if the folder were there:
    ``select --out FILE/selection.json``); where ``mkdir`` fails part-way, what it made is removed again."""
    missing = []
    level = folder.absolute()
    while not os.path.lexists(level) and level != level.parent:
        missing.append(level)
        level = level.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        for made in missing:
            with contextlib.suppress(OSError):
                made.rmdir()
        if isinstance(exc, FileExistsError):
            raise broken_link_error(folder) or NotADirectoryError(
                errno.ENOTDIR, os.strerror(errno.ENOTDIR), exc.filename) from None
        raise
    return missing


def broken_link_error(folder: Path) -> OSError | None:
    """Where ``folder`` is a symbolic link that leads to no file (a loop, or a link to a missing target), the error
    following it gives, naming the link (and its target where that is missing); else None. ``mkdir`` says ``File
    exists`` there, as if a folder were there: ``--out LOOP`` was ``Not a directory: LOOP`` or ``cannot create
    output folder LOOP: File exists``."""
    try:
        os.stat(folder)
    except OSError as exc:
        target = os.readlink(folder) if exc.errno == errno.ENOENT and os.path.islink(folder) else None
        return OSError(exc.errno, exc.strerror, str(folder), None, target)
    return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (another user's counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OverflowError:
        return False
    return True


def remove_dead_temps(path: Path) -> list[Path]:
    """Remove the temporary files of ``atomic_write`` beside ``path`` (``.<temp_stem>.<pid>-<random>.tmp``) that a
    process killed before its rename left: this user's regular files whose writer is no longer running (a live writer's,
    another user's, and older names without a PID are left alone). Returns what was removed."""
    pattern = re.compile(rf"^\.{re.escape(temp_stem(path.name))}\.(\d+)-[A-Za-z0-9_]+\.tmp$")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if m is None or pid_alive(int(m[1])):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_uid == os.getuid():
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back: one that arrives inside is raised again, to the handler in force before, on
    exit (atomic renames; data-loader workers starting, ``us3l.data.loader``). Python runs signal handlers in the
    main thread only; elsewhere this does nothing. (A signal mask would not do: another thread, e.g. torch's or
    gloo's, takes the signal and Python still runs the handler in this one.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    # a handler installed outside Python (getsignal: None) could not be put back: that signal is not held
    held = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not None]
    previous = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(pending):
            signal.raise_signal(s)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json_text(obj, str(path)))


def json_text(obj: Any, what: str = "the JSON document", default: Callable[[Any], Any] | None = None) -> str:
    """A result document as us3l writes it: indented JSON, one trailing newline. A NaN or infinite number is a
    one-line ``US3LError`` naming ``what`` and where in the document: JSON has no such numbers (Python writes
    ``NaN``, which jq, JavaScript and most other readers refuse), and us3l never measures one. ``default``: how
    other objects are written (paths and arrays, else a TypeError)."""
    try:
        return json.dumps(obj, indent=2, sort_keys=False, default=default or _json_default, allow_nan=False) + "\n"
    except ValueError as exc:
        where = non_finite_at(obj)
        if where is None:
            raise
        raise US3LError(f"not writing {what}: {where} is not a finite number, which JSON cannot hold") from exc


def non_finite_at(obj: Any, at: str = "") -> str | None:
    """Where in ``obj`` (``widths[1].embedding_std``) the first NaN or infinite float sits; None if nowhere."""
    import math

    if isinstance(obj, float):
        return None if math.isfinite(obj) else (at or "the value")
    if isinstance(obj, dict):
        items: Any = ((f"{at}.{k}" if at else str(k), v) for k, v in obj.items())
    elif isinstance(obj, list | tuple):
        items = ((f"{at}[{i}]", v) for i, v in enumerate(obj))
    else:
        return None
    return next((w for key, v in items if (w := non_finite_at(v, key)) is not None), None)


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


#: Largest file (JSON result, manifest, device file) :func:`read_input_bytes` reads: us3l's own are kB to a few MB
#: (a 90-width profile is ~100 kB), so anything larger is not one of them, and reading it whole could exhaust
#: memory (a multi-GB file named by mistake, or a crafted one).
MAX_INPUT_BYTES = 64 << 20


def read_at_most(fh: Any, limit: int) -> bytes | None:
    """The bytes of the open binary stream ``fh`` (a file, a remote command's output) when they are at most ``limit``,
    read no further than one byte past it; None when there are more (the caller refuses it in its own words): a
    stream without end, or a huge file, is not read until memory runs out."""
    data = fh.read(limit + 1)
    return None if len(data) > limit else data


def read_input_bytes(path: str | Path, what: str = "file", max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a file the user named, read once; a missing path, a folder or device (``/dev/null``), an
    unreadable file, or one larger than ``max_bytes`` (checked before reading, and the read stops there: the file
    may grow meanwhile) each become a one-line ``US3LError`` naming ``what`` and the path."""
    path = Path(path)
    if not path.exists():
        raise US3LError(f"{what} not found: {path}")
    if not path.is_file():
        raise US3LError(f"{what} {path} is not a regular file")
    too_big = US3LError(f"{what} {path} is larger than {max_bytes // (1 << 20)} MiB; it is not a us3l {what}")
    try:
        if path.stat().st_size > max_bytes:
            raise too_big
        with open(path, "rb") as fh:
            data = read_at_most(fh, max_bytes)
    except OSError as exc:
        raise US3LError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if data is None:
        raise too_big
    return data


def _decode_text(data: bytes, path: str | Path, what: str) -> str:
    try:
        return data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")  # as text mode reads it
    except UnicodeDecodeError as exc:
        raise US3LError(f"{what} {path} is not UTF-8 text: {exc}") from None


def read_input_text(path: str | Path, what: str = "file", max_bytes: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of a file the user named, without the byte-order mark an editor may have put first (JSON and
    TOML parsers refuse it: "Unexpected UTF-8 BOM", "Invalid statement (at line 1, column 1)"); the errors of
    :func:`read_input_bytes`, and a non-UTF-8 file, are one-line ``US3LError`` naming ``what`` and the path."""
    return _decode_text(read_input_bytes(path, what, max_bytes), path, what)


def _parse_json(text: str, path: str | Path, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError; a 5000-digit number; arrays nested too deep
        twin = Path(path).with_suffix(".json")
        if Path(path).suffix.lower() == ".csv" and twin.is_file():  # a profile's table, written beside its JSON
            raise US3LError(f"{what} {path} is the CSV table of {twin}: pass the .json") from None
        raise US3LError(f"{what} {path} is not valid JSON: {exc}") from None


def read_json(path: str | Path, what: str = "file") -> Any:
    """Read a JSON file, turning a missing or malformed file into a one-line ``US3LError``."""
    return _parse_json(read_input_text(path, what), path, what)


def read_json_sha256(path: str | Path, what: str = "file") -> tuple[Any, str]:
    """``read_json`` and the sha256 of the very bytes it parsed (the file is read once: a digest taken by opening
    the file again could describe another file, swapped in between)."""
    data = read_input_bytes(path, what)
    return _parse_json(_decode_text(data, path, what), path, what), hashlib.sha256(data).hexdigest()


def check_schema(doc: Any, kind: str, version: int, path: str | Path) -> None:
    """Reject a result document of another kind or schema version with a clear message."""
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        raise US3LError(f"{path} is not a us3l {kind} file")
    found = doc.get("schema_version")
    if found is None:
        raise US3LError(f"{path} has no schema_version; this us3l ({__version__}) reads {kind} version {version}")
    if not isinstance(found, int) or isinstance(found, bool):
        raise US3LError(f"{path}: schema_version must be an integer, got {found!r:.40}")
    if found != version:
        raise US3LError(
            f"{path} has {kind} schema version {found}, this us3l ({__version__}) reads version {version}"
        )


def output_folder(
    path: Path, flag: str = "--out", writes: str | None = None, suffixes: tuple[str, ...] | None = None
) -> Path:
    """``path`` as an output folder: a one-line error when it names an existing file (checked before any work).

    ``writes``: what the command writes in it (``accuracy.json``); ``suffixes``: its files' suffixes (default: that
    of ``writes``). A path that does not exist yet and ends in one of them is a file name given where a folder goes
    (``--out results/accuracy.json``): refused, rather than made a folder holding ``results/accuracy.json/
    accuracy.json``. An existing folder of any name is taken as it is."""
    if path.exists() and not path.is_dir():
        raise US3LError(f"{flag} must be a folder, got the file {path}")
    if suffixes is None:
        suffixes = (Path(writes).suffix,) if writes else ()
    if not path.exists() and path.suffix.lower() in {x.lower() for x in suffixes if x}:
        raise US3LError(f"{flag} must be a folder (the command writes {writes} in it), got the file name {path}: give "
                        f"{flag} {path.parent}")
    return path


def check_replaceable(path: Path, what: str, ours: Callable[[bytes], bool]) -> None:
    """Refuse to replace an existing ``path`` unless its first bytes are ``ours`` (a previous output of the same
    kind): an output path given as a file must never clobber an input, a checkpoint or a file of the user's."""
    if not path.exists():
        return
    if path.is_file():
        with open(path, "rb") as fh:
            head = fh.read(65536)
        if ours(head):
            return
    raise US3LError(f"refusing to replace {path}: it is not a {what}; choose another --out")


#: The ``Software`` text chunk of every PNG us3l writes: it marks the file as us3l's (:func:`is_us3l_png`), and
#: carries no version, so equal inputs give byte-identical plots across versions.
PNG_SOFTWARE = "us3l"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_software(head: bytes) -> bytes | None:
    """The ``Software`` tEXt chunk among a PNG's first bytes ``head`` (None: not a PNG, or no such chunk there)."""
    if not head.startswith(_PNG_SIGNATURE):
        return None
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(head):
        length = int.from_bytes(head[pos:pos + 4], "big")
        kind, data = head[pos + 4:pos + 8], head[pos + 8:pos + 8 + length]
        if kind == b"tEXt" and len(data) == length:
            key, _, value = data.partition(b"\0")
            if key == b"Software":
                return value
        pos += 12 + length  # length, type, data, CRC
    return None


def is_us3l_png(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) starts a PNG that us3l wrote: its ``Software`` text is ``us3l``."""
    return _png_software(head) == PNG_SOFTWARE.encode()


def check_png_replaceable(path: Path, beside_ours: bool = False) -> None:
    """Refuse to replace ``path`` (a PNG a ``--plot`` will write) unless us3l wrote it.

    Before plots were marked, us3l's PNGs carried matplotlib's default ``Software`` text (``Matplotlib
    version…``), as any PNG drawn with matplotlib does, or none at all: such a file is replaced only when
    ``beside_ours`` (the us3l output the plot is drawn from already sits next to it), never on its own.
    """
    def ours(head: bytes) -> bool:
        software = _png_software(head)
        if software == PNG_SOFTWARE.encode():
            return True
        unmarked = software is None or software.startswith(b"Matplotlib version")
        return beside_ours and head.startswith(_PNG_SIGNATURE) and unmarked

    check_replaceable(path, "us3l plot", ours)


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
