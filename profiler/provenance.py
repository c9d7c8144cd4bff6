"""Where and when a benchmark ran: the git commit of the us3l code that ran, the machine and the UTC time.

Every script in ``benchmarks/`` prints :func:`provenance_line` before its results (and the ones that write a
result file store :func:`git_commit` in it), so a recorded output names the code, the machine and the moment it
came from; README.md's benchmark table says the scripts do.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path
from typing import Any

from us3l.profiler.fingerprint import INT8_DOT_FEATURES, cpu_info

#: The checkout this us3l was imported from (``git`` finds the repository from here; an installed us3l has none).
SOURCE = Path(__file__).resolve().parent


def git_commit(where: Path = SOURCE) -> dict[str, Any]:
    """``{"commit": full hash or None, "dirty": tracked files changed (None when unknown)}`` of the repository
    holding ``where``; both None outside a git checkout or without git."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def provenance_line(now: dt.datetime | None = None, where: Path = SOURCE) -> str:
    """``# 2026-12-06 02:40 UTC, commit 62d0777a15 (uncommitted changes), Intel(R) Xeon(R) Processor, 2 CPUs,
    load 1.20 1.05 0.98``: the first line of a benchmark's output."""
    now = now or dt.datetime.now(dt.timezone.utc)
    git = git_commit(where)
    commit = (git["commit"] or "unknown")[:10] + (" (uncommitted changes)" if git["dirty"] else "")
    cpu = cpu_info()
    cores = cpu.get("usable_cores") or cpu.get("logical_cores")
    load = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return f"# {now:%Y-%m-%d %H:%M} UTC, commit {commit}, {cpu['model']}, {cores} CPUs, load {load}"


def cpu_isa() -> str:
    """The CPU's model name and its int8/bfloat16-relevant instruction-set features (``fingerprint.cpu_info``): the
    line an INT8 benchmark prints (``AMD EPYC; avx2 fma; int8 dot-product instructions (VNNI/AMX/dotprod): no``)."""
    cpu = cpu_info()
    isa = cpu.get("isa", [])
    dot = any(f in isa for f in INT8_DOT_FEATURES)
    return (f"{cpu['model']}; {' '.join(isa) or 'no AVX2/NEON'}; "
            f"int8 dot-product instructions (VNNI/AMX/dotprod): {'yes' if dot else 'no'}")
