"""Leftovers of interrupted exports: recognise them (never list them as artifacts) and remove the stale ones.

``us3l.deploy.export`` builds an artifact in ``OUT/<device>/.<name>.staging-<pid>-<random>/`` and swaps an older
artifact aside into ``.<name>.old-<pid>-<random>/`` before removing it; a SIGKILL at the wrong moment leaves
such a folder behind, and runtimes or profilers killed mid-way leave ``$TMPDIR/us3l-*`` folders. They are never
artifacts (hidden names), and ``clean_stale`` (run by every export) removes the ones that are clearly ours and
stale: the name has our pattern, the folder belongs to this user, and the process that made it is gone
(its PID is in the name and is not running) or, where no PID is recorded, it has not changed for a day. A stale
swapped-aside folder whose artifact never got a successor (killed between the two renames) is put back first. In
``$TMPDIR`` a folder is ours only if it holds ``us3l.io.OWNER_FILE`` (written when us3l made it, with the PID):
a user's own ``/tmp/us3l-results`` is never touched, whatever its name or age.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from us3l.io import owner_pid, pid_alive

#: ``.<name>.staging-<pid>-<random>`` / ``.<name>.old-<pid>-<random>`` (the PID is absent in older names).
STAGING_RE = re.compile(r"^\.(?P<name>.+)\.(?P<kind>staging|old)-(?:(?P<pid>\d+)-)?[A-Za-z0-9_]+$")
#: Temporary folders made by us3l runtimes/profilers under ``$TMPDIR`` (``us3l-profile-xyz``, ``us3l-trt.xyz``).
TMP_RE = re.compile(r"^us3l[-.][A-Za-z0-9_.-]+$")
#: A leftover without a PID (or whose PID may have been reused) counts as stale after this long unchanged.
STALE_AFTER_S = 24 * 3600.0


def staging_prefix(name: str, kind: str = "staging") -> str:
    """``mkdtemp`` prefix of a staging (``kind="staging"``) or swapped-aside (``"old"``) folder of ``name``."""
    return f".{name}.{kind}-{os.getpid()}-"


def is_staging(name: str) -> bool:
    """Whether a folder name is an export's staging or swapped-aside folder (never an artifact)."""
    return STAGING_RE.match(name) is not None


def _age_s(path: Path, now: float) -> float:
    """Seconds since anything directly in ``path`` (or the folder itself) last changed."""
    latest = path.lstat().st_mtime
    try:
        for child in path.iterdir():
            latest = max(latest, child.lstat().st_mtime)
    except OSError:
        pass
    return now - latest


def _stale(path: Path, pid: int | None, now: float, stale_after_s: float) -> bool:
    try:
        st = path.lstat()
    except OSError:
        return False
    if not path.is_dir() or path.is_symlink() or st.st_uid != os.getuid():
        return False
    if pid is not None and not pid_alive(pid):
        return True
    return _age_s(path, now) > stale_after_s


def _put_back(aside: Path, final: Path) -> None:
    """An export killed between its two renames left the previous artifact only in the swapped-aside folder
    ``aside`` (``aside/<name>``) and nothing at ``final``: put it back rather than delete the one copy."""
    inner = aside / final.name
    if os.path.lexists(inner) and not os.path.lexists(final):
        with contextlib.suppress(OSError):
            os.replace(inner, final)


def clean_stale(
    out_root: str | Path | None = None,
    tmp_root: str | Path | None = None,
    stale_after_s: float = STALE_AFTER_S,
) -> list[Path]:
    """Remove stale export leftovers in ``out_root/<device>/`` (and ``out_root`` itself) and in ``tmp_root``
    (default ``$TMPDIR``); return the folders removed. Anything live, foreign or not matching is left alone."""
    now = time.time()
    removed: list[Path] = []
    if out_root is not None and Path(out_root).is_dir():
        root = Path(out_root)
        parents = [root, *(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())]
        for parent in parents:
            try:
                entries = list(parent.iterdir())
            except OSError:
                continue
            for entry in entries:
                m = STAGING_RE.match(entry.name)
                if m and _stale(entry, int(m["pid"]) if m["pid"] else None, now, stale_after_s):
                    if m["kind"] == "old":
                        _put_back(entry, parent / m["name"])
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry)
    tmp = Path(tmp_root) if tmp_root is not None else Path(tempfile.gettempdir())
    try:
        entries = list(tmp.iterdir())
    except OSError:
        entries = []
    for entry in entries:
        pid = owner_pid(entry) if TMP_RE.match(entry.name) else None
        if pid is not None and _stale(entry, pid if pid >= 0 else None, now, stale_after_s):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed
